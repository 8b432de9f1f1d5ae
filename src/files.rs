//! The files lettergate writes and reads, kept to what it made and what it was given: every
//! write goes through [`write`] (or [`write_private`]), outputs are checked up front with
//! [`check_output`], run folders are private ([`create_private_dir`]), and reads take only
//! regular files ([`read_regular`]) from walks that end ([`walk`]).
//!
//! # Design constraints
//!
//! Another user of the same host may plant a symbolic link, a FIFO or a file where lettergate
//! is about to write or read (issue 13). So:
//!
//! - A write never opens a predictable name: the text goes to a randomly named temporary file
//!   created exclusively (`O_EXCL`) beside the target, which is renamed over the target; a
//!   failure removes it. The rename replaces a symbolic link at the target rather than writing
//!   through it, and a target that is not a regular file is refused before anything is written.
//! - A read opens without blocking and without following a final symbolic link where the
//!   caller asks, then refuses anything that is not a regular file, so a FIFO cannot block it
//!   and a device cannot feed it for ever.
//! - A walk remembers every folder it entered by device and inode, so a link back up the tree
//!   (`up -> ..`) is visited once, and it skips FIFOs, sockets and devices.

use std::collections::HashSet;
use std::fs::Metadata;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Why a path cannot be written as an output; checked before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{} is a symbolic link; lettergate writes only regular files it can replace", .0.display())]
    Symlink(PathBuf),
    #[error("{} is a folder; give a file name", .0.display())]
    Folder(PathBuf),
    #[error("{} is not a regular file (a device, FIFO or socket); give a file name", .0.display())]
    NotRegular(PathBuf),
    #[error("cannot write in {}", .dir.display())]
    NotWritable {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl OutputError {
    fn into_io(self) -> io::Error {
        let kind = match self {
            OutputError::NotWritable { ref source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, self)
    }
}

/// Whether `path` may be written as an output: absent, or a regular file (not a symbolic
/// link), in a folder lettergate can create files in (or will create). Probes the folder by
/// creating and removing a temporary file in it.
pub fn check_output(path: &Path) -> Result<(), OutputError> {
    check_target(path)?;
    let Some(dir) = existing_folder_of(path) else {
        return Ok(());
    };
    tempfile::Builder::new()
        .prefix(".lettergate-probe")
        .tempfile_in(&dir)
        .map(drop)
        .map_err(|source| OutputError::NotWritable { dir, source })
}

/// Refuses an existing target that is a symbolic link, a folder or not a regular file.
fn check_target(path: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(OutputError::Symlink(path.to_path_buf())),
        Ok(m) if m.is_dir() => Err(OutputError::Folder(path.to_path_buf())),
        Ok(m) if !m.is_file() => Err(OutputError::NotRegular(path.to_path_buf())),
        _ => Ok(()),
    }
}

/// The nearest folder of `path` that exists (its own folder, or the first ancestor there is).
fn existing_folder_of(path: &Path) -> Option<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parent
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || a.is_dir())
        .map(|a| match a.as_os_str().is_empty() {
            true => PathBuf::from("."),
            false => a.to_path_buf(),
        })
}

/// Writes a user-visible file (a report, a snapshot, a schema, a file of `init`) whole:
/// through a randomly named temporary file beside it, renamed over it. Its folders are created
/// as needed; a target that is not a regular file is refused. The file gets the usual
/// permissions (0666 less the umask).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, 0o666)
}

/// As [`write`], for a file only its owner may read (0600): what a run keeps.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_with(path, bytes, 0o600)
}

fn write_with(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    check_target(path).map_err(OutputError::into_io)?;
    replace(path, bytes, mode)
}

/// The write itself: a new temporary file beside `path`, renamed over it.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".lettergate-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    // The temporary file is removed when it is dropped, so every early return cleans up.
    let mut tmp = builder.tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

/// Creates `path` and any missing parents, each new one private to its owner (0700);
/// folders that exist already keep their permissions. With `exclusive` the leaf must not
/// exist yet, and is made 0700 whatever the umask.
pub fn create_private_dir(path: &Path, exclusive: bool) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        b.recursive(true).create(parent)?;
    }
    b.recursive(!exclusive).create(path)?;
    let m = std::fs::symlink_metadata(path)?;
    if !m.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not a folder", path.display()),
        ));
    }
    #[cfg(unix)]
    if exclusive {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens a file lettergate keeps in a run folder for writing, only its owner may read it
/// (0600), without following a symbolic link at its name; `append` keeps what it holds.
pub fn open_private(path: &Path, append: bool) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let f = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(f)
}

/// Whether a symbolic link as the last part of a path read is followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    Follow,
    Refuse,
}

/// Reads a regular file whole; a FIFO, socket, device or folder is an error, never a read
/// that blocks or does not end.
pub fn read_regular(path: &Path, links: Links) -> io::Result<Vec<u8>> {
    let mut f = open_regular(path, links)?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_to_string(path: &Path, links: Links) -> io::Result<String> {
    String::from_utf8(read_regular(path, links)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Opens a regular file for reading, without blocking on a FIFO (`O_NONBLOCK`, which a
/// regular file ignores) and, with [`Links::Refuse`], not through a symbolic link.
pub fn open_regular(path: &Path, links: Links) -> io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = match links {
            Links::Follow => 0,
            Links::Refuse => libc::O_NOFOLLOW,
        };
        o.custom_flags(libc::O_NONBLOCK | nofollow);
    }
    #[cfg(not(unix))]
    if links == Links::Refuse && std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link",
        ));
    }
    let f = o.open(path).map_err(|e| match e.raw_os_error() {
        #[cfg(unix)]
        Some(libc::ELOOP) => io::Error::new(io::ErrorKind::InvalidInput, "is a symbolic link"),
        _ => e,
    })?;
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, not_regular(&m)));
    }
    Ok(f)
}

fn not_regular(m: &Metadata) -> &'static str {
    if m.is_dir() {
        "is a folder, not a file"
    } else {
        "is not a regular file (a FIFO, socket or device)"
    }
}

/// Every regular file below `dir` whose name `keep` accepts, sorted; folders reached twice
/// (through a symbolic link back up the tree) are entered once, and FIFOs, sockets and
/// devices are skipped. `keep` is asked about the file name only.
pub fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    walk_into(dir, keep, &mut seen, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk_into(
    dir: &Path,
    keep: &dyn Fn(&Path) -> bool,
    seen: &mut HashSet<(u64, u64)>,
    out: &mut Vec<PathBuf>,
) -> io::Result<()> {
    if !seen.insert(identity(&std::fs::metadata(dir)?)) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        // A link is judged by what it points to; a dangling one is skipped.
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            walk_into(&p, keep, seen, out)?;
        } else if m.is_file() && keep(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// A folder's device and inode, which name it however it is reached.
#[cfg(unix)]
fn identity(m: &Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn identity(_: &Metadata) -> (u64, u64) {
    // Without inodes a walk is bounded by depth instead of identity.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    (0, NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_write_leaves_only_the_target_and_replaces_it_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/report.xml");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left beside the target");
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_file() {
        let d = tempfile::tempdir().unwrap();
        // The rename fails, as when the target became a folder after the check.
        let p = d.path().join("out");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), "x").unwrap();
        assert!(replace(&p, b"x", 0o666).is_err());
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn a_write_refuses_a_symlink_and_leaves_what_it_points_to() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = d.path().join("report.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(write(&link, b"x").is_err());
        assert!(matches!(check_output(&link), Err(OutputError::Symlink(_))));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn outputs_that_are_fifos_folders_or_in_read_only_folders_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        assert!(matches!(
            check_output(&fifo),
            Err(OutputError::NotRegular(_))
        ));
        assert!(matches!(
            check_output(d.path()),
            Err(OutputError::Folder(_))
        ));
        assert!(matches!(
            check_output(Path::new("/dev/null")),
            Err(OutputError::NotRegular(_))
        ));
        let ro = d.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        // Root may write anywhere; the check is then rightly silent.
        if unsafe { libc::geteuid() } != 0 {
            assert!(matches!(
                check_output(&ro.join("r.xml")),
                Err(OutputError::NotWritable { .. })
            ));
        }
        assert!(check_output(&d.path().join("new/deeper/r.xml")).is_ok());
        assert!(check_output(Path::new("r.xml")).is_ok());
    }

    #[test]
    fn private_files_and_folders_are_the_owners_alone() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path().join("runs/1");
        create_private_dir(&run, true).unwrap();
        assert_eq!(mode(&run), 0o700);
        assert_eq!(mode(&d.path().join("runs")), 0o700);
        assert!(create_private_dir(&run, true).is_err(), "exclusive");
        write_private(&run.join("ledger.json"), b"{}").unwrap();
        assert_eq!(mode(&run.join("ledger.json")), 0o600);
        drop(open_private(&run.join("bodies.bin"), false).unwrap());
        assert_eq!(mode(&run.join("bodies.bin")), 0o600);
    }

    #[test]
    fn reads_refuse_fifos_without_blocking_and_links_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("x.yaml");
        mkfifo(&fifo);
        assert!(read_regular(&fifo, Links::Follow).is_err());
        let file = d.path().join("f");
        std::fs::write(&file, "text").unwrap();
        let link = d.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&link, Links::Follow).unwrap(), b"text");
        assert!(read_regular(&link, Links::Refuse).is_err());
        assert!(read_regular(d.path(), Links::Follow).is_err());
    }

    #[test]
    fn a_walk_ends_on_a_link_back_up_and_skips_fifos() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/s.yaml"), "x").unwrap();
        std::os::unix::fs::symlink("..", d.path().join("a/up")).unwrap();
        mkfifo(&d.path().join("a/f.yaml"));
        let found = walk(d.path(), &|p| p.extension().is_some_and(|x| x == "yaml")).unwrap();
        assert_eq!(found, vec![d.path().join("a/s.yaml")]);
    }
}
