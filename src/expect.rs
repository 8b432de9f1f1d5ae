//! Expected routing checked against captured letters: [`check`] turns a scenario and what was
//! captured into [`Finding`]s. A failure of the system under test is a finding, never an `Err`.

use crate::capture::{CapturedLetter, Routing};
use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::ids::{Identifiers, NhsNumber};
use crate::protocol::itk3::Itk3Response;
use crate::protocol::letter::{EventKind, LetterKind, Rule, Transport};
use crate::protocol::mesh::MeshErrorCode;
use crate::scenario::model::Dated;
use crate::scenario::{Expectation, Recipient, Scenario};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Who a letter was for, in words a report can show: `alice (NHS *******018)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PatientLabel {
    pub key: String,
    pub nhs_number: Option<NhsNumber>,
}

impl PatientLabel {
    pub fn show(&self, identifiers: Identifiers) -> String {
        match &self.nhs_number {
            Some(n) if identifiers.are_shown() => format!("{} (NHS {n})", self.key),
            Some(n) => format!("{} (NHS {})", self.key, n.masked()),
            None => self.key.clone(),
        }
    }
}

pub use crate::scenario::severity::{FindingKind, Severity};

/// Why a captured letter is taken for a replay: it carries an id (`which`: a local id, a
/// document id, a message id) already seen in an earlier run or scenario (`seen_in`). Set by
/// the run on letters of captures without authentication of their own (HTTP, MLLP, folder),
/// where anything on the host can post a copy of an earlier letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Replay {
    pub which: &'static str,
    pub id: String,
    pub seen_in: String,
}

/// Which check a finding belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The expectation at this index of the scenario's `expect:` list.
    Expectation(usize),
    /// The scenario as a whole: nothing else sent, no refusals, reports or letters to the dead.
    Scenario,
    /// The comparison with the accepted snapshot.
    Snapshot,
}

/// A problem with what the system under test sent, in plain language.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    MissingLetter {
        kind: LetterKind,
        patient: PatientLabel,
        to: String,
        expected: u32,
        found: u32,
    },
    UnexpectedLetter {
        seq: u32,
        kind: Option<LetterKind>,
        patient: Option<PatientLabel>,
        route: String,
        why: String,
    },
    /// A letter of a target run that the target's `match:` could not tie to this scenario:
    /// it carries no local id of the run (`seq` is its number here), or it belongs to a
    /// scenario checked before it arrived (`seq` is `None`: it is not among this one's).
    UnmatchedLetter {
        seq: Option<u32>,
        kind: Option<LetterKind>,
        patient: Option<PatientLabel>,
        route: String,
        why: String,
    },
    /// A letter on a capture without authentication of its own that carries an id already
    /// seen in an earlier run or scenario: a copy of an earlier letter, not counted for any
    /// expectation.
    ReplayedLetter {
        seq: u32,
        kind: Option<LetterKind>,
        patient: Option<PatientLabel>,
        route: String,
        replay: Replay,
    },
    WrongRecipient {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        expected: String,
        got: String,
    },
    WrongWorkflow {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        expected: String,
        got: String,
    },
    WrongEventCode {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        expected: String,
        got: String,
    },
    WrongTransport {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        expected: Transport,
        got: Transport,
    },
    Late {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        of: EventKind,
        within: Span,
        late_by: Span,
    },
    Duplicate {
        kind: LetterKind,
        patient: PatientLabel,
        expected: u32,
        found: u32,
    },
    /// The letter states its event on another day than it happened (`dated: event_day`),
    /// or is dated before it: both days, in England, and where the letter says so.
    WrongDate {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        of: EventKind,
        /// The day the event happened (clinically, as the EHR was told).
        expected: String,
        /// The day the letter states, and what it states it for.
        got: String,
        what: String,
        from: String,
    },
    Refused {
        seq: u32,
        route: String,
        reason: String,
    },
    Unreadable {
        seq: u32,
        route: String,
        reason: String,
    },
    ContentChanged {
        letters: Vec<String>,
        diff: String,
    },
    /// A letter read, routed and checked although its message breaks ITK3 or FHIR rules.
    NonConformant {
        seq: u32,
        kind: Option<LetterKind>,
        patient: Option<PatientLabel>,
        route: String,
        rules: Vec<Rule>,
    },
    /// The message names one recipient and the transport another; each with where it was
    /// read.
    RecipientsDisagree {
        seq: u32,
        kind: Option<LetterKind>,
        patient: Option<PatientLabel>,
        message: String,
        transport: String,
    },
    /// A letter sent while its Composition was not final.
    NotFinal {
        seq: u32,
        kind: Option<LetterKind>,
        patient: Option<PatientLabel>,
        status: String,
    },
    /// A letter for a patient went to the patient after they had died.
    LetterToDeceased {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        after_death: Span,
    },
    /// MESH reported a problem with the letter after accepting it.
    ReportReceived {
        seq: u32,
        route: String,
        code: MeshErrorCode,
        description: String,
    },
    /// An ITK3 acknowledgement (`infrastructure` or `business`) never came back.
    MissingAck {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        which: String,
    },
    /// An infrastructure acknowledgement other than 20013 (success).
    NegativeAck {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        code: Itk3Response,
    },
    /// A business acknowledgement other than the one expected.
    WrongBusinessAck {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        expected: Itk3Response,
        got: Itk3Response,
    },
    /// The sender never collected an acknowledgement from its inbox: no evidence of delivery.
    AckNotCollected {
        seq: u32,
        kind: LetterKind,
        patient: PatientLabel,
        code: Itk3Response,
    },
    /// `written` is false under `run --check`, which writes no files.
    NewSnapshot {
        path: String,
        written: bool,
    },
}

impl Finding {
    pub fn kind(&self) -> FindingKind {
        use FindingKind as K;
        match self {
            Finding::MissingLetter { .. } => K::MissingLetter,
            Finding::UnexpectedLetter { .. } => K::UnexpectedLetter,
            Finding::UnmatchedLetter { .. } => K::UnmatchedLetter,
            Finding::ReplayedLetter { .. } => K::ReplayedLetter,
            Finding::WrongRecipient { .. } => K::WrongRecipient,
            Finding::WrongWorkflow { .. } => K::WrongWorkflow,
            Finding::WrongEventCode { .. } => K::WrongEventCode,
            Finding::WrongTransport { .. } => K::WrongTransport,
            Finding::Late { .. } => K::Late,
            Finding::WrongDate { .. } => K::WrongDate,
            Finding::Duplicate { .. } => K::Duplicate,
            Finding::Refused { .. } => K::Refused,
            Finding::Unreadable { .. } => K::Unreadable,
            Finding::ContentChanged { .. } => K::ContentChanged,
            Finding::NonConformant { .. } => K::NonConformantLetter,
            Finding::RecipientsDisagree { .. } => K::RecipientsDisagree,
            Finding::NotFinal { .. } => K::NotFinal,
            Finding::NewSnapshot { .. } => K::NewSnapshot,
            Finding::LetterToDeceased { .. } => K::LetterToDeceased,
            Finding::ReportReceived { .. } => K::ReportReceived,
            Finding::MissingAck { .. } => K::MissingAck,
            Finding::NegativeAck { .. } => K::NegativeAck,
            Finding::WrongBusinessAck { .. } => K::WrongBusinessAck,
            Finding::AckNotCollected { .. } => K::AckNotCollected,
        }
    }

    /// One line a change board can read. `identifiers` shows NHS numbers in full; without it,
    /// what may be one in the free text (a route's file name, a reason) is masked too.
    pub fn describe(&self, identifiers: Identifiers) -> String {
        let text = self.describe_unmasked(identifiers);
        match identifiers {
            Identifiers::Shown => text,
            Identifiers::Masked => crate::protocol::ids::mask_in_text(&text),
        }
    }

    // One arm per finding, each its sentence: a table to read down, longer than a screen on
    // purpose, since splitting it would scatter the wording a change board reads.
    fn describe_unmasked(&self, identifiers: Identifiers) -> String {
        let p = |l: &PatientLabel| l.show(identifiers);
        match self {
            Finding::MissingLetter { kind, patient, to, expected, found } => format!(
                "missing letter: {} for {} to {to}: expected {expected}, captured {found}",
                kind.words(), p(patient)
            ),
            Finding::UnexpectedLetter { seq, kind, patient, route, why } => format!(
                "unexpected letter #{seq}: {} for {} via {route}: {why}",
                kind.map_or("unrecognised letter".into(), |k| k.words()),
                patient.as_ref().map_or("unknown patient".into(), p)
            ),
            Finding::UnmatchedLetter { seq, kind, patient, route, why } => format!(
                "unmatched letter{}: {} for {} via {route}: {why}",
                seq.map_or(String::new(), |n| format!(" #{n}")),
                kind.map_or("unrecognised letter".into(), |k| k.words()),
                patient.as_ref().map_or("unknown patient".into(), p)
            ),
            Finding::ReplayedLetter { seq, kind, patient, route, replay } => format!(
                "replayed letter: {} #{seq} for {} via {route} carries {} `{}`, already seen in {}: a copy of an earlier letter, not one sent now, so no expectation counts it",
                kind.map_or("unrecognised letter".into(), |k| k.words()),
                patient.as_ref().map_or("unknown patient".into(), p),
                replay.which,
                shown_id(&replay.id),
                replay.seen_in
            ),
            Finding::WrongRecipient { seq, kind, patient, expected, got } => format!(
                "wrong recipient: {} #{seq} for {} went to {got}; expected {expected}",
                kind.words(), p(patient)
            ),
            Finding::WrongWorkflow { seq, kind, patient, expected, got } => format!(
                "wrong workflow: {} #{seq} for {} was sent as `{got}`; expected `{expected}`",
                kind.words(), p(patient)
            ),
            Finding::WrongEventCode { seq, kind, patient, expected, got } => format!(
                "wrong ITK3 event: {} #{seq} for {} carries `{got}`; expected `{expected}`",
                kind.words(), p(patient)
            ),
            Finding::WrongTransport { seq, kind, patient, expected, got } => format!(
                "wrong transport: {} #{seq} for {} came over {got}; expected {expected}",
                kind.words(), p(patient)
            ),
            Finding::Late { seq, kind, patient, of, within, late_by } => format!(
                "late: {} #{seq} for {} was sent {late_by} after its deadline ({within} after {of})",
                kind.words(), p(patient)
            ),
            Finding::Duplicate { kind, patient, expected, found } => format!(
                "duplicate: {} for {} sent {found} times; expected {expected}",
                kind.words(),
                p(patient)
            ),
            Finding::Refused { seq, route, reason } => {
                format!("refused by the endpoint: message #{seq} via {route}: {reason}")
            }
            Finding::Unreadable { seq, route, reason } => {
                format!("unreadable letter: message #{seq} via {route}: {reason}")
            }
            Finding::ContentChanged { letters, .. } => {
                format!("content changed: the snapshot differs in {}", letters.join("; "))
            }
            Finding::NonConformant { seq, kind, patient, route, rules } => format!(
                "non-conformant letter: {} #{seq} for {} via {route} was read, but {}",
                kind.map_or("unrecognised letter".into(), |k| k.words()),
                patient.as_ref().map_or("unknown patient".into(), p),
                rules.iter().map(|r| r.words()).collect::<Vec<_>>().join("; ")
            ),
            Finding::RecipientsDisagree { seq, kind, patient, message, transport } => format!(
                "recipients disagree: {} #{seq} for {} is addressed to {message} by the message, but was sent to {transport}",
                kind.map_or("unrecognised letter".into(), |k| k.words()),
                patient.as_ref().map_or("unknown patient".into(), p)
            ),
            Finding::NotFinal { seq, kind, patient, status } => format!(
                "letter not final: {} #{seq} for {} was sent with Composition.status `{status}`",
                kind.map_or("unrecognised letter".into(), |k| k.words()),
                patient.as_ref().map_or("unknown patient".into(), p)
            ),
            Finding::WrongDate { seq, kind, patient, of, expected, got, what, from } => format!(
                "wrong date: {} #{seq} for {} states {what} on {got} ({from}), but the {} was on {expected}",
                kind.words(),
                p(patient),
                of.name().replace('_', " ")
            ),
            Finding::LetterToDeceased { seq, kind, patient, after_death } => format!(
                "letter to a deceased patient: {} #{seq} for {} was sent to the patient {after_death} after their death",
                kind.words(),
                p(patient)
            ),
            Finding::ReportReceived { seq, route, code, description } => {
                format!("MESH report received: message #{seq} via {route}: status {code}, {description}")
            }
            Finding::MissingAck { seq, kind, patient, which } => format!(
                "no {which} acknowledgement: {} #{seq} for {} was never acknowledged by the practice",
                kind.words(),
                p(patient)
            ),
            Finding::NegativeAck { seq, kind, patient, code } => format!(
                "negative acknowledgement: {} #{seq} for {} was answered {code} ({})",
                kind.words(),
                p(patient),
                code.display()
            ),
            Finding::WrongBusinessAck { seq, kind, patient, expected, got } => format!(
                "wrong business acknowledgement: {} #{seq} for {} was answered {got} ({}); expected {expected} ({})",
                kind.words(),
                p(patient),
                got.display(),
                expected.display()
            ),
            Finding::AckNotCollected { seq, kind, patient, code } => format!(
                "acknowledgement not collected: the sender never took the {code} acknowledgement of {} #{seq} for {} from its inbox",
                kind.words(),
                p(patient)
            ),
            Finding::NewSnapshot { path, written: true } => format!(
                "no accepted snapshot: review {path}.new and accept it with `lettergate accept`"
            ),
            Finding::NewSnapshot { path, written: false } => format!(
                "no accepted snapshot at {path} (run without --check to write one for review)"
            ),
        }
    }
}

/// An id from a letter as a finding shows it: control characters escaped, at most 64
/// characters, since it comes from whoever sent the body.
fn shown_id(id: &str) -> String {
    let escaped: String = id.chars().flat_map(char::escape_default).collect();
    if escaped.chars().count() > 64 {
        format!("{}…", escaped.chars().take(64).collect::<String>())
    } else {
        escaped
    }
}

fn label(s: &Scenario, nhs: Option<NhsNumber>) -> Option<PatientLabel> {
    let n = nhs?;
    Some(PatientLabel {
        key: s
            .patient_by_nhs(&n)
            .map_or_else(|| "unknown patient".into(), |p| p.key.clone()),
        nhs_number: Some(n),
    })
}

/// The finding for a letter a target's `match:` could not tie to `s` (see
/// [`Finding::UnmatchedLetter`]).
pub fn unmatched_letter(
    s: &Scenario,
    l: &CapturedLetter,
    seq: Option<u32>,
    why: String,
) -> Finding {
    let facts = l.facts.as_ref().ok();
    Finding::UnmatchedLetter {
        seq,
        kind: facts.and_then(|f| f.kind),
        patient: label(s, facts.and_then(|f| f.nhs_number)),
        route: l.route.clone(),
        why,
    }
}

/// Checks every expectation of `s` against `letters`, and that nothing else was sent. Only
/// the unit tests below use this unscoped form; the run pipeline uses [`check_scoped`].
#[cfg(test)]
fn check(s: &Scenario, letters: &[CapturedLetter]) -> Vec<Finding> {
    check_scoped(s, letters)
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

/// Checks every expectation of `s` against `letters`, and that nothing else was sent: each
/// finding with the check it belongs to. The run uses [`check_scoped_with`]; tests use this.
#[cfg(test)]
pub fn check_scoped(s: &Scenario, letters: &[CapturedLetter]) -> Vec<(Scope, Finding)> {
    check_scoped_with(s, letters, &BTreeMap::new())
}

/// [`check_scoped`], with the letters (by number) the run took for replays: each is a
/// finding of its own and counts for no expectation.
pub fn check_scoped_with(
    s: &Scenario,
    letters: &[CapturedLetter],
    replays: &BTreeMap<u32, Replay>,
) -> Vec<(Scope, Finding)> {
    let mut scoped = Vec::new();
    let mut findings = Vec::new();
    let mut consumed: BTreeSet<u32> = BTreeSet::new();
    for l in letters {
        if let Some(replay) = replays.get(&l.seq) {
            let facts = l.facts.as_ref().ok();
            findings.push(Finding::ReplayedLetter {
                seq: l.seq,
                kind: facts.and_then(|f| f.kind),
                patient: label(s, facts.and_then(|f| f.nhs_number)),
                route: l.route.clone(),
                replay: replay.clone(),
            });
            consumed.insert(l.seq);
            continue;
        }
        check_letter(s, l, &mut consumed, &mut findings);
    }
    scoped.extend(findings.drain(..).map(|f| (Scope::Scenario, f)));
    let mut by_kind: ByKindAndPatient = HashMap::new();
    for l in letters {
        if let Ok(f) = &l.facts {
            if let (Some(kind), Some(nhs)) = (f.kind, f.nhs_number) {
                by_kind.entry((kind, nhs)).or_default().push(l);
            }
        }
    }
    for (i, x) in s.expect.iter().enumerate() {
        check_one(s, x, &by_kind, &mut consumed, &mut findings);
        scoped.extend(findings.drain(..).map(|f| (Scope::Expectation(i), f)));
    }
    if s.nothing_else {
        for l in letters.iter().filter(|l| !consumed.contains(&l.seq)) {
            let facts = l.facts.as_ref().ok();
            findings.push(Finding::UnexpectedLetter {
                seq: l.seq,
                kind: facts.and_then(|f| f.kind),
                patient: label(s, facts.and_then(|f| f.nhs_number)),
                route: l.route.clone(),
                why: "no expectation of the scenario asks for it".into(),
            });
        }
    }
    scoped.extend(findings.into_iter().map(|f| (Scope::Scenario, f)));
    scoped
}

/// What is wrong with one letter whatever was expected: MESH reports about it, a letter to a
/// patient after their death, a refusal, a body that cannot be read. A letter to the dead,
/// refused or unreadable is consumed: no expectation counts it.
fn check_letter(
    s: &Scenario,
    l: &CapturedLetter,
    consumed: &mut BTreeSet<u32>,
    findings: &mut Vec<Finding>,
) {
    for r in &l.reports {
        findings.push(Finding::ReportReceived {
            seq: l.seq,
            route: l.route.clone(),
            code: r.code.clone(),
            description: r.description.clone(),
        });
    }
    let facts = l.facts.as_ref().ok();
    let deceased = facts
        .filter(|f| f.to_patient)
        .and_then(|f| f.nhs_number)
        .and_then(|n| s.patient_by_nhs(&n))
        .and_then(|p| Some((p, s.death_of(&p.key)?)));
    if let (Some((p, died)), Some(kind)) = (deceased, facts.and_then(|f| f.kind)) {
        if l.received_at > died {
            findings.push(Finding::LetterToDeceased {
                seq: l.seq,
                kind,
                patient: PatientLabel {
                    key: p.key.clone(),
                    nhs_number: Some(p.nhs_number),
                },
                after_death: l.received_at.since(died),
            });
            consumed.insert(l.seq);
            return;
        }
    }
    if let Some(reason) = &l.refusal {
        findings.push(Finding::Refused {
            seq: l.seq,
            route: l.route.clone(),
            reason: reason.clone(),
        });
        consumed.insert(l.seq);
    } else if let Err(reason) = &l.facts {
        findings.push(Finding::Unreadable {
            seq: l.seq,
            route: l.route.clone(),
            reason: reason.to_string(),
        });
        consumed.insert(l.seq);
    } else if reading_findings(s, l, findings) {
        consumed.insert(l.seq);
    }
}

/// What reading and routing a letter found before any expectation looks at it. A letter
/// whose patient or recipient cannot be found is unreadable (true: no expectation may count
/// it). One that breaks ITK3 or FHIR rules, whose message and transport name different
/// recipients, or whose Composition is not final, is read and checked like any other, with a
/// finding for each of these.
fn reading_findings(s: &Scenario, l: &CapturedLetter, out: &mut Vec<Finding>) -> bool {
    let Ok(f) = &l.facts else {
        return false;
    };
    let routing = Routing::of(s, l);
    let unreadable = match (f.nhs_number, f.to_patient || routing.chosen().is_some()) {
        (None, _) => Some("no patient: the letter names no valid NHS number"),
        (_, false) => Some("no recipient: neither the message nor the transport names one"),
        _ => None,
    };
    if let Some(why) = unreadable {
        out.push(Finding::Unreadable {
            seq: l.seq,
            route: l.route.clone(),
            reason: why.into(),
        });
        return true;
    }
    let (seq, kind, patient) = (l.seq, f.kind, label(s, f.nhs_number));
    if !f.nonconformance.is_empty() {
        out.push(Finding::NonConformant {
            seq,
            kind,
            patient: patient.clone(),
            route: l.route.clone(),
            rules: f.nonconformance.clone(),
        });
    }
    if let Some((m, t)) = routing.disagreement() {
        out.push(Finding::RecipientsDisagree {
            seq,
            kind,
            patient: patient.clone(),
            message: format!("{} ({})", m.label, m.from),
            transport: format!("{} ({})", t.label, t.from),
        });
    }
    // FHIR STU3 CompositionStatus: `amended` is complete and verified after a correction, as
    // `final` is; `preliminary` may be incomplete or unverified, and `entered-in-error` says
    // the document should not have been issued.
    if let Some(status) = f
        .status
        .as_deref()
        .filter(|st| !matches!(*st, "final" | "amended"))
    {
        out.push(Finding::NotFinal {
            seq,
            kind,
            patient,
            status: status.into(),
        });
    }
    false
}

/// Both ITK3 acknowledgements came back, were positive, and were collected by the sender.
fn check_acks(
    l: &CapturedLetter,
    kind: LetterKind,
    who: &PatientLabel,
    business: Itk3Response,
    out: &mut Vec<Finding>,
) {
    let infra = l.acks.iter().find(|a| !a.code.is_business());
    let biz = l.acks.iter().find(|a| a.code.is_business());
    let (seq, patient) = (l.seq, who.clone());
    match infra {
        None => out.push(Finding::MissingAck {
            seq,
            kind,
            patient: patient.clone(),
            which: "infrastructure".into(),
        }),
        Some(a) if a.code != Itk3Response::Success => out.push(Finding::NegativeAck {
            seq,
            kind,
            patient: patient.clone(),
            code: a.code,
        }),
        _ => {}
    }
    match biz {
        None => out.push(Finding::MissingAck {
            seq,
            kind,
            patient: patient.clone(),
            which: "business".into(),
        }),
        Some(a) if a.code != business => out.push(Finding::WrongBusinessAck {
            seq,
            kind,
            patient: patient.clone(),
            expected: business,
            got: a.code,
        }),
        _ => {}
    }
    for a in l.acks.iter().filter(|a| !a.collected) {
        out.push(Finding::AckNotCollected {
            seq,
            kind,
            patient: patient.clone(),
            code: a.code,
        });
    }
}

/// Where a misrouted letter went, in words: the practice it names and the MESH mailbox it was
/// sent to (`B82002 (mailbox B82002HC001)`), or the route it came in on when there is no
/// mailbox (`F86006 (via POST /docman/v1/documents)`).
fn went_to(l: &CapturedLetter) -> String {
    let ods = l.facts.as_ref().ok().and_then(|f| f.recipient_ods.clone());
    match (ods, &l.to_mailbox) {
        (Some(ods), Some(mb)) => format!("{ods} (mailbox {mb})"),
        (Some(ods), None) => format!("{ods} (via {})", l.route),
        (None, Some(mb)) => format!("mailbox {mb}"),
        (None, None) => l.route.clone(),
    }
}

/// Captured letters by kind and patient, so each expectation looks only at its own.
type ByKindAndPatient<'a> = HashMap<(LetterKind, NhsNumber), Vec<&'a CapturedLetter>>;

/// One expectation against the letters of its kind and patient not yet consumed by an
/// earlier one; consumes them.
fn check_one(
    s: &Scenario,
    x: &Expectation,
    letters: &ByKindAndPatient,
    consumed: &mut BTreeSet<u32>,
    out: &mut Vec<Finding>,
) {
    let Some(patient) = s.patients.get(&x.patient) else {
        return;
    };
    let who = PatientLabel {
        key: patient.key.clone(),
        nhs_number: Some(patient.nhs_number),
    };
    let mut candidates: Vec<&CapturedLetter> = letters
        .get(&(x.letter, patient.nhs_number))
        .into_iter()
        .flatten()
        .copied()
        .filter(|l| !consumed.contains(&l.seq))
        .collect();
    candidates.sort_by_key(|l| (l.received_at, l.seq));
    consumed.extend(candidates.iter().map(|l| l.seq));
    let check = Checking { s, x, who };
    if x.count == 0 {
        check.none_expected(&candidates, out);
        return;
    }
    let (right, misrouted) = check.recipients(candidates, out);
    check.count(right.len() as u32, misrouted, out);
    let anchor_events = s.events_of(&x.patient, x.of);
    for (i, l) in right.iter().enumerate() {
        check.route(l, out);
        if x.acknowledged && l.transport == Transport::Mesh {
            let died = s.death_of(&x.patient).filter(|d| *d <= l.received_at);
            let expected = x.business_ack.unwrap_or(if died.is_some() {
                Itk3Response::PatientKnownRecentlyDeceased
            } else {
                Itk3Response::PatientKnown
            });
            check_acks(l, x.letter, &check.who, expected, out);
        }
        // The i-th letter answers the i-th event it reports on; extra letters the last one.
        if let Some(anchor) = anchor_events.get(i.min(anchor_events.len().saturating_sub(1))) {
            check.deadline(l, anchor.at, out);
            if x.dated == Dated::EventDay {
                check.dates(l, anchor.clinical_at, out);
            }
        }
    }
}

/// One expectation being checked: the scenario, the expectation and its patient.
struct Checking<'a> {
    s: &'a Scenario,
    x: &'a Expectation,
    who: PatientLabel,
}

impl Checking<'_> {
    /// For `count: 0`: every candidate is unexpected.
    fn none_expected(&self, candidates: &[&CapturedLetter], out: &mut Vec<Finding>) {
        for l in candidates {
            out.push(Finding::UnexpectedLetter {
                seq: l.seq,
                kind: Some(self.x.letter),
                patient: Some(self.who.clone()),
                route: l.route.clone(),
                why: "the scenario expects none".into(),
            });
        }
    }

    /// Where the letter should have gone, as the practice (ODS code, mailbox), or `None` for
    /// the patient.
    fn target(&self) -> Option<&crate::scenario::Practice> {
        match &self.x.to {
            Recipient::RegisteredPractice => {
                self.s.recipient_practice_at(&self.x.patient, self.s.end())
            }
            Recipient::Practice(k) => self.s.practices.get(k),
            Recipient::Patient => None,
        }
    }

    fn to_words(&self) -> String {
        self.target().map_or_else(
            || "the patient".to_string(),
            |p| format!("{} {} (mailbox {})", p.ods, p.name, p.mailbox),
        )
    }

    /// Splits the candidates into those that went to the right recipient, which it returns
    /// with how many did not, each of those a wrong-recipient finding.
    fn recipients<'l>(
        &self,
        candidates: Vec<&'l CapturedLetter>,
        out: &mut Vec<Finding>,
    ) -> (Vec<&'l CapturedLetter>, u32) {
        let target = self.target();
        let (right, wrong): (Vec<&CapturedLetter>, Vec<&CapturedLetter>) =
            candidates.into_iter().partition(|l| {
                let f = l.facts.as_ref().ok();
                match target {
                    Some(p) => {
                        Routing::of(self.s, l).ods() == Some(p.ods.as_str())
                            && (l.transport != Transport::Mesh
                                || l.to_mailbox.as_deref() == Some(p.mailbox.as_str()))
                    }
                    None => f.is_some_and(|f| f.to_patient),
                }
            });
        for l in &wrong {
            out.push(Finding::WrongRecipient {
                seq: l.seq,
                kind: self.x.letter,
                patient: self.who.clone(),
                expected: self.to_words(),
                got: went_to(l),
            });
        }
        (right, wrong.len() as u32)
    }

    /// Too few letters sent, or too many to the right recipient.
    fn count(&self, found: u32, misrouted: u32, out: &mut Vec<Finding>) {
        let (x, who) = (self.x, self.who.clone());
        // A misrouted letter was sent: it is reported once, as a wrong recipient, not also as
        // missing; only letters never captured at all are missing.
        let sent = found + misrouted;
        if sent < x.count {
            out.push(Finding::MissingLetter {
                kind: x.letter,
                patient: who,
                to: self.to_words(),
                expected: x.count,
                found: sent,
            });
        } else if found > x.count {
            out.push(Finding::Duplicate {
                kind: x.letter,
                patient: who,
                expected: x.count,
                found,
            });
        }
    }

    /// The transport, and for MESH the workflow id and ITK3 event.
    fn route(&self, l: &CapturedLetter, out: &mut Vec<Finding>) {
        let x = self.x;
        let f = l.facts.as_ref().ok();
        if l.transport != x.transport {
            out.push(Finding::WrongTransport {
                seq: l.seq,
                kind: x.letter,
                patient: self.who.clone(),
                expected: x.transport,
                got: l.transport,
            });
        }
        if l.transport != Transport::Mesh {
            return;
        }
        if let (Some(want), got) = (&x.workflow, l.workflow_id.clone().unwrap_or_default()) {
            if &got != want {
                out.push(Finding::WrongWorkflow {
                    seq: l.seq,
                    kind: x.letter,
                    patient: self.who.clone(),
                    expected: want.clone(),
                    got,
                });
            }
        }
        if let Some(want) = x.letter.itk3_event() {
            let got = f.and_then(|f| f.itk3_event.clone()).unwrap_or_default();
            if got != want {
                out.push(Finding::WrongEventCode {
                    seq: l.seq,
                    kind: x.letter,
                    patient: self.who.clone(),
                    expected: want.into(),
                    got,
                });
            }
        }
    }

    /// The dates the letter states, for `dated: event_day`: its event on the day the event
    /// happened (`clinical`), and its own date not before that day; days in England.
    fn dates(&self, l: &CapturedLetter, clinical: Timestamp, out: &mut Vec<Finding>) {
        use crate::protocol::calendar::uk_day;
        let Some(f) = l.facts.as_ref().ok() else {
            return;
        };
        let day = uk_day(clinical);
        let show = |d: time::Date| format!("{} {d}", &d.weekday().to_string()[..3]);
        let wrong = |what: String, got: &crate::protocol::dates::StatedDate| Finding::WrongDate {
            seq: l.seq,
            kind: self.x.letter,
            patient: self.who.clone(),
            of: self.x.of,
            expected: show(day),
            got: show(uk_day(got.at)),
            what,
            from: got.from.to_string(),
        };
        let event = f.dates.event.as_ref().filter(|e| uk_day(e.at) != day);
        if let Some(e) = event {
            out.push(wrong(
                format!("the {}", self.x.of.name().replace('_', " ")),
                e,
            ));
        } else if let Some(d) = f.dates.document.as_ref().filter(|d| uk_day(d.at) < day) {
            out.push(wrong("its own date".into(), d));
        }
    }

    /// Sent within `within` of the event it reports on (`anchor`).
    fn deadline(&self, l: &CapturedLetter, anchor: Timestamp, out: &mut Vec<Finding>) {
        let x = self.x;
        let deadline = anchor.plus(x.within);
        if l.received_at > deadline {
            out.push(Finding::Late {
                seq: l.seq,
                kind: x.letter,
                patient: self.who.clone(),
                of: x.of,
                within: x.within,
                late_by: l.received_at.since(deadline),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::read::LetterFacts;
    use crate::scenario::Loader;

    const SCENARIO: &str = r#"
name: discharge
practices:
  riverside: {ods: A81001, name: Riverside, mailbox: A81001HC001}
  hillside: {ods: B82002, name: Hillside, mailbox: B82002HC001}
patients:
  alice: {nhs_number: "9990000018", name: Alice, born: 1950-01-01, practice: riverside}
timeline:
  - at: 2025-03-10T10:00:00Z
    event: admission
    patient: alice
  - after: 2d
    event: discharge
    patient: alice
expect:
  - letter: discharge_summary
    patient: alice
"#;

    fn scenario() -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.yaml");
        std::fs::write(&path, SCENARIO).unwrap();
        Loader::new().load_scenario(&path).unwrap()
    }

    /// A discharge summary for alice, sent `after` the discharge to `ods`.
    fn summary(seq: u32, s: &Scenario, after: Span, ods: &str) -> CapturedLetter {
        let discharge = s.events_of("alice", EventKind::Discharge)[0].at;
        CapturedLetter {
            seq,
            transport: Transport::Mesh,
            received_at: discharge.plus(after),
            message_id: format!("M{seq}"),
            from_mailbox: Some("RXXHC001".into()),
            to_mailbox: Some(format!("{ods}HC001")),
            workflow_id: Some("TOC_FHIR_IP_DISCH".into()),
            route: format!("RXXHC001 -> {ods}HC001"),
            status: 202,
            refusal: None,
            auth_valid: true,
            body_bytes: 0,
            local_id: Some(format!("SIM-{seq:06}")),
            body_file: std::path::PathBuf::new().into(),
            body_offset: 0,
            facts: Ok(LetterFacts {
                kind: Some(LetterKind::DischargeSummary),
                itk3_event: Some("ITK003D".into()),
                nhs_number: Some(NhsNumber::parse("9990000018").unwrap()),
                recipient_ods: Some(ods.into()),
                to_patient: false,
                document_id: Some(format!("doc-{seq}")),
                digest: String::new(),
                message_id: Some(format!("bundle-{seq}")),
                reference: None,
                visit_id: None,
                signals: Default::default(),
                status: None,
                date: None,
                ..Default::default()
            }),
            acks: vec![
                crate::capture::inbox::AckRecord {
                    code: Itk3Response::Success,
                    collected: true,
                },
                crate::capture::inbox::AckRecord {
                    code: Itk3Response::PatientKnown,
                    collected: true,
                },
            ],
            reports: vec![],
        }
    }

    fn described(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .map(|f| f.describe(Identifiers::Masked))
            .collect()
    }

    #[test]
    fn passes_when_the_summary_reaches_the_registered_practice_in_time() {
        let s = scenario();
        assert_eq!(
            check(&s, &[summary(1, &s, Span::hours(3), "A81001")]),
            vec![]
        );
    }

    #[test]
    fn reports_missing_letter_when_discharge_summary_not_sent() {
        let s = scenario();
        assert_eq!(
            described(&check(&s, &[])),
            ["missing letter: discharge summary for alice (NHS *******018) to A81001 Riverside (mailbox A81001HC001): expected 1, captured 0"]
        );
    }

    #[test]
    fn reports_how_late_a_summary_sent_after_24_hours_is() {
        let s = scenario();
        let found = check(&s, &[summary(1, &s, Span::hours(49), "A81001")]);
        assert_eq!(
            described(&found),
            ["late: discharge summary #1 for alice (NHS *******018) was sent 1d 1h after its deadline (1d after discharge)"]
        );
    }

    #[test]
    fn reports_a_duplicate_when_the_same_summary_arrives_twice() {
        let s = scenario();
        let found = check(
            &s,
            &[
                summary(1, &s, Span::hours(1), "A81001"),
                summary(2, &s, Span::hours(2), "A81001"),
            ],
        );
        assert_eq!(
            described(&found),
            ["duplicate: discharge summary for alice (NHS *******018) sent 2 times; expected 1"]
        );
    }

    #[test]
    fn a_letter_sent_to_another_practice_is_a_wrong_recipient_naming_its_mailbox_and_not_also_missing(
    ) {
        let s = scenario();
        let found = check(&s, &[summary(1, &s, Span::hours(1), "B82002")]);
        // Before, the same letter was also "missing letter: ... captured 0".
        assert_eq!(
            described(&found),
            ["wrong recipient: discharge summary #1 for alice (NHS *******018) went to B82002 (mailbox B82002HC001); expected A81001 Riverside (mailbox A81001HC001)"]
        );
        // A letter on a route without a mailbox names the route it came in on.
        let mut by_http = summary(1, &s, Span::hours(1), "B82002");
        by_http.to_mailbox = None;
        by_http.route = "POST /docman/v1/documents".into();
        let found = check(&s, &[by_http]);
        assert!(
            matches!(&found[..], [Finding::WrongRecipient { got, .. }] if got == "B82002 (via POST /docman/v1/documents)"),
            "{found:?}"
        );
    }

    #[test]
    fn a_letter_never_sent_beside_a_misrouted_one_is_still_missing() {
        let mut s = scenario();
        s.expect[0].count = 2;
        let found = check(&s, &[summary(1, &s, Span::hours(1), "B82002")]);
        assert!(
            matches!(
                &found[..],
                [
                    Finding::WrongRecipient { .. },
                    Finding::MissingLetter {
                        expected: 2,
                        found: 1,
                        ..
                    }
                ]
            ),
            "{found:?}"
        );
    }

    #[test]
    fn reports_the_wrong_workflow_and_event_code() {
        let s = scenario();
        let mut l = summary(1, &s, Span::hours(1), "A81001");
        l.workflow_id = Some("TOC_FHIR_OP_ATTEN".into());
        if let Ok(f) = &mut l.facts {
            f.itk3_event = Some("ITK006D".into());
        }
        assert_eq!(
            described(&check(&s, &[l])),
            [
                "wrong workflow: discharge summary #1 for alice (NHS *******018) was sent as `TOC_FHIR_OP_ATTEN`; expected `TOC_FHIR_IP_DISCH`",
                "wrong ITK3 event: discharge summary #1 for alice (NHS *******018) carries `ITK006D`; expected `ITK003D`",
            ]
        );
    }

    #[test]
    fn a_letter_no_expectation_asks_for_is_unexpected_and_refusals_are_findings() {
        let s = scenario();
        let mut other = summary(2, &s, Span::hours(1), "A81001");
        if let Ok(f) = &mut other.facts {
            f.kind = Some(LetterKind::ClinicLetter);
        }
        let mut refused = summary(3, &s, Span::hours(1), "Z99999");
        refused.status = 417;
        refused.refusal =
            Some("unregistered recipient mailbox `Z99999HC001` (MESH error 12)".into());
        let found = check(
            &s,
            &[summary(1, &s, Span::hours(1), "A81001"), other, refused],
        );
        assert_eq!(
            described(&found),
            [
                "refused by the endpoint: message #3 via RXXHC001 -> Z99999HC001: unregistered recipient mailbox `Z99999HC001` (MESH error 12)",
                "unexpected letter #2: clinic letter for alice (NHS *******018) via RXXHC001 -> A81001HC001: no expectation of the scenario asks for it",
            ]
        );
    }

    #[test]
    fn what_may_be_an_nhs_number_in_free_text_is_masked_unless_shown() {
        let f = Finding::Unreadable {
            seq: 1,
            route: "FOLDER 9990000018_discharge.pdf".into(),
            reason: "the body is a PDF document".into(),
        };
        assert_eq!(
            f.describe(Identifiers::Masked),
            "unreadable letter: message #1 via FOLDER *******018_discharge.pdf: the body is a PDF document"
        );
        assert!(f
            .describe(Identifiers::Shown)
            .contains("FOLDER 9990000018_discharge.pdf"));
    }

    #[test]
    fn acknowledgement_problems_are_findings() {
        let s = scenario();
        let mut wrong = summary(1, &s, Span::hours(1), "A81001");
        wrong.acks[1].code = Itk3Response::PatientNotKnown;
        assert_eq!(
            described(&check(&s, &[wrong])),
            ["wrong business acknowledgement: discharge summary #1 for alice (NHS *******018) was answered 30002 (Patient not known here); expected 30001 (Patient known here)"]
        );
        let mut none = summary(1, &s, Span::hours(1), "A81001");
        none.acks.clear();
        assert_eq!(
            described(&check(&s, &[none])),
            [
                "no infrastructure acknowledgement: discharge summary #1 for alice (NHS *******018) was never acknowledged by the practice",
                "no business acknowledgement: discharge summary #1 for alice (NHS *******018) was never acknowledged by the practice",
            ]
        );
        let mut uncollected = summary(1, &s, Span::hours(1), "A81001");
        uncollected.acks[0].collected = false;
        uncollected.acks[0].code = Itk3Response::PayloadInvalid;
        assert_eq!(
            described(&check(&s, &[uncollected])),
            [
                "negative acknowledgement: discharge summary #1 for alice (NHS *******018) was answered 20009 (Payload invalid)",
                "acknowledgement not collected: the sender never took the 20009 acknowledgement of discharge summary #1 for alice (NHS *******018) from its inbox",
            ]
        );
    }

    #[test]
    fn a_mesh_report_is_a_finding_even_for_an_expected_letter() {
        let s = scenario();
        let mut l = summary(1, &s, Span::hours(1), "A81001");
        l.reports.push(crate::capture::inbox::ReportRecord {
            code: MeshErrorCode::NotCollected,
            description: "not collected".into(),
            collected: true,
        });
        assert_eq!(
            described(&check(&s, &[l])),
            ["MESH report received: message #1 via RXXHC001 -> A81001HC001: status 14, not collected"]
        );
    }

    #[test]
    fn a_letter_breaking_an_itk3_rule_is_checked_and_gets_a_non_conformant_finding() {
        let s = scenario();
        assert_eq!(
            check(&s, &[summary(1, &s, Span::hours(1), "A81001")]),
            vec![]
        );
        let mut l = summary(1, &s, Span::hours(1), "A81001");
        if let Ok(f) = &mut l.facts {
            f.nonconformance = vec![Rule::EntryWithoutFullUrl];
        }
        let found = check_scoped(&s, &[l]);
        assert_eq!(
            described(&found.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>()),
            ["non-conformant letter: discharge summary #1 for alice (NHS *******018) via RXXHC001 -> A81001HC001 was read, but an entry without fullUrl (FHIR Bundle: references resolve through fullUrl)"]
        );
        assert_eq!(found[0].1.kind(), FindingKind::NonConformantLetter);
        assert_eq!(
            FindingKind::NonConformantLetter.default_severity(),
            Severity::Major
        );
    }

    #[test]
    fn a_letter_sent_preliminary_or_entered_in_error_is_not_final_and_amended_is_fine() {
        let s = scenario();
        let with = |status: &str| {
            let mut l = summary(1, &s, Span::hours(1), "A81001");
            if let Ok(f) = &mut l.facts {
                f.status = Some(status.into());
            }
            described(&check(&s, &[l]))
        };
        assert!(with("final").is_empty());
        assert!(with("amended").is_empty());
        assert_eq!(
            with("preliminary"),
            ["letter not final: discharge summary #1 for alice (NHS *******018) was sent with Composition.status `preliminary`"]
        );
        assert_eq!(with("entered-in-error").len(), 1);
        assert_eq!(FindingKind::NotFinal.default_severity(), Severity::Major);
    }

    #[test]
    fn a_message_without_recipient_is_routed_by_its_mex_to_mailbox() {
        let s = scenario();
        let mut l = summary(1, &s, Span::hours(1), "A81001");
        if let Ok(f) = &mut l.facts {
            f.recipient_ods = None;
        }
        assert_eq!(check(&s, &[l]), vec![]);
    }

    #[test]
    fn a_receiver_the_mailbox_does_not_belong_to_is_a_disagreement_naming_both() {
        let s = scenario();
        let mut l = summary(1, &s, Span::hours(1), "A81001");
        l.to_mailbox = Some("B82002HC001".into());
        let found = described(&check(&s, &[l]));
        assert_eq!(
            found[0],
            "recipients disagree: discharge summary #1 for alice (NHS *******018) is addressed to A81001 (MessageHeader.receiver) by the message, but was sent to B82002 (MESH mex-To B82002HC001 (the mailbox of B82002 Hillside))"
        );
    }

    #[test]
    fn a_letter_with_no_patient_or_no_recipient_is_unreadable_and_not_counted() {
        let s = scenario();
        let mut nobody = summary(1, &s, Span::hours(1), "A81001");
        if let Ok(f) = &mut nobody.facts {
            f.nhs_number = None;
        }
        let found = described(&check(&s, &[nobody]));
        assert_eq!(
            found[0],
            "unreadable letter: message #1 via RXXHC001 -> A81001HC001: no patient: the letter names no valid NHS number"
        );
        let mut nowhere = summary(1, &s, Span::hours(1), "A81001");
        nowhere.transport = Transport::Folder;
        nowhere.to_mailbox = None;
        if let Ok(f) = &mut nowhere.facts {
            f.recipient_ods = None;
        }
        let found = described(&check(&s, &[nowhere]));
        assert!(found[0].ends_with("no recipient: neither the message nor the transport names one"));
        assert!(found[1].starts_with("missing letter"), "{found:?}");
    }
}
