//! What a run says of one scenario: its [`Outcome`] (a [`Verdict`], the [`ScopedFinding`]s,
//! the snapshot's status, one [`LetterLine`] per captured letter), which reports read.

use crate::capture::CapturedLetter;
use crate::expect::{Finding, Scope, Severity};
use crate::protocol::clock::Timestamp;
use crate::protocol::letter::Transport;
use crate::scenario::Scenario;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every letter as expected and the snapshot matched.
    Pass,
    /// The system under test did something wrong: see the findings.
    Fail,
    /// The harness could not drive the target or capture; nothing is known.
    Error,
}

/// What happened to the scenario's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    Matched,
    Changed,
    New,
    Accepted,
    /// Not compared, because the run failed before it could be.
    NotCompared,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario_id: String,
    pub name: String,
    pub path: PathBuf,
    pub verdict: Verdict,
    /// What the system under test did wrong, each with its check and severity.
    pub findings: Vec<ScopedFinding>,
    /// One line per captured message, for reports.
    pub captured: Vec<LetterLine>,
    /// The letters of the accepted snapshot, when there is one: the baseline.
    pub baseline: Option<Vec<LetterLine>>,
    /// Why the harness could not do its job, for [`Verdict::Error`].
    pub error: Option<String>,
    pub letters: usize,
    pub snapshot: SnapshotStatus,
    /// Where the pending `.snap.new` was written, if one was.
    pub pending_snapshot: Option<PathBuf>,
    /// The folder holding this scenario's captured messages.
    pub capture_dir: PathBuf,
    pub elapsed_ms: u64,
    /// For a target run, the clinical time its events were told with, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

/// A captured letter in a few words, for reports and for comparing with the baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LetterLine {
    pub seq: u32,
    /// `clinic_letter`, ..., or `unrecognised`.
    pub kind: String,
    /// The scenario's key for the patient, or `unknown patient`.
    pub patient: String,
    /// The recipient practice's ODS code, `the patient`, or `unknown recipient`.
    pub recipient: String,
    pub transport: Option<Transport>,
    pub route: String,
    pub workflow: Option<String>,
    pub received_at: Option<Timestamp>,
    pub status: u16,
    pub acks: Vec<u32>,
    /// How many letters this line stands for: 1, or a row of an aggregate (volume) snapshot,
    /// which counts letters per kind, recipient and day instead of listing them.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

impl LetterLine {
    pub(crate) fn of(s: &Scenario, l: &CapturedLetter) -> LetterLine {
        let facts = l.facts.as_ref().ok();
        let recipient = crate::capture::route::recipient_label(s, l);
        LetterLine {
            seq: l.seq,
            kind: facts
                .and_then(|f| f.kind)
                .map_or("unrecognised".into(), |k| k.name().to_string()),
            patient: facts
                .and_then(|f| f.nhs_number)
                .and_then(|n| s.patient_by_nhs(&n))
                .map_or("unknown patient".into(), |p| p.key.clone()),
            recipient,
            transport: Some(l.transport),
            route: l.route.clone(),
            workflow: l.workflow_id.clone(),
            received_at: Some(l.received_at),
            status: l.status,
            acks: l.acks.iter().map(|a| a.code.code()).collect(),
            count: 1,
        }
    }

    /// The letters of a snapshot body, from their `letter N: kind for patient to recipient`
    /// lines, or, in an aggregate (volume) snapshot, from its table's rows, each counting the
    /// letters of one kind, recipient and day.
    pub fn from_snapshot(body: &str) -> Vec<LetterLine> {
        let aggregate = body.lines().any(|l| {
            l.split_whitespace()
                .eq(["kind", "recipient", "day", "letters"])
        });
        if aggregate {
            return body.lines().filter_map(Self::from_aggregate_row).collect();
        }
        body.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("letter ")?;
                let (seq, rest) = rest.split_once(": ")?;
                let (kind, rest) = rest.split_once(" for ")?;
                let (patient, recipient) = rest.split_once(" to ")?;
                Some(LetterLine {
                    seq: seq.parse().ok()?,
                    kind: kind.into(),
                    patient: patient.into(),
                    recipient: recipient.into(),
                    transport: None,
                    route: String::new(),
                    workflow: None,
                    received_at: None,
                    status: 0,
                    acks: vec![],
                    count: 1,
                })
            })
            .collect()
    }

    /// `clinic_letter   A81001   2025-01-06   665`: a kind, a recipient (which may have
    /// spaces: `the patient`), a day (or `unknown day`) and how many letters.
    fn from_aggregate_row(line: &str) -> Option<LetterLine> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (count, rest) = words.split_last()?;
        let count: u32 = count.parse().ok()?;
        let day_words = if rest.ends_with(&["unknown", "day"]) {
            2
        } else {
            1
        };
        let recipient = rest.get(1..rest.len().checked_sub(day_words)?)?;
        let day = rest[rest.len() - day_words];
        let is_day = day_words == 2 || (day.len() == 10 && day.as_bytes()[4] == b'-');
        if recipient.is_empty() || !is_day {
            return None;
        }
        Some(LetterLine {
            seq: 0,
            kind: rest[0].into(),
            patient: String::new(),
            recipient: recipient.join(" "),
            transport: None,
            route: String::new(),
            workflow: None,
            received_at: None,
            status: 0,
            acks: vec![],
            count,
        })
    }
}

/// A finding with the check it belongs to and its severity in its scenario.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScopedFinding {
    pub finding: Finding,
    pub scope: Scope,
    pub severity: Severity,
    /// The snapshot's diff, on a missing letter that the snapshot shows as no longer sent:
    /// one finding with its evidence, instead of a second "content changed" finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_diff: Option<String>,
}

/// A scoped finding reads as its finding (`f.kind()`, `f.describe(..)`), so code that only
/// needs what was found does not unpack it.
impl std::ops::Deref for ScopedFinding {
    type Target = Finding;

    fn deref(&self) -> &Finding {
        &self.finding
    }
}

impl Outcome {
    /// The outcome of a scenario the harness could not run: why, and nothing known.
    pub fn errored(s: &Scenario, capture_dir: PathBuf, error: String, elapsed_ms: u64) -> Outcome {
        Outcome {
            scenario_id: s.id.clone(),
            name: s.name.clone(),
            path: s.path.clone(),
            verdict: Verdict::Error,
            findings: Vec::new(),
            captured: Vec::new(),
            baseline: None,
            error: Some(error),
            letters: 0,
            snapshot: SnapshotStatus::NotCompared,
            pending_snapshot: None,
            capture_dir,
            elapsed_ms,
            clock: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LetterLine;

    #[test]
    fn an_aggregate_snapshot_counts_its_letters_per_kind_and_recipient() {
        let body = "scenario: a week\nletters: 1318\nrefused: 0\nunreadable: 0\ncontent digest: efeddbbf\n\n\
            kind                   recipient      day          letters\n\
            clinic_letter          A81001         2025-01-06       665\n\
            clinic_letter          A81001         2025-01-07       651\n\
            patient_copy           the patient    2025-01-06         1\n\
            unrecognised           unknown recipient unknown day       1\n";
        let lines: Vec<(String, String, u32)> = LetterLine::from_snapshot(body)
            .into_iter()
            .map(|l| (l.kind, l.recipient, l.count))
            .collect();
        let row = |k: &str, r: &str, n| (k.to_string(), r.to_string(), n);
        assert_eq!(
            lines,
            [
                row("clinic_letter", "A81001", 665),
                row("clinic_letter", "A81001", 651),
                row("patient_copy", "the patient", 1),
                row("unrecognised", "unknown recipient", 1),
            ]
        );
    }

    #[test]
    fn a_letter_by_letter_snapshot_counts_each_letter_once() {
        let body = "scenario: s\nletters: 1\n\nletter 1: clinic_letter for alice to A81001\n  acks: 20013, 30001\n";
        let lines = LetterLine::from_snapshot(body);
        assert_eq!(lines.len(), 1);
        assert_eq!((lines[0].seq, lines[0].count), (1, 1));
    }
}
