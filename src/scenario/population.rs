//! Generated populations for volume scenarios: [`RawPopulation`] in a scenario file becomes N
//! synthetic patients spread over practices, a mix of clinical events per day, and an
//! expectation for every letter those events call for. Seeded, so the same file always
//! generates the same scenario.

use super::file::{Check, PracticeRef};
use super::model::{Event, Expectation, Patient, Recipient};
use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::{EventKind, LetterKind, Signs};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Serial numbers of generated patients start here, clear of hand-written fixtures.
const FIRST_SERIAL: u32 = 100_000;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPopulation {
    /// Seed of the generator: the same seed gives the same population and events.
    pub seed: u64,
    /// How many patients to generate.
    pub patients: u32,
    /// Practices the patients are registered with, in turn.
    pub practices: Vec<PracticeRef>,
    /// How many days of activity, from the scenario's `start`.
    pub days: u32,
    /// Events per day.
    #[serde(default)]
    pub daily: RawDaily,
    /// Whether practices answer with ITK3 acknowledgements (and each letter must get both).
    /// Off, a volume run measures sending and capture alone.
    #[serde(default = "yes")]
    pub acknowledgements: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDaily {
    /// Each is followed by the letter being signed 2 to 48 hours later.
    #[serde(default)]
    pub outpatient_attendance: u32,
    #[serde(default)]
    pub discharge: u32,
    #[serde(default)]
    pub emergency_discharge: u32,
    /// Deaths in hospital; each happens to a patient with no other events.
    #[serde(default)]
    pub death: u32,
}

/// A population whose sizes do not go together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PopulationError {
    #[error("a population needs at least one practice under `practices:`")]
    NoPractice,
    #[error("`days:` must be between 1 and 366")]
    Days,
    #[error("`patients:` must be between 1 and 800000")]
    Patients,
    #[error("{deaths} deaths need at least {} patients: each death is a patient of its own", .deaths * 2)]
    TooFewForDeaths { deaths: u64 },
    #[error("`daily: {{{kind}: {count}}}` is more than {MAX_DAILY}, the most events of one kind a day: give at most {MAX_DAILY}")]
    TooManyDaily { kind: &'static str, count: u32 },
    #[error("the population calls for {letters} letters; at most {MAX_LETTERS} are generated: fewer days or events a day")]
    TooManyLetters { letters: u64 },
}

/// The most patients a population generates.
pub const MAX_PATIENTS: u32 = 800_000;
/// The most days a population runs.
pub const MAX_DAYS: u32 = 366;
/// The most events of one kind a day.
pub const MAX_DAILY: u32 = 100_000;
/// The most letters a population calls for: each is an expectation, a letter the simulator
/// sends and a row of the snapshot's reconciliation.
pub const MAX_LETTERS: u64 = 2_000_000;

impl Check for RawPopulation {
    type Error = PopulationError;

    fn check(self) -> Result<Self, PopulationError> {
        if self.practices.is_empty() {
            return Err(PopulationError::NoPractice);
        }
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(PopulationError::Days);
        }
        if self.patients == 0 || self.patients > MAX_PATIENTS {
            return Err(PopulationError::Patients);
        }
        let d = &self.daily;
        for (kind, count) in [
            ("outpatient_attendance", d.outpatient_attendance),
            ("discharge", d.discharge),
            ("emergency_discharge", d.emergency_discharge),
            ("death", d.death),
        ] {
            if count > MAX_DAILY {
                return Err(PopulationError::TooManyDaily { kind, count });
            }
        }
        // In u64: the products of u32 counts overflowed u32 and then indexed out of bounds.
        let days = u64::from(self.days);
        let deaths = u64::from(d.death) * days;
        if deaths * 2 > u64::from(self.patients) {
            return Err(PopulationError::TooFewForDeaths { deaths });
        }
        // An attendance calls for the clinic letter and the patient's copy.
        let per_day = 2 * u64::from(d.outpatient_attendance)
            + u64::from(d.discharge)
            + u64::from(d.emergency_discharge)
            + u64::from(d.death);
        let letters = per_day * days;
        if letters > MAX_LETTERS {
            return Err(PopulationError::TooManyLetters { letters });
        }
        Ok(self)
    }
}

/// What a population generates.
pub struct Generated {
    pub patients: BTreeMap<String, Patient>,
    pub timeline: Vec<Event>,
    pub expect: Vec<Expectation>,
}

fn minutes(rng: &mut StdRng, from: i64, to: i64) -> Span {
    Span::minutes(rng.gen_range(from..to))
}

impl RawPopulation {
    /// The patients, their events and the letters expected, the same for the same seed.
    pub fn generate(&self, start: Timestamp) -> Generated {
        let (patients, keys) = self.patients();
        // The last patients are kept for deaths, so nobody who died has other events.
        let deaths_total = (u64::from(self.daily.death) * u64::from(self.days)) as usize;
        let living = keys.len() - deaths_total;
        let mut t = Timeline {
            rng: StdRng::seed_from_u64(self.seed),
            keys: &keys,
            living,
            next_death: living,
            events: Vec::new(),
            counts: BTreeMap::new(),
        };
        for day in 0..self.days {
            t.day(&self.daily, start.plus(Span::days(i64::from(day))));
        }
        let Timeline {
            mut events, counts, ..
        } = t;
        // Time order; ties keep generation order, so the result is the same every time.
        events.sort_by_key(|e| e.at);
        let expect = counts
            .into_iter()
            .map(|((patient, letter), count)| self.expectation(patient, letter, count))
            .collect();
        Generated {
            patients,
            timeline: events,
            expect,
        }
    }

    /// `patients` synthetic patients, spread over the practices in turn, and their keys.
    fn patients(&self) -> (BTreeMap<String, Patient>, Vec<String>) {
        // Collected, then built in one go: a map built from sorted entries has its nodes
        // full, where inserting them one by one in order leaves each about half empty (at a
        // month's 125,000 patients, 23 MB of the simulator run's peak).
        let mut patients = Vec::with_capacity(self.patients as usize);
        let mut serial = FIRST_SERIAL;
        let mut keys = Vec::with_capacity(self.patients as usize);
        for i in 0..self.patients {
            let nhs = loop {
                serial += 1;
                if let Some(n) = NhsNumber::synthetic(serial) {
                    break n;
                }
            };
            let key = format!("p{:06}", i + 1);
            let practice = &self.practices[i as usize % self.practices.len()];
            patients.push((
                key.clone(),
                Patient {
                    key: key.clone(),
                    nhs_number: nhs,
                    name: format!("Generated Patient {:06}", i + 1),
                    born: format!("{}-{:02}-{:02}", 1930 + i % 70, 1 + i % 12, 1 + i % 28),
                    practice: Some(practice.0.clone()),
                    previous_practice: None,
                    named_gp: None,
                },
            ));
            keys.push(key);
        }
        (patients.into_iter().collect(), keys)
    }

    /// What `count` letters of kind `letter` to `patient` must look like.
    fn expectation(&self, patient: String, letter: LetterKind, count: u32) -> Expectation {
        Expectation {
            letter,
            patient,
            to: if letter.goes_to_practice() {
                Recipient::RegisteredPractice
            } else {
                Recipient::Patient
            },
            transport: letter.default_transport(),
            workflow: letter.workflow_id().map(str::to_string),
            within: letter.default_deadline(),
            of: letter.trigger(),
            count,
            acknowledged: letter.goes_to_practice() && self.acknowledgements,
            business_ack: None,
            dated: super::model::Dated::default_for(letter),
        }
    }
}

/// The timeline being generated, day by day, and the letters it calls for.
///
/// Design constraint: the random numbers are drawn in a fixed order (each day's attendances,
/// discharges, emergency discharges, then deaths), so a seed always gives the same timeline
/// and accepted snapshots of generated scenarios keep passing.
struct Timeline<'a> {
    rng: StdRng,
    keys: &'a [String],
    /// Patients `0..living` have events; the others are kept for deaths.
    living: usize,
    next_death: usize,
    events: Vec<Event>,
    counts: BTreeMap<(String, LetterKind), u32>,
}

impl Timeline<'_> {
    fn day(&mut self, daily: &RawDaily, day_start: Timestamp) {
        for _ in 0..daily.outpatient_attendance {
            let p = self.living_patient();
            let at = day_start
                .plus(Span::hours(8))
                .plus(minutes(&mut self.rng, 0, 600));
            let signed = at.plus(minutes(&mut self.rng, 120, 2880));
            self.push(at, EventKind::OutpatientAttendance, &p, None);
            self.push(
                signed,
                EventKind::LetterSigned,
                &p,
                Some(LetterKind::ClinicLetter),
            );
            self.expect(&p, LetterKind::PatientCopy);
        }
        for _ in 0..daily.discharge {
            let p = self.living_patient();
            let at = day_start
                .plus(Span::hours(10))
                .plus(minutes(&mut self.rng, 0, 600));
            self.push(
                at,
                EventKind::Discharge,
                &p,
                Some(LetterKind::DischargeSummary),
            );
        }
        for _ in 0..daily.emergency_discharge {
            let p = self.living_patient();
            let at = day_start.plus(minutes(&mut self.rng, 0, 1440));
            let letter = Some(LetterKind::EmergencyDischarge);
            self.push(at, EventKind::EmergencyDischarge, &p, letter);
        }
        for _ in 0..daily.death {
            let p = self.keys[self.next_death].clone();
            self.next_death += 1;
            let at = day_start.plus(minutes(&mut self.rng, 0, 1440));
            self.push(
                at,
                EventKind::Death,
                &p,
                Some(LetterKind::DeathNotification),
            );
        }
    }

    fn living_patient(&mut self) -> String {
        self.keys[self.rng.gen_range(0..self.living)].clone()
    }

    /// An event, and the letter it calls for.
    fn push(&mut self, at: Timestamp, kind: EventKind, patient: &str, letter: Option<LetterKind>) {
        self.events.push(Event {
            at,
            clinical_at: at,
            kind,
            patient: patient.to_string(),
            to_practice: None,
            second_signer: false,
            signs: Signs::ClinicLetter,
            held_for_signature: false,
        });
        if let Some(letter) = letter {
            self.expect(patient, letter);
        }
    }

    fn expect(&mut self, patient: &str, letter: LetterKind) {
        *self
            .counts
            .entry((patient.to_string(), letter))
            .or_default() += 1;
    }
}
