//! `lettergate bench`: each benchmark in a child process of its own, figures checked against
//! their targets.

use super::error::{Error, ExitStatus, UsageError};
use clap::Args;

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

pub fn bench(args: BenchArgs) -> Result<ExitStatus, Error> {
    use lettergate::bench;
    let sizes = bench::Sizes {
        letters: args.letters,
        scenarios: args.scenarios,
    };
    if args.child {
        let name = args
            .only
            .first()
            .ok_or_else(|| Error::from(UsageError::ChildWithoutOnly))?;
        let out = bench::run_one(name, &sizes, args.loopback_rate).map_err(Error::layer)?;
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
    let exe =
        std::env::current_exe().map_err(|e| Error::harness("failed to find this program", e))?;
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
            .map_err(|e| Error::harness(format!("failed to run the benchmark {name}"), e))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || !text.starts_with("bench ") {
            return Err(Error::Benchmark {
                name,
                output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
            });
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
