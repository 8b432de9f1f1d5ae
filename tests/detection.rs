//! Detection: a simulator that stops writing one kind of letter makes exactly the scenarios
//! that expect that kind fail with "missing letter", and the same scenarios pass with the rule
//! in place.

use lettergate::cli::load_all;
use lettergate::expect::Finding;
use lettergate::letter::LetterKind;
use lettergate::run::{run_all, Outcome, RunConfig, Verdict};
use lettergate::scenario::Scenario;
use lettergate::sim::SimConfig;
use lettergate::snapshot::{SnapshotMode, SnapshotStore};
use std::path::PathBuf;

fn shipped() -> Vec<Scenario> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    load_all(&[root.join("scenarios")])
        .expect("shipped scenarios load")
        .0
}

async fn run(sim: SimConfig, scenarios: Vec<Scenario>) -> Vec<Outcome> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let mut config = RunConfig::new(
        sim,
        SnapshotStore::new(root.join("snapshots"), "simulator"),
        work.path().to_path_buf(),
    );
    // Compare with the accepted snapshots but write nothing into the repository.
    config.mode = SnapshotMode::Check;
    run_all(scenarios, config, |_| {}).await
}

fn expects(s: &Scenario, kind: LetterKind) -> bool {
    s.expect.iter().any(|x| x.letter == kind && x.count > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_rule_for_a_letter_kind_shows_its_scenarios_as_missing_letter() {
    let scenarios = shipped();
    let baseline = run(SimConfig::baseline(), scenarios.clone()).await;
    for o in &baseline {
        assert_eq!(
            o.verdict,
            Verdict::Pass,
            "{} should pass on baseline: {:?} {:?}",
            o.scenario_id,
            o.findings,
            o.error
        );
    }
    for kind in LetterKind::ALL {
        let affected: Vec<&Scenario> = scenarios.iter().filter(|s| expects(s, kind)).collect();
        assert!(!affected.is_empty(), "no shipped scenario expects a {kind}");
        let outcomes = run(
            SimConfig::baseline().without_letter(kind),
            scenarios.clone(),
        )
        .await;
        for (s, o) in scenarios.iter().zip(&outcomes) {
            let missing = o.findings.iter().any(
                |f| matches!(f, Finding::MissingLetter { kind: k, found: 0, .. } if *k == kind),
            );
            if expects(s, kind) {
                assert_eq!(o.verdict, Verdict::Fail, "{} without {kind}", s.id);
                assert!(
                    missing,
                    "{} without {kind} should report a missing {kind}: {:?}",
                    s.id, o.findings
                );
                let text: Vec<String> = o.findings.iter().map(|f| f.describe(false)).collect();
                assert!(
                    text.iter()
                        .any(|t| t.starts_with(&format!("missing letter: {}", kind.words()))),
                    "{text:?}"
                );
            } else {
                assert!(!missing, "{} does not expect a {kind}", s.id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_gives_identical_verdicts_and_snapshots_run_after_run() {
    let scenarios = shipped();
    let first = run(SimConfig::baseline(), scenarios.clone()).await;
    for _ in 0..4 {
        let again = run(SimConfig::baseline(), scenarios.clone()).await;
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(
                (a.verdict, &a.findings, &a.snapshot),
                (b.verdict, &b.findings, &b.snapshot),
                "{}",
                a.scenario_id
            );
        }
    }
}
