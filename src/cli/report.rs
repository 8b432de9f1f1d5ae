//! `lettergate report merge`, and the end every run shares: the summary, the report files and
//! the exit status ([`conclude`]).

use super::args::ReportArgs;
use super::error::{Error, ExitStatus, UsageError};
use clap::Subcommand;
use lettergate::Diagnostic;
use lettergate::{RunReport, Terminal};
use std::io::Write;
use std::path::PathBuf;

use super::EXIT_CODES;

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Combine the JSON reports of the shards of one run into one set of reports.
    #[command(after_help = EXIT_CODES)]
    Merge {
        /// JSON reports written by `run --report-json`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        reports: ReportArgs,
    },
}

pub fn merge(files: &[PathBuf], reports: &ReportArgs) -> Result<ExitStatus, Error> {
    reports.check()?;
    let mut parts = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Error::Input(vec![Diagnostic::new(
                f,
                format!("failed to read the report: {e}"),
            )])
        })?;
        let part: RunReport = serde_json::from_str(&text).map_err(|e| {
            Error::Input(vec![Diagnostic::new(
                f,
                format!("not a lettergate JSON report: {e}"),
            )
            .at(&text, e.line(), e.column())
            .with_help(Some(
                "give files written by `lettergate run --report-json FILE`".into(),
            ))])
        })?;
        if part.schema != lettergate::SCHEMA {
            return Err(Error::Input(vec![Diagnostic::new(
                f,
                format!(
                    "report schema `{}` is not `{}`",
                    part.schema,
                    lettergate::SCHEMA
                ),
            )]));
        }
        parts.push((f.display().to_string(), part));
    }
    let report = RunReport::merge(parts)?;
    let term = Terminal {
        show_identifiers: report.identifiers_shown,
        color: Terminal::detect_color(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "merged {} reports: {} scenarios (shards {})",
        files.len(),
        report.scenarios.len(),
        report.shard_list()
    )
    .map_err(Error::WriteReport)?;
    term.summary(&mut out, &report, &[])
        .map_err(Error::WriteReport)?;
    for p in reports.files().write(&report)? {
        writeln!(out, "report written to {}", p.display()).map_err(Error::WriteReport)?;
    }
    Ok(decision_status(report.decision()))
}

/// The end of a run: the summary, the report files, the exit status.
pub fn conclude(
    term: &Terminal,
    out: &mut impl Write,
    report: RunReport,
    outcomes: &[lettergate::Outcome],
    reports: &ReportArgs,
) -> Result<ExitStatus, Error> {
    // Every command selects at least one scenario before it runs; a report of none would be
    // a GO about nothing, so it is refused here too, whatever left it empty.
    if report.scenarios.is_empty() {
        return Err(UsageError::NothingSelected("the run holds no scenario".into()).into());
    }
    term.summary(out, &report, outcomes)
        .map_err(Error::WriteReport)?;
    for p in reports.files().write(&report)? {
        writeln!(out, "report written to {}", p.display()).map_err(Error::WriteReport)?;
    }
    Ok(decision_status(report.decision()))
}

fn decision_status(d: lettergate::Decision) -> ExitStatus {
    match d.exit_code() {
        0 => ExitStatus::Pass,
        3 => ExitStatus::HarnessFailure,
        _ => ExitStatus::Regression,
    }
}
