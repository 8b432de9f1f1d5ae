//! `lettergate bench`: each benchmark in a child process of its own, figures checked against
//! their targets.

use super::error::{Error, ExitStatus, UsageError};
use clap::Args;
use lettergate::{bench_target, run_bench, BenchSizes};
use std::path::Path;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Run only these benchmarks (loopback, volume, volume-quarter, suite, validate, compare).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Letters in the volume and compare benchmarks (at least 1).
    #[arg(long, default_value_t = 53_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub letters: u64,
    /// Scenarios in the suite and validate benchmarks (at least 1: a benchmark of no
    /// scenario measures nothing).
    #[arg(long, default_value_t = 1_000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub scenarios: usize,
    /// Run in this process instead of a child of its own (used by the benchmark itself).
    #[arg(long, hide = true)]
    pub child: bool,
    /// The loopback rate to take the volume ratio against (passed to the child).
    #[arg(long, hide = true)]
    pub loopback_rate: Option<f64>,
}

/// Every benchmark, in the order they run: loopback first, since volume's ratio is taken
/// against its rate.
const ALL: [&str; 6] = [
    "loopback",
    "volume-quarter",
    "volume",
    "suite",
    "validate",
    "compare",
];

/// Runs each benchmark asked for in a child process of its own (so one's allocations and
/// threads do not skew the next), prints its figures and whether its target was met.
pub fn bench(args: BenchArgs) -> Result<ExitStatus, Error> {
    if args.child {
        return child(&args);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; figures are only meaningful from `cargo run --release -- bench`");
    }
    let names: Vec<String> = if args.only.is_empty() {
        ALL.into_iter().map(String::from).collect()
    } else {
        args.only.clone()
    };
    let exe =
        std::env::current_exe().map_err(|e| Error::harness("failed to find this program", e))?;
    let mut loopback_rate: Option<f64> = None;
    let mut all_met = true;
    for name in names {
        eprintln!("running {name}...");
        let text = run_child(&exe, &args, name.clone(), loopback_rate)?;
        println!("{text}");
        if name == "loopback" {
            loopback_rate = text
                .split_whitespace()
                .find_map(|f| f.strip_prefix("letters_per_s="))
                .and_then(|v| v.parse().ok());
        }
        if let Some((met, what)) = bench_target(&text) {
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
    let out = run_bench(name, &sizes, args.loopback_rate).map_err(Error::layer)?;
    println!("{out}");
    Ok(ExitStatus::Pass)
}

/// Runs benchmark `name` in a child of this program; its figures line (`bench …`).
fn run_child(
    exe: &Path,
    args: &BenchArgs,
    name: String,
    loopback_rate: Option<f64>,
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
    ]);
    if let Some(rate) = loopback_rate {
        cmd.args(["--loopback-rate", &format!("{rate}")]);
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
