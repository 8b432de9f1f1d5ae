//! Command-line arguments (clap) and the commands they run. Each command returns an
//! [`ExitStatus`]; nothing here panics on bad input.

use clap::{Args, Parser, Subcommand};
use lettergate::error::{Error, ExitStatus};
use lettergate::report::{ReportFiles, RunReport, Terminal};
use lettergate::run::{run_all, RunConfig};
use lettergate::scenario::{load::scenario_id, load_all, Diagnostic, Loader};
use lettergate::sim::profile::PROFILES;
use lettergate::sim::SimConfig;
use lettergate::snapshot::store::new_path;
use lettergate::snapshot::{SnapshotMode, SnapshotStore};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

const EXIT_CODES: &str = "\
Exit codes:
  0  every letter as expected
  1  a regression was found (a letter missing, misrouted, late, duplicated, changed or unexpected)
  2  bad input or configuration, including no scenario selected
  3  the harness could not drive the target or capture (never reported as a pass)";

/// Proves an EHR upgrade still sends every letter to GP practices before it goes live.
#[derive(Parser, Debug)]
#[command(name = "lettergate", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run scenarios against the built-in EHR simulator (or a staging EHR, `--target`) and
    /// check every letter it sends.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Check scenario and fixture files without running them.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Scenario files or folders of them.
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
    },
    /// Accept pending snapshots: each `.snap.new` replaces its `.snap`.
    Accept(SnapshotArgs),
    /// Reject pending snapshots: each `.snap.new` is deleted.
    Reject(SnapshotArgs),
    /// The built-in EHR simulator.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Work with report files.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Target files: a staging EHR to drive and where its letters come out (see README,
    /// "Testing your staging EHR").
    #[command(subcommand)]
    Targets(TargetsCommand),
    /// Two-phase run, first half: tell a target about each scenario's events now and write a
    /// run ledger; `collect` checks the letters later (for EHRs that send in batches).
    #[command(
        after_help = "Exit codes:\n  0  every scenario was driven\n  2  bad input\n  3  a scenario could not be driven (the ledger says which, and how far)"
    )]
    Drive(DriveArgs),
    /// Two-phase run, second half: gather the letters a ledger's scenarios are due and check
    /// them. Run it again and again: it adds what arrived since and gives the same verdict.
    #[command(after_help = EXIT_CODES)]
    Collect(CollectArgs),
    /// Benchmarks: print figures for loopback, volume, suite, validate and compare (use a
    /// release build: `cargo run --release -- bench`).
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Run only these benchmarks (loopback, volume, volume-quarter, suite, validate, compare).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Letters in the volume and compare benchmarks.
    #[arg(long, default_value_t = 53_000)]
    pub letters: u64,
    /// Scenarios in the suite and validate benchmarks.
    #[arg(long, default_value_t = 1_000)]
    pub scenarios: usize,
    /// Run in this process instead of a child of its own (used by the benchmark itself).
    #[arg(long, hide = true)]
    pub child: bool,
    /// The loopback rate to take the volume ratio against (passed to the child).
    #[arg(long, hide = true)]
    pub loopback_rate: Option<f64>,
}

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
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    #[command(flatten)]
    pub reports: ReportArgs,
}

/// Report files to write; any combination.
#[derive(Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub report_junit: Option<PathBuf>,
    /// Write the whole outcome as JSON here (the input of `report merge`).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Write the change-board summary as Markdown here.
    #[arg(long, value_name = "FILE")]
    pub report_markdown: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
}

impl ReportArgs {
    fn files(&self) -> ReportFiles {
        ReportFiles {
            junit: self.report_junit.clone(),
            json: self.report_json.clone(),
            markdown: self.report_markdown.clone(),
            html: self.report_html.clone(),
        }
    }
}

/// `K/N` with 1 <= K <= N.
fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("expected K/N with 1 <= K <= N, such as `1/3`; found `{text}`");
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let (k, n): (u32, u32) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || n == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Whether scenario `id` belongs to shard `k` of `n`: by a hash of the id alone.
pub fn in_shard(id: &str, k: u32, n: u32) -> bool {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(id.as_bytes());
    let v = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    v % u64::from(n) == u64::from(k - 1)
}

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

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Serve the simulator's HTTP API (see README.md, "The simulator's HTTP API").
    Serve(Box<ServeArgs>),
    /// List the simulator's behaviour profiles.
    Profiles,
    /// Run the scenarios under every profile and print the detection matrix.
    #[command(
        after_help = "Exit codes:\n  0  baseline is clean and every fault profile is caught\n  1  a fault profile is not caught, or baseline is not clean\n  2  bad input\n  3  the harness could not drive the simulator or capture"
    )]
    Matrix(MatrixArgs),
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Scenario files or folders of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Options `run` and `sim matrix` share.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Folder of accepted snapshots (`sim matrix` compares, never writes).
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub snapshots: PathBuf,
    /// Folder where each run keeps the messages it captured.
    #[arg(long, default_value = ".lettergate", value_name = "DIR")]
    pub work_dir: PathBuf,
    /// How many scenarios run at once.
    #[arg(long, short = 'j', default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Show NHS numbers, names and dates of birth in full (masked by default).
    #[arg(long)]
    pub show_identifiers: bool,
}

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

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8800", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// MESH server letters are sent to.
    #[arg(long, default_value = "http://127.0.0.1:8700", value_name = "URL")]
    pub mesh_url: String,
    /// Hybrid-mail print service patient copies are sent to.
    #[arg(long, default_value = "http://127.0.0.1:8701", value_name = "URL")]
    pub print_url: String,
    /// HTTP document route (Docman-like) practices with `route: http` are reached on.
    #[arg(long, default_value = "http://127.0.0.1:8701", value_name = "URL")]
    pub docman_url: String,
    /// MLLP receiver practices with `route: mllp` get MDM^T02 messages at; without it their
    /// letters are not sent.
    #[arg(long, value_name = "ADDR")]
    pub mllp_addr: Option<SocketAddr>,
    /// Folder practices with `route: folder` get their letters dropped in; without it their
    /// letters are not sent.
    #[arg(long, value_name = "DIR")]
    pub drop_folder: Option<PathBuf>,
    /// The simulator's own MESH mailbox.
    #[arg(long, default_value = lettergate::run::SENDER_MAILBOX, value_name = "MAILBOX")]
    pub mailbox: String,
    /// How the simulator behaves.
    #[arg(long, default_value = "baseline", value_name = "NAME")]
    pub sim_profile: String,
    /// Where the virtual clock starts (RFC 3339).
    #[arg(long, default_value = "2025-01-06T09:00:00Z", value_name = "TIME")]
    pub start: String,
    /// `virtual`: time moves only when told (`POST /clock`); `system`: the simulator runs in
    /// real time, like a staging EHR, and sends what is due every `--dispatch-interval`.
    #[arg(long, default_value = "virtual", value_parser = ["virtual", "system"])]
    pub clock: String,
    /// How often the dispatcher sends queued letters (15m is the baseline's).
    #[arg(long, value_name = "DURATION")]
    pub dispatch_interval: Option<String>,
    /// Also take HL7 v2 ADT over MLLP on this address (A01, A03, A04, A08; see README).
    #[arg(long, value_name = "ADDR")]
    pub adt_listen: Option<SocketAddr>,
    /// A fixture file whose practices make up the simulator's directory at start (otherwise
    /// register them with `POST /practices`); give it more than once for several files.
    #[arg(long, value_name = "FILE")]
    pub directory: Vec<PathBuf>,
}

/// Parses the process arguments and runs the command.
pub fn main_entry() -> ExitStatus {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Validate { paths } => validate(&paths),
        Command::Accept(args) => accept_or_reject(&args, true),
        Command::Reject(args) => accept_or_reject(&args, false),
        Command::Sim(SimCommand::Profiles) => {
            let width = PROFILES.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in PROFILES {
                println!("{:<width$}  {}", p.name, p.description);
            }
            Ok(ExitStatus::Pass)
        }
        Command::Sim(SimCommand::Serve(args)) => serve(*args),
        Command::Targets(TargetsCommand::Check { file }) => targets_check(&file),
        Command::Drive(args) => drive(args),
        Command::Collect(args) => collect(args),
        Command::Sim(SimCommand::Matrix(args)) => matrix(args),
        Command::Report(ReportCommand::Merge { files, reports }) => merge(&files, &reports),
        Command::Bench(args) => bench(args),
    };
    result.unwrap_or_else(|e| {
        let mut err = std::io::stderr().lock();
        if let Error::Input(diags) = &e {
            for d in diags {
                let _ = writeln!(err, "{d}\n");
            }
        }
        let _ = writeln!(err, "error: {e}");
        e.exit_status()
    })
}

fn validate(paths: &[PathBuf]) -> Result<ExitStatus, Error> {
    let (scenarios, fixtures) = load_all(paths)?;
    println!(
        "{} scenario files and {fixtures} fixture files are valid",
        scenarios.len()
    );
    Ok(ExitStatus::Pass)
}

fn targets_check(file: &std::path::Path) -> Result<ExitStatus, Error> {
    let target = lettergate::targets::load(file).map_err(|d| Error::Input(vec![d]))?;
    println!(
        "target {} ({} driver), {}",
        target.name(),
        target.driver_kind(),
        file.display()
    );
    let lines = runtime()?.block_on(lettergate::targets::check::run(&target));
    let width = lines.iter().map(|l| l.what.len()).max().unwrap_or(0);
    for l in &lines {
        let mark = if l.ok { "ok    " } else { "FAILED" };
        println!("  {mark} {:width$}  {}", l.what, l.detail);
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

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Harness(format!("failed to start the async runtime: {e}")))
}

fn decision_status(d: lettergate::report::model::Decision) -> ExitStatus {
    match d.exit_code() {
        0 => ExitStatus::Pass,
        3 => ExitStatus::HarnessFailure,
        _ => ExitStatus::Regression,
    }
}

/// A progress bar on stderr that appears once a run has taken a second; never drawn when
/// stderr is not a terminal or `CI` is set, so CI logs stay clean.
struct Progress {
    bar: indicatif::ProgressBar,
    allowed: bool,
    started: std::time::Instant,
}

impl Progress {
    fn new(total: usize) -> Progress {
        use std::io::IsTerminal;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total as u64),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} scenarios {elapsed}")
        {
            bar.set_style(style);
        }
        let allowed = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Progress {
            bar,
            allowed,
            started: std::time::Instant::now(),
        }
    }

    /// Counts one finished scenario, showing the bar once the run is past a second.
    fn step(&self) {
        if self.allowed
            && self.bar.is_hidden()
            && self.started.elapsed() > std::time::Duration::from_secs(1)
        {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        self.bar.inc(1);
    }
}

fn run(args: RunArgs) -> Result<ExitStatus, Error> {
    let sim = SimConfig::named(&args.sim_profile).map_err(Error::Usage)?;
    let target = match &args.target {
        Some(path) => Some(lettergate::targets::load(path).map_err(|d| Error::Input(vec![d]))?),
        None => None,
    };
    let (mut scenarios, _) = load_all(&args.paths)?;
    if target.is_some() {
        let volume = scenarios.iter().filter(|s| s.generated).count();
        scenarios.retain(|s| !s.generated);
        if volume > 0 {
            eprintln!("skipping {volume} volume (population) scenarios: a target is driven one event at a time");
        }
    }
    let (system, profile) = match &target {
        Some(t) => (
            format!("target {}", t.name()),
            format!("{} driver", t.driver_kind()),
        ),
        None => ("simulator".to_string(), args.sim_profile.clone()),
    };
    let snapshot_dir = target.as_ref().map_or("simulator", |t| t.name());
    if let Some((k, n)) = args.shard {
        scenarios.retain(|s| in_shard(&s.id, k, n));
    }
    let work_dir = new_run_dir(&args.common.work_dir)?;
    let mut config = RunConfig::new(
        sim,
        SnapshotStore::new(&args.common.snapshots, snapshot_dir),
        work_dir,
    );
    config.mode = match (args.accept, args.check) {
        (true, _) => SnapshotMode::Accept,
        (_, true) => SnapshotMode::Check,
        _ => SnapshotMode::New,
    };
    config.jobs = args.common.jobs.max(1);
    config.listen_ip = args.listen_ip;
    let term = Terminal {
        show_identifiers: args.common.show_identifiers,
        color: Terminal::detect_color(),
    };
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| Error::Harness(format!("failed to write the report: {e}"));
    let shard_note = args
        .shard
        .map_or(String::new(), |(k, n)| format!(", shard {k}/{n}"));
    term.header(
        &mut out,
        scenarios.len(),
        &system,
        &format!("{profile}{shard_note}"),
    )
    .map_err(io)?;
    let progress = Progress::new(scenarios.len());
    let mut line_err = None;
    let on_outcome = |o: &lettergate::run::Outcome| {
        if let Err(e) = progress.bar.suspend(|| term.line(&mut out, o)) {
            line_err.get_or_insert(e);
        }
        progress.step();
    };
    let outcomes = match &target {
        Some(t) => runtime()?.block_on(lettergate::targets::run::run_target(
            t, &scenarios, config, on_outcome,
        )),
        None => runtime()?.block_on(run_all(&scenarios, config, on_outcome)),
    };
    progress.bar.finish_and_clear();
    if let Some(e) = line_err {
        return Err(io(e));
    }
    let mut report = RunReport::new(&system, &profile, args.common.show_identifiers)
        .build(&scenarios, &outcomes);
    if let Some((k, n)) = args.shard {
        report.shards.push(format!("{k}/{n}"));
    }
    conclude(&term, &mut out, report, &outcomes, &args.reports)
}

/// The end of a run: the summary, the report files, the exit status.
fn conclude(
    term: &Terminal,
    out: &mut impl Write,
    report: RunReport,
    outcomes: &[lettergate::run::Outcome],
    reports: &ReportArgs,
) -> Result<ExitStatus, Error> {
    let io = |e: std::io::Error| Error::Harness(format!("failed to write the report: {e}"));
    term.summary(out, &report, outcomes).map_err(io)?;
    for p in reports.files().write(&report).map_err(Error::Harness)? {
        writeln!(out, "report written to {}", p.display()).map_err(io)?;
    }
    Ok(decision_status(report.decision()))
}

fn drive(args: DriveArgs) -> Result<ExitStatus, Error> {
    let target = lettergate::targets::load(&args.target).map_err(|d| Error::Input(vec![d]))?;
    lettergate::targets::ledger::check_two_phase(&target).map_err(Error::Usage)?;
    let (scenarios, _) = load_all(&args.paths)?;
    println!(
        "driving {} scenarios against target {} ({} driver); ledger {}",
        scenarios.iter().filter(|s| !s.generated).count(),
        target.name(),
        target.driver_kind(),
        args.ledger.display()
    );
    let ledger = runtime()?
        .block_on(lettergate::targets::ledger::drive(
            &target,
            &args.target,
            &scenarios,
            &args.ledger,
            |l| match &l.error {
                None => println!(
                    "DRIVEN  {:<40} {} events; letters due by {}",
                    l.id,
                    l.driven_at.len(),
                    l.due_by.map_or("-".into(), |t| t.rfc3339())
                ),
                Some(e) => println!(
                    "FAILED  {:<40} after {} events: {e}",
                    l.id,
                    l.driven_at.len()
                ),
            },
        ))
        .map_err(Error::Harness)?;
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

fn collect(args: CollectArgs) -> Result<ExitStatus, Error> {
    let ledger = lettergate::targets::ledger::Ledger::load(&args.ledger)
        .map_err(Error::Usage)?
        .ok_or_else(|| {
            Error::Usage(format!(
                "no ledger in {}: run `lettergate drive --ledger {}` first",
                args.ledger.display(),
                args.ledger.display()
            ))
        })?;
    let target = lettergate::targets::load(&ledger.target).map_err(|d| Error::Input(vec![d]))?;
    let paths: Vec<PathBuf> = ledger.scenarios.iter().map(|s| s.path.clone()).collect();
    let (scenarios, _) = load_all(&paths)?;
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
    let io = |e: std::io::Error| Error::Harness(format!("failed to write the report: {e}"));
    let system = format!("target {}", target.name());
    let profile = format!("{} driver, collected", target.driver_kind());
    term.header(&mut out, ledger.scenarios.len(), &system, &profile)
        .map_err(io)?;
    let (outcomes, attributed) = runtime()?
        .block_on(lettergate::targets::ledger::collect(
            &target,
            &ledger,
            &scenarios,
            &args.ledger,
            config,
        ))
        .map_err(Error::Harness)?;
    for o in &outcomes {
        term.line(&mut out, o).map_err(io)?;
    }
    writeln!(
        out,
        "{attributed} letters collected for the ledger's patients"
    )
    .map_err(io)?;
    let report =
        RunReport::new(&system, &profile, args.show_identifiers).build(&scenarios, &outcomes);
    conclude(&term, &mut out, report, &outcomes, &args.reports)
}

fn bench(args: BenchArgs) -> Result<ExitStatus, Error> {
    use lettergate::bench;
    let sizes = bench::Sizes {
        letters: args.letters,
        scenarios: args.scenarios,
    };
    if args.child {
        let name = args
            .only
            .first()
            .ok_or_else(|| Error::Usage("--child needs --only NAME".into()))?;
        let out = bench::run_one(name, &sizes, args.loopback_rate).map_err(Error::Harness)?;
        println!("{out}");
        return Ok(ExitStatus::Pass);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are only meaningful from `cargo run --release -- bench`");
    }
    let names: Vec<String> = if args.only.is_empty() {
        vec![
            "loopback",
            "volume-quarter",
            "volume",
            "suite",
            "validate",
            "compare",
        ]
        .into_iter()
        .map(String::from)
        .collect()
    } else {
        args.only.clone()
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Harness(format!("failed to find this program: {e}")))?;
    let mut loopback_rate: Option<f64> = None;
    let mut all_met = true;
    for name in names {
        eprintln!("running {name}...");
        let mut cmd = std::process::Command::new(&exe);
        cmd.args([
            "bench",
            "--child",
            "--only",
            &name,
            "--letters",
            &args.letters.to_string(),
            "--scenarios",
            &args.scenarios.to_string(),
        ]);
        if let Some(rate) = loopback_rate {
            cmd.args(["--loopback-rate", &format!("{rate}")]);
        }
        let out = cmd
            .output()
            .map_err(|e| Error::Harness(format!("failed to run the benchmark {name}: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !text.starts_with("bench ") {
            return Err(Error::Harness(format!(
                "benchmark {name} failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        println!("{text}");
        if name == "loopback" {
            loopback_rate = text
                .split_whitespace()
                .find_map(|f| f.strip_prefix("letters_per_s="))
                .and_then(|v| v.parse().ok());
        }
        if let Some((met, what)) = bench::target(&text) {
            all_met &= met;
            println!("  target {}: {what}", if met { "met" } else { "NOT met" });
        }
    }
    Ok(if all_met {
        ExitStatus::Pass
    } else {
        ExitStatus::Regression
    })
}

fn merge(files: &[PathBuf], reports: &ReportArgs) -> Result<ExitStatus, Error> {
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
        if part.schema != lettergate::report::model::SCHEMA {
            return Err(Error::Input(vec![Diagnostic::new(
                f,
                format!(
                    "report schema `{}` is not `{}`",
                    part.schema,
                    lettergate::report::model::SCHEMA
                ),
            )]));
        }
        parts.push(part);
    }
    let report = RunReport::merge(parts).map_err(Error::Usage)?;
    let term = Terminal {
        show_identifiers: report.identifiers_shown,
        color: Terminal::detect_color(),
    };
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| Error::Harness(format!("failed to write the report: {e}"));
    writeln!(
        out,
        "merged {} reports: {} scenarios (shards {})",
        files.len(),
        report.scenarios.len(),
        report.shards.join(", ")
    )
    .map_err(io)?;
    term.summary(&mut out, &report, &[]).map_err(io)?;
    for p in reports.files().write(&report).map_err(Error::Harness)? {
        writeln!(out, "report written to {}", p.display()).map_err(io)?;
    }
    Ok(decision_status(report.decision()))
}

/// Makes `work/runs/<UTC time>-<pid>`, keeping only the ten newest runs beside it.
fn new_run_dir(work: &Path) -> Result<PathBuf, Error> {
    let runs = work.join("runs");
    let stamp = lettergate::protocol::clock::compact_utc_now();
    let name = format!("{}T{}-{}", &stamp[..8], &stamp[8..14], std::process::id());
    let dir = runs.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| {
        Error::Harness(format!(
            "failed to create the run folder {}: {e}",
            dir.display()
        ))
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
                return Err(Error::Usage(format!("{name} does not exist")));
            }
            found.push(p.clone());
        } else if name.ends_with(".snap") {
            found.push(new_path(p));
        } else if p.is_dir() {
            collect_new(p, &mut found)
                .map_err(|e| Error::Usage(format!("failed to read {name}: {e}")))?;
        } else if p.is_file() {
            found.push(store.pending_path(&scenario_id(p)));
        } else {
            return Err(Error::Usage(format!("{name} does not exist")));
        }
    }
    found.retain(|p| p.is_file());
    found.sort();
    found.dedup();
    Ok(found)
}

fn collect_new(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_new(&p, out)?;
        } else if p.to_string_lossy().ends_with(".snap.new") {
            out.push(p);
        }
    }
    Ok(())
}

fn accept_or_reject(args: &SnapshotArgs, accept: bool) -> Result<ExitStatus, Error> {
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
        result.map_err(|e| Error::Harness(format!("failed to update {}: {e}", f.display())))?;
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

fn matrix(args: MatrixArgs) -> Result<ExitStatus, Error> {
    let (mut scenarios, _) = load_all(&args.paths)?;
    // Volume scenarios measure scale, not detection; fourteen runs of each would add minutes.
    let volume = scenarios.iter().filter(|s| s.generated).count();
    scenarios.retain(|s| !s.generated);
    if volume > 0 {
        eprintln!("skipping {volume} volume (population) scenarios");
    }
    if scenarios.is_empty() {
        return Err(Error::Usage(
            "no scenario selected: the matrix needs hand-written scenarios".into(),
        ));
    }
    let work_dir = new_run_dir(&args.common.work_dir)?;
    eprintln!(
        "running {} scenarios under {} profiles...",
        scenarios.len(),
        PROFILES.len()
    );
    let m = runtime()?.block_on(lettergate::matrix::build(
        scenarios,
        &args.common.snapshots,
        &work_dir,
        args.common.jobs.max(1),
    ));
    m.render(&mut std::io::stdout().lock(), args.common.show_identifiers)
        .map_err(|e| Error::Harness(format!("failed to write the matrix: {e}")))?;
    Ok(if m.any_error() {
        ExitStatus::HarnessFailure
    } else if m.baseline_clean() && m.uncaught().is_empty() {
        ExitStatus::Pass
    } else {
        ExitStatus::Regression
    })
}

fn serve(args: ServeArgs) -> Result<ExitStatus, Error> {
    use lettergate::protocol::mesh::client::MeshConfig;
    use lettergate::sim::ehr::Outbound;
    let mut config = SimConfig::named(&args.sim_profile).map_err(Error::Usage)?;
    if let Some(d) = &args.dispatch_interval {
        config.dispatch_interval =
            lettergate::protocol::clock::Span::parse(d).map_err(Error::Usage)?;
    }
    let start = lettergate::protocol::clock::Timestamp::parse(&args.start).map_err(Error::Usage)?;
    let mut directory = std::collections::BTreeMap::new();
    let mut loader = Loader::new();
    for path in &args.directory {
        let practices = loader
            .fixture_practices(path)
            .map_err(|d| Error::Input(vec![d]))?;
        directory.extend(practices);
    }
    let system_clock = args.clock == "system";
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let out = Outbound {
        mesh: MeshConfig {
            base_url: args.mesh_url.clone(),
            mailbox: args.mailbox.clone(),
            password: env("LETTERGATE_MESH_PASSWORD", "password"),
            shared_key: env(
                "LETTERGATE_MESH_SHARED_KEY",
                lettergate::protocol::mesh::DEFAULT_SHARED_KEY,
            ),
        },
        print_url: args.print_url.clone(),
        docman_url: args.docman_url.clone(),
        mllp: args.mllp_addr,
        folder: args.drop_folder.clone(),
    };
    runtime()?.block_on(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| Error::Harness(format!("failed to build the HTTP client: {e}")))?;
        let clock = match system_clock {
            true => lettergate::protocol::clock::Clock::System,
            false => lettergate::protocol::clock::Clock::virtual_at(start),
        };
        let mut sim = lettergate::sim::Simulator::new(config, clock, out, http);
        for p in lettergate::run::practice_records(&directory) {
            sim.register_practice(p);
        }
        let state = lettergate::sim::server::shared(sim);
        let _adt = match args.adt_listen {
            Some(addr) => {
                let l = lettergate::sim::server::adt_listener(state.clone(), addr)
                    .await
                    .map_err(|e| Error::Harness(format!("failed to take ADT on {addr}: {e}")))?;
                println!("taking HL7 v2 ADT over MLLP on {}", l.local_addr());
                Some(l)
            }
            None => None,
        };
        if system_clock {
            tokio::spawn(lettergate::sim::server::run_clock(
                state.clone(),
                std::time::Duration::from_millis(500),
            ));
        }
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|e| Error::Harness(format!("failed to listen on {}: {e}", args.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Harness(e.to_string()))?;
        println!(
            "lettergate simulator listening on http://{addr} (profile {}, sending to MESH at {})",
            args.sim_profile, args.mesh_url
        );
        axum::serve(listener, lettergate::sim::server::router_with_state(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Harness(format!("the simulator server failed: {e}")))?;
        Ok(ExitStatus::Pass)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_is_in_exactly_one_shard_and_adding_scenarios_moves_none() {
        let ids: Vec<String> = (0..200).map(|i| format!("area/scenario_{i}")).collect();
        let shard_of = |id: &str| (1..=4).filter(|k| in_shard(id, *k, 4)).collect::<Vec<_>>();
        for id in &ids {
            assert_eq!(shard_of(id).len(), 1, "{id}");
        }
        // A shard depends on the id alone, so nothing moves when the list grows.
        let before: Vec<_> = ids.iter().map(|id| shard_of(id)).collect();
        let mut more = ids.clone();
        more.push("new/scenario".into());
        let after: Vec<_> = more.iter().take(ids.len()).map(|id| shard_of(id)).collect();
        assert_eq!(before, after);
        let sizes: Vec<usize> = (1..=4)
            .map(|k| ids.iter().filter(|id| in_shard(id, k, 4)).count())
            .collect();
        assert!(
            sizes.iter().all(|n| *n > 30),
            "shards are roughly even: {sizes:?}"
        );
    }

    #[test]
    fn shard_arguments_are_checked() {
        assert_eq!(parse_shard("2/3"), Ok((2, 3)));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
