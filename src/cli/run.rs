//! `lettergate run`: scenarios against the simulator or a target, one shard of them if asked.

use super::args::{CommonArgs, ReportArgs};
use super::error::{Error, ExitStatus, UsageError};
use super::progress::Progress;
use super::report::conclude;
use super::runtime;
use super::workdir::new_run_dir;
use clap::Args;
use lettergate::protocol::ids::Identifiers;
use lettergate::SimConfig;
use lettergate::Target;
use lettergate::{load_all, Scenario, Shard};
use lettergate::{run_all, Outcome, RunConfig};
use lettergate::{RunParameters, RunReport, Terminal};
use lettergate::{SnapshotMode, SnapshotStore};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario files or folders of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// How the simulator behaves; `lettergate sim profiles` lists them.
    #[arg(long, default_value = "baseline", value_name = "NAME")]
    pub sim_profile: String,
    /// Run against this target (a staging EHR, see README "Testing your staging EHR") instead
    /// of the built-in simulator; snapshots are kept per target.
    #[arg(long, value_name = "FILE", conflicts_with = "sim_profile")]
    pub target: Option<PathBuf>,
    /// Record the results of passing scenarios as the accepted snapshots.
    #[arg(long, conflicts_with = "check")]
    pub accept: bool,
    /// Write no snapshot files at all, not even `.snap.new` (for CI).
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address the capture endpoints listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub listen_ip: IpAddr,
    /// Run only shard K of N (1-based, as GitLab's CI_NODE_INDEX/CI_NODE_TOTAL); a scenario's
    /// shard depends only on its id, so adding scenarios does not move the others.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub reports: ReportArgs,
}

/// Loads, selects and runs the scenarios, a line for each as it finishes, then concludes.
pub fn run(args: RunArgs) -> Result<ExitStatus, Error> {
    args.reports.check()?;
    let sim = SimConfig::named(&args.sim_profile).map_err(Error::config)?;
    let target = match &args.target {
        Some(path) => Some(lettergate::load_target(path)?),
        None => None,
    };
    let (scenarios, parameters) = select(&args, target.is_some())?;
    if let Some(t) = &target {
        super::targets::before_driving(t)?;
    }
    let (system, profile) = match &target {
        Some(t) => (
            format!("target {}", t.name()),
            format!("{} driver", t.driver_kind()),
        ),
        None => ("simulator".to_string(), args.sim_profile.clone()),
    };
    let snapshot_dir = target.as_ref().map_or("simulator", |t| t.name());
    let config = run_config(&args, sim, snapshot_dir, target.is_some())?;
    let term = Terminal {
        show_identifiers: args.common.show_identifiers,
        color: Terminal::detect_color(),
    };
    let mut out = std::io::stdout().lock();
    let shard_note = args
        .shard
        .map_or(String::new(), |shard| format!(", shard {shard}"));
    // Against the simulator the setting is its profile; a target has none, only its driver
    // (and `system` names the target by its `name:`).
    let setting = match &target {
        Some(_) => format!("{profile}{shard_note}"),
        None => format!("profile {profile}{shard_note}"),
    };
    term.header(&mut out, scenarios.len(), &system, &setting)
        .map_err(Error::WriteReport)?;
    let outcomes = run_with_progress(&term, &mut out, target.as_ref(), &scenarios, config)?;
    let mut report = RunReport::new(
        &system,
        &profile,
        Identifiers::shown_if(args.common.show_identifiers),
    )
    .build(&scenarios, &outcomes);
    if let Some(shard) = args.shard {
        report.shards.push(shard);
        report.parameters = parameters;
    }
    conclude(&term, &mut out, report, &outcomes, &args.reports)
}

/// The scenarios to run: those under the paths, in the shard asked for; a target skips the
/// volume scenarios, since it is driven one event at a time. Selecting none is bad input
/// (exit 2), whichever filter left none: a GO about nothing would be a false GO.
fn select(
    args: &RunArgs,
    against_target: bool,
) -> Result<(Vec<Arc<Scenario>>, Option<RunParameters>), Error> {
    let (mut scenarios, _) = load_all(&args.paths)?;
    if against_target {
        let volume = scenarios.iter().filter(|s| s.generated).count();
        scenarios.retain(|s| !s.generated);
        if volume > 0 {
            eprintln!("skipping {volume} volume (population) scenarios: a target is driven one event at a time");
        }
        if scenarios.is_empty() {
            return Err(UsageError::NothingSelected(format!(
                "the {volume} scenarios found are volume (population) scenarios, which a target does not run"
            ))
            .into());
        }
    }
    let Some(shard) = args.shard else {
        return Ok((scenarios, None));
    };
    let parameters = RunParameters::new(
        args.paths.iter().map(|p| p.display().to_string()).collect(),
        args.common.snapshots.display().to_string(),
        match snapshot_mode(args) {
            SnapshotMode::New => "new",
            SnapshotMode::Accept => "accept",
            SnapshotMode::Check => "check",
        }
        .to_string(),
        scenarios.iter().map(|s| s.id.as_str()),
    );
    let all = scenarios.len();
    scenarios.retain(|s| shard.contains(&s.id));
    if scenarios.is_empty() {
        return Err(UsageError::NothingSelected(format!(
            "shard {shard} holds none of the {all} scenarios selected; split them into fewer shards"
        ))
        .into());
    }
    Ok((scenarios, Some(parameters)))
}

fn snapshot_mode(args: &RunArgs) -> SnapshotMode {
    match (args.accept, args.check) {
        (true, _) => SnapshotMode::Accept,
        (_, true) => SnapshotMode::Check,
        _ => SnapshotMode::New,
    }
}

/// The run's configuration, in a new run folder under the work folder.
fn run_config(
    args: &RunArgs,
    sim: SimConfig,
    snapshot_dir: &str,
    against_target: bool,
) -> Result<RunConfig, Error> {
    let work_dir = new_run_dir(&args.common.work_dir)?;
    let mut config = RunConfig::new(
        sim,
        SnapshotStore::new(&args.common.snapshots, snapshot_dir),
        work_dir,
    );
    config.mode = snapshot_mode(args);
    let jobs = match against_target {
        true => super::args::TARGET_JOBS,
        false => super::args::SIM_JOBS,
    };
    config.jobs = args.common.jobs.unwrap_or(jobs).max(1);
    config.listen_ip = args.listen_ip;
    config.seen = Arc::new(
        lettergate::Seen::with_history(&config.work_dir).map_err(|e| {
            Error::harness(
                format!(
                    "failed to create {}",
                    config.work_dir.join(lettergate::LETTER_IDS_FILE).display()
                ),
                e,
            )
        })?,
    );
    Ok(config)
}

/// Runs the scenarios against the target, or the simulator without one, printing each
/// outcome's line as it arrives; the progress bar steps aside for each line.
fn run_with_progress(
    term: &Terminal,
    out: &mut dyn Write,
    target: Option<&Target>,
    scenarios: &[Arc<Scenario>],
    config: RunConfig,
) -> Result<Vec<Outcome>, Error> {
    let progress = Progress::new(scenarios.len());
    let mut line_err = None;
    let on_outcome = |o: &Outcome| {
        if let Err(e) = progress.bar.suspend(|| term.line(out, o)) {
            line_err.get_or_insert(e);
        }
        progress.step();
    };
    let outcomes = match target {
        Some(t) => runtime()?.block_on(lettergate::run_target(t, scenarios, config, on_outcome)),
        None => runtime()?.block_on(run_all(scenarios, config, on_outcome)),
    };
    progress.bar.finish_and_clear();
    match line_err {
        Some(e) => Err(Error::WriteReport(e)),
        None => Ok(outcomes),
    }
}
