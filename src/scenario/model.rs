//! The loaded, resolved scenario: [`Scenario`] with its practices, patients, timeline and
//! expectations. Everything here has been checked; references are resolved to keys that are
//! known to exist.

use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::ids::{NhsNumber, OdsCode};
use crate::protocol::itk3::Itk3Response;
use crate::protocol::letter::{EventKind, LetterKind, Signs, Transport};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Whether a practice still takes letters under its own code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PracticeStatus {
    Active,
    /// Closed with no successor: its letters cannot be delivered electronically.
    Closed,
    /// Merged into another practice (by key): its code is now a branch of that one, and its
    /// letters go to that practice's mailbox.
    MergedInto(String),
}

/// A GP practice as the scenario knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Practice {
    pub key: String,
    pub ods: OdsCode,
    pub name: String,
    /// The MESH mailbox the practice receives letters in (still registered after a merge or
    /// closure, but nobody collects from it then).
    pub mailbox: String,
    pub status: PracticeStatus,
    /// How the practice receives letters: MESH, or an HTTP document route (Docman-like).
    pub route: Transport,
}

/// A synthetic patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patient {
    pub key: String,
    pub nhs_number: NhsNumber,
    pub name: String,
    /// `YYYY-MM-DD`.
    pub born: String,
    /// The registered practice's key; `None` for a patient with no registered GP (`V81997`).
    pub practice: Option<String>,
    pub previous_practice: Option<String>,
    pub named_gp: Option<String>,
}

/// One clinical event at a resolved time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When the event happens: on the simulator's clock, or when a target was told of it
    /// (deadlines count from here).
    pub at: Timestamp,
    /// When the event happened clinically, as the EHR was told it: `at` but for a target
    /// driven with `clock: scenario` (the scenario's time, moved as a whole) or an injected
    /// now. The dates a letter states are checked against this.
    pub clinical_at: Timestamp,
    pub kind: EventKind,
    pub patient: String,
    /// For `gp_change`: the key of the practice the patient moves to.
    pub to_practice: Option<String>,
    /// For `outpatient_attendance`: the letter needs a second signer before it is final.
    pub second_signer: bool,
    /// For letter events: the document they are about (from the patient's latest visit).
    pub signs: Signs,
    /// For `discharge` and `emergency_discharge`: a later `letter_signed` of the patient signs
    /// the stay's discharge summary, so the summary waits for it instead of leaving at discharge.
    pub held_for_signature: bool,
}

/// Who an expected letter is addressed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// The practice the patient is registered with when the timeline ends.
    RegisteredPractice,
    /// The patient, at home.
    Patient,
    /// A named practice, by key.
    Practice(String),
}

/// What the dates a letter states must be, relative to the event it reports on (`dated:`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Dated {
    /// The letter states its event (Encounter period, TXA-4) on the day of the event (`of:`),
    /// in England, and is not dated (Composition.date, TXA-6) before that day.
    EventDay,
    /// Its dates are not checked.
    Any,
}

impl Dated {
    /// The default for a kind: `event_day` where the specifications make the event's date
    /// mandatory (the outpatient letter's "Date and time of contact", the eDischarge's
    /// "Date/time of discharge"; see `protocol::dates`), the death notification (an
    /// eDischarge) and the patient's copy (the clinic letter's document) included; `any` for
    /// the emergency care and mental health discharges, whose specifications were not checked
    /// for it.
    pub fn default_for(kind: LetterKind) -> Dated {
        match kind {
            LetterKind::ClinicLetter
            | LetterKind::PatientCopy
            | LetterKind::DischargeSummary
            | LetterKind::DeathNotification => Dated::EventDay,
            _ => Dated::Any,
        }
    }
}

/// "This letter goes to this recipient, this way, in time, this many times."
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub letter: LetterKind,
    pub patient: String,
    pub to: Recipient,
    pub transport: Transport,
    pub workflow: Option<String>,
    pub within: Span,
    pub of: EventKind,
    pub count: u32,
    /// For MESH letters: both ITK3 acknowledgements must come back and be collected.
    pub acknowledged: bool,
    /// The business acknowledgement code required; when `None`, `30001` (patient known here),
    /// or `30004` (known here and recently deceased) if the patient died before the letter.
    pub business_ack: Option<Itk3Response>,
    /// What the letter's dates must be, relative to the event it reports on.
    pub dated: Dated,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// A stable id: the path below the scenario root without extension, `/`-separated.
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub start: Timestamp,
    pub observe_for: Span,
    pub practices: BTreeMap<String, Practice>,
    pub patients: BTreeMap<String, Patient>,
    pub timeline: Vec<Event>,
    pub expect: Vec<Expectation>,
    /// When true (the default) any letter not matched by an expectation is a finding.
    pub nothing_else: bool,
    /// Severity overrides for kinds of finding in this scenario.
    pub severity: BTreeMap<super::severity::FindingKind, super::severity::Severity>,
    /// True for a generated population (a volume scenario): its snapshot is its
    /// reconciliation, not every letter.
    pub generated: bool,
    /// Whether the synthetic GP receiver acknowledges letters (always, but for a population
    /// that turns it off).
    pub acknowledgements: bool,
    /// True when the timeline holds the times a target was actually driven (a target run):
    /// snapshots then leave out how long after its event each letter came, which varies.
    pub real_time: bool,
    /// For a target run, the target's `clock:` (`now` or `scenario`): with `now` the clock
    /// times of a letter's dates vary from run to run, and snapshots leave them out.
    pub clinical_clock: Option<&'static str>,
    /// Look-ups by patient and NHS number; built by [`Scenario::reindex`].
    pub index: ScenarioIndex,
}

/// Look-ups that keep checks linear on scenarios with tens of thousands of events.
#[derive(Clone, Debug, Default)]
pub struct ScenarioIndex {
    built: bool,
    /// Timeline positions of each patient's events, in time order.
    by_patient: HashMap<String, Vec<usize>>,
    by_nhs: HashMap<NhsNumber, String>,
}

impl Scenario {
    /// The severity of a finding in this scenario: its kind's default unless overridden.
    pub fn severity_of(&self, kind: super::severity::FindingKind) -> super::severity::Severity {
        self.severity
            .get(&kind)
            .copied()
            .unwrap_or(kind.default_severity())
    }
}

impl Scenario {
    /// The practice the patient is registered with once every `gp_change` up to `at` applied.
    pub fn registered_practice_at(&self, patient: &str, at: Timestamp) -> Option<&Practice> {
        let mut key = self.patients.get(patient)?.practice.clone();
        for e in self.patient_events(patient) {
            if e.at <= at && e.kind == EventKind::GpChange {
                key = e.to_practice.clone();
            }
        }
        key.and_then(|k| self.practices.get(&k))
    }

    /// Builds the look-ups; call after changing the timeline or patients.
    pub fn reindex(&mut self) {
        let mut index = ScenarioIndex {
            built: true,
            ..ScenarioIndex::default()
        };
        for (i, e) in self.timeline.iter().enumerate() {
            index
                .by_patient
                .entry(e.patient.clone())
                .or_default()
                .push(i);
        }
        for p in self.patients.values() {
            index.by_nhs.insert(p.nhs_number, p.key.clone());
        }
        self.index = index;
    }

    /// The patient's events in time order.
    pub fn patient_events(&self, patient: &str) -> Vec<&Event> {
        if self.index.built {
            let positions = self
                .index
                .by_patient
                .get(patient)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            positions.iter().map(|i| &self.timeline[*i]).collect()
        } else {
            self.timeline
                .iter()
                .filter(|e| e.patient == patient)
                .collect()
        }
    }

    /// Where a letter for the patient must go at `at`: the registered practice, or its
    /// successor after a merge; `None` with no registered GP or a closed practice.
    pub fn recipient_practice_at(&self, patient: &str, at: Timestamp) -> Option<&Practice> {
        let mut p = self.registered_practice_at(patient, at)?;
        // Merges form a chain at most as long as the list of practices.
        for _ in 0..=self.practices.len() {
            match &p.status {
                PracticeStatus::Active => return Some(p),
                PracticeStatus::Closed => return None,
                PracticeStatus::MergedInto(k) => p = self.practices.get(k)?,
            }
        }
        None
    }

    /// When the patient died in the timeline, if they did.
    pub fn death_of(&self, patient: &str) -> Option<Timestamp> {
        self.events_of(patient, EventKind::Death)
            .first()
            .map(|e| e.at)
    }

    /// The ODS code of the practice `p` is registered with at the start; `None` for no
    /// registered GP.
    pub fn registered_ods(&self, p: &Patient) -> Option<OdsCode> {
        p.practice
            .as_ref()
            .and_then(|k| self.practices.get(k))
            .map(|pr| pr.ods.clone())
    }

    /// The ITK3 business response the practice `practice` gives for a letter about the patient
    /// with `nhs` arriving at `at`: 30001 known here, 30002 not known here, 30003 no longer
    /// registered here, 30004 known here and recently deceased.
    pub fn gp_response(&self, practice: &str, nhs: NhsNumber, at: Timestamp) -> Itk3Response {
        let Some(patient) = self.patient_by_nhs(&nhs) else {
            return Itk3Response::PatientNotKnown;
        };
        if self
            .recipient_practice_at(&patient.key, at)
            .is_some_and(|p| p.key == practice)
        {
            return match self.death_of(&patient.key) {
                Some(died) if died <= at => Itk3Response::PatientKnownRecentlyDeceased,
                _ => Itk3Response::PatientKnown,
            };
        }
        let mut earlier: Vec<Option<String>> =
            vec![patient.previous_practice.clone(), patient.practice.clone()];
        earlier.extend(
            self.patient_events(&patient.key)
                .into_iter()
                .filter(|e| e.at <= at && e.kind == EventKind::GpChange)
                .map(|e| e.to_practice.clone()),
        );
        if earlier.iter().flatten().any(|k| k == practice) {
            Itk3Response::PatientNoLongerRegistered
        } else {
            Itk3Response::PatientNotKnown
        }
    }

    /// The time of the last event of the timeline, or the start.
    pub fn end(&self) -> Timestamp {
        self.timeline.last().map_or(self.start, |e| e.at)
    }

    /// Events of one kind for one patient, in time order.
    pub fn events_of(&self, patient: &str, kind: EventKind) -> Vec<&Event> {
        self.patient_events(patient)
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    pub fn patient_by_nhs(&self, nhs: &NhsNumber) -> Option<&Patient> {
        if self.index.built {
            self.index
                .by_nhs
                .get(nhs)
                .and_then(|k| self.patients.get(k))
        } else {
            self.patients.values().find(|p| &p.nhs_number == nhs)
        }
    }
}
