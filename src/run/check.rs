//! The checker: one scenario's captured letters against its expectations and its accepted
//! snapshot, into an [`Outcome`]. Every kind of run (the simulator, a target, a collect of a
//! two-phase run) ends here, so a scenario is judged the same way whatever drove it.

use super::outcome::{LetterLine, Outcome, ScopedFinding, SnapshotStatus, Verdict};
use super::RunConfig;
use crate::capture::CapturedLetter;
use crate::expect::{self, Finding, Scope};
use crate::scenario::Scenario;
use crate::snapshot::{self, Comparison, SnapshotMode, SnapshotStore};
use std::path::PathBuf;

/// Checks expectations and the snapshot; writes `.snap.new` or `.snap` as the mode says.
/// `before` are findings about the scenario made before it (a target run's letters that could
/// not be matched to it), which also keep it from becoming a baseline.
pub fn check(
    s: &Scenario,
    config: &RunConfig,
    letters: &[CapturedLetter],
    before: Vec<Finding>,
) -> Outcome {
    let ordered;
    let letters = if s.real_time {
        ordered = in_scenario_order(s, letters);
        &ordered[..]
    } else {
        letters
    };
    let replays = config.seen.check_and_record(&s.id, letters);
    let mut found: Vec<(Scope, Finding)> = expect::check_scoped_with(s, letters, &replays);
    found.extend(before.into_iter().map(|f| (Scope::Scenario, f)));
    let body = snapshot::render(s, letters);
    // A sender's known non-conformance is part of its accepted snapshot (issue 11): only a
    // rule the baseline does not record for the letter is a finding.
    if let Ok(Some(accepted)) = config.store.accepted_body(&s.id) {
        found.retain(|(_, f)| !baselined(f, &accepted));
    }
    // Only a clean scenario may become the accepted baseline; non-conformant letters may,
    // since the snapshot records the rules they break.
    let clean = found
        .iter()
        .all(|(_, f)| matches!(f, Finding::NonConformant { .. }));
    let snap = compare(s, &config.store, config.mode, &body, clean);
    let (snap_finding, attached) = fold_no_longer_sent(&found, snap.finding);
    found.extend(snap_finding.map(|f| (Scope::Snapshot, f)));
    let verdict = match (&snap.error, found.is_empty()) {
        (Some(_), _) => Verdict::Error,
        (None, true) => Verdict::Pass,
        (None, false) => Verdict::Fail,
    };
    Outcome {
        scenario_id: s.id.clone(),
        name: s.name.clone(),
        path: s.path.clone(),
        verdict,
        findings: found
            .into_iter()
            .enumerate()
            .map(|(i, (scope, finding))| ScopedFinding {
                severity: s.severity_of(finding.kind()),
                finding,
                scope,
                snapshot_diff: attached
                    .as_ref()
                    .filter(|(at, _)| *at == i)
                    .map(|(_, diff)| diff.clone()),
            })
            .collect(),
        captured: letters.iter().map(|l| LetterLine::of(s, l)).collect(),
        baseline: snap.baseline,
        error: snap.error,
        letters: letters.len(),
        snapshot: snap.status,
        pending_snapshot: snap.pending,
        capture_dir: config.work_dir.join(&s.id),
        elapsed_ms: 0,
        clock: None,
    }
}

/// A target run's letters in the order of the scenario, numbered from 1 in it: by the event
/// each reports on (the patient's latest event of the kind that triggers it, at or before the
/// letter came), then kind, patient and route, then arrival. Why: a real EHR sends letters
/// due together in any order, and several at once; numbered by arrival, two healthy runs gave
/// snapshots that differed only in which of two practices' letters came first. The
/// simulator's order is its virtual clock's, and stays.
fn in_scenario_order(s: &Scenario, letters: &[CapturedLetter]) -> Vec<CapturedLetter> {
    let key = |l: &CapturedLetter| {
        let facts = l.facts.as_ref().ok();
        let kind = facts.and_then(|f| f.kind);
        let patient = facts
            .and_then(|f| f.nhs_number)
            .and_then(|n| s.patient_by_nhs(&n));
        let event = match (kind, patient) {
            (Some(k), Some(p)) => s
                .timeline
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.patient == p.key && e.kind == k.trigger() && e.at <= l.received_at
                })
                .map(|(i, _)| i)
                .next_back(),
            _ => None,
        };
        (
            event.map_or(usize::MAX, |i| i),
            kind.map(|k| k.name()),
            patient.map(|p| p.key.clone()),
            l.route.clone(),
            l.seq,
        )
    };
    let mut ordered: Vec<CapturedLetter> = letters.to_vec();
    ordered.sort_by_cached_key(key);
    for (i, l) in ordered.iter_mut().enumerate() {
        l.seq = i as u32 + 1;
    }
    ordered
}

/// A letter that is missing is one finding, not two: the snapshot's "(no longer sent)" entry
/// for a letter the expectations already found missing is dropped from its content-changed
/// finding. When nothing else changed, that finding goes, and its diff is returned to be
/// attached to the first missing letter (by its index in `found`); when something else
/// changed too, the finding stays with the rest and keeps the diff.
fn fold_no_longer_sent(
    found: &[(Scope, Finding)],
    snap: Option<Finding>,
) -> (Option<Finding>, Option<(usize, String)>) {
    let Some(Finding::ContentChanged { letters, diff }) = snap else {
        return (snap, None);
    };
    // `letter 2: clinic_letter for carol to A81001 (no longer sent)`
    let missing_one = |entry: &str| {
        found.iter().position(|(_, f)| match f {
            Finding::MissingLetter { kind, patient, .. } => {
                entry.ends_with(" (no longer sent)")
                    && entry.contains(&format!(": {} for {} to ", kind.name(), patient.key))
            }
            _ => false,
        })
    };
    let first = letters.iter().find_map(|l| missing_one(l));
    let rest: Vec<String> = letters
        .into_iter()
        .filter(|l| missing_one(l).is_none())
        .collect();
    match first {
        Some(at) if rest.is_empty() => (None, Some((at, diff))),
        _ => (
            Some(Finding::ContentChanged {
                letters: rest,
                diff,
            }),
            None,
        ),
    }
}

/// A non-conformant letter whose rules the accepted snapshot records for it.
fn baselined(f: &Finding, accepted: &str) -> bool {
    match f {
        Finding::NonConformant { seq, rules, .. } => {
            snapshot::render::records_nonconformance(accepted, *seq, rules)
        }
        _ => false,
    }
}

/// What comparing with the accepted snapshot gave.
struct Compared {
    status: SnapshotStatus,
    /// The difference, or that there is no baseline, unless it was accepted.
    finding: Option<Finding>,
    /// The letters of the accepted snapshot, when there is one.
    baseline: Option<Vec<LetterLine>>,
    pending: Option<PathBuf>,
    /// A snapshot that could not be read or written.
    error: Option<String>,
}

/// Compares `body` with the accepted snapshot of `s`, and writes what `mode` says: nothing
/// (check), a pending `.snap.new` (new), or the accepted `.snap` when `clean` (accept).
fn compare(
    s: &Scenario,
    store: &SnapshotStore,
    mode: SnapshotMode,
    body: &str,
    clean: bool,
) -> Compared {
    let fail = |e: std::io::Error| Some(format!("could not write the snapshot: {e}"));
    let mut c = Compared {
        status: SnapshotStatus::NotCompared,
        finding: None,
        baseline: None,
        pending: None,
        error: None,
    };
    // Read the accepted snapshot once: for the comparison and for the baseline letters.
    let accepted = match store.accepted_body(&s.id) {
        Ok(a) => a,
        Err(e) => {
            c.error = fail(e);
            return c;
        }
    };
    c.baseline = accepted.as_deref().map(LetterLine::from_snapshot);
    let (status, finding) = match snapshot::store::compare_bodies(accepted.as_deref(), body) {
        Comparison::Matches => {
            if mode != SnapshotMode::Check {
                c.error = store.clear_pending(&s.id).err().and_then(fail);
            }
            c.status = SnapshotStatus::Matched;
            return c;
        }
        Comparison::Changed { diff, letters } => (
            SnapshotStatus::Changed,
            Finding::ContentChanged { letters, diff },
        ),
        _ => (
            SnapshotStatus::New,
            Finding::NewSnapshot {
                path: store.path(&s.id).to_string_lossy().into_owned(),
                written: mode != SnapshotMode::Check,
            },
        ),
    };
    c.status = status;
    if mode == SnapshotMode::Accept && clean {
        match store.write_accepted(&s.id, &s.path, &s.name, body) {
            Ok(_) => c.status = SnapshotStatus::Accepted,
            Err(e) => c.error = fail(e),
        }
        return c;
    }
    if mode != SnapshotMode::Check {
        match store.write_pending(&s.id, &s.path, &s.name, body) {
            Ok(p) => c.pending = Some(p),
            Err(e) => c.error = fail(e),
        }
    }
    c.finding = Some(finding);
    c
}

#[cfg(test)]
mod tests {
    use super::fold_no_longer_sent;
    use crate::expect::{Finding, PatientLabel, Scope};
    use crate::protocol::letter::LetterKind;

    fn missing(patient: &str) -> (Scope, Finding) {
        let finding = Finding::MissingLetter {
            kind: LetterKind::ClinicLetter,
            patient: PatientLabel {
                key: patient.into(),
                nhs_number: None,
            },
            to: "A81001".into(),
            expected: 1,
            found: 0,
        };
        (Scope::Scenario, finding)
    }

    fn changed(letters: &[&str]) -> Option<Finding> {
        Some(Finding::ContentChanged {
            letters: letters.iter().map(|l| l.to_string()).collect(),
            diff: "-letter 1".into(),
        })
    }

    #[test]
    fn a_missing_letter_takes_the_snapshot_diff_instead_of_a_second_finding() {
        let found = [missing("alice")];
        let snap = changed(&["letter 1: clinic_letter for alice to A81001 (no longer sent)"]);
        let (finding, attached) = fold_no_longer_sent(&found, snap);
        assert_eq!(finding, None);
        assert_eq!(attached, Some((0, "-letter 1".to_string())));
    }

    #[test]
    fn a_snapshot_that_changed_in_more_keeps_its_finding_for_the_rest() {
        let found = [missing("alice")];
        let snap = changed(&[
            "letter 1: clinic_letter for alice to A81001 (no longer sent)",
            "letter 1: patient_copy for alice to the patient (changed: title)",
        ]);
        let (finding, attached) = fold_no_longer_sent(&found, snap);
        assert_eq!(
            finding,
            changed(&["letter 1: patient_copy for alice to the patient (changed: title)"])
        );
        assert_eq!(attached, None);
    }

    #[test]
    fn a_letter_no_longer_sent_that_no_expectation_missed_stays_a_content_change() {
        let found = [missing("bob")];
        let snap = changed(&["letter 1: clinic_letter for alice to A81001 (no longer sent)"]);
        let (finding, attached) = fold_no_longer_sent(&found, snap.clone());
        assert_eq!((finding, attached), (snap, None));
    }
}
