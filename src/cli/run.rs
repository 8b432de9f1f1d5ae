//! `lettergate run`: scenarios against the simulator or a target, one shard of them if asked.

use super::args::{CommonArgs, ReportArgs};
use super::progress::Progress;
use super::report::conclude;
use super::runtime;
use super::workdir::new_run_dir;
use clap::Args;
use lettergate::error::{Error, ExitStatus};
use lettergate::report::{RunReport, Terminal};
use lettergate::run::{run_all, RunConfig};
use lettergate::scenario::load_all;
use lettergate::sim::SimConfig;
use lettergate::snapshot::{SnapshotMode, SnapshotStore};
use std::net::IpAddr;
use std::path::PathBuf;

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

pub fn run(args: RunArgs) -> Result<ExitStatus, Error> {
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
