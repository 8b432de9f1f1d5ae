//! `lettergate targets check`: contact everything a target file names.

use super::error::{Error, ExitStatus};
use super::runtime;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TargetsCommand {
    /// Read a target file and contact everything it names (driver, credentials, capture
    /// addresses, MESH mailboxes) before any scenario runs.
    #[command(
        after_help = "Exit codes:\n  0  everything the target names works\n  2  the target file is not valid (or says it is production)\n  3  something the target names does not work: lettergate could not drive or capture"
    )]
    Check {
        /// The target file (YAML).
        file: PathBuf,
    },
}

pub fn check(file: &std::path::Path) -> Result<ExitStatus, Error> {
    let target = lettergate::load_target(file)?;
    println!(
        "target {} ({} driver), {}",
        target.name(),
        target.driver_kind(),
        file.display()
    );
    let lines = runtime()?.block_on(lettergate::check_target(&target));
    let width = lines.iter().map(|l| l.what.len()).max().unwrap_or(0);
    for l in &lines {
        let mark = if l.ok { "ok    " } else { "FAILED" };
        // The detail may quote what the EHR answered: escaped.
        let detail = lettergate::protocol::text::escape_controls(&l.detail);
        println!("  {mark} {:width$}  {detail}", l.what);
    }
    let failed = lines.iter().filter(|l| !l.ok).count();
    if failed == 0 {
        println!("every one of {} checks passed", lines.len());
        Ok(ExitStatus::Pass)
    } else {
        println!(
            "{failed} of {} checks failed: lettergate could not drive or capture with this target",
            lines.len()
        );
        Ok(ExitStatus::HarnessFailure)
    }
}
