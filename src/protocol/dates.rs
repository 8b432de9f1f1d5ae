//! The dates a letter states: [`StatedDates`], when it says the event it reports on happened
//! (the Encounter's period in FHIR, TXA-4 activity date/time in HL7 v2) and its own date
//! (`Composition.date`, TXA-6 origination date/time). `dated: event_day` checks them against
//! the scenario's clinical times; snapshots show them relative to the scenario's events.
//!
//! The Transfer of Care specifications put the event's date in the Encounter:
//! `nhsconnect/ITK-FHIR-Outpatient-Letter` `pages/explore/explore_attendance_details.md`
//! ("Date and time of contact", mandatory, in `Encounter.period.start` and `.end`) and
//! `nhsconnect/ITK3-FHIR-eDischarge` `pages/explore/explore_discharge_details.md`
//! ("Date/time of discharge", mandatory, coded in the Encounter).

use super::clock::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A date a letter states, and where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatedDate {
    pub at: Timestamp,
    /// `Encounter.period.end`, `TXA-4`...: one of a few names, so not a string per letter.
    pub from: std::borrow::Cow<'static, str>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatedDates {
    /// When the letter says the event it reports on happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<StatedDate>,
    /// The letter's own date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<StatedDate>,
}

impl StatedDates {
    pub fn is_empty(&self) -> bool {
        self.event.is_none() && self.document.is_none()
    }

    /// The dates of a FHIR document: the Encounter's period (its end, else its start: a
    /// discharge ends the stay it reports on) and `Composition.date`.
    pub fn of_fhir(composition: &Value, encounter: Option<&Value>) -> StatedDates {
        let at = |v: &Value, from: &'static str| {
            let at = Timestamp::parse(v.as_str()?).ok()?;
            Some(StatedDate {
                at,
                from: from.into(),
            })
        };
        let period = encounter.map(|e| &e["period"]);
        StatedDates {
            event: period.and_then(|p| {
                at(&p["end"], "Encounter.period.end")
                    .or_else(|| at(&p["start"], "Encounter.period.start"))
            }),
            document: at(&composition["date"], "Composition.date"),
        }
    }

    /// The dates of an HL7 v2 document message, from TXA-4 (activity date/time) and TXA-6
    /// (origination date/time), as read.
    pub fn of_txa(activity: Option<Timestamp>, origination: Option<Timestamp>) -> StatedDates {
        let stated = |at: Option<Timestamp>, from: &'static str| {
            at.map(|at| StatedDate {
                at,
                from: from.into(),
            })
        };
        StatedDates {
            event: stated(activity, "TXA-4"),
            document: stated(origination, "TXA-6"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_fhir_letter_states_its_event_in_the_encounter_and_its_own_date_in_the_composition() {
        let comp = json!({"date": "2025-03-10T10:00:00Z"});
        let enc = json!({"period": {"start": "2025-03-07T17:30:00Z"}});
        let d = StatedDates::of_fhir(&comp, Some(&enc));
        let event = d.event.unwrap();
        assert_eq!(
            (event.at.rfc3339().as_str(), &*event.from),
            ("2025-03-07T17:30:00Z", "Encounter.period.start")
        );
        assert_eq!(d.document.unwrap().from, "Composition.date");
        let ended =
            json!({"period": {"start": "2025-03-01T10:00:00Z", "end": "2025-03-03T11:00:00Z"}});
        assert_eq!(
            StatedDates::of_fhir(&comp, Some(&ended))
                .event
                .unwrap()
                .from,
            "Encounter.period.end"
        );
        assert!(StatedDates::of_fhir(&json!({}), None).is_empty());
    }
}
