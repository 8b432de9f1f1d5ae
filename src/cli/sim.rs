//! `lettergate sim`: serve the simulator's HTTP API, list its profiles, run the detection
//! matrix.

use super::args::CommonArgs;
use super::error::{Error, ExitStatus, UsageError};
use super::runtime;
use super::workdir::new_run_dir;
use clap::{Args, Subcommand};
use lettergate::protocol::clock::ClockKind;
use lettergate::protocol::ids::Identifiers;
use lettergate::protocol::mesh::client::MeshConfig;
use lettergate::sim_server::SimState;
use lettergate::Outbound;
use lettergate::SimConfig;
use lettergate::PROFILES;
use lettergate::{load_all, Loader};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    #[arg(long, default_value = lettergate::SENDER_MAILBOX, value_name = "MAILBOX")]
    pub mailbox: String,
    /// How the simulator behaves.
    #[arg(long, default_value = "baseline", value_name = "NAME")]
    pub sim_profile: String,
    /// Where the virtual clock starts (RFC 3339).
    #[arg(long, default_value = "2025-01-06T09:00:00Z", value_name = "TIME")]
    pub start: String,
    /// `virtual`: time moves only when told (`POST /clock`); `system`: the simulator runs in
    /// real time, like a staging EHR, and sends what is due every `--dispatch-interval`.
    #[arg(long, default_value = "virtual", value_parser = clap::builder::TypedValueParser::try_map(clap::builder::PossibleValuesParser::new(ClockKind::NAMES), |s| s.parse::<ClockKind>()))]
    pub clock: ClockKind,
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

/// `sim profiles`: one line per profile, names aligned.
pub fn profiles() -> Result<ExitStatus, Error> {
    let width = PROFILES.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in PROFILES {
        println!("{:<width$}  {}", p.name, p.description);
    }
    Ok(ExitStatus::Pass)
}

pub fn matrix(args: MatrixArgs) -> Result<ExitStatus, Error> {
    let (mut scenarios, _) = load_all(&args.paths)?;
    // Volume scenarios measure scale, not detection; fourteen runs of each would add minutes.
    let volume = scenarios.iter().filter(|s| s.generated).count();
    scenarios.retain(|s| !s.generated);
    if volume > 0 {
        eprintln!("skipping {volume} volume (population) scenarios");
    }
    if scenarios.is_empty() {
        return Err(UsageError::NoHandWrittenScenario.into());
    }
    let work_dir = new_run_dir(&args.common.work_dir)?;
    eprintln!(
        "running {} scenarios under {} profiles...",
        scenarios.len(),
        PROFILES.len()
    );
    let m = runtime()?.block_on(lettergate::build_matrix(
        scenarios,
        &args.common.snapshots,
        &work_dir,
        args.common.jobs.unwrap_or(super::args::SIM_JOBS).max(1),
    ));
    m.render(
        &mut std::io::stdout().lock(),
        Identifiers::shown_if(args.common.show_identifiers),
    )
    .map_err(|e| Error::harness("failed to write the matrix", e))?;
    Ok(if m.any_error() {
        ExitStatus::HarnessFailure
    } else if m.baseline_clean() && m.uncaught().is_empty() {
        ExitStatus::Pass
    } else {
        ExitStatus::Regression
    })
}

/// Serves the simulator's HTTP API (and ADT over MLLP if asked) until Ctrl-C.
pub fn serve(args: ServeArgs) -> Result<ExitStatus, Error> {
    let mut config = SimConfig::named(&args.sim_profile).map_err(Error::config)?;
    if let Some(d) = &args.dispatch_interval {
        config.dispatch_interval =
            lettergate::protocol::clock::Span::parse(d).map_err(Error::config)?;
    }
    let start =
        lettergate::protocol::clock::Timestamp::parse(&args.start).map_err(Error::config)?;
    let clock = args.clock.start(start);
    let mut directory = BTreeMap::new();
    let mut loader = Loader::new();
    for path in &args.directory {
        let practices = loader.fixture_practices(path).map_err(Error::from)?;
        directory.extend(practices);
    }
    let out = outbound(&args);
    runtime()?.block_on(async move {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| Error::harness("failed to build the HTTP client", e))?;
        let mut sim = lettergate::Simulator::new(config, clock, out, http);
        for p in lettergate::practice_records(&directory) {
            sim.register_practice(p);
        }
        listen(&args, lettergate::sim_server::shared(sim)).await
    })
}

/// Where the simulator sends letters; MESH credentials from the environment, as a staging
/// EHR would hold them, with the sandbox's defaults.
fn outbound(args: &ServeArgs) -> Outbound {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    Outbound {
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
    }
}

/// Takes ADT (if asked), runs the system clock (if asked) and serves HTTP until Ctrl-C.
async fn listen(
    args: &ServeArgs,
    state: Arc<tokio::sync::Mutex<SimState>>,
) -> Result<ExitStatus, Error> {
    use lettergate::sim_server as server;
    // Held to the end: dropping the listener would stop taking ADT.
    let adt = match args.adt_listen {
        Some(addr) => {
            let l = server::adt_listener(state.clone(), addr)
                .await
                .map_err(|e| Error::harness(format!("failed to take ADT on {addr}"), e))?;
            println!("taking HL7 v2 ADT over MLLP on {}", l.local_addr());
            Some(l)
        }
        None => None,
    };
    if args.clock == ClockKind::System {
        tokio::spawn(server::run_clock(
            state.clone(),
            std::time::Duration::from_millis(500),
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::harness(format!("failed to listen on {}", args.listen), e))?;
    let limits = lettergate::protocol::limits::Limits::current();
    let deadline = limits.shutdown_deadline;
    let server = lettergate::protocol::listen::HttpServer::start(
        listener,
        server::router_with_state(state),
        limits,
    )
    .map_err(|e| Error::harness(format!("failed to listen on {}", args.listen), e))?;
    println!(
        "lettergate simulator listening on http://{} (profile {}, sending to MESH at {})",
        server.local_addr(),
        args.sim_profile,
        args.mesh_url
    );
    let _ = tokio::signal::ctrl_c().await;
    // Connections under way get the shutdown deadline to finish, then are closed: one left
    // open by a peer must not keep the simulator from stopping.
    eprintln!(
        "stopping: waiting at most {}s for the requests under way",
        deadline.as_secs()
    );
    if let Some(adt) = adt {
        adt.shutdown().await;
    }
    server.shutdown().await;
    Ok(ExitStatus::Pass)
}
