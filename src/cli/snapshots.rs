//! `lettergate accept` and `lettergate reject`: pending `.snap.new` files found and applied.

use super::error::{Error, ExitStatus, UsageError};
use clap::Args;
use lettergate::new_path;
use lettergate::scenario_id;
use lettergate::SnapshotStore;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    /// `.snap.new` files, scenario files, or folders to search for `.snap.new` files.
    pub paths: Vec<PathBuf>,
    /// Folder of snapshots.
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub snapshots: PathBuf,
    /// The target whose snapshots a scenario file refers to.
    #[arg(long, default_value = "simulator", value_name = "NAME")]
    pub target: String,
}

fn pending_files(args: &SnapshotArgs) -> Result<Vec<PathBuf>, Error> {
    let paths = if args.paths.is_empty() {
        vec![args.snapshots.clone()]
    } else {
        args.paths.clone()
    };
    let store = SnapshotStore::new(&args.snapshots, &args.target);
    let mut found = Vec::new();
    for p in &paths {
        let name = p.to_string_lossy();
        if name.ends_with(".snap.new") {
            if !p.is_file() {
                return Err(UsageError::Missing(p.clone()).into());
            }
            found.push(p.clone());
        } else if name.ends_with(".snap") {
            found.push(new_path(p));
        } else if p.is_dir() {
            collect_new(p, &mut found).map_err(|source| UsageError::ReadFolder {
                path: p.clone(),
                source,
            })?;
        } else if p.is_file() {
            found.push(store.pending_path(&scenario_id(p)));
        } else {
            return Err(UsageError::Missing(p.clone()).into());
        }
    }
    found.retain(|p| p.is_file());
    found.sort();
    found.dedup();
    Ok(found)
}

/// The `.snap.new` files below `dir`: regular files only, each folder entered once however
/// many links lead back to it.
fn collect_new(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    out.extend(lettergate::files::walk(dir, &|p| {
        p.to_string_lossy().ends_with(".snap.new")
    })?);
    Ok(())
}

pub fn accept_or_reject(args: &SnapshotArgs, accept: bool) -> Result<ExitStatus, Error> {
    let files = pending_files(args)?;
    if files.is_empty() {
        println!("no pending snapshots");
        return Ok(ExitStatus::Pass);
    }
    for f in &files {
        let snap = PathBuf::from(f.to_string_lossy().trim_end_matches(".new"));
        let result = if accept {
            std::fs::rename(f, &snap)
        } else {
            std::fs::remove_file(f)
        };
        result.map_err(|e| Error::harness(format!("failed to update {}", f.display()), e))?;
        println!(
            "{} {}",
            if accept { "accepted" } else { "rejected" },
            snap.display()
        );
    }
    println!(
        "{} {} snapshots",
        if accept { "accepted" } else { "rejected" },
        files.len()
    );
    Ok(ExitStatus::Pass)
}
