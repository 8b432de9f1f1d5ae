//! [`FolderCapture`]: a watched folder, as trusts drop letters for a document system to pick
//! up. Each new complete file is recorded once as a [`CapturedLetter`] (transport `folder`,
//! route `FOLDER <file name>`), into a [`LogSink`] it may share with the run's other captures.
//!
//! Design constraints:
//! - A file is complete when its size and modification time are the same on two polls, or when
//!   it was renamed into place: the previous poll saw `<name>.tmp` and this one sees `<name>`.
//!   Temporary files (`*.tmp`) and dotfiles are never recorded.
//! - A file is recorded again only when it changes: it is known by name, size and mtime.
//! - A file larger than the message cap (`LETTERGATE_MAX_MESSAGE`) is recorded as refused,
//!   without being read: a 2 GiB file costs no more memory than a small one.
//! - Arrival is the file's modification time, the filesystem's own record of when it landed.
//!   The simulator stamps the files it drops with its virtual clock, so deadlines are checked
//!   on the scenario's clock however late the poll comes. The capture clock is used only for a
//!   file whose mtime cannot be read.
//! - [`FolderCapture::finish`] polls twice more after the writer is done, so every file present
//!   at the end is recorded, and hands back every file it knows of ([`KnownFiles`]), so the
//!   next watcher of the same folder (the next scenario of a target run) does not take them
//!   for new letters. [`KnownFiles::in_folder`] lists what is there before a run starts.

use super::server::CaptureError;
use super::sink::{LogSink, SinkError};
use super::store::CapturedLetter;
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::letter::Transport;
use crate::protocol::limits::{read_open_file_capped, CapError, Limits};
use crate::protocol::read::parse_letter;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;

/// Files whose names start with this are lettergate's own canaries ([`drop_canary`]): counted
/// as proof the watcher is alive, never recorded as letters.
pub const CANARY_PREFIX: &str = "lettergate-canary-";

/// Drops a canary file in `dir` (written as `.tmp`, then renamed, as a letter would be), for
/// the watcher to count; returns its path, for the caller to remove once counted.
pub fn drop_canary(dir: &Path) -> std::io::Result<PathBuf> {
    let name = format!("{CANARY_PREFIX}{}.txt", uuid::Uuid::new_v4());
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    // Created exclusively, and removed if it cannot be renamed: the folder may be shared.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"canary"));
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(path)
}

/// A file as one poll saw it: size and modification time.
type Seen = (u64, Option<SystemTime>);

/// Files already dealt with, by name, size and modification time: a watcher given them records
/// them only if they change.
#[derive(Clone, Debug, Default)]
pub struct KnownFiles(HashSet<(String, Seen)>);

/// An entry's metadata, or `None` when the file is gone since the folder was listed: a writer
/// renaming `x.tmp` to `x` (as letters and canaries are written) or removing a file between
/// the listing and the look must not fail the watch; the next poll sees the folder as it is.
fn metadata_if_present(entry: &std::fs::DirEntry) -> std::io::Result<Option<std::fs::Metadata>> {
    match entry.metadata() {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl KnownFiles {
    /// The files in `dir` now (none if it does not exist yet).
    pub fn in_folder(dir: &Path) -> std::io::Result<KnownFiles> {
        let mut known = HashSet::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KnownFiles(known)),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(meta) = metadata_if_present(&entry)? else {
                continue;
            };
            if meta.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                known.insert((name, (meta.len(), meta.modified().ok())));
            }
        }
        Ok(KnownFiles(known))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The files' names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self.0.iter().map(|(name, _)| name.clone()).collect();
        n.sort();
        n.dedup();
        n
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A running folder watcher; [`FolderCapture::finish`] stops it.
pub struct FolderCapture {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Watcher>,
}

struct Watcher {
    dir: PathBuf,
    sink: Arc<LogSink>,
    clock: Clock,
    last: HashMap<String, Seen>,
    temps: HashSet<String>,
    recorded: HashSet<(String, Seen)>,
    limits: Limits,
}

impl FolderCapture {
    /// Creates `dir` if needed and polls it every `interval`.
    pub fn start(
        dir: PathBuf,
        interval: Duration,
        sink: Arc<LogSink>,
        clock: Clock,
    ) -> Result<FolderCapture, CaptureError> {
        FolderCapture::start_knowing(dir, interval, sink, clock, KnownFiles::default())
    }

    /// As [`FolderCapture::start`], leaving out the `known` files while they stay as they are.
    pub fn start_knowing(
        dir: PathBuf,
        interval: Duration,
        sink: Arc<LogSink>,
        clock: Clock,
        known: KnownFiles,
    ) -> Result<FolderCapture, CaptureError> {
        std::fs::create_dir_all(&dir).map_err(|source| CaptureError::Store {
            dir: dir.clone(),
            source,
        })?;
        let mut watcher = Watcher {
            dir,
            sink,
            clock,
            last: HashMap::new(),
            temps: HashSet::new(),
            recorded: known.0,
            limits: Limits::current(),
        };
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => watcher.poll_or_fail(),
                }
            }
            watcher
        });
        Ok(FolderCapture { stop, task })
    }

    /// Stops polling, then polls twice more so every complete file is recorded; returns every
    /// file it knows of: those it was given and those it recorded.
    pub async fn finish(self) -> Result<KnownFiles, CaptureError> {
        let _ = self.stop.send(());
        let mut watcher = self.task.await.map_err(|_| CaptureError::Crashed)?;
        for _ in 0..2 {
            watcher
                .poll()
                .map_err(|e| CaptureError::Write(SinkError::ReadFolder(e)))?;
        }
        Ok(KnownFiles(watcher.recorded))
    }
}

impl Watcher {
    fn poll_or_fail(&mut self) {
        if let Err(e) = self.poll() {
            self.sink.fail(SinkError::Watch {
                dir: self.dir.clone(),
                error: e,
            });
        }
    }

    fn poll(&mut self) -> std::io::Result<()> {
        let mut now: HashMap<String, Seen> = HashMap::new();
        let mut temps = HashSet::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(meta) = metadata_if_present(&entry)? else {
                continue;
            };
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            if let Some(target) = name.strip_suffix(".tmp") {
                temps.insert(target.to_string());
                continue;
            }
            now.insert(name, (meta.len(), meta.modified().ok()));
        }
        let mut names: Vec<&String> = now.keys().collect();
        names.sort();
        for name in names {
            let seen = now[name];
            if self.recorded.contains(&(name.clone(), seen)) {
                continue;
            }
            let stable = self.last.get(name) == Some(&seen);
            let renamed = self.temps.contains(name) && !temps.contains(name);
            if (stable || renamed) && self.record(name, seen)? {
                self.recorded.insert((name.clone(), seen));
            }
        }
        self.last = now;
        self.temps = temps;
        Ok(())
    }

    /// Records the file if it is still as seen; false when it changed under us (the next poll
    /// looks again).
    fn record(&self, name: &str, seen: Seen) -> std::io::Result<bool> {
        let path = self.dir.join(name);
        // Only a regular file, opened without blocking: a FIFO or a link put in its place
        // since the listing is not read.
        let file = match crate::files::open_regular(&path, crate::files::Links::Refuse) {
            Ok(f) => f,
            // Renamed or removed since the listing: the next poll sees it as it is then.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            // No longer a regular file: never a letter, and not a reason to stop watching.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Ok(false),
            Err(e) => return Err(e),
        };
        // No larger than the message cap, and not read at all when it is larger.
        let (body, refusal) = match read_open_file_capped(file, &self.limits) {
            Ok(b) if b.len() as u64 != seen.0 => return Ok(false),
            Ok(b) => (b, None),
            Err(CapError::Io(e)) => return Err(e),
            Err(too_large) => (
                Vec::new(),
                Some(format!("the file is {too_large}; it was not read")),
            ),
        };
        let facts = parse_letter(Transport::Folder, &body);
        let received_at = seen
            .1
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or_else(|| self.clock.now(), |d| Timestamp(d.as_secs() as i64));
        let stem = Path::new(name)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        let mut letter = CapturedLetter {
            status: if refusal.is_some() { 413 } else { 200 },
            refusal,
            ..CapturedLetter::received(
                Transport::Folder,
                received_at,
                format!("FOLDER {name}"),
                name.to_string(),
                body.len(),
                facts,
            )
        };
        letter.local_id = letter.local_id.or(stem);
        if name.starts_with(CANARY_PREFIX) {
            letter.workflow_id = Some(crate::protocol::mesh::CANARY_WORKFLOW.into());
            // Counted, not recorded: `record` gives `None` for it, which is not a failure.
            self.sink.record(letter, &[], &body);
            return Ok(true);
        }
        let headers = [("file-name".to_string(), name.to_string())];
        Ok(self.sink.record(letter, &headers, &body).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureLog;

    fn sink(dir: &Path) -> Arc<LogSink> {
        Arc::new(LogSink::new(CaptureLog::create(&dir.join("log")).unwrap()))
    }

    /// A file renamed or removed between the folder's listing and the look at it (a writer's
    /// `x.tmp` renamed to `x`) is passed over, not a failure of the watch: before, a scenario
    /// on the folder route failed now and then as a harness error under load.
    #[test]
    fn a_file_over_the_message_cap_is_recorded_as_refused_without_being_read() {
        let tmp = tempfile::tempdir().unwrap();
        let drop = tmp.path().join("drop");
        std::fs::create_dir_all(&drop).unwrap();
        // Sparse: 3 GiB on paper, nothing on disk.
        std::fs::File::create(drop.join("huge.json"))
            .unwrap()
            .set_len(3 * 1024 * 1024 * 1024)
            .unwrap();
        std::fs::write(drop.join("small.json"), "{}").unwrap();
        let s = sink(tmp.path());
        let mut w = Watcher {
            dir: drop.clone(),
            sink: s.clone(),
            clock: Clock::virtual_at(Timestamp(0)),
            last: HashMap::new(),
            temps: HashSet::new(),
            recorded: HashSet::new(),
            limits: Limits::default(),
        };
        w.poll().unwrap();
        w.poll().unwrap();
        let log = s.close().unwrap();
        assert_eq!(log.letters.len(), 2);
        let huge = log
            .letters
            .iter()
            .find(|l| l.route == "FOLDER huge.json")
            .unwrap();
        assert_eq!(huge.status, 413);
        let why = huge.refusal.clone().unwrap();
        assert!(why.contains("LETTERGATE_MAX_MESSAGE"), "{why}");
        assert_eq!(huge.body_bytes, 0);
    }

    #[test]
    fn a_file_gone_since_the_listing_is_passed_over_not_a_failure() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x.tmp"), b"letter").unwrap();
        let entry = std::fs::read_dir(tmp.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(metadata_if_present(&entry).unwrap().is_some());
        std::fs::rename(tmp.path().join("x.tmp"), tmp.path().join("x")).unwrap();
        assert!(metadata_if_present(&entry).unwrap().is_none());
    }

    /// A letter replaced by a FIFO (or a link) between the listing and the read is passed
    /// over: before, the watcher blocked for ever opening the FIFO (issue 13, point 3).
    #[cfg(unix)]
    #[test]
    fn a_file_replaced_by_a_fifo_since_the_listing_is_passed_over_not_waited_on() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("x.json");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let watcher = Watcher {
            dir: tmp.path().to_path_buf(),
            sink: sink(tmp.path()),
            clock: Clock::virtual_at(Timestamp(0)),
            last: HashMap::new(),
            temps: HashSet::new(),
            recorded: HashSet::new(),
            limits: Limits::default(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(
                watcher
                    .record("x.json", (0, None))
                    .map_err(|e| e.to_string()),
            );
        });
        let recorded = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("blocked on a FIFO");
        assert_eq!(recorded, Ok(false));
    }

    #[tokio::test]
    async fn records_each_complete_file_once_and_ignores_temp_and_dot_files() {
        let tmp = tempfile::tempdir().unwrap();
        let drop = tmp.path().join("drop");
        let sink = sink(tmp.path());
        let clock = Clock::virtual_at(Timestamp(0));
        let watch =
            FolderCapture::start(drop.clone(), Duration::from_millis(20), sink.clone(), clock)
                .unwrap();
        std::fs::write(drop.join("a.hl7"), "MSH|^~\\&|x").unwrap();
        std::fs::write(drop.join("b.json.tmp"), "half").unwrap();
        std::fs::write(drop.join(".hidden"), "no").unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        std::fs::rename(drop.join("b.json.tmp"), drop.join("b.json")).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        watch.finish().await.unwrap();
        let log = sink.close().unwrap();
        let mut routes: Vec<&str> = log.letters.iter().map(|l| l.route.as_str()).collect();
        routes.sort();
        assert_eq!(routes, ["FOLDER a.hl7", "FOLDER b.json"]);
        assert!(log.letters.iter().all(|l| l.transport == Transport::Folder));
        let b = log
            .letters
            .iter()
            .find(|l| l.route == "FOLDER b.json")
            .unwrap();
        assert_eq!(b.read_body().unwrap(), b"half");
        assert_eq!(b.local_id.as_deref(), Some("b"));
    }

    /// A second watcher of the same folder (the next scenario of a target run) records only
    /// what is new since the first, and files there before the run are left out.
    #[tokio::test]
    async fn known_files_are_not_recorded_again_unless_they_change() {
        let tmp = tempfile::tempdir().unwrap();
        let drop = tmp.path().join("drop");
        std::fs::create_dir_all(&drop).unwrap();
        std::fs::write(drop.join("before.json"), "old").unwrap();
        let before = KnownFiles::in_folder(&drop).unwrap();
        assert_eq!(before.len(), 1);
        assert!(KnownFiles::in_folder(&tmp.path().join("none"))
            .unwrap()
            .is_empty());
        let watch = |known: KnownFiles, log: &str| {
            let sink = Arc::new(LogSink::new(
                CaptureLog::create(&tmp.path().join(log)).unwrap(),
            ));
            let w = FolderCapture::start_knowing(
                drop.clone(),
                Duration::from_millis(20),
                sink.clone(),
                Clock::virtual_at(Timestamp(0)),
                known,
            )
            .unwrap();
            (w, sink)
        };
        let (first, sink) = watch(before, "one");
        std::fs::write(drop.join("a.json"), "first scenario's").unwrap();
        let known = first.finish().await.unwrap();
        let log = sink.close().unwrap();
        let names: Vec<&str> = log.letters.iter().map(|l| l.route.as_str()).collect();
        assert_eq!(names, ["FOLDER a.json"]);

        let (second, sink) = watch(known, "two");
        std::fs::write(drop.join("b.json"), "second scenario's").unwrap();
        std::fs::write(drop.join("before.json"), "old, changed").unwrap();
        second.finish().await.unwrap();
        let log = sink.close().unwrap();
        let mut names: Vec<&str> = log.letters.iter().map(|l| l.route.as_str()).collect();
        names.sort();
        assert_eq!(names, ["FOLDER b.json", "FOLDER before.json"]);
    }

    #[tokio::test]
    async fn a_canary_file_is_counted_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let drop = tmp.path().join("drop");
        let sink = sink(tmp.path());
        let watch = FolderCapture::start(
            drop.clone(),
            Duration::from_millis(20),
            sink.clone(),
            Clock::virtual_at(Timestamp(0)),
        )
        .unwrap();
        let canary = drop_canary(&drop).unwrap();
        assert!(canary
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(CANARY_PREFIX));
        watch.finish().await.unwrap();
        let log = sink.close().unwrap();
        assert_eq!((log.canaries, log.letters.len()), (1, 0));
    }

    #[tokio::test]
    async fn a_file_still_growing_waits_and_a_changed_file_is_recorded_again() {
        let tmp = tempfile::tempdir().unwrap();
        let drop = tmp.path().join("drop");
        std::fs::create_dir_all(&drop).unwrap();
        let sink = sink(tmp.path());
        let mut w = Watcher {
            dir: drop.clone(),
            sink: sink.clone(),
            clock: Clock::virtual_at(Timestamp(0)),
            last: HashMap::new(),
            temps: HashSet::new(),
            recorded: HashSet::new(),
            limits: Limits::default(),
        };
        std::fs::write(drop.join("x.json"), "12").unwrap();
        w.poll().unwrap();
        std::fs::write(drop.join("x.json"), "1234").unwrap();
        w.poll().unwrap();
        assert_eq!(sink.with_log(|l| l.letters.len()), Some(0), "still growing");
        w.poll().unwrap();
        w.poll().unwrap();
        assert_eq!(sink.with_log(|l| l.letters.len()), Some(1), "recorded once");
        std::fs::write(drop.join("x.json"), "123456").unwrap();
        w.poll().unwrap();
        w.poll().unwrap();
        assert_eq!(sink.with_log(|l| l.letters.len()), Some(2), "a new version");
    }
}
