//! The loaded, resolved scenario: [`Scenario`] with its practices, patients, timeline and
//! expectations. Everything here has been checked; references are resolved to keys that are
//! known to exist.

use crate::clock::{Span, Timestamp};
use crate::ids::{NhsNumber, OdsCode};
use crate::letter::{EventKind, LetterKind, Transport};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A GP practice as the scenario knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Practice {
    pub key: String,
    pub ods: OdsCode,
    pub name: String,
    /// The MESH mailbox the practice receives letters in.
    pub mailbox: String,
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
    pub at: Timestamp,
    pub kind: EventKind,
    pub patient: String,
    /// For `gp_change`: the key of the practice the patient moves to.
    pub to_practice: Option<String>,
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
}

impl Scenario {
    /// The practice the patient is registered with once every `gp_change` up to `at` applied.
    pub fn registered_practice_at(&self, patient: &str, at: Timestamp) -> Option<&Practice> {
        let mut key = self.patients.get(patient)?.practice.clone();
        for e in &self.timeline {
            if e.at <= at && e.patient == patient && e.kind == EventKind::GpChange {
                key = e.to_practice.clone();
            }
        }
        key.and_then(|k| self.practices.get(&k))
    }

    /// The time of the last event of the timeline, or the start.
    pub fn end(&self) -> Timestamp {
        self.timeline.last().map_or(self.start, |e| e.at)
    }

    /// Events of one kind for one patient, in time order.
    pub fn events_of(&self, patient: &str, kind: EventKind) -> Vec<&Event> {
        self.timeline
            .iter()
            .filter(|e| e.patient == patient && e.kind == kind)
            .collect()
    }

    pub fn patient_by_nhs(&self, nhs: &NhsNumber) -> Option<&Patient> {
        self.patients.values().find(|p| &p.nhs_number == nhs)
    }
}
