//! The YAML shapes of scenario and fixture files, as serde reads them, and the checks that run
//! while they are read.
//!
//! Design constraint: every error must carry the line and column of what is wrong. `yaml_serde`
//! attaches the position of the value being read to any error raised *while* that value is read,
//! so each check runs inside deserialization: identifiers in their own `Deserialize`,
//! references against a thread-local [`LoadContext`] of the names the file can see, and
//! whole-entry rules in [`Checked`], which validates a mapping inside `visit_map`.

use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::de::parse_scalar;
use crate::protocol::ids::{NhsNumber, OdsCode};
use crate::protocol::itk3::Itk3Response;
use crate::protocol::letter::{EventKind, LetterKind, Transport};
use crate::scenario::diagnostic::closest;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;

/// What the file being read can refer to, and where its timeline has got to.
#[derive(Default, Debug)]
pub struct LoadContext {
    pub practices: BTreeSet<String>,
    pub patients: BTreeSet<String>,
    /// The time of the last event read, so `after:` can be resolved and order checked.
    pub now: Option<Timestamp>,
    pub start: Option<Timestamp>,
    /// Visits (attendances, admissions, discharges) per patient, so letter events can be
    /// checked against them.
    pub attendances: BTreeMap<String, u32>,
}

thread_local! {
    static CONTEXT: RefCell<LoadContext> = RefCell::new(LoadContext::default());
}

/// Runs `f` with `ctx` installed as the load context of this thread.
pub fn with_context<R>(ctx: LoadContext, f: impl FnOnce() -> R) -> R {
    CONTEXT.with(|c| *c.borrow_mut() = ctx);
    let r = f();
    CONTEXT.with(|c| *c.borrow_mut() = LoadContext::default());
    r
}

fn ctx<R>(f: impl FnOnce(&mut LoadContext) -> R) -> R {
    CONTEXT.with(|c| f(&mut c.borrow_mut()))
}

/// A mapping whose fields are checked together once read; errors point at the mapping.
#[derive(Debug, Clone)]
pub struct Checked<T>(pub T);

/// Whole-entry rules for [`Checked`]; the error's text is the diagnostic's message.
pub trait Check: Sized {
    type Error: fmt::Display;
    fn check(self) -> Result<Self, Self::Error>;
}

impl<'de, T: Deserialize<'de> + Check> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Check> Visitor<'de> for V<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let value = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                value.check().map(Checked).map_err(de::Error::custom)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

fn unknown_name(what: &str, name: &str, known: &BTreeSet<String>, define: &str) -> String {
    let hint = match closest(name, known.iter().map(String::as_str)) {
        Some(best) => format!("did you mean `{best}`?"),
        None if known.is_empty() => format!("no {what}s are defined: add one under `{define}:`"),
        None => format!(
            "known {what}s: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("unknown {what} `{name}`; {hint}")
}

/// A reference to a practice defined under `practices:` here or in an included file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeRef(pub String);

impl<'de> Deserialize<'de> for PracticeRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a practice name", |name| {
            ctx(|c| match c.practices.contains(name) {
                true => Ok(PracticeRef(name.to_string())),
                false => Err(unknown_name("practice", name, &c.practices, "practices")),
            })
        })
    }
}

/// A reference to a patient defined under `patients:` here or in an included file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRef(pub String);

impl<'de> Deserialize<'de> for PatientRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a patient name", |name| {
            ctx(|c| match c.patients.contains(name) {
                true => Ok(PatientRef(name.to_string())),
                false => Err(unknown_name("patient", name, &c.patients, "patients")),
            })
        })
    }
}

/// A practice reference, or `none` for a patient with no registered GP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PracticeOrNone(pub Option<String>);

impl<'de> Deserialize<'de> for PracticeOrNone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a practice name or `none`", |name| {
            if name == "none" {
                return Ok(PracticeOrNone(None));
            }
            ctx(|c| match c.practices.contains(name) {
                true => Ok(PracticeOrNone(Some(name.to_string()))),
                false => {
                    let msg = unknown_name("practice", name, &c.practices, "practices");
                    Err(format!("{msg} (or `none` for no registered GP)"))
                }
            })
        })
    }
}

/// An NHS number that is valid and in the synthetic 999 range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticNhs(pub NhsNumber);

impl<'de> Deserialize<'de> for SyntheticNhs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a synthetic NHS number", |text| {
            let n = NhsNumber::parse(text).map_err(|e| format!("invalid NHS number: {e}"))?;
            if n.is_synthetic() {
                Ok(SyntheticNhs(n))
            } else {
                Err(format!(
                    "NHS number ending {} is not synthetic: scenarios may only use the 999 000 0000 to 999 999 9999 test range",
                    &n.masked()[7..]
                ))
            }
        })
    }
}

/// A date of birth, `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BirthDate(pub String);

impl<'de> Deserialize<'de> for BirthDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a date YYYY-MM-DD", |text| {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(text, fmt)
                .map(|_| BirthDate(text.to_string()))
                .map_err(|_| {
                    format!("invalid date `{text}`: expected YYYY-MM-DD, such as `1950-01-31`")
                })
        })
    }
}

/// A MESH mailbox id: uppercase letters and digits, at most 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox(pub String);

impl<'de> Deserialize<'de> for Mailbox {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a MESH mailbox id", |text| {
            let ok = !text.is_empty()
                && text.len() <= 100
                && text
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            match ok {
                true => Ok(Mailbox(text.to_string())),
                false => Err(format!(
                    "invalid MESH mailbox `{text}`: expected uppercase letters and digits, such as `A81001HC001`"
                )),
            }
        })
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPractice {
    pub ods: OdsCode,
    pub name: String,
    pub mailbox: Option<Mailbox>,
    pub status: Option<RawPracticeStatus>,
    pub merged_into: Option<PracticeRef>,
    pub route: Option<Transport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RawPracticeStatus {
    Active,
    Closed,
}

/// A practice entry whose fields do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PracticeError {
    #[error("`{0}` is a pseudo practice code, not a practice: write `practice: none` on the patient instead")]
    Pseudo(OdsCode),
    #[error("a practice is either `status: closed` or `merged_into:` another, not both")]
    ClosedAndMerged,
}

impl Check for RawPractice {
    type Error = PracticeError;

    fn check(self) -> Result<Self, PracticeError> {
        if self.ods.is_pseudo() {
            return Err(PracticeError::Pseudo(self.ods));
        }
        if self.merged_into.is_some() && self.status == Some(RawPracticeStatus::Closed) {
            return Err(PracticeError::ClosedAndMerged);
        }
        Ok(self)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPatient {
    pub nhs_number: SyntheticNhs,
    pub name: String,
    pub born: BirthDate,
    pub practice: PracticeOrNone,
    pub previous_practice: Option<PracticeRef>,
    pub named_gp: Option<String>,
}

/// A patient entry whose fields do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientError {
    #[error("`previous_practice` is the same as `practice`")]
    SamePractice,
}

impl Check for RawPatient {
    type Error = PatientError;

    fn check(self) -> Result<Self, PatientError> {
        if self.previous_practice.is_some()
            && self.previous_practice.as_ref().map(|p| &p.0) == self.practice.0.as_ref()
        {
            return Err(PatientError::SamePractice);
        }
        Ok(self)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub at: Option<Timestamp>,
    pub after: Option<Span>,
    pub event: EventKind,
    pub patient: PatientRef,
    pub to: Option<PracticeRef>,
    pub second_signer: Option<bool>,
    /// Set by [`Check`]: `at`, or the previous event's time plus `after`.
    #[serde(skip)]
    pub resolved: Option<Timestamp>,
}

/// A timeline event whose fields do not go together, or that does not fit where it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("give either `at:` or `after:` on an event, not both")]
    AtAndAfter,
    #[error("`after:` needs an earlier event or a `start:` time")]
    AfterNothing,
    #[error("this event needs a time: add `after: 1h` (after the previous event) or `at: 2025-03-03T09:30:00Z`")]
    NoTime,
    #[error("this event at {at} is earlier than the one before it ({prev}); events must be in time order")]
    OutOfOrder { at: Timestamp, prev: Timestamp },
    #[error("a `gp_change` needs `to:`, the practice the patient moves to")]
    GpChangeWithoutTo,
    #[error("`to:` belongs only on `gp_change`, not on `{0}`")]
    ToOnOther(EventKind),
    #[error("`second_signer:` belongs only on `outpatient_attendance`")]
    SecondSignerOnOther,
    #[error("`{event}` for `{patient}` comes before any visit of theirs: add the `outpatient_attendance` (or the `admission` or `emergency_attendance`) whose letter it is first")]
    LetterBeforeAttendance { event: EventKind, patient: String },
    #[error("this event comes after 9999-12-31T23:59:59Z, the latest time lettergate keeps: give it an earlier time")]
    AfterTheLastTime,
    #[error("this event at {at} is {span} after the scenario's start ({start}); a timeline spans at most 3660d (ten years): move it closer, or split the timeline into scenarios")]
    TooFarFromStart {
        at: Timestamp,
        start: Timestamp,
        span: Span,
    },
}

impl Check for RawEvent {
    type Error = EventError;

    fn check(mut self) -> Result<Self, EventError> {
        let (now, start) = ctx(|c| (c.now, c.start));
        let at = match (self.at, self.after) {
            (Some(_), Some(_)) => return Err(EventError::AtAndAfter),
            (Some(at), None) => at,
            (None, Some(after)) => now.or(start).ok_or(EventError::AfterNothing)?.plus(after),
            (None, None) => match (now, start) {
                (None, Some(start)) => start,
                _ => return Err(EventError::NoTime),
            },
        };
        if at > Timestamp::MAX {
            return Err(EventError::AfterTheLastTime);
        }
        if let Some(start) = start {
            let span = at.since(start);
            if span > Span::MAX {
                return Err(EventError::TooFarFromStart { at, start, span });
            }
        }
        if let Some(prev) = now {
            if at < prev {
                return Err(EventError::OutOfOrder { at, prev });
            }
        }
        match (self.event, &self.to) {
            (EventKind::GpChange, None) => return Err(EventError::GpChangeWithoutTo),
            (EventKind::GpChange, Some(_)) => {}
            (other, Some(_)) => return Err(EventError::ToOnOther(other)),
            _ => {}
        }
        if self.second_signer.is_some() && self.event != EventKind::OutpatientAttendance {
            return Err(EventError::SecondSignerOnOther);
        }
        let patient = self.patient.0.clone();
        let attended = ctx(|c| {
            c.now = Some(at);
            // Any visit has a letter to draft and sign: a clinic letter or a discharge summary.
            if matches!(
                self.event,
                EventKind::OutpatientAttendance
                    | EventKind::Admission
                    | EventKind::Discharge
                    | EventKind::EmergencyAttendance
                    | EventKind::EmergencyDischarge
            ) {
                *c.attendances.entry(patient.clone()).or_default() += 1;
            }
            c.attendances.get(&patient).copied().unwrap_or(0)
        });
        if matches!(
            self.event,
            EventKind::LetterDrafted | EventKind::LetterSigned | EventKind::LetterCountersigned
        ) && attended == 0
        {
            return Err(EventError::LetterBeforeAttendance {
                event: self.event,
                patient,
            });
        }
        self.resolved = Some(at);
        Ok(self)
    }
}

/// `registered_practice`, `patient`, or a practice name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawRecipient {
    RegisteredPractice,
    Patient,
    Practice(String),
}

impl<'de> Deserialize<'de> for RawRecipient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(
            d,
            "`registered_practice`, `patient` or a practice name",
            |name| match name {
                "registered_practice" => Ok(RawRecipient::RegisteredPractice),
                "patient" => Ok(RawRecipient::Patient),
                _ => ctx(|c| {
                    if c.practices.contains(name) {
                        return Ok(RawRecipient::Practice(name.to_string()));
                    }
                    let mut known = c.practices.clone();
                    known.insert("registered_practice".into());
                    known.insert("patient".into());
                    Err(unknown_name("recipient", name, &known, "practices"))
                }),
            },
        )
    }
}

/// The largest `count:` of an expectation. Each expected letter is a row of the
/// reconciliation; `count: 4294967295` validated and then spun (issue 13).
pub const MAX_COUNT: u32 = 1000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExpectation {
    pub letter: LetterKind,
    pub patient: PatientRef,
    pub to: Option<RawRecipient>,
    pub transport: Option<Transport>,
    pub workflow: Option<String>,
    pub within: Option<Span>,
    pub of: Option<EventKind>,
    pub count: Option<u32>,
    pub acknowledged: Option<bool>,
    pub business_ack: Option<Itk3Response>,
    /// `event_day`: the letter states its event on the day of the event; `any`: not checked.
    pub dated: Option<super::model::Dated>,
}

/// An expectation whose fields do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpectationError {
    #[error("a {} goes to a practice, not `to: patient`; did you mean `letter: patient_copy`?", .0.words())]
    PracticeLetterToPatient(LetterKind),
    #[error("a patient_copy goes `to: patient`")]
    PatientCopyToPractice,
    #[error("`workflow:` is a MESH workflow id and only fits `transport: mesh`")]
    WorkflowOffMesh,
    #[error("`business_ack: {0}` is not an ITK3 business code: write 30001 (known here), 30002 (not known here), 30003 (no longer registered here) or 30004 (known here and recently deceased)")]
    NotBusinessAck(Itk3Response),
    #[error("ITK3 acknowledgements come from GP practices; a patient_copy has none")]
    AcksForPatientCopy,
    #[error("`count: {0}` is more than 1000, the most letters of one kind lettergate expects for one patient: give a count up to 1000")]
    CountTooLarge(u32),
}

impl Check for RawExpectation {
    type Error = ExpectationError;

    fn check(self) -> Result<Self, ExpectationError> {
        let to_patient = matches!(self.to, Some(RawRecipient::Patient));
        if self.letter.goes_to_practice() && to_patient {
            return Err(ExpectationError::PracticeLetterToPatient(self.letter));
        }
        if !self.letter.goes_to_practice() && self.to.is_some() && !to_patient {
            return Err(ExpectationError::PatientCopyToPractice);
        }
        let transport = self.transport.unwrap_or(self.letter.default_transport());
        if self.workflow.is_some() && transport != Transport::Mesh {
            return Err(ExpectationError::WorkflowOffMesh);
        }
        if let Some(code) = self.business_ack {
            if !Itk3Response::BUSINESS.contains(&code) {
                return Err(ExpectationError::NotBusinessAck(code));
            }
        }
        if let Some(n) = self.count.filter(|n| *n > MAX_COUNT) {
            return Err(ExpectationError::CountTooLarge(n));
        }
        let wants_acks = self.business_ack.is_some() || self.acknowledged == Some(true);
        if wants_acks && !self.letter.goes_to_practice() {
            return Err(ExpectationError::AcksForPatientCopy);
        }
        Ok(self)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFixtures {
    // Read by the loader's first pass (`Prepass` in load.rs); declared here so that
    // `deny_unknown_fields` accepts the key.
    #[allow(dead_code)]
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub practices: BTreeMap<String, Checked<RawPractice>>,
    #[serde(default)]
    pub patients: BTreeMap<String, Checked<RawPatient>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    // `include` and `start` are read by the loader's first pass (`Prepass` in load.rs);
    // declared here so that `deny_unknown_fields` accepts the keys.
    #[allow(dead_code)]
    #[serde(default)]
    pub include: Vec<String>,
    #[allow(dead_code)]
    pub start: Option<Timestamp>,
    pub observe_for: Option<Span>,
    #[serde(default)]
    pub practices: BTreeMap<String, Checked<RawPractice>>,
    #[serde(default)]
    pub patients: BTreeMap<String, Checked<RawPatient>>,
    #[serde(default)]
    pub timeline: Vec<Checked<RawEvent>>,
    /// A generated population instead of a hand-written timeline (volume scenarios).
    pub population: Option<Checked<super::population::RawPopulation>>,
    #[serde(default)]
    pub expect: Vec<Checked<RawExpectation>>,
    #[serde(default = "yes")]
    pub nothing_else: bool,
    /// Raises or lowers the severity of kinds of finding for this scenario.
    #[serde(default)]
    pub severity: BTreeMap<super::severity::FindingKind, super::severity::Severity>,
}
