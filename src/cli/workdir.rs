//! Run folders under the work folder: one per run, the ten newest kept.

use super::error::Error;
use std::path::{Path, PathBuf};

/// Makes `work/runs/<UTC time>-<pid>`, keeping only the ten newest runs beside it.
pub fn new_run_dir(work: &Path) -> Result<PathBuf, Error> {
    let runs = work.join("runs");
    let stamp = lettergate::protocol::clock::compact_utc_now();
    let name = format!("{}T{}-{}", &stamp[..8], &stamp[8..14], std::process::id());
    let dir = runs.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::harness(
            format!("failed to create the run folder {}", dir.display()),
            e,
        )
    })?;
    if let Ok(entries) = std::fs::read_dir(&runs) {
        let mut old: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        old.sort();
        let excess = old.len().saturating_sub(10);
        for p in old.into_iter().take(excess) {
            let _ = std::fs::remove_dir_all(p);
        }
    }
    Ok(dir)
}
