//! The `lettergate` binary as a user meets it: exit codes, output, and the files it writes.

use crate::support::assert_snapshot;
use crate::support::project::{redact, Project};

#[test]
fn the_main_job_runs_every_shipped_scenario_and_exits_0() {
    let p = Project::copy();
    let r = p.run(&["run"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("\nGO: every expected letter of 21 scenarios went where it should"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("FAIL"), "{}", r.stdout);
    let shipped = std::fs::read_dir(p.path("scenarios")).unwrap().count();
    assert!(shipped >= 4);
}

#[test]
fn a_changed_recipient_in_a_snap_fails_with_a_diff_naming_the_letter_and_keeps_the_snap() {
    let p = Project::copy();
    let snap = "snapshots/simulator/outpatient/clinic_letter.snap";
    // Without the change the scenario passes.
    let clean = p.run(&["run", "scenarios/outpatient/clinic_letter.yaml"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);

    let edited = p
        .read(snap)
        .replace("recipient_ods: A81001", "recipient_ods: B82002");
    assert_ne!(edited, p.read(snap), "the snapshot should name A81001");
    p.write(snap, &edited);
    let r = p.run(&["run", "scenarios/outpatient/clinic_letter.yaml"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(
            "content changed: the snapshot differs in letter 1: clinic_letter for alice to A81001"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("-  recipient_ods: B82002"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("+  recipient_ods: A81001"),
        "{}",
        r.stdout
    );
    assert_eq!(
        p.read(snap),
        edited,
        "the accepted snapshot must not be touched"
    );
    let pending = p.read(&format!("{snap}.new"));
    assert!(pending.contains("recipient_ods: A81001"));
    assert_snapshot!("changed_recipient_report", redact(&r.stdout));
}

#[test]
fn a_misspelt_key_makes_validate_and_run_exit_2_naming_file_line_column_with_a_suggestion() {
    let p = Project::copy();
    let path = "scenarios/outpatient/clinic_letter.yaml";
    let text = p.read(path).replacen(
        "    patient: alice\n    to: registered_practice",
        "    pateint: alice\n    to: registered_practice",
        1,
    );
    assert!(text.contains("pateint"));
    p.write(path, &text);
    let before = p.snapshot_files();
    for cmd in ["validate", "run"] {
        let r = p.run(&[cmd]);
        assert_eq!(r.code, 2, "{cmd}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr
                .contains("--> scenarios/outpatient/clinic_letter.yaml:18:5"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("did you mean `patient`?"), "{}", r.stderr);
        assert_snapshot!(format!("misspelt_key_{cmd}"), r.stderr);
    }
    assert_eq!(
        p.snapshot_files(),
        before,
        "a failed run must not write snapshots"
    );
}

#[test]
fn invalid_values_and_references_are_reported_at_the_value() {
    let p = Project::copy();
    let cases = [
        (
            "\"9990000018\"",
            "\"9990000019\"",
            "nhs_number: ",
            "fails the Modulus 11 check",
        ),
        (
            "\"9990000018\"",
            "\"9434765919\"",
            "nhs_number: ",
            "not synthetic",
        ),
        (
            "ods: A81001",
            "ods: I81001",
            "ods: ",
            "invalid GP practice ODS code",
        ),
    ];
    for (from, to, key, says) in cases {
        let q = Project::copy();
        let f = "scenarios/fixtures/common.yaml";
        let text = q.read(f).replacen(from, to, 1);
        // The error must point at the value: the line that now holds it, just after its key.
        let (line, col) = text
            .lines()
            .enumerate()
            .find_map(|(i, l)| {
                l.contains(to)
                    .then(|| (i + 1, l.find(key).unwrap() + key.len() + 1))
            })
            .unwrap();
        let at = format!("common.yaml:{line}:{col}");
        q.write(f, &text);
        let r = q.run(&["validate"]);
        assert_eq!(r.code, 2, "{to}");
        assert!(r.stderr.contains(&at), "{to}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{to}: {}", r.stderr);
        assert_eq!(
            r.stderr.matches("error:").count(),
            2,
            "one diagnostic and the count: {}",
            r.stderr
        );
    }
    let f = "scenarios/routing/changed_practice.yaml";
    p.write(
        f,
        &p.read(f)
            .replace("to: hillside\n  - after", "to: hilside\n  - after"),
    );
    let r = p.run(&["validate", f]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown practice `hilside`"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("did you mean `hillside`?"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_scenario_selected_exits_2() {
    let p = Project::copy();
    std::fs::create_dir_all(p.path("empty")).unwrap();
    let r = p.run(&["run", "empty"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no scenario selected"), "{}", r.stderr);
    let r = p.run(&["run", "does/not/exist"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no such file or directory"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_unknown_simulator_profile_exits_2_and_lists_the_known_ones() {
    let r = Project::copy().run(&["run", "--sim-profile", "basline"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("known profiles: baseline"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_harness_that_cannot_capture_exits_3_and_never_reports_a_pass() {
    // 192.0.2.1 (TEST-NET-1) is not an address of this machine, so binding to it fails at
    // once and no packet is sent anywhere.
    let p = Project::copy();
    let r = p.run(&[
        "run",
        "--listen-ip",
        "192.0.2.1",
        "scenarios/outpatient/clinic_letter.yaml",
    ]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("ERROR"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("could not capture: failed to listen on 192.0.2.1:0"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("INCOMPLETE"), "{}", r.stdout);
    assert!(!r.stdout.contains("GO: every letter"), "{}", r.stdout);
}

#[test]
fn check_mode_writes_no_snapshot_files() {
    let p = Project::copy();
    std::fs::remove_file(p.path("snapshots/simulator/inpatient/discharge_summary.snap")).unwrap();
    let r = p.run(&["run", "--check"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("no accepted snapshot at snapshots/simulator/inpatient/discharge_summary.snap (run without --check"), "{}", r.stdout);
    assert!(!p
        .path("snapshots/simulator/inpatient/discharge_summary.snap.new")
        .exists());
}

#[test]
fn a_new_scenario_fails_until_its_snapshot_is_accepted_then_passes() {
    let p = Project::copy();
    let snap = "snapshots/simulator/inpatient/discharge_summary.snap";
    let accepted = p.read(snap);
    std::fs::remove_file(p.path(snap)).unwrap();
    let r = p.run(&["run"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("no accepted snapshot"), "{}", r.stdout);
    assert!(p.path(&format!("{snap}.new")).exists());

    let r = p.run(&["reject", "scenarios/inpatient/discharge_summary.yaml"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!p.path(&format!("{snap}.new")).exists());

    assert_eq!(p.run(&["run"]).code, 1);
    let r = p.run(&["accept"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("accepted 1 snapshots"), "{}", r.stdout);
    assert_eq!(
        p.read(snap),
        accepted,
        "the accepted snapshot is what the run produced"
    );
    assert_eq!(p.run(&["run"]).code, 0);
}

#[test]
fn run_accept_records_a_baseline_only_for_scenarios_without_findings() {
    let p = Project::copy();
    std::fs::remove_dir_all(p.path("snapshots")).unwrap();
    let f = "scenarios/emergency/ed_discharge.yaml";
    // The simulator sends at its next 15-minute dispatch tick, 5 minutes after the discharge,
    // so a 1-minute deadline is missed by 4 minutes.
    let text = p.read(f);
    let expect = "  - letter: emergency_discharge\n    patient: dave\n";
    assert!(text.contains(expect));
    p.write(
        f,
        &text.replace(expect, &format!("{expect}    within: 1m\n")),
    );
    let r = p.run(&["run", "--accept"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("late: emergency discharge #1 for dave (NHS *******042) was sent 4m after its deadline (1m after emergency_discharge)"), "{}", r.stdout);
    assert!(!p
        .path("snapshots/simulator/emergency/ed_discharge.snap")
        .exists());
    assert!(p
        .path("snapshots/simulator/emergency/ed_discharge.snap.new")
        .exists());
    assert!(p
        .path("snapshots/simulator/outpatient/clinic_letter.snap")
        .exists());
}

#[test]
fn reports_mask_nhs_numbers_unless_asked() {
    let p = Project::copy();
    let f = "scenarios/outpatient/clinic_letter.yaml";
    p.write(
        f,
        &p.read(f).replace("to: registered_practice", "to: hillside"),
    );
    let r = p.run(&["run", f]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "wrong recipient: clinic letter #1 for alice (NHS *******018) went to A81001"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("9990000018"), "{}", r.stdout);
    let r = p.run(&["run", "--show-identifiers", f]);
    assert!(r.stdout.contains("alice (NHS 9990000018)"), "{}", r.stdout);
}

#[test]
fn help_documents_the_commands_and_exit_codes() {
    let r = Project::copy().run(&["--help"]);
    assert_eq!(r.code, 0);
    for word in [
        "run",
        "validate",
        "accept",
        "reject",
        "sim",
        "Exit codes:",
        "3  the harness could not drive",
    ] {
        assert!(r.stdout.contains(word), "{word}: {}", r.stdout);
    }
    let r = Project::copy().run(&["run", "--help"]);
    assert!(
        r.stdout.contains("--sim-profile") && r.stdout.contains("Exit codes:"),
        "{}",
        r.stdout
    );
}

#[test]
fn sim_profiles_lists_each_profile_with_a_description() {
    let r = Project::copy().run(&["sim", "profiles"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("baseline"), "{}", r.stdout);
    assert!(r.stdout.contains("correct behaviour"), "{}", r.stdout);
}

#[test]
fn sim_matrix_prints_the_detection_matrix_and_exits_0_when_every_fault_is_caught() {
    let p = Project::copy();
    let r = p.run(&["sim", "matrix"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("result: baseline is clean and every fault profile is caught"),
        "{}",
        r.stdout
    );
    assert!(
        !p.path("snapshots/simulator/outpatient/clinic_letter.snap.new")
            .exists(),
        "the matrix writes no snapshots"
    );
    // A scenario that no longer expects the death notification loses detection of one profile.
    let f = "scenarios/death/in_hospital.yaml";
    let text = p.read(f);
    let expect = "  - letter: death_notification\n    patient: carol\n    within: 24h\n";
    assert!(text.contains(expect));
    p.write(
        f,
        &text.replace(
            expect,
            "  - letter: death_notification\n    patient: carol\n    within: 24h\n    count: 0\n",
        ),
    );
    let r = p.run(&["sim", "matrix"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("baseline is NOT clean"), "{}", r.stdout);
}

fn json(p: &Project, rel: &str) -> serde_json::Value {
    serde_json::from_str(&p.read(rel)).unwrap()
}

/// Issue 5: shards merged into the same verdict as one unsharded run.
#[test]
fn three_shards_merged_give_the_verdict_and_figures_of_one_unsharded_run() {
    let p = Project::copy();
    let common = ["--check", "--sim-profile", "op-letters-silently-dropped"];
    let whole = p.run(&[&["run"][..], &common, &["--report-json", "whole.json"]].concat());
    assert_eq!(whole.code, 1, "{}", whole.stdout);
    let mut total = 0;
    for k in 1..=3 {
        let shard = format!("{k}/3");
        let out = format!("shard-{k}.json");
        let r = p.run(
            &[
                &["run"][..],
                &common,
                &["--shard", &shard, "--report-json", &out],
            ]
            .concat(),
        );
        assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
        let n = json(&p, &out)["scenarios"].as_array().unwrap().len();
        assert!(n > 0, "shard {shard} is empty");
        total += n;
    }
    assert_eq!(
        total,
        json(&p, "whole.json")["scenarios"]
            .as_array()
            .unwrap()
            .len(),
        "every scenario in exactly one shard"
    );
    let merged = p.run(&[
        "report",
        "merge",
        "shard-1.json",
        "shard-2.json",
        "shard-3.json",
        "--report-json",
        "merged.json",
        "--report-html",
        "merged.html",
    ]);
    assert_eq!(
        merged.code, whole.code,
        "{}{}",
        merged.stdout, merged.stderr
    );
    let (a, b) = (json(&p, "whole.json"), json(&p, "merged.json"));
    for field in ["decision", "reason", "counts", "by_kind", "reconciliation"] {
        assert_eq!(a[field], b[field], "{field}");
    }
    let verdicts = |v: &serde_json::Value| -> Vec<(String, String, usize)> {
        v["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].to_string(),
                    s["verdict"].to_string(),
                    s["findings"].as_array().unwrap().len(),
                )
            })
            .collect()
    };
    assert_eq!(verdicts(&a), verdicts(&b));
    assert_eq!(b["shards"], serde_json::json!(["1/3", "2/3", "3/3"]));
    assert!(p.read("merged.html").contains("data-decision=\"NO-GO\""));
}

#[test]
fn merging_reports_that_are_not_json_reports_is_bad_input() {
    let p = Project::copy();
    p.write("not-a-report.json", "{\"hello\": 1}\n");
    let r = p.run(&["report", "merge", "not-a-report.json"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("not a lettergate JSON report"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_scenario_can_raise_or_lower_the_severity_of_a_kind_of_finding() {
    let p = Project::copy();
    let snap = "snapshots/simulator/inpatient/discharge_summary.snap";
    p.write(
        snap,
        &p.read(snap).replace(
            "section Procedures: None",
            "section Procedures: Bronchoscopy",
        ),
    );
    let r = p.run(&[
        "run",
        "--check",
        "scenarios/inpatient/discharge_summary.yaml",
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("\nREVIEW: 1 change needs review"),
        "{}",
        r.stdout
    );
    let f = "scenarios/inpatient/discharge_summary.yaml";
    p.write(
        f,
        &format!("{}severity:\n  content_changed: blocker\n", p.read(f)),
    );
    let r = p.run(&["run", "--check", f]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("BLOCKER (1)") && r.stdout.contains("\nNO-GO: 1 blocker finding"),
        "{}",
        r.stdout
    );

    let q = Project::copy();
    let r = q.run(&["run", "--check", "--sim-profile", "discharge-after-48h", f]);
    assert!(r.stdout.contains("MAJOR (1)"), "{}", r.stdout);
    q.write(f, &format!("{}severity:\n  late: review\n", q.read(f)));
    let r = q.run(&["run", "--check", "--sim-profile", "discharge-after-48h", f]);
    assert!(
        r.stdout.contains("REVIEW (2)") && r.stdout.contains("\nREVIEW: 2 changes need review"),
        "{}",
        r.stdout
    );
    q.write(f, &format!("{}  lat: review\n", q.read(f)));
    let r = q.run(&["validate", f]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("did you mean `late`?"), "{}", r.stderr);
}
