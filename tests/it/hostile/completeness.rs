//! No GO without every part (issue 13, point 1): `report merge` needs every shard of one run
//! exactly once; selecting no scenario is exit 2 in every command; a letter replayed into a
//! capture without authentication of its own is a finding, not a pass.

use crate::support::project::{Project, Ran};

/// The scenarios the shard tests run: few, so that the runs are quick, and spread over the
/// three shards (each of which the tests check is not empty).
const PATHS: [&str; 2] = ["scenarios/death", "scenarios/outpatient"];

fn shard_report(p: &Project, shard: &str, out: &str, paths: &[&str]) -> Ran {
    let r = p.run(
        &[
            &["run", "--check", "--shard", shard, "--report-json", out][..],
            paths,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r
}

fn three_shards(p: &Project) {
    for k in 1..=3 {
        shard_report(p, &format!("{k}/3"), &format!("shard-{k}.json"), &PATHS);
    }
}

fn merge(p: &Project, files: &[&str]) -> Ran {
    p.run(&[&["report", "merge"][..], files].concat())
}

/// Issue 13: a merge of shard 1/3 alone, or of 1/3 and 3/3, said GO (exit 0).
#[test]
fn a_merge_without_every_shard_is_bad_input_naming_the_missing_shards() {
    let p = Project::copy();
    three_shards(&p);
    let r = merge(&p, &["shard-1.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "shards 2/3, 3/3 of the run are missing: merge the reports of every shard 1/3 to 3/3"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("GO"), "{}", r.stdout);
    let r = merge(&p, &["shard-1.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("shard 2/3 of the run is missing"),
        "{}",
        r.stderr
    );
    // Every shard once is what a merge is for.
    let r = merge(&p, &["shard-1.json", "shard-2.json", "shard-3.json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("\nGO: "), "{}", r.stdout);
}

#[test]
fn a_merge_with_a_shard_given_twice_is_bad_input_naming_both_files() {
    let p = Project::copy();
    three_shards(&p);
    std::fs::copy(p.path("shard-1.json"), p.path("again.json")).unwrap();
    let r = merge(
        &p,
        &["shard-1.json", "shard-2.json", "shard-3.json", "again.json"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("shard 1/3 is given more than once (shard-1.json, again.json)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_merge_of_shards_of_runs_with_other_parameters_is_bad_input_naming_what_differs() {
    let p = Project::copy();
    three_shards(&p);
    // Shard 2 of another selection of scenarios: every shard number is there once, but the
    // run is not one run.
    shard_report(
        &p,
        "2/3",
        "other-2.json",
        &["scenarios/death", "scenarios/inpatient"],
    );
    let r = merge(&p, &["shard-1.json", "other-2.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "cannot merge reports of different runs: the scenario paths: `scenarios/death scenarios/outpatient` in shard-1.json, `scenarios/death scenarios/inpatient` in other-2.json"
        ),
        "{}",
        r.stderr
    );
    // The same paths in another snapshot mode are another run too.
    let r = p.run(
        &[
            &["run", "--shard", "2/3", "--report-json", "new-2.json"][..],
            &PATHS,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = merge(&p, &["shard-1.json", "new-2.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the snapshot mode: check in shard-1.json, new in new-2.json"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_shard_report_holding_another_shards_scenario_is_refused() {
    let p = Project::copy();
    three_shards(&p);
    // Shard 1's report relabelled as shard 2's: each number once, but not what they hold.
    let text = p.read("shard-1.json").replace("\"1/3\"", "\"2/3\"");
    p.write("relabelled.json", &text);
    let r = merge(&p, &["relabelled.json", "shard-3.json", "shard-2.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("which belongs to another shard")
            || r.stderr.contains("is given more than once"),
        "{}",
        r.stderr
    );
    let r = merge(&p, &["relabelled.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("says it is shard 2/3 but holds scenario"),
        "{}",
        r.stderr
    );
}

/// Issue 13: `--shard 3/1000` selected no scenario and said GO.
#[test]
fn a_shard_selecting_no_scenario_is_bad_input_and_writes_no_report() {
    let p = Project::copy();
    let r = p.run(&[
        "run",
        "--check",
        "--shard",
        "3/1000",
        "--report-json",
        "s.json",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no scenario selected: shard 3/1000 holds none of the"),
        "{}",
        r.stderr
    );
    assert!(!p.path("s.json").exists());
    assert!(!p.path(".lettergate").exists(), "nothing was run");
}

/// Issue 13: a report selecting no scenario said GO.
#[test]
fn a_merge_of_reports_holding_no_scenario_is_bad_input() {
    let p = Project::copy();
    let empty = serde_json::json!({
        "schema": "lettergate.report/1", "lettergate_version": env!("CARGO_PKG_VERSION"),
        "target": "simulator", "profile": "baseline", "shards": [],
        "identifiers_shown": false, "scenarios": []
    });
    p.write("empty.json", &empty.to_string());
    let r = merge(&p, &["empty.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no scenario selected: the reports hold no scenario"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("GO"), "{}", r.stdout);
}

/// A suite of one small population scenario, which a target does not run.
fn volume_only(p: &Project) {
    let fixtures = p.read("scenarios/fixtures/common.yaml");
    p.write("vol/fixtures/common.yaml", &fixtures);
    let root = crate::support::root();
    let text = std::fs::read_to_string(root.join("scenarios/volume/week_mid_sized_trust.yaml"))
        .unwrap()
        .replace("patients: 40000", "patients: 50")
        .replace("days: 7", "days: 1");
    p.write("vol/volume/week.yaml", &text);
    p.write(
        "target.yaml",
        "name: staging\nnon_production: true\ndrive:\n  fhir: {base_url: \"http://127.0.0.1:9/fhir\"}\ncapture:\n  folder: {path: drop}\n",
    );
    std::fs::create_dir_all(p.path("drop")).unwrap();
}

/// Issue 13: against a target a suite of volume scenarios only ran nothing and said GO.
#[test]
fn a_target_run_or_drive_whose_filters_leave_no_scenario_is_bad_input() {
    let p = Project::copy();
    volume_only(&p);
    let r = p.run(&[
        "run",
        "--target",
        "target.yaml",
        "vol",
        "--report-json",
        "r.json",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no scenario selected: the 1 scenarios found are volume (population) scenarios, which a target does not run"),
        "{}",
        r.stderr
    );
    assert!(!p.path("r.json").exists());
    let r = p.run(&[
        "drive",
        "--target",
        "target.yaml",
        "--ledger",
        "ledger",
        "vol",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no scenario selected"), "{}", r.stderr);
    assert!(!p.path("ledger").exists());
}

#[test]
fn collecting_a_ledger_of_no_scenario_is_bad_input() {
    let p = Project::copy();
    volume_only(&p);
    p.write(
        "ledger/ledger.json",
        r#"{"format": "lettergate.ledger/1", "target": "target.yaml", "target_name": "staging", "scenarios": []}"#,
    );
    let r = p.run(&["collect", "--ledger", "ledger"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no scenario selected: the ledger in ledger holds no scenario"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_matrix_or_benchmark_of_no_scenario_is_bad_input() {
    let p = Project::copy();
    volume_only(&p);
    let r = p.run(&["sim", "matrix", "vol"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no scenario selected"), "{}", r.stderr);
    let r = p.run(&["bench", "--only", "suite", "--scenarios", "0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let r = p.run(&["bench", "--only", "volume", "--letters", "0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
}
