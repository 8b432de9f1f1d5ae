//! [`RunReport`]: the whole outcome of a run as data, stable and versioned (`schema`). Every
//! report format renders from it; the JSON report *is* it; shards merge by concatenating
//! their scenarios. The verdict, counts and reconciliation are derived from the scenarios, so
//! a merged report computes them afresh.
//!
//! Identifiers are masked here, by field, when the report is built: NHS numbers keep their
//! last three digits, names their initials, dates of birth nothing. Renderers never see more
//! than the report holds.

use super::merge::RunParameters;
use crate::expect::{Finding, FindingKind, Scope, Severity};
use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::ids::Identifiers;
use crate::protocol::letter::{EventKind, LetterKind, Transport};
use crate::run::{LetterLine, Outcome, Verdict};
use crate::scenario::{Recipient, Scenario, Shard};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The version of the report's shape. Change it when a field changes meaning or goes away.
pub const SCHEMA: &str = "lettergate.report/1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunReport {
    pub schema: String,
    pub lettergate_version: String,
    pub target: String,
    pub profile: String,
    /// `K/N` of each shard this report covers; empty for an unsharded run.
    pub shards: Vec<Shard>,
    /// What a sharded run was asked, the same in every shard of one run, so that
    /// `report merge` can refuse shards of different runs; absent for an unsharded run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<RunParameters>,
    pub identifiers_shown: bool,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ScenarioReport {
    pub id: String,
    pub name: String,
    pub path: String,
    pub tags: Vec<String>,
    pub verdict: Verdict,
    pub error: Option<String>,
    pub elapsed_ms: u64,
    pub findings: Vec<FindingReport>,
    pub expectations: Vec<ExpectationReport>,
    pub patients: Vec<PatientReport>,
    pub timeline: Vec<EventReport>,
    pub captured: Vec<LetterLine>,
    /// The letters of the accepted snapshot; `None` when there was none.
    pub baseline: Option<Vec<LetterLine>>,
    /// For a target run, the clinical time its events were told with (the target's
    /// `clock:`), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FindingReport {
    pub scope: Scope,
    pub severity: Severity,
    pub kind: FindingKind,
    /// The finding in words, identifiers masked unless shown.
    pub text: String,
    /// For a content change: the snapshot diff, identifiers masked unless shown.
    pub diff: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExpectationReport {
    pub index: usize,
    pub letter: LetterKind,
    pub patient: String,
    /// Who it must reach, in words: `A81001 Riverside Surgery` or `the patient`.
    pub to: String,
    /// The recipient as captured letters name it: an ODS code or `the patient`.
    pub recipient: String,
    pub transport: Transport,
    pub workflow: Option<String>,
    pub within: Span,
    pub of: EventKind,
    pub count: u32,
    /// The day (`YYYY-MM-DD`) of each event the deadline runs from.
    pub days: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PatientReport {
    pub key: String,
    pub nhs_number: String,
    pub name: String,
    pub born: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EventReport {
    pub at: Timestamp,
    /// When it happened clinically, as the EHR was told, where that is not `at` (a target's
    /// `clock: scenario`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clinical_at: Option<Timestamp>,
    pub event: EventKind,
    pub patient: String,
    /// `to B82002` for a change of GP, `second signer` for an attendance that needs one.
    pub detail: Option<String>,
}

/// The overall decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING-KEBAB-CASE")]
pub enum Decision {
    /// Every letter as expected.
    Go,
    /// Blocker or major findings.
    NoGo,
    /// Only changes that need a person's review.
    Review,
    /// The harness could not drive the target or capture for some scenario.
    Incomplete,
}

impl Decision {
    pub fn label(self) -> &'static str {
        match self {
            Decision::Go => "GO",
            Decision::NoGo => "NO-GO",
            Decision::Review => "REVIEW",
            Decision::Incomplete => "INCOMPLETE",
        }
    }

    /// The process exit code that goes with the decision.
    pub fn exit_code(self) -> i32 {
        match self {
            Decision::Go => 0,
            Decision::NoGo | Decision::Review => 1,
            Decision::Incomplete => 3,
        }
    }
}

/// Expected against captured letters for one kind, recipient and day.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconciliationRow {
    pub kind: String,
    pub recipient: String,
    pub day: String,
    pub expected: u32,
    pub captured: u32,
}

/// Per letter kind and recipient: expected, captured now, and in the accepted baseline.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KindCount {
    pub kind: String,
    pub recipient: String,
    pub expected: u32,
    pub captured: u32,
    pub baseline: u32,
}

/// Counts for the summary.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Counts {
    pub scenarios: usize,
    pub passed: usize,
    pub failed: usize,
    pub errors: usize,
    pub letters: usize,
    pub blocker: usize,
    pub major: usize,
    pub review: usize,
}

/// Masks a name to its initials: `Alice Example` -> `A**** E******`.
pub fn mask_name(name: &str) -> String {
    name.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map_or(String::new(), |f| format!("{f}{}", "*".repeat(c.count())))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks the value of every `nhs_number:` field in a snapshot diff.
pub fn mask_diff(diff: &str) -> String {
    diff.lines()
        .map(|line| match line.find("nhs_number: ") {
            Some(i) if line[..i].trim_start_matches(['+', '-', ' ']).is_empty() => {
                let value = &line[i + "nhs_number: ".len()..];
                let masked = crate::protocol::ids::NhsNumber::parse(value)
                    .map_or_else(|_| "*".repeat(value.len()), |n| n.masked());
                format!("{}nhs_number: {masked}", &line[..i])
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn day(t: Timestamp) -> String {
    t.rfc3339()[..10].to_string()
}

impl ScenarioReport {
    /// The report of one scenario and its outcome; identifiers masked unless `identifiers`.
    pub fn build(s: &Scenario, o: &Outcome, identifiers: Identifiers) -> ScenarioReport {
        ScenarioReport {
            id: s.id.clone(),
            name: s.name.clone(),
            path: s.path.to_string_lossy().replace('\\', "/"),
            tags: s.tags.clone(),
            verdict: o.verdict,
            error: o.error.clone(),
            elapsed_ms: o.elapsed_ms,
            findings: findings(o, identifiers),
            expectations: expectations(s),
            patients: patients(s, identifiers),
            timeline: timeline(s),
            captured: captured(o, identifiers),
            baseline: o.baseline.clone(),
            clock: o.clock.clone(),
        }
    }

    /// The worst severity among the findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).min()
    }

    /// The times of each patient's events of each kind, in order: built once per use, so
    /// finding the day of every letter stays linear.
    fn event_times(&self) -> HashMap<(&str, EventKind), Vec<Timestamp>> {
        let mut times: HashMap<(&str, EventKind), Vec<Timestamp>> = HashMap::new();
        for e in &self.timeline {
            times
                .entry((e.patient.as_str(), e.event))
                .or_default()
                .push(e.at);
        }
        times
    }

    /// The day of the clinical event a captured letter reports on: the patient's latest event
    /// of the kind that triggers the letter, at or before it arrived.
    fn letter_day(times: &HashMap<(&str, EventKind), Vec<Timestamp>>, l: &LetterLine) -> String {
        let trigger = LetterKind::ALL
            .iter()
            .find(|k| k.name() == l.kind)
            .map(|k| k.trigger());
        let at = trigger
            .and_then(|t| times.get(&(l.patient.as_str(), t)))
            .and_then(|ts| {
                ts.iter()
                    .rev()
                    .find(|at| l.received_at.is_none_or(|r| **at <= r))
            });
        at.map_or_else(|| "unknown day".into(), |t| day(*t))
    }
}

/// The outcome's findings in words, with their scope, severity and (masked) diff.
fn findings(o: &Outcome, identifiers: Identifiers) -> Vec<FindingReport> {
    o.findings
        .iter()
        .map(|f| FindingReport {
            scope: f.scope,
            severity: f.severity,
            kind: f.kind(),
            text: f.describe(identifiers),
            diff: match &f.finding {
                Finding::ContentChanged { diff, .. } => Some(diff),
                _ => f.snapshot_diff.as_ref(),
            }
            .map(|diff| match identifiers.are_shown() {
                true => diff.clone(),
                false => mask_diff(diff),
            }),
        })
        .collect()
}

/// Each expectation with the practice it names resolved and the days of its events.
fn expectations(s: &Scenario) -> Vec<ExpectationReport> {
    s.expect
        .iter()
        .enumerate()
        .map(|(index, x)| {
            let practice = match &x.to {
                Recipient::RegisteredPractice => s.recipient_practice_at(&x.patient, s.end()),
                Recipient::Practice(k) => s.practices.get(k),
                Recipient::Patient => None,
            };
            ExpectationReport {
                index,
                letter: x.letter,
                patient: x.patient.clone(),
                to: practice.map_or("the patient".into(), |p| format!("{} {}", p.ods, p.name)),
                recipient: practice.map_or("the patient".into(), |p| p.ods.to_string()),
                transport: x.transport,
                workflow: x.workflow.clone(),
                within: x.within,
                of: x.of,
                count: x.count,
                days: s
                    .events_of(&x.patient, x.of)
                    .iter()
                    .map(|e| day(e.at))
                    .collect(),
            }
        })
        .collect()
}

/// The patients the timeline names, masked by field unless `identifiers`.
fn patients(s: &Scenario, identifiers: Identifiers) -> Vec<PatientReport> {
    let in_timeline: std::collections::HashSet<&str> =
        s.timeline.iter().map(|e| e.patient.as_str()).collect();
    s.patients
        .values()
        .filter(|p| in_timeline.contains(p.key.as_str()))
        .map(|p| PatientReport {
            key: p.key.clone(),
            nhs_number: if identifiers.are_shown() {
                p.nhs_number.to_string()
            } else {
                p.nhs_number.masked()
            },
            name: if identifiers.are_shown() {
                p.name.clone()
            } else {
                mask_name(&p.name)
            },
            born: if identifiers.are_shown() {
                p.born.clone()
            } else {
                "****-**-**".into()
            },
        })
        .collect()
}

/// The scenario's events, each with the practice it moves to or its second signer.
fn timeline(s: &Scenario) -> Vec<EventReport> {
    s.timeline
        .iter()
        .map(|e| EventReport {
            at: e.at,
            clinical_at: (e.clinical_at != e.at).then_some(e.clinical_at),
            event: e.kind,
            patient: e.patient.clone(),
            detail: match (&e.to_practice, e.second_signer) {
                (Some(to), _) => s
                    .practices
                    .get(to)
                    .map(|p| format!("to {} {}", p.ods, p.name)),
                (None, true) => Some("needs a second signer".into()),
                _ => None,
            },
        })
        .collect()
}

/// The letters captured; a route may name a file after the patient, so it is masked too.
fn captured(o: &Outcome, identifiers: Identifiers) -> Vec<LetterLine> {
    o.captured
        .iter()
        .map(|l| match identifiers {
            Identifiers::Shown => l.clone(),
            Identifiers::Masked => LetterLine {
                route: crate::protocol::ids::mask_in_text(&l.route),
                ..l.clone()
            },
        })
        .collect()
}

impl RunReport {
    pub fn new(target: &str, profile: &str, identifiers: Identifiers) -> RunReport {
        RunReport {
            schema: SCHEMA.into(),
            lettergate_version: env!("CARGO_PKG_VERSION").into(),
            target: target.into(),
            profile: profile.into(),
            shards: Vec::new(),
            parameters: None,
            identifiers_shown: identifiers.are_shown(),
            scenarios: Vec::new(),
        }
    }

    /// Builds the report of a run from its scenarios and outcomes (matched by id).
    pub fn build<S: std::borrow::Borrow<Scenario>>(
        mut self,
        scenarios: &[S],
        outcomes: &[Outcome],
    ) -> RunReport {
        for o in outcomes {
            let found = scenarios
                .iter()
                .map(|s| s.borrow())
                .find(|s| s.id == o.scenario_id);
            if let Some(s) = found {
                self.scenarios.push(ScenarioReport::build(
                    s,
                    o,
                    Identifiers::shown_if(self.identifiers_shown),
                ));
            }
        }
        self
    }

    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            scenarios: self.scenarios.len(),
            ..Counts::default()
        };
        for s in &self.scenarios {
            match s.verdict {
                Verdict::Pass => c.passed += 1,
                Verdict::Fail => c.failed += 1,
                Verdict::Error => c.errors += 1,
            }
            c.letters += s.captured.len();
            for f in &s.findings {
                match f.severity {
                    Severity::Blocker => c.blocker += 1,
                    Severity::Major => c.major += 1,
                    Severity::Review => c.review += 1,
                }
            }
        }
        c
    }

    pub fn decision(&self) -> Decision {
        let c = self.counts();
        if c.errors > 0 {
            Decision::Incomplete
        } else if c.blocker + c.major > 0 {
            Decision::NoGo
        } else if c.review > 0 {
            Decision::Review
        } else {
            Decision::Go
        }
    }

    /// Why the decision is what it is, in one sentence.
    pub fn reason(&self) -> String {
        let c = self.counts();
        match self.decision() {
            Decision::Go => format!(
                "every expected letter of {} went where it should, on time, exactly once",
                if c.scenarios == 1 { "1 scenario".to_string() } else { format!("{} scenarios", c.scenarios) }
            ),
            Decision::Incomplete => format!(
                "the harness could not drive the target or capture for {} of {} scenarios; nothing is known about them",
                c.errors, c.scenarios
            ),
            Decision::NoGo => {
                let missing: u32 = self.by_kind().iter().map(|k| k.expected.saturating_sub(k.captured)).sum();
                let counts: Vec<String> = [(c.blocker, "blocker"), (c.major, "major")]
                    .iter()
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, what)| format!("{n} {what}"))
                    .collect();
                format!(
                    "{} finding{} in {} of {} scenarios{}",
                    counts.join(" and "),
                    if c.blocker + c.major == 1 { "" } else { "s" },
                    c.failed,
                    c.scenarios,
                    if missing > 0 { format!("; {missing} expected letters not captured") } else { String::new() }
                )
            }
            Decision::Review => format!(
                "{} need{} review; no letter is missing, misrouted or late",
                if c.review == 1 { "1 change".to_string() } else { format!("{} changes", c.review) },
                if c.review == 1 { "s" } else { "" }
            ),
        }
    }

    /// Letters expected against captured, per kind, recipient and day.
    pub fn reconciliation(&self) -> Vec<ReconciliationRow> {
        let mut rows: BTreeMap<(String, String, String), (u32, u32)> = BTreeMap::new();
        for s in &self.scenarios {
            for x in s.expectations.iter().filter(|x| x.count > 0) {
                for i in 0..x.count as usize {
                    let d = x
                        .days
                        .get(i)
                        .or(x.days.first())
                        .cloned()
                        .unwrap_or_else(|| "unknown day".into());
                    rows.entry((x.letter.name().into(), x.recipient.clone(), d))
                        .or_default()
                        .0 += 1;
                }
            }
            let times = s.event_times();
            for l in s
                .captured
                .iter()
                .filter(|l| l.status == 202 || l.status == 200)
            {
                let d = ScenarioReport::letter_day(&times, l);
                rows.entry((l.kind.clone(), l.recipient.clone(), d))
                    .or_default()
                    .1 += 1;
            }
        }
        rows.into_iter()
            .map(
                |((kind, recipient, day), (expected, captured))| ReconciliationRow {
                    kind,
                    recipient,
                    day,
                    expected,
                    captured,
                },
            )
            .collect()
    }

    /// Letters per kind and recipient: expected, captured, and in the accepted baseline.
    pub fn by_kind(&self) -> Vec<KindCount> {
        let mut rows: BTreeMap<(String, String), (u32, u32, u32)> = BTreeMap::new();
        for r in self.reconciliation() {
            let e = rows.entry((r.kind, r.recipient)).or_default();
            e.0 += r.expected;
            e.1 += r.captured;
        }
        for s in &self.scenarios {
            for l in s.baseline.iter().flatten() {
                rows.entry((l.kind.clone(), l.recipient.clone()))
                    .or_default()
                    .2 += l.count;
            }
        }
        rows.into_iter()
            .map(
                |((kind, recipient), (expected, captured, baseline))| KindCount {
                    kind,
                    recipient,
                    expected,
                    captured,
                    baseline,
                },
            )
            .collect()
    }

    /// The report with its derived parts, as scripts read it.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct WithSummary<'a> {
            #[serde(flatten)]
            report: &'a RunReport,
            decision: Decision,
            reason: String,
            counts: Counts,
            by_kind: Vec<KindCount>,
            reconciliation: Vec<ReconciliationRow>,
        }
        let w = WithSummary {
            report: self,
            decision: self.decision(),
            reason: self.reason(),
            counts: self.counts(),
            by_kind: self.by_kind(),
            reconciliation: self.reconciliation(),
        };
        serde_json::to_string_pretty(&w).unwrap_or_default()
    }

    /// Which clinical clock the run's scenarios were told with (a target's `clock:`), in
    /// words: `clock scenario`, `clock now`, or both with their counts; `None` for a run that
    /// names none (the simulator, whose scenarios run on their own virtual clock).
    pub fn clinical_time(&self) -> Option<String> {
        let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
        for s in &self.scenarios {
            if let Some(c) = &s.clock {
                let kind = c.split(' ').next().unwrap_or(c);
                *kinds.entry(kind).or_default() += 1;
            }
        }
        let what = |k: &str| {
            match k {
            "scenario" => "clock scenario: each scenario's events at their own times, moved as a whole onto the most recent days that keep its calendar",
            "now" => "clock now: each event as having happened when it was driven",
            _ => "an unknown clock",
        }
        };
        match kinds.len() {
            0 => None,
            1 => kinds
                .keys()
                .next()
                .map(|k| format!("{}; deadlines count from when the EHR was told", what(k))),
            _ => Some(format!(
                "{}; deadlines count from when the EHR was told",
                kinds
                    .iter()
                    .map(|(k, n)| format!(
                        "{} ({n} scenario{})",
                        what(k),
                        if *n == 1 { "" } else { "s" }
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }

    /// The shards this report covers as `1/3, 2/3`; empty for an unsharded run.
    pub fn shard_list(&self) -> String {
        let texts: Vec<String> = self.shards.iter().map(Shard::to_string).collect();
        texts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_names_to_initials_and_nhs_numbers_in_diffs_by_field() {
        assert_eq!(mask_name("Alice Example"), "A**** E******");
        let diff = "   nhs_number: 9990000018\n-  nhs_number: 9990000026\n+  recipient_ods: A81001\n   title: nhs_number: 9990000018";
        assert_eq!(
            mask_diff(diff),
            "   nhs_number: *******018\n-  nhs_number: *******026\n+  recipient_ods: A81001\n   title: nhs_number: 9990000018"
        );
    }
}
