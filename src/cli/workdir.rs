//! Run folders under the work folder: one per run, marked as lettergate's own and private to
//! their owner, the ten newest of them kept.

use super::error::Error;
use lettergate::files;
use std::path::{Path, PathBuf};

/// The file that marks a folder under `runs/` as a run lettergate made; pruning removes
/// nothing without it, so a folder of the user's that happens to sit there is left alone.
pub const RUN_MARKER: &str = ".lettergate-run";

/// How many of lettergate's own runs are kept.
const KEEP: usize = 10;

/// Makes `work/runs/<UTC time>-<pid>` (0700, created exclusively, marked with
/// [`RUN_MARKER`]), keeping only the ten newest marked runs beside it.
pub fn new_run_dir(work: &Path) -> Result<PathBuf, Error> {
    let runs = work.join("runs");
    let stamp = lettergate::protocol::clock::compact_utc_now();
    let name = format!("{}T{}-{}", &stamp[..8], &stamp[8..14], std::process::id());
    let dir = runs.join(name);
    let fail = |e| {
        Error::harness(
            format!("failed to create the run folder {}", dir.display()),
            e,
        )
    };
    files::create_private_dir(&dir, true).map_err(fail)?;
    files::write_private(&dir.join(RUN_MARKER), b"a run folder of lettergate's\n").map_err(fail)?;
    prune(&runs);
    Ok(dir)
}

/// Removes all but the [`KEEP`] newest runs lettergate made; anything else under `runs/` (a
/// file, a link, a folder without the marker) is not touched.
fn prune(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut own: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_own_run(p))
        .collect();
    own.sort();
    let excess = own.len().saturating_sub(KEEP);
    for p in own.into_iter().take(excess) {
        let _ = std::fs::remove_dir_all(p);
    }
}

/// A real folder (not a link to one) holding the marker as a regular file.
fn is_own_run(p: &Path) -> bool {
    let dir = std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    dir && std::fs::symlink_metadata(p.join(RUN_MARKER)).is_ok_and(|m| m.is_file())
}
