//! `lettergate bench`: each benchmark in a child process of its own, figures checked against
//! their targets.

use super::error::{Error, ExitStatus, UsageError};
use clap::Args;
use lettergate::{bench_target, run_bench, BenchRounds, BenchSizes};
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Run only these benchmarks (loopback, volume, volume-quarter, suite, validate, compare,
    /// peers).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Also run `peers`: the same letters, sent by the same client, to lettergate's own MESH
    /// endpoint and to NHS Digital's mesh-sandbox, throughputs side by side. Needs the interop
    /// peers (`scripts/install-interop-peers.sh`), found in $LETTERGATE_PEERS, else in
    /// `.venv-interop` in the current folder or the project's; without them, exit 3.
    #[arg(long)]
    pub peers: bool,
    /// Letters sent to each peer by `peers`, after a short warm-up (at least 1).
    #[arg(long, value_name = "N", default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub peer_letters: u64,
    /// Letters in the volume and compare benchmarks (at least 1). 250000 is a month of a
    /// large trust; above 60,000 the volume target allows 512 MB, not 256 (BENCHMARKS.md).
    #[arg(long, default_value_t = 53_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub letters: u64,
    /// Scenarios in the suite and validate benchmarks (at least 1: a benchmark of no
    /// scenario measures nothing).
    #[arg(long, default_value_t = 1_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub scenarios: usize,
    /// Rounds of the loopback reference and the quarter volume, one after the other, before
    /// the full volume run (its ratio is taken against their median reference).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub rounds: usize,
    /// Run in this process instead of a child of its own (used by the benchmark itself).
    #[arg(long, hide = true)]
    pub child: bool,
    /// The loopback rate to take the volume ratio against (passed to the child).
    #[arg(long, hide = true)]
    pub loopback_rate: Option<f64>,
    /// The peers' virtual environment, as the parent found it (passed to the child).
    #[arg(long, hide = true)]
    pub peer_venv: Option<PathBuf>,
}

/// Every benchmark of a plain `lettergate bench`, in the order they run. `volume` brings its
/// reference with it: rounds of `loopback` and `volume-quarter`, then the full run.
const ALL: [&str; 4] = ["volume", "suite", "validate", "compare"];

/// Runs each benchmark asked for in a child process of its own (so one's allocations and
/// threads do not skew the next), prints its figures and whether its target was met.
pub fn bench(args: BenchArgs) -> Result<ExitStatus, Error> {
    if args.child {
        return child(&args);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are only meaningful from `cargo run --release -- bench`");
    }
    let mut names: Vec<String> = if args.only.is_empty() {
        ALL.into_iter().map(String::from).collect()
    } else {
        args.only.clone()
    };
    if args.peers && !names.iter().any(|n| n == "peers") {
        names.push("peers".into());
    }
    // Found before anything runs: asked for and not installed is exit 3, never a skip.
    let venv = if names.iter().any(|n| n == "peers") {
        Some(lettergate::bench_peers_venv().map_err(Error::layer)?)
    } else {
        None
    };
    let exe =
        std::env::current_exe().map_err(|e| Error::harness("failed to find this program", e))?;
    let run = |name: &str, loopback_rate: Option<f64>| {
        eprintln!("running {name}...");
        run_child(
            &exe,
            &args,
            name.to_string(),
            loopback_rate,
            venv.as_deref(),
        )
    };
    let mut all_met = true;
    let mut report = |text: &str| {
        println!("{text}");
        if let Some((met, what)) = bench_target(text) {
            all_met &= met;
            println!("  target {}: {what}", if met { "met" } else { "NOT met" });
        }
    };
    for name in names {
        match name.as_str() {
            "volume" => {
                let mut rounds = BenchRounds::default();
                for round in 1..=args.rounds {
                    let reference = format!("{} round={round}", run("loopback", None)?);
                    let rate = lettergate::bench_field(&reference, "letters_per_s");
                    let quarter = format!("{} round={round}", run("volume-quarter", rate)?);
                    report(&reference);
                    report(&quarter);
                    rounds.add(&reference, &quarter);
                }
                let summary = rounds.summary();
                if let Some(s) = &summary {
                    println!("{}", s.line());
                    println!("{}", s.verdict());
                }
                report(&run("volume", summary.map(|s| s.loopback_median))?);
            }
            "volume-quarter" => {
                let reference = run("loopback", None)?;
                let rate = lettergate::bench_field(&reference, "letters_per_s");
                report(&reference);
                report(&run("volume-quarter", rate)?);
            }
            "peers" => {
                // Back to back, each in a child of its own, lettergate first.
                let [a, b] = lettergate::BENCH_PEER_NAMES;
                let ours = run(a, None)?;
                report(&ours);
                let theirs = run(b, None)?;
                report(&theirs);
                println!("{}", lettergate::bench_peers_summary(&ours, &theirs));
            }
            other => report(&run(other, None)?),
        }
    }
    Ok(if all_met {
        ExitStatus::Pass
    } else {
        ExitStatus::Regression
    })
}

/// `bench --child --only NAME`: runs one benchmark in this process and prints its line.
fn child(args: &BenchArgs) -> Result<ExitStatus, Error> {
    let sizes = BenchSizes {
        letters: args.letters,
        scenarios: args.scenarios,
    };
    let name = args
        .only
        .first()
        .ok_or_else(|| Error::from(UsageError::ChildWithoutOnly))?;
    let out = if lettergate::BENCH_PEER_NAMES.contains(&name.as_str()) {
        lettergate::run_bench_peer(name, args.peer_letters, args.peer_venv.as_deref())
            .map_err(Error::layer)?
    } else {
        run_bench(name, &sizes, args.loopback_rate).map_err(Error::layer)?
    };
    println!("{out}");
    Ok(ExitStatus::Pass)
}

/// Runs benchmark `name` in a child of this program; its figures line (`bench …`).
fn run_child(
    exe: &Path,
    args: &BenchArgs,
    name: String,
    loopback_rate: Option<f64>,
    peer_venv: Option<&Path>,
) -> Result<String, Error> {
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "bench",
        "--child",
        "--only",
        &name,
        "--letters",
        &args.letters.to_string(),
        "--scenarios",
        &args.scenarios.to_string(),
        "--peer-letters",
        &args.peer_letters.to_string(),
    ]);
    if let Some(rate) = loopback_rate {
        cmd.args(["--loopback-rate", &format!("{rate}")]);
    }
    if let Some(venv) = peer_venv {
        cmd.arg("--peer-venv").arg(venv);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::harness(format!("failed to run the benchmark {name}"), e))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !text.starts_with("bench ") {
        return Err(Error::Benchmark {
            name,
            output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(text)
}
