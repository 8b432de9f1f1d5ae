//! The command line, private to the binary: [`Cli`] (clap) and the dispatch of each command to
//! its own file. Each command returns an [`ExitStatus`]; nothing here panics on bad input.

mod args;
mod bench;
mod completions;
mod error;
mod explain;
mod init;
mod progress;
mod report;
mod run;
mod schema;
mod sim;
mod snapshots;
mod targets;
mod two_phase;
mod validate;
mod workdir;

use clap::{Parser, Subcommand};
use error::{DisplayErrorChain, Error, ExitStatus};
use std::io::Write;

use bench::BenchArgs;
use explain::ExplainArgs;
use report::ReportCommand;
use run::RunArgs;
use schema::SchemaArgs;
use sim::SimCommand;
use snapshots::SnapshotArgs;
use std::path::PathBuf;
use targets::TargetsCommand;
use two_phase::{CollectArgs, DriveArgs};

const EXIT_CODES: &str = "\
Exit codes:
  0  every letter as expected
  1  a regression was found (a letter missing, misrouted, late, duplicated, changed or unexpected)
  2  bad input or configuration, including no scenario selected
  3  the harness could not drive the target or capture (never reported as a pass)";

/// Proves an EHR upgrade still sends every letter to GP practices before it goes live.
#[derive(Parser, Debug)]
#[command(name = "lettergate", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    /// Say where each fact a letter is checked on was read from: the letters of a capture
    /// folder (`captured messages:` in a run's output), or one body file.
    Explain(ExplainArgs),
    /// Benchmarks: print figures for loopback, volume, suite, validate and compare, and with
    /// `--peers` lettergate's MESH endpoint beside mesh-sandbox (use a release build: `cargo
    /// run --release -- bench`).
    Bench(BenchArgs),
    /// Start a suite of your own in a new folder: synthetic practices and patients, an
    /// outpatient, a discharge and a death scenario with accepted snapshots, a target file per
    /// driver, CI files for GitLab and GitHub, and the schemas editors read.
    #[command(after_help = EXIT_CODES)]
    Init {
        /// The folder to create; it must not exist, or be empty.
        dir: PathBuf,
    },
    /// Print or write the JSON Schemas of scenario, fixture and target files, for editors
    /// (a YAML language server reads the `# yaml-language-server: $schema=` line).
    Schema(SchemaArgs),
    /// Print a shell's completion script: `lettergate completions bash > /etc/bash_completion.d/lettergate`.
    Completions {
        /// The shell to complete in.
        shell: completions::Shell,
    },
    /// Print the man page, lettergate(1), as roff: `lettergate man > lettergate.1`.
    Man,
}

/// Parses the process arguments and runs the command.
pub fn main_entry() -> ExitStatus {
    let cli = Cli::parse();
    // Read once, before anything listens or reads: a bad value is bad input (exit 2).
    match lettergate::protocol::limits::Limits::from_env() {
        Ok(limits) => limits.install(),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitStatus::BadInput;
        }
    }
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate { paths } => validate::validate(&paths),
        Command::Accept(args) => snapshots::accept_or_reject(&args, true),
        Command::Reject(args) => snapshots::accept_or_reject(&args, false),
        Command::Sim(SimCommand::Profiles) => sim::profiles(),
        Command::Sim(SimCommand::Serve(args)) => sim::serve(*args),
        Command::Targets(TargetsCommand::Check { file }) => targets::check(&file),
        Command::Drive(args) => two_phase::drive(args),
        Command::Collect(args) => two_phase::collect(args),
        Command::Sim(SimCommand::Matrix(args)) => sim::matrix(args),
        Command::Report(ReportCommand::Merge { files, reports }) => report::merge(&files, &reports),
        Command::Bench(args) => bench::bench(args),
        Command::Init { dir } => init::init(&dir),
        Command::Schema(args) => schema::schema(args),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::Explain(args) => explain::explain(args),
    };
    result.unwrap_or_else(|e| {
        let mut err = std::io::stderr().lock();
        if let Error::Input(diags) = &e {
            for d in diags {
                let _ = writeln!(err, "{d}\n");
            }
        }
        // The chain may quote a file name or what an EHR answered: escaped, one line.
        let chain = DisplayErrorChain(&e).to_string();
        let _ = writeln!(
            err,
            "error: {}",
            lettergate::protocol::text::escape_controls(&chain)
        );
        e.exit_status()
    })
}

/// The async runtime the commands that drive or capture build once.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::harness("failed to start the async runtime", e))
}
