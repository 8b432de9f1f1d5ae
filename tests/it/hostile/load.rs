//! Range checks at load (issue 13, point 5) and checks before anything is driven (point 6):
//! values that parse but cannot be run are exit 2 with the file, line and column, never a
//! panic, a spin or a wrong verdict later.

use crate::support::project::{Project, Ran};

const FILE: &str = "scenarios/hostile/range.yaml";

/// A scenario of alice's clinic letter with `timeline` and `expect` as given, checked with
/// `validate` and with `run` (which must not start).
fn load(extra_top: &str, timeline: &str, expect: &str) -> (Project, Ran) {
    let p = Project::copy();
    p.write(
        FILE,
        &format!(
            "name: a range check\ninclude: [../fixtures/common.yaml]\n{extra_top}timeline:\n{timeline}expect:\n{expect}"
        ),
    );
    let r = p.run(&["validate", FILE]);
    (p, r)
}

const ATTENDANCE: &str = "  - at: 2025-03-03T09:30:00Z\n    event: outpatient_attendance\n    patient: alice\n  - after: 1d\n    event: letter_signed\n    patient: alice\n";
const CLINIC_LETTER: &str = "  - letter: clinic_letter\n    patient: alice\n";

fn assert_bad_input_at(p: &Project, r: &Ran, line_col: &str, words: &[&str]) {
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("--> {FILE}:{line_col}")),
        "{}",
        r.stderr
    );
    for w in words {
        assert!(r.stderr.contains(w), "{w:?} in {}", r.stderr);
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // `run` refuses the same file before anything runs.
    let run = p.run(&["run", "--check", FILE]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(!p.path(".lettergate").exists(), "nothing ran");
}

/// Issue 13: years 0000 and 1969 validated and then gave wrong NO-GOs.
#[test]
fn a_time_before_1970_is_bad_input_at_its_line() {
    for year in ["0000", "1969"] {
        let timeline = ATTENDANCE.replace("2025-03-03", &format!("{year}-12-31"));
        let (p, r) = load("", &timeline, CLINIC_LETTER);
        assert_bad_input_at(
            &p,
            &r,
            "4:9",
            &["is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"],
        );
    }
    let (p, r) = load("start: 1969-01-01T00:00:00Z\n", ATTENDANCE, CLINIC_LETTER);
    assert_bad_input_at(&p, &r, "3:8", &["time `1969-01-01T00:00:00Z` is outside"]);
}

/// Issue 13: durations near `i64::MAX` validated and then gave "late by -106751991167298d".
#[test]
fn a_duration_longer_than_ten_years_is_bad_input_at_its_line() {
    let timeline = ATTENDANCE.replace("after: 1d", "after: 106751991167298d");
    let (p, r) = load("", &timeline, CLINIC_LETTER);
    assert_bad_input_at(
        &p,
        &r,
        "7:12",
        &["duration `106751991167298d` is longer than 3660d (ten years)"],
    );
    let expect = format!("{CLINIC_LETTER}    within: 106751991167298d\n");
    let (p, r) = load("", ATTENDANCE, &expect);
    assert_bad_input_at(&p, &r, "13:13", &["is longer than 3660d"]);
    let (p, r) = load("observe_for: 9999999d\n", ATTENDANCE, CLINIC_LETTER);
    assert_bad_input_at(&p, &r, "3:14", &["is longer than 3660d"]);
}

#[test]
fn a_timeline_past_the_year_9999_or_longer_than_ten_years_is_bad_input() {
    let timeline = ATTENDANCE.replace("2025-03-03", "9999-12-30");
    let (p, r) = load("", &timeline, CLINIC_LETTER);
    assert_bad_input_at(
        &p,
        &r,
        "3:1",
        &["letters would be observed until after 9999-12-31T23:59:59Z"],
    );
    let timeline = ATTENDANCE.replace("after: 1d", "after: 3000d").replace(
        "    patient: alice\n",
        "    patient: alice\n  - after: 3000d\n    event: admission\n    patient: bob\n",
    );
    let (p, r) = load("", &timeline, CLINIC_LETTER);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("a timeline spans at most 3660d"),
        "{}",
        r.stderr
    );
    drop(p);
}

/// Issue 13: `count: 4294967295` validated and then spun.
#[test]
fn a_count_above_the_cap_is_bad_input_at_its_expectation() {
    let expect = format!("{CLINIC_LETTER}    count: 4294967295\n");
    let (p, r) = load("", ATTENDANCE, &expect);
    assert_bad_input_at(&p, &r, "11:5", &["`count: 4294967295` is more than 1000"]);
}

fn population(patients: &str, days: &str, daily: &str) -> (Project, Ran) {
    let p = Project::copy();
    p.write(
        FILE,
        &format!(
            "name: a population\ninclude: [../fixtures/common.yaml]\nstart: 2025-01-06T00:00:00Z\npopulation:\n  seed: 1\n  patients: {patients}\n  practices: [riverside]\n  days: {days}\n  daily:\n{daily}"
        ),
    );
    let r = p.run(&["validate", FILE]);
    (p, r)
}

/// Issue 13: population counts near `u32::MAX` panicked (index out of bounds) or aborted
/// out of memory.
#[test]
fn population_counts_above_their_caps_are_bad_input_not_a_panic() {
    let (p, r) = population("1000", "366", "    death: 4294967295\n");
    assert_bad_input_at(
        &p,
        &r,
        "5:3",
        &["`daily: {death: 4294967295}` is more than 100000"],
    );
    let (p, r) = population("800000", "366", "    death: 11740\n");
    assert_bad_input_at(
        &p,
        &r,
        "5:3",
        &["4296840 deaths need at least 8593680 patients"],
    );
    let (p, r) = population("800000", "366", "    outpatient_attendance: 100000\n");
    assert_bad_input_at(
        &p,
        &r,
        "5:3",
        &["calls for 73200000 letters; at most 2000000"],
    );
    let (p, r) = population("4294967295", "7", "    discharge: 1\n");
    assert_bad_input_at(&p, &r, "5:3", &["`patients:` must be between 1 and 800000"]);
}

/// Issue 13: two practices with one ODS code validated.
#[test]
fn two_practices_with_one_ods_code_are_bad_input() {
    let (p, r) = load(
        "practices:\n  twin:\n    ods: A81001\n    name: Twin Surgery\n",
        ATTENDANCE,
        CLINIC_LETTER,
    );
    assert_bad_input_at(
        &p,
        &r,
        "4:3",
        &["practice `twin` has the same ODS code A81001 as practice `riverside`"],
    );
}

/// Issue 13: merge cycles validated.
#[test]
fn practices_merged_into_each_other_are_bad_input() {
    let (p, r) = load(
        "practices:\n  north:\n    ods: G87001\n    name: North\n    merged_into: south\n  south:\n    ods: G87002\n    name: South\n    merged_into: north\n",
        ATTENDANCE,
        CLINIC_LETTER,
    );
    assert_bad_input_at(
        &p,
        &r,
        "7:5",
        &["practice `north` is merged into itself: `north` -> `south` -> `north`"],
    );
    let (p, r) = load(
        "practices:\n  alone:\n    ods: G87001\n    name: Alone\n    merged_into: alone\n",
        ATTENDANCE,
        CLINIC_LETTER,
    );
    assert_bad_input_at(&p, &r, "7:5", &["practice `alone` is merged into itself"]);
}
