//! Detection: a simulator that stops writing one kind of letter makes exactly the scenarios
//! that expect that kind fail with "missing letter", and the same scenarios pass with the rule
//! in place.

use crate::support::assert_snapshot;
use crate::support::fixtures::{run_on_simulator, shipped};
use crate::support::root;
use lettergate::protocol::letter::LetterKind;
use lettergate::Finding;
use lettergate::Scenario;
use lettergate::SimConfig;
use lettergate::{Outcome, Verdict};
use std::sync::Arc;

async fn run(sim: SimConfig, scenarios: &[Arc<Scenario>]) -> Vec<Outcome> {
    run_on_simulator(sim, scenarios).await.1
}

fn expects(s: &Scenario, kind: LetterKind) -> bool {
    s.expect.iter().any(|x| x.letter == kind && x.count > 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_rule_for_a_letter_kind_shows_its_scenarios_as_missing_letter() {
    let scenarios = shipped();
    let baseline = run(SimConfig::baseline(), &scenarios).await;
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
    // Every kind the simulator sends (the mental health discharge is expected only of targets).
    for kind in LetterKind::SIMULATED {
        let affected: Vec<&Arc<Scenario>> = scenarios.iter().filter(|s| expects(s, kind)).collect();
        assert!(!affected.is_empty(), "no shipped scenario expects a {kind}");
        let outcomes = run(SimConfig::baseline().without_letter(kind), &scenarios).await;
        for (s, o) in scenarios.iter().zip(&outcomes) {
            let missing = o.findings.iter().any(
                |f| matches!(&f.finding, Finding::MissingLetter { kind: k, found: 0, .. } if *k == kind),
            );
            if expects(s, kind) {
                assert_eq!(o.verdict, Verdict::Fail, "{} without {kind}", s.id);
                assert!(
                    missing,
                    "{} without {kind} should report a missing {kind}: {:?}",
                    s.id, o.findings
                );
                let text: Vec<String> = o
                    .findings
                    .iter()
                    .map(|f| f.describe(lettergate::protocol::ids::Identifiers::Masked))
                    .collect();
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

/// Issue 3: the suite run 50 times on `baseline` gives identical verdicts and snapshots. Every
/// run must match the accepted snapshots exactly, so every run's snapshots equal each other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_gives_identical_verdicts_and_snapshots_fifty_times() {
    let scenarios = shipped();
    let first = run(SimConfig::baseline(), &scenarios).await;
    for o in &first {
        assert_eq!(
            o.snapshot,
            lettergate::SnapshotStatus::Matched,
            "{}",
            o.scenario_id
        );
    }
    for _ in 1..50 {
        let again = run(SimConfig::baseline(), &scenarios).await;
        for (a, b) in first.iter().zip(&again) {
            assert_eq!(
                (a.verdict, &a.findings, &a.snapshot, a.letters),
                (b.verdict, &b.findings, &b.snapshot, b.letters),
                "{}",
                a.scenario_id
            );
        }
    }
}

/// Issue 3: the detection matrix, kept as a snapshot so a loss of detection shows in review.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_profile_is_caught_and_baseline_is_clean_in_the_detection_matrix() {
    let work = tempfile::tempdir().unwrap();
    let m = lettergate::build_matrix(shipped(), &root().join("snapshots"), work.path(), 8).await;
    assert!(m.baseline_clean());
    assert_eq!(m.uncaught(), Vec::<&str>::new());
    assert_eq!(m.rows.len(), lettergate::PROFILES.len());
    let mut out = Vec::new();
    m.render(&mut out, lettergate::protocol::ids::Identifiers::Masked)
        .unwrap();
    assert_snapshot!("detection_matrix", String::from_utf8(out).unwrap());
}

fn scenario(id: &str) -> Arc<Scenario> {
    shipped()
        .into_iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no scenario {id}"))
}

async fn run_profile(profile: &str, s: &Arc<Scenario>) -> Outcome {
    run(SimConfig::named(profile).unwrap(), std::slice::from_ref(s))
        .await
        .remove(0)
}

/// One test per fault profile: the scenario passes on `baseline`, and under the profile it
/// fails with a finding that names the failure.
macro_rules! caught {
    ($test:ident, $profile:literal, $scenario:literal, $finding:pat $(if $guard:expr)?) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let s = scenario($scenario);
            let clean = run_profile("baseline", &s).await;
            assert_eq!(clean.verdict, Verdict::Pass, "{} on baseline: {:?}", $scenario, clean.findings);
            let o = run_profile($profile, &s).await;
            let said: Vec<String> = o.findings.iter().map(|f| f.describe(lettergate::protocol::ids::Identifiers::Masked)).collect();
            assert_eq!(o.verdict, Verdict::Fail, "{} under {}: {said:?}", $scenario, $profile);
            assert!(o.findings.iter().any(|f| matches!(&f.finding, $finding $(if $guard)?)), "{} under {}: {said:?}", $scenario, $profile);
        }
    };
}

use lettergate::protocol::clock::Span;
use lettergate::protocol::letter::Transport;

caught!(
    op_letters_silently_dropped_is_a_missing_clinic_letter,
    "op-letters-silently-dropped",
    "outpatient/clinic_letter",
    Finding::MissingLetter {
        kind: LetterKind::ClinicLetter,
        found: 0,
        ..
    }
);
caught!(
    named_gp_left_is_a_clinic_letter_on_paper_instead_of_mesh,
    "named-gp-left-not-sent",
    "outpatient/named_gp_left",
    Finding::WrongTransport {
        kind: LetterKind::ClinicLetter,
        got: Transport::Http,
        expected: Transport::Mesh,
        ..
    }
);
caught!(a_three_week_stall_is_late_by_about_three_weeks, "dispatch-stall-3-weeks", "inpatient/discharge_summary",
    Finding::Late { kind: LetterKind::DischargeSummary, late_by, .. } if *late_by >= Span::days(19));
caught!(a_stale_registration_sends_to_the_previous_practice, "stale-registered-practice", "routing/changed_practice",
    Finding::WrongRecipient { kind: LetterKind::ClinicLetter, got, .. } if got.starts_with("C83003"));
caught!(a_discharge_summary_on_the_outpatient_workflow_is_a_wrong_workflow, "wrong-workflow-discharge", "inpatient/discharge_summary",
    Finding::WrongWorkflow { kind: LetterKind::DischargeSummary, got, .. } if got == "TOC_FHIR_OP_ATTEN");
caught!(
    a_retried_send_is_a_duplicate,
    "duplicate-send-on-retry",
    "inpatient/discharge_summary",
    Finding::Duplicate {
        kind: LetterKind::DischargeSummary,
        found: 2,
        expected: 1,
        ..
    }
);
caught!(
    no_death_notification_is_a_missing_death_notification,
    "no-death-notification",
    "death/in_hospital",
    Finding::MissingLetter {
        kind: LetterKind::DeathNotification,
        found: 0,
        ..
    }
);
caught!(
    a_copy_posted_after_death_is_a_letter_to_a_deceased_patient,
    "letters-after-death",
    "death/in_hospital",
    Finding::LetterToDeceased {
        kind: LetterKind::PatientCopy,
        ..
    }
);
caught!(a_discharge_summary_after_48_hours_is_late_by_a_day, "discharge-after-48h", "inpatient/discharge_summary",
    Finding::Late { kind: LetterKind::DischargeSummary, late_by, .. } if *late_by == Span::days(1));
caught!(a_dropped_medications_section_is_a_content_change_naming_the_section, "medications-section-dropped", "inpatient/discharge_summary",
    Finding::ContentChanged { letters, .. } if letters.iter().any(|l| l.contains("section Medications")));
caught!(
    a_lost_second_signature_is_a_missing_clinic_letter,
    "stuck-awaiting-second-signer",
    "outpatient/second_signer",
    Finding::MissingLetter {
        kind: LetterKind::ClinicLetter,
        found: 0,
        ..
    }
);
caught!(an_uncollected_letter_is_reported_by_mesh, "uncollected-report", "routing/merged_practice",
    Finding::ReportReceived { code, .. } if code == "14");
caught!(
    partial_ed_sending_is_a_missing_emergency_discharge,
    "ed-letters-partial",
    "emergency/several_attendances",
    Finding::MissingLetter {
        kind: LetterKind::EmergencyDischarge,
        found: 0,
        ..
    }
);

// Issue 12: faults that break only on calendar edges.
caught!(
    a_weekend_discharge_is_missing_when_letters_go_on_working_days_only,
    "no-letters-at-weekends",
    "calendar/weekend_discharge",
    Finding::MissingLetter {
        kind: LetterKind::DischargeSummary,
        found: 0,
        ..
    }
);
caught!(a_friday_clinic_letter_dated_the_monday_it_was_sent_is_a_wrong_date_naming_both_days, "letters-dated-send-day", "calendar/friday_clinic_signed_monday",
    Finding::WrongDate { kind: LetterKind::ClinicLetter, expected, got, .. } if expected == "Fri 2025-03-07" && got == "Mon 2025-03-10");
caught!(
    a_discharge_due_in_the_hour_the_clocks_skip_is_missing,
    "dispatcher-skips-missing-hour",
    "calendar/clocks_forward_march",
    Finding::MissingLetter {
        kind: LetterKind::DischargeSummary,
        found: 0,
        ..
    }
);

/// Issue 12: each calendar fault is caught by exactly the calendar scenarios whose edge it
/// breaks on, and by none of the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_calendar_fault_is_caught_by_exactly_the_calendar_scenarios_of_its_edge() {
    let calendar: Vec<Arc<Scenario>> = shipped()
        .into_iter()
        .filter(|s| s.id.starts_with("calendar/"))
        .collect();
    for (profile, failing) in [
        // Events on a Saturday, a Sunday (both clock changes are on a Sunday) or a bank holiday.
        (
            "no-letters-at-weekends",
            &[
                "calendar/bank_holiday",
                "calendar/clocks_back_october",
                "calendar/clocks_forward_march",
                "calendar/weekend_discharge",
            ][..],
        ),
        // Sent on another day than the event: signed on Monday, or sent after midnight.
        (
            "letters-dated-send-day",
            &[
                "calendar/friday_clinic_signed_monday",
                "calendar/month_end",
                "calendar/year_end",
            ][..],
        ),
        (
            "dispatcher-skips-missing-hour",
            &["calendar/clocks_forward_march"][..],
        ),
    ] {
        let outcomes = run(SimConfig::named(profile).unwrap(), &calendar).await;
        let caught: Vec<&str> = outcomes
            .iter()
            .filter(|o| {
                o.findings.iter().any(|f| {
                    matches!(
                        f.finding,
                        Finding::MissingLetter { .. } | Finding::WrongDate { .. }
                    )
                })
            })
            .map(|o| o.scenario_id.as_str())
            .collect();
        assert_eq!(caught, failing, "{profile}");
    }
}

#[test]
fn every_fault_profile_has_a_test_above() {
    let source = include_str!("detection.rs");
    for p in lettergate::PROFILES.iter().skip(1) {
        assert!(
            source.contains(&format!("\"{}\"", p.name)),
            "profile {} has no caught! test",
            p.name
        );
    }
}
