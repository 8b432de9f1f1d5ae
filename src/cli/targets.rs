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
    print_lines(&mut std::io::stdout().lock(), &lines, |_| true);
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

/// The check lines `keep` keeps, one a line, the detail escaped (it may quote what the EHR
/// answered).
fn print_lines(
    out: &mut dyn std::io::Write,
    lines: &[lettergate::CheckLine],
    keep: impl Fn(&lettergate::CheckLine) -> bool,
) {
    let width = lines.iter().map(|l| l.what.len()).max().unwrap_or(0);
    for l in lines.iter().filter(|l| keep(l)) {
        let mark = if l.ok { "ok    " } else { "FAILED" };
        let detail = lettergate::protocol::text::escape_controls(&l.detail);
        let _ = writeln!(out, "  {mark} {:width$}  {detail}", l.what);
    }
}

/// What `targets check` checks, done before `run --target` or `drive` drives anything: a
/// capture address taken, a secret not set, a FHIR server that does not answer FHIR stops
/// the run at once (exit 3), each failed check said on stderr, rather than after every
/// scenario (issue 13).
pub fn before_driving(target: &lettergate::Target) -> Result<(), Error> {
    let lines = runtime()?.block_on(lettergate::check_target(target));
    let failed = lines.iter().filter(|l| !l.ok).count();
    if failed == 0 {
        return Ok(());
    }
    print_lines(&mut std::io::stderr().lock(), &lines, |l| !l.ok);
    Err(Error::Preflight {
        target: target.name().to_string(),
        failed,
        total: lines.len(),
    })
}
