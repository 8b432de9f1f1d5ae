//! Command-line arguments (clap) and the commands they run. Each command returns an
//! [`ExitStatus`]; nothing here panics on bad input.

use crate::error::{Error, ExitStatus};
use crate::report::Terminal;
use crate::run::{run_all, RunConfig, Verdict};
use crate::scenario::{discover, load::scenario_id, Diagnostic, Loader, Scenario};
use crate::sim::profile::PROFILES;
use crate::sim::SimConfig;
use crate::snapshot::store::new_path;
use crate::snapshot::{SnapshotMode, SnapshotStore};
use clap::{Args, Parser, Subcommand};
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
    /// Run scenarios against the built-in EHR simulator and check every letter it sends.
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
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario files or folders of them.
    #[arg(default_value = "scenarios")]
    pub paths: Vec<PathBuf>,
    /// How the simulator behaves; `lettergate sim profiles` lists them.
    #[arg(long, default_value = "baseline", value_name = "NAME")]
    pub sim_profile: String,
    /// Record the results of passing scenarios as the accepted snapshots.
    #[arg(long, conflicts_with = "check")]
    pub accept: bool,
    /// Write no snapshot files at all, not even `.snap.new` (for CI).
    #[arg(long)]
    pub check: bool,
    /// Folder of accepted snapshots.
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub snapshots: PathBuf,
    /// Folder where each run keeps the messages it captured.
    #[arg(long, default_value = ".lettergate", value_name = "DIR")]
    pub work_dir: PathBuf,
    /// How many scenarios run at once.
    #[arg(long, short = 'j', default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Show NHS numbers in full in the report (masked by default).
    #[arg(long)]
    pub show_identifiers: bool,
    /// Address the capture endpoints listen on.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub listen_ip: IpAddr,
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
pub enum SimCommand {
    /// Serve the simulator's HTTP API (see README.md, "The simulator's HTTP API").
    Serve(ServeArgs),
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
    /// Folder of accepted snapshots (compared, never written).
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub snapshots: PathBuf,
    /// Folder where runs keep the messages they captured.
    #[arg(long, default_value = ".lettergate", value_name = "DIR")]
    pub work_dir: PathBuf,
    /// How many scenarios run at once.
    #[arg(long, short = 'j', default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// Show NHS numbers in full (masked by default).
    #[arg(long)]
    pub show_identifiers: bool,
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
    /// The simulator's own MESH mailbox.
    #[arg(long, default_value = crate::run::SENDER_MAILBOX, value_name = "MAILBOX")]
    pub mailbox: String,
    /// How the simulator behaves.
    #[arg(long, default_value = "baseline", value_name = "NAME")]
    pub sim_profile: String,
    /// Where the virtual clock starts (RFC 3339).
    #[arg(long, default_value = "2025-01-06T09:00:00Z", value_name = "TIME")]
    pub start: String,
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
        Command::Sim(SimCommand::Serve(args)) => serve(args),
        Command::Sim(SimCommand::Matrix(args)) => matrix(args),
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

/// Loads every scenario under `paths`, collecting all diagnostics rather than stopping early.
pub fn load_all(paths: &[PathBuf]) -> Result<(Vec<Scenario>, usize), Error> {
    let found = discover(paths).map_err(|d| Error::Input(vec![d]))?;
    let mut loader = Loader::new();
    let mut diags: Vec<Diagnostic> = Vec::new();
    for f in &found.fixtures {
        if let Err(d) = loader.load_fixtures(f) {
            diags.push(d);
        }
    }
    let mut scenarios = Vec::new();
    for p in &found.scenarios {
        match loader.load_scenario(p) {
            Ok(s) => scenarios.push(s),
            Err(d) => diags.push(d),
        }
    }
    // A broken fixture file is reported once, not again by every scenario that includes it.
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert(d.to_string()));
    if !diags.is_empty() {
        return Err(Error::Input(diags));
    }
    if scenarios.is_empty() {
        let shown: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::Usage(format!(
            "no scenario selected: no scenario files (*.yaml) found under {}",
            shown.join(", ")
        )));
    }
    let mut ids = std::collections::BTreeMap::new();
    for s in &scenarios {
        if let Some(other) = ids.insert(s.id.clone(), s.path.clone()) {
            return Err(Error::Usage(format!(
                "two scenario files have the same id `{}` ({} and {}): rename one",
                s.id,
                other.display(),
                s.path.display()
            )));
        }
    }
    Ok((scenarios, found.fixtures.len()))
}

fn validate(paths: &[PathBuf]) -> Result<ExitStatus, Error> {
    let (scenarios, fixtures) = load_all(paths)?;
    println!(
        "{} scenario files and {fixtures} fixture files are valid",
        scenarios.len()
    );
    Ok(ExitStatus::Pass)
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Harness(format!("failed to start the async runtime: {e}")))
}

fn run(args: RunArgs) -> Result<ExitStatus, Error> {
    let sim = SimConfig::named(&args.sim_profile).map_err(Error::Usage)?;
    let (scenarios, _) = load_all(&args.paths)?;
    let work_dir = new_run_dir(&args.work_dir)?;
    let mut config = RunConfig::new(
        sim,
        SnapshotStore::new(&args.snapshots, "simulator"),
        work_dir,
    );
    config.mode = match (args.accept, args.check) {
        (true, _) => SnapshotMode::Accept,
        (_, true) => SnapshotMode::Check,
        _ => SnapshotMode::New,
    };
    config.jobs = args.jobs.max(1);
    config.listen_ip = args.listen_ip;
    let report = Terminal {
        show_identifiers: args.show_identifiers,
    };
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| Error::Harness(format!("failed to write the report: {e}"));
    report
        .header(&mut out, scenarios.len(), "simulator", &args.sim_profile)
        .map_err(io)?;
    let mut line_err = None;
    let outcomes = runtime()?.block_on(run_all(scenarios, config, |o| {
        if let Err(e) = report.line(&mut out, o) {
            line_err.get_or_insert(e);
        }
    }));
    if let Some(e) = line_err {
        return Err(io(e));
    }
    report.summary(&mut out, &outcomes).map_err(io)?;
    Ok(if outcomes.iter().any(|o| o.verdict == Verdict::Error) {
        ExitStatus::HarnessFailure
    } else if outcomes.iter().any(|o| o.verdict == Verdict::Fail) {
        ExitStatus::Regression
    } else {
        ExitStatus::Pass
    })
}

/// Makes `work/runs/<UTC time>-<pid>`, keeping only the ten newest runs beside it.
fn new_run_dir(work: &Path) -> Result<PathBuf, Error> {
    let runs = work.join("runs");
    let stamp = crate::clock::compact_utc_now();
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
    let (scenarios, _) = load_all(&args.paths)?;
    let work_dir = new_run_dir(&args.work_dir)?;
    eprintln!(
        "running {} scenarios under {} profiles...",
        scenarios.len(),
        PROFILES.len()
    );
    let m = runtime()?.block_on(crate::matrix::build(
        scenarios,
        &args.snapshots,
        &work_dir,
        args.jobs.max(1),
    ));
    m.render(&mut std::io::stdout().lock(), args.show_identifiers)
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
    use crate::mesh::client::MeshConfig;
    use crate::sim::ehr::Outbound;
    let config = SimConfig::named(&args.sim_profile).map_err(Error::Usage)?;
    let start = crate::clock::Timestamp::parse(&args.start).map_err(Error::Usage)?;
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let out = Outbound {
        mesh: MeshConfig {
            base_url: args.mesh_url.clone(),
            mailbox: args.mailbox.clone(),
            password: env("LETTERGATE_MESH_PASSWORD", "password"),
            shared_key: env(
                "LETTERGATE_MESH_SHARED_KEY",
                crate::mesh::DEFAULT_SHARED_KEY,
            ),
        },
        print_url: args.print_url.clone(),
        docman_url: args.docman_url.clone(),
    };
    runtime()?.block_on(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| Error::Harness(format!("failed to build the HTTP client: {e}")))?;
        let sim =
            crate::sim::Simulator::new(config, crate::clock::Clock::virtual_at(start), out, http);
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
        axum::serve(listener, crate::sim::server::router(sim))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| Error::Harness(format!("the simulator server failed: {e}")))?;
        Ok(ExitStatus::Pass)
    })
}
