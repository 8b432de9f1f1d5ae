//! `lettergate drive` and `lettergate collect`: a two-phase run, for EHRs that send in batches.

use super::args::ReportArgs;
use super::error::{Error, ExitStatus, UsageError};
use super::report::conclude;
use super::runtime;
use clap::Args;
use lettergate::load_all;
use lettergate::protocol::ids::Identifiers;
use lettergate::protocol::text::escape_controls;
use lettergate::RunConfig;
use lettergate::SimConfig;
use lettergate::{RunReport, Terminal};
use lettergate::{SnapshotMode, SnapshotStore};
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct DriveArgs {
    /// Scenario files or folders of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// The target file; its capture must keep letters waiting (`mesh_poll` or `folder`).
    #[arg(long, value_name = "FILE")]
    pub target: PathBuf,
    /// The run's folder: `ledger.json` and, once collected, the letters. Driving into an
    /// existing ledger adds only scenarios not already in it.
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// How many scenarios are driven at once, capped by the target file's
    /// `parallel: {max: N}`; scenarios about the same patient one after another; 1 drives
    /// them one at a time.
    #[arg(long, short = 'j', default_value_t = super::args::TARGET_JOBS, value_name = "N")]
    pub jobs: usize,
}

#[derive(Args, Debug)]
pub struct CollectArgs {
    /// The folder `drive` wrote.
    #[arg(long, value_name = "DIR")]
    pub ledger: PathBuf,
    /// Record the results of passing scenarios as the target's accepted snapshots.
    #[arg(long, conflicts_with = "check")]
    pub accept: bool,
    /// Write no snapshot files at all, not even `.snap.new`.
    #[arg(long)]
    pub check: bool,
    /// Folder of accepted snapshots.
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub snapshots: PathBuf,
    /// Show NHS numbers, names and dates of birth in full (masked by default).
    #[arg(long)]
    pub show_identifiers: bool,
    #[command(flatten)]
    pub reports: ReportArgs,
}

pub fn drive(args: DriveArgs) -> Result<ExitStatus, Error> {
    let target = lettergate::load_target(&args.target)?;
    lettergate::ledger::check_two_phase(&target).map_err(Error::config)?;
    let (scenarios, _) = load_all(&args.paths)?;
    if scenarios.iter().all(|s| s.generated) {
        return Err(UsageError::NothingSelected(format!(
            "the {} scenarios found are volume (population) scenarios, which a target does not run",
            scenarios.len()
        ))
        .into());
    }
    super::targets::before_driving(&target)?;
    println!(
        "driving {} scenarios against target {} ({} driver); ledger {}",
        scenarios.iter().filter(|s| !s.generated).count(),
        target.name(),
        target.driver_kind(),
        args.ledger.display()
    );
    let ledger = runtime()?
        .block_on(lettergate::ledger::drive(
            &target,
            &args.target,
            &scenarios,
            &args.ledger,
            args.jobs,
            |l| match &l.error {
                None => println!(
                    "DRIVEN  {:<40} {} events; letters due by {}",
                    escape_controls(&l.id),
                    l.driven_at.len(),
                    l.due_by.map_or("-".into(), |t| t.rfc3339())
                ),
                Some(e) => println!(
                    "FAILED  {:<40} after {} events: {}",
                    escape_controls(&l.id),
                    l.driven_at.len(),
                    escape_controls(e)
                ),
            },
        ))
        .map_err(Error::layer)?;
    let failed = ledger
        .scenarios
        .iter()
        .filter(|s| s.error.is_some())
        .count();
    let due = ledger.scenarios.iter().filter_map(|s| s.due_by).max();
    println!(
        "{} scenarios in the ledger, {failed} could not be driven. Collect with `lettergate collect --ledger {}`{}",
        ledger.scenarios.len(),
        args.ledger.display(),
        due.map_or(String::new(), |d| format!(" once letters are due (by {})", d.rfc3339()))
    );
    Ok(if failed > 0 {
        ExitStatus::HarnessFailure
    } else {
        ExitStatus::Pass
    })
}

pub fn collect(args: CollectArgs) -> Result<ExitStatus, Error> {
    args.reports.check()?;
    let ledger = lettergate::ledger::Ledger::load(&args.ledger)
        .map_err(Error::config)?
        .ok_or_else(|| UsageError::NoLedger(args.ledger.clone()))?;
    if ledger.scenarios.is_empty() {
        return Err(UsageError::NothingSelected(format!(
            "the ledger in {} holds no scenario; drive scenarios into it first",
            args.ledger.display()
        ))
        .into());
    }
    let target = lettergate::load_target(&ledger.target)?;
    let paths: Vec<PathBuf> = ledger.scenarios.iter().map(|s| s.path.clone()).collect();
    let (mut scenarios, _) = load_all(&paths)?;
    // Each file is given on its own here; keep the id it had when driven (its suite root
    // may have been the folder given then).
    for s in &mut scenarios {
        if let Some(l) = ledger.scenarios.iter().find(|l| l.path == s.path) {
            if l.id != s.id {
                std::sync::Arc::make_mut(s).id = l.id.clone();
            }
        }
    }
    let mut config = RunConfig::new(
        SimConfig::baseline(),
        SnapshotStore::new(&args.snapshots, target.name()),
        args.ledger.join("captured"),
    );
    config.mode = match (args.accept, args.check) {
        (true, _) => SnapshotMode::Accept,
        (_, true) => SnapshotMode::Check,
        _ => SnapshotMode::New,
    };
    let term = Terminal {
        show_identifiers: args.show_identifiers,
        color: Terminal::detect_color(),
    };
    let mut out = std::io::stdout().lock();
    let system = format!("target {}", target.name());
    let profile = format!("{} driver, collected", target.driver_kind());
    term.header(&mut out, ledger.scenarios.len(), &system, &profile)
        .map_err(Error::WriteReport)?;
    let (outcomes, attributed) = runtime()?
        .block_on(lettergate::collect(
            &target,
            &ledger,
            &scenarios,
            &args.ledger,
            config,
        ))
        .map_err(Error::layer)?;
    for o in &outcomes {
        term.line(&mut out, o).map_err(Error::WriteReport)?;
    }
    writeln!(
        out,
        "{attributed} letters collected for the ledger's patients"
    )
    .map_err(Error::WriteReport)?;
    let report = RunReport::new(
        &system,
        &profile,
        Identifiers::shown_if(args.show_identifiers),
    )
    .build(&scenarios, &outcomes);
    if let Some(c) = report.clinical_time() {
        eprintln!("note: clinical time: {c} (as `drive` recorded in the ledger)");
    }
    conclude(&term, &mut out, report, &outcomes, &args.reports)
}
