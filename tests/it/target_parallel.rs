//! Issue 16 (point 4): target runs in parallel. `lettergate sim serve` stands in for the
//! staging EHR, as in [`crate::target`]; `run --target -j N` and `drive -j N` drive waves of
//! scenarios at once, and each scenario is still waited for and checked on its own.

use crate::support::loopback::free_port;
use crate::support::{bin, root};
use crate::target::{lettergate_on, sim_serve, target_file, text, verdicts, Batch};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two about alice (so there are two waves), and one each about bob, dave, erin and harry.
const SIX: [&str; 6] = [
    "scenarios/calendar/friday_clinic_signed_monday.yaml",
    "scenarios/emergency/ed_discharge.yaml",
    "scenarios/inpatient/discharge_summary.yaml",
    "scenarios/outpatient/clinic_letter.yaml",
    "scenarios/routing/changed_practice.yaml",
    "scenarios/routing/merged_practice.yaml",
];

/// The run folders under `dir/work` (newest last by name: they start with the time).
fn runs(dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("work/runs"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    runs.sort();
    runs
}

/// The waves of more than one scenario a run made (`.waves/N` of its folder).
fn waves(run: &Path) -> Vec<String> {
    let mut w: Vec<String> = std::fs::read_dir(run.join(".waves"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    w.sort();
    w
}

/// `-j 4` gives the verdicts and matches the snapshots of `-j 1`, on a healthy EHR and on one
/// that drops clinic letters: the fault is caught in exactly the scenarios that expect a
/// clinic letter, in whichever wave they ran, and the others still pass.
#[test]
fn a_parallel_run_gives_the_sequential_verdicts_and_catches_a_fault_per_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let report = |name: &str| dir.path().join(name);
    let run = |args: &[&str], json: &Path| {
        let mut a = args.to_vec();
        a.extend(["--report-json", json.to_str().unwrap()]);
        lettergate_on(&a, &target, dir.path(), &SIX)
    };

    let seq = run(&["run", "-j", "1", "--accept"], &report("seq.json"));
    assert_eq!(seq.status.code(), Some(0), "{}", text(&seq));
    assert!(waves(runs(dir.path()).last().unwrap()).is_empty());

    let par = run(&["run", "-j", "4", "--check"], &report("par.json"));
    let out = text(&par);
    assert_eq!(par.status.code(), Some(0), "{out}");
    assert!(out.contains("6 scenarios: 6 passed"), "{out}");
    assert_eq!(verdicts(&report("seq.json")), verdicts(&report("par.json")));
    // Both waves held more than one scenario, and each scenario has its own letters.
    let last = runs(dir.path()).last().unwrap().clone();
    assert_eq!(waves(&last), ["1", "2"], "{out}");
    assert!(last
        .join("outpatient/clinic_letter/messages.ndjson")
        .is_file());
    // Outcomes in scenario order, whatever wave each ran in.
    let order: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("PASS"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    drop(sim);

    // "Upgrade": clinic letters silently dropped.
    let sim = sim_serve("op-letters-silently-dropped", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let run = |args: &[&str], json: &Path| {
        let mut a = args.to_vec();
        a.extend(["--report-json", json.to_str().unwrap()]);
        lettergate_on(&a, &target, dir.path(), &SIX)
    };
    let par = run(&["run", "-j", "4", "--check"], &report("par-fault.json"));
    let out = text(&par);
    assert_eq!(par.status.code(), Some(1), "{out}");
    let by_verdict = |v: &str| -> Vec<String> {
        verdicts(&report("par-fault.json"))
            .into_iter()
            .filter(|(_, verdict, _)| verdict == v)
            .map(|(id, _, _)| id)
            .collect()
    };
    assert_eq!(
        by_verdict("fail"),
        [
            "calendar/friday_clinic_signed_monday",
            "outpatient/clinic_letter",
            "routing/changed_practice"
        ],
        "{out}"
    );
    assert_eq!(by_verdict("pass").len(), 3, "{out}");
    for patient in ["alice", "erin"] {
        assert!(
            out.contains(&format!("missing letter: clinic letter for {patient}")),
            "{out}"
        );
    }
    let seq = run(&["run", "-j", "1", "--check"], &report("seq-fault.json"));
    assert_eq!(seq.status.code(), Some(1), "{}", text(&seq));
    assert_eq!(
        verdicts(&report("seq-fault.json")),
        verdicts(&report("par-fault.json"))
    );
}

/// A suite of `copies` copies of `scenario` (under `dir/suite/copies/`, with the shipped
/// fixtures beside them): one patient in every one.
fn copies(dir: &Path, scenario: &str, copies: usize) -> Vec<String> {
    let suite = dir.join("suite");
    std::fs::create_dir_all(suite.join("fixtures")).unwrap();
    std::fs::create_dir_all(suite.join("copies")).unwrap();
    std::fs::copy(
        root().join("scenarios/fixtures/common.yaml"),
        suite.join("fixtures/common.yaml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(root().join(scenario)).unwrap();
    (0..copies)
        .map(|i| {
            let p = suite.join(format!("copies/copy_{i}.yaml"));
            std::fs::write(&p, &text).unwrap();
            p.to_string_lossy().into_owned()
        })
        .collect()
}

/// With `match: local_id` and `parallel: {shared_patients: true}`, two copies of one
/// scenario about dave run in one wave, and each letter counts for the copy whose local id
/// it carries: when the EHR sends only one of the two emergency discharge letters, exactly
/// one copy is missing its letter (were a letter counted for every scenario about its
/// patient, both would pass on the one letter).
#[test]
fn two_scenarios_about_one_patient_in_one_wave_are_told_apart_by_local_id() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let shared = "match: local_id\nparallel: {shared_patients: true}\n";
    let with_local_ids = |sim_port| {
        let t = target_file(dir.path(), sim_port, capture_port);
        let text = std::fs::read_to_string(&t).unwrap() + shared;
        std::fs::write(&t, text).unwrap();
        t
    };
    let scenarios = copies(dir.path(), "scenarios/emergency/ed_discharge.yaml", 2);
    let scenarios: Vec<&str> = scenarios.iter().map(String::as_str).collect();
    let target = with_local_ids(sim.port);
    let healthy = lettergate_on(
        &["run", "-j", "4", "--accept"],
        &target,
        dir.path(),
        &scenarios,
    );
    let out = text(&healthy);
    assert_eq!(healthy.status.code(), Some(0), "{out}");
    assert!(out.contains("2 scenarios: 2 passed"), "{out}");
    assert!(!out.contains("one after another"), "{out}");
    assert_eq!(waves(runs(dir.path()).last().unwrap()), ["1"]);
    drop(sim);

    // Only one emergency discharge letter in two is sent.
    let sim = sim_serve("ed-letters-partial", capture_port);
    let target = with_local_ids(sim.port);
    let partial = lettergate_on(
        &["run", "-j", "4", "--check"],
        &target,
        dir.path(),
        &scenarios,
    );
    let out = text(&partial);
    assert_eq!(partial.status.code(), Some(1), "{out}");
    assert!(out.contains("2 scenarios: 1 passed, 1 failed"), "{out}");
    assert_eq!(
        out.matches("missing letter: emergency discharge for dave")
            .count(),
        1,
        "{out}"
    );
    assert_eq!(waves(runs(dir.path()).last().unwrap()), ["1"]);
}

/// By NHS number, scenarios about the same patient run one after another whatever `-j` says,
/// and the run says why, naming the patient masked and the scenarios.
#[test]
fn by_nhs_number_scenarios_about_one_patient_run_one_after_another_and_the_run_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let alice = [
        "scenarios/calendar/friday_clinic_signed_monday.yaml",
        "scenarios/outpatient/clinic_letter.yaml",
    ];
    let ran = lettergate_on(&["run", "-j", "8", "--accept"], &target, dir.path(), &alice);
    let out = text(&ran);
    assert_eq!(ran.status.code(), Some(0), "{out}");
    assert!(
        out.contains("note: the 2 scenarios run one after another, though -j allows 8 at once: with `match: nhs_number`"),
        "{out}"
    );
    assert!(
        out.contains("1 patient kept scenarios apart: *******018 in 2 (calendar/friday_clinic_signed_monday, outpatient/clinic_letter)"),
        "{out}"
    );
    assert!(!out.contains("9990000018"), "{out}");
    assert!(waves(runs(dir.path()).last().unwrap()).is_empty());
}

/// A capture that dies while a wave runs (its watched folder removed) fails the wave's proof
/// when the wave ends: every scenario of the wave is an error, the run INCOMPLETE (exit 3),
/// although their MESH letters came; with the folder left alone the same wave passes.
#[test]
fn a_capture_that_dies_in_a_wave_makes_every_scenario_of_it_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let folder = dir.path().join("drop");
    std::fs::create_dir(&folder).unwrap();
    let with_folder = std::fs::read_to_string(&target).unwrap().replace(
        "capture:\n",
        &format!(
            "capture:\n  folder: {{path: {}, poll_interval: 1s}}\n",
            folder.display()
        ),
    );
    std::fs::write(&target, with_folder).unwrap();
    let three = [
        "scenarios/inpatient/discharge_summary.yaml",
        "scenarios/emergency/ed_discharge.yaml",
        "scenarios/routing/merged_practice.yaml",
    ];
    let alive = lettergate_on(&["run", "-j", "4", "--accept"], &target, dir.path(), &three);
    assert_eq!(alive.status.code(), Some(0), "{}", text(&alive));
    assert_eq!(waves(runs(dir.path()).last().unwrap()), ["1"]);
    let before = runs(dir.path());

    let child = Command::new(bin())
        .current_dir(root())
        .args(["run", "-j", "4", "--check", "--target"])
        .arg(&target)
        .arg("--snapshots")
        .arg(dir.path().join("snapshots"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .args(three)
        .env("LG_TEST_MESH_KEY", "TestKey")
        .env("LG_TEST_SENDER_PASSWORD", "sender-secret")
        .env("LG_TEST_PRACTICE_PASSWORD", "practice-secret")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the wave's captures run, the folder goes.
    let started = Instant::now();
    loop {
        let new_run = runs(dir.path()).into_iter().find(|r| !before.contains(r));
        if new_run.is_some_and(|r| r.join(".waves/1").is_dir()) {
            std::fs::remove_dir_all(&folder).unwrap();
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the wave never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let dead = child.wait_with_output().unwrap();
    let out = text(&dead);
    assert_eq!(dead.status.code(), Some(3), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ERROR")).count(),
        3,
        "{out}"
    );
    assert!(!out.lines().any(|l| l.starts_with("PASS")), "{out}");
    assert!(out.contains("could not watch the drop folder"), "{out}");
    assert!(out.contains("INCOMPLETE"), "{out}");
    drop(sim);
}

/// `drive -j 4` drives a wave at once and writes every scenario to the ledger, complete, with
/// its events and local ids; scenarios about bob are driven one after another, said so; and
/// `collect` checks them all by local id.
#[test]
fn drive_in_waves_then_collect() {
    let b = Batch::start();
    b.write_target("match: local_id\n");
    let scenarios = [
        "scenarios/calendar/weekend_discharge.yaml",
        "scenarios/emergency/ed_discharge.yaml",
        "scenarios/inpatient/discharge_summary.yaml",
        "scenarios/routing/merged_practice.yaml",
    ];
    let mut args = vec!["drive", "-j", "4", "--target"];
    let (target, ledger) = (b.target.to_str().unwrap(), b.ledger.to_str().unwrap());
    args.extend([target, "--ledger", ledger]);
    args.extend(scenarios);
    let driven = b.lg(&args);
    let out = text(&driven);
    assert_eq!(driven.status.code(), Some(0), "{out}");
    assert!(
        out.contains("run in 2 waves of at most 4 at once, not 1"),
        "{out}"
    );
    assert!(out.contains("*******026 in 2"), "{out}");
    // DRIVEN lines in scenario order; the ledger in the order they were driven.
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("DRIVEN"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        lines,
        [
            "calendar/weekend_discharge",
            "emergency/ed_discharge",
            "inpatient/discharge_summary",
            "routing/merged_practice"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&b.ledger_json()).unwrap();
    let entries = v["scenarios"].as_array().unwrap();
    let ids: Vec<&str> = entries.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "calendar/weekend_discharge",
            "emergency/ed_discharge",
            "routing/merged_practice",
            "inpatient/discharge_summary"
        ]
    );
    for s in entries {
        assert_eq!(s["complete"], true, "{s}");
        assert_eq!(s["driven_at"].as_array().unwrap().len(), 2, "{s}");
        assert_eq!(s["local_ids"].as_array().unwrap().len(), 2, "{s}");
    }

    std::thread::sleep(Duration::from_secs(3));
    let collected = b.collect("--accept");
    let out = text(&collected);
    assert_eq!(collected.status.code(), Some(0), "{out}");
    assert!(out.contains("4 scenarios: 4 passed"), "{out}");
}
