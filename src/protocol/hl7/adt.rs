//! ADT (patient administration) messages for scenario events, HL7 v2.4: [`build`] writes the
//! message a driver sends an EHR for a timeline event, [`read`] turns one back into an
//! [`AdtEvent`] the simulator can apply.
//!
//! | scenario event | trigger | structure | PV1-2 class | also |
//! |---|---|---|---|---|
//! | `outpatient_attendance` | `A04` register an outpatient | `ADT_A01` | `O` | |
//! | `emergency_attendance` | `A04` | `ADT_A01` | `E` | |
//! | `admission` | `A01` admit | `ADT_A01` | `I` | |
//! | `discharge` | `A03` discharge | `ADT_A03` | `I` | |
//! | `emergency_discharge` | `A03` | `ADT_A03` | `E` | |
//! | `death` | `A08` update | `ADT_A01` | `N` | PID-29 date/time of death, PID-30 `Y` |
//! | `gp_change` | `A08` update | `ADT_A01` | `N` | PD1-3 the new practice |
//! | `letter_drafted`, `letter_signed`, `letter_countersigned`, `named_gp_left` | none: document workflow inside the EHR, not patient administration | | | |
//!
//! Every message carries PID-3 the NHS number (`^^^NHS^NH`), PID-5 the name (family^given),
//! PID-7 the birth date and PD1-3 the registered practice's ODS code. PD1-3 is an XON whose
//! ID number (XON.3) is numeric in v2.4, which an ODS code is not (hl7apy refuses it under
//! strict validation), so the code goes in XON.1. (Trust feeds vary here: unverified.)

use super::message::{escape, Message};
use super::segments::{nhs_number, split_name};
use super::{date, parse_ts, ts, Hl7ReadError};
use crate::protocol::clock::Timestamp;
use crate::protocol::event::{PatientRecord, SimEvent};
use crate::protocol::ids::{NhsNumber, OdsCode};
use crate::protocol::letter::EventKind;

/// The trigger and PV1-2 patient class for a scenario event; `None` for events that are not
/// patient administration.
pub fn trigger_for(event: EventKind) -> Option<(&'static str, &'static str)> {
    match event {
        EventKind::OutpatientAttendance => Some(("A04", "O")),
        EventKind::EmergencyAttendance => Some(("A04", "E")),
        EventKind::Admission => Some(("A01", "I")),
        EventKind::Discharge => Some(("A03", "I")),
        EventKind::EmergencyDischarge => Some(("A03", "E")),
        EventKind::Death | EventKind::GpChange => Some(("A08", "N")),
        EventKind::LetterDrafted
        | EventKind::LetterSigned
        | EventKind::LetterCountersigned
        | EventKind::NamedGpLeft => None,
    }
}

/// The ADT message for `event` about `patient` at `at`, with MSH-10 `control_id` and PV1-19
/// `visit` (the visit number; lettergate's local id for the event); `None` for an event with
/// no ADT trigger. `patient.practice` is the registration the message reports: for
/// `gp_change`, the new practice.
///
/// ```
/// use lettergate::protocol::hl7::adt;
/// use lettergate::protocol::ids::NhsNumber;
/// use lettergate::protocol::letter::EventKind;
/// use lettergate::protocol::event::PatientRecord;
/// let alice = PatientRecord {
///     nhs_number: NhsNumber::parse("9990000018").unwrap(),
///     name: "Alice Example".into(),
///     born: "1950-01-01".into(),
///     practice: None,
///     named_gp: None,
/// };
/// let at = lettergate::protocol::clock::Timestamp::parse("2025-01-06T09:00:00Z").unwrap();
/// let msg = adt::build(EventKind::Admission, &alice, at, "ADT-1", Some("LG-ABCDEFGH-1")).unwrap();
/// let read = adt::read(&msg).unwrap();
/// assert_eq!(read.event, EventKind::Admission);
/// assert_eq!(read.visit_id.as_deref(), Some("LG-ABCDEFGH-1"));
/// ```
pub fn build(
    event: EventKind,
    patient: &PatientRecord,
    at: Timestamp,
    control_id: &str,
    visit: Option<&str>,
) -> Option<String> {
    build_at(event, patient, (at, at), control_id, visit)
}

/// [`build`] for an event told at `at` that happened clinically at `clinical`: MSH-7 and EVN-2
/// (recorded) say when the message was made, EVN-6 (event occurred), PV1-44 (admit date/time,
/// for attendances and admissions), PV1-45 (discharge date/time) and PID-29 (death) say
/// when it happened. A back-dated event (a target's `clock: scenario`) differs in the two.
pub fn build_at(
    event: EventKind,
    patient: &PatientRecord,
    (at, clinical): (Timestamp, Timestamp),
    control_id: &str,
    visit: Option<&str>,
) -> Option<String> {
    let (trigger, class) = trigger_for(event)?;
    let structure = if trigger == "A03" {
        "ADT_A03"
    } else {
        "ADT_A01"
    };
    let when = ts(at);
    let happened = ts(clinical);
    let (given, family) = split_name(&patient.name);
    let (died_at, died) = if event == EventKind::Death {
        (happened.as_str(), "Y")
    } else {
        ("", "")
    };
    let practice = patient.practice.as_ref().map_or("", OdsCode::as_str);
    let segments = [
        format!(
            "MSH|^~\\&|LETTERGATE|DRIVER|EHR|TRUST|{when}||ADT^{trigger}^{structure}|{}|P|2.4|||AL|NE",
            escape(control_id)
        ),
        format!("EVN|{trigger}|{when}||||{happened}"),
        // PID-29 and PID-30 are the 29th and 30th fields.
        format!(
            "PID|1||{}^^^NHS^NH||{}^{}||{}{}{died_at}|{died}",
            patient.nhs_number,
            escape(&family),
            escape(&given),
            date(&patient.born),
            "|".repeat(22),
        ),
        format!("PD1|||{practice}"),
        pv1(trigger, class, visit, &happened),
    ];
    Some(segments.join("\r") + "\r")
}

/// PV1 with the visit number (PV1-19) and, for an admission or attendance, the admit
/// date/time (PV1-44), for a discharge the discharge date/time (PV1-45).
fn pv1(trigger: &str, class: &str, visit: Option<&str>, happened: &str) -> String {
    let (admit, discharge) = match trigger {
        "A01" | "A04" => (happened, ""),
        "A03" => ("", happened),
        _ => return super::segments::pv1(class, visit),
    };
    let visit = visit.map(escape).unwrap_or_default();
    // PV1-19 after 17 more separators, PV1-44 after 25 more.
    format!(
        "PV1|1|{class}{}{visit}{}{admit}|{discharge}",
        "|".repeat(17),
        "|".repeat(25)
    )
}

/// What an ADT message says happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdtEvent {
    /// `A01`, `A03`, `A04` or `A08`.
    pub trigger: String,
    /// The scenario event it stands for (see the module's table).
    pub event: EventKind,
    pub nhs_number: NhsNumber,
    /// PD1-3: the registered practice, when given.
    pub practice_ods: Option<OdsCode>,
    /// PV1-2.
    pub class: Option<String>,
    /// When it happened: EVN-6 (event occurred), else EVN-2, else MSH-7.
    pub at: Timestamp,
    /// PID-29 when PID-30 is `Y`.
    pub died_at: Option<Timestamp>,
    /// PV1-19, the visit number.
    pub visit_id: Option<String>,
}

impl AdtEvent {
    /// The event as the simulator takes it. An `A08` that changes the registration carries
    /// the new practice as `to`.
    pub fn to_sim_event(&self) -> SimEvent {
        SimEvent {
            at: self.died_at.unwrap_or(self.at),
            clinical_at: None,
            event: self.event,
            nhs_number: self.nhs_number,
            to: (self.event == EventKind::GpChange)
                .then(|| self.practice_ods.clone())
                .flatten(),
            second_signer: false,
            local_id: self.visit_id.clone(),
            signs: Default::default(),
            held_for_signature: false,
        }
    }
}

/// Reads an ADT message built by [`build`] or by an EHR using the same fields. Errors say
/// which field is missing or wrong.
pub fn read(text: &str) -> Result<AdtEvent, Hl7ReadError> {
    let m = Message::parse(text)?;
    if m.get("MSH", 9, 1) != Some("ADT") {
        let got = m.get("MSH", 9, 1).unwrap_or("").to_string();
        return Err(Hl7ReadError::NotAdt(got));
    }
    let trigger = m
        .get("MSH", 9, 2)
        .or_else(|| m.get("EVN", 1, 1))
        .ok_or(Hl7ReadError::Missing("trigger event in MSH-9.2 or EVN-1"))?
        .to_string();
    let class = m.get("PV1", 2, 1).map(str::to_string);
    let nhs_number = nhs_number(&m)?;
    let practice_ods = match m.text("PD1", 3, 1) {
        Some(code) => Some(OdsCode::parse(&code).map_err(|e| field("PD1-3", e))?),
        None => None,
    };
    let at_text = m
        .get("EVN", 6, 1)
        .or_else(|| m.get("EVN", 2, 1))
        .or_else(|| m.get("MSH", 7, 1))
        .ok_or(Hl7ReadError::Missing("time in EVN-6, EVN-2 or MSH-7"))?;
    let at = parse_ts(at_text)?;
    let died_at = match (m.get("PID", 30, 1), m.get("PID", 29, 1)) {
        (Some("Y"), Some(t)) => Some(parse_ts(t).map_err(|e| field("PID-29", e))?),
        (Some("Y"), None) => Some(at),
        _ => None,
    };
    let emergency = class.as_deref() == Some("E");
    let event = match trigger.as_str() {
        "A04" if emergency => EventKind::EmergencyAttendance,
        "A04" => EventKind::OutpatientAttendance,
        "A01" => EventKind::Admission,
        "A03" if emergency => EventKind::EmergencyDischarge,
        "A03" => EventKind::Discharge,
        "A08" if died_at.is_some() => EventKind::Death,
        "A08" if practice_ods.is_some() => EventKind::GpChange,
        "A08" => return Err(Hl7ReadError::A08ChangesNothing),
        other => return Err(Hl7ReadError::UnknownTrigger(other.to_string())),
    };
    Ok(AdtEvent {
        trigger,
        event,
        nhs_number,
        practice_ods,
        class,
        at,
        died_at,
        visit_id: m.text("PV1", 19, 1),
    })
}

/// A field that holds something wrong, with why.
fn field(field: &'static str, why: impl std::fmt::Display) -> Hl7ReadError {
    Hl7ReadError::Field {
        field,
        why: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> PatientRecord {
        PatientRecord {
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            name: "Alice Example".into(),
            born: "1950-01-01".into(),
            practice: Some(OdsCode::parse("A81001").unwrap()),
            named_gp: None,
        }
    }

    fn at() -> Timestamp {
        Timestamp::parse("2025-01-06T09:30:00Z").unwrap()
    }

    #[test]
    fn every_administrative_event_reads_back_as_itself() {
        for event in EventKind::ALL {
            let Some((trigger, class)) = trigger_for(event) else {
                assert!(build(event, &alice(), at(), "C1", None).is_none());
                continue;
            };
            let msg = build(event, &alice(), at(), "C1", None).unwrap();
            let a = read(&msg).unwrap();
            assert_eq!(a.event, event, "{msg}");
            assert_eq!(a.trigger, trigger);
            assert_eq!(a.class.as_deref(), Some(class));
            assert_eq!(a.nhs_number, alice().nhs_number);
            assert_eq!(a.practice_ods.as_ref().map(OdsCode::as_str), Some("A81001"));
            assert_eq!(a.at, at());
            assert_eq!(a.died_at.is_some(), event == EventKind::Death);
        }
    }

    #[test]
    fn a_death_is_an_a08_with_pid_29_and_30() {
        let msg = build(EventKind::Death, &alice(), at(), "C1", None).unwrap();
        let m = Message::parse(&msg).unwrap();
        assert_eq!(m.get("MSH", 9, 2), Some("A08"));
        assert_eq!(m.get("PID", 29, 1), Some("20250106093000"));
        assert_eq!(m.get("PID", 30, 1), Some("Y"));
        assert_eq!(read(&msg).unwrap().to_sim_event().at, at());
    }

    #[test]
    fn an_emergency_discharge_is_an_a03_of_class_e() {
        let msg = build(EventKind::EmergencyDischarge, &alice(), at(), "C1", None).unwrap();
        let m = Message::parse(&msg).unwrap();
        assert_eq!(m.get("MSH", 9, 3), Some("ADT_A03"));
        assert_eq!(m.get("PV1", 2, 1), Some("E"));
    }

    #[test]
    fn a_gp_change_carries_the_new_practice_to_the_simulator() {
        let mut moved = alice();
        moved.practice = Some(OdsCode::parse("B82002").unwrap());
        let e = read(&build(EventKind::GpChange, &moved, at(), "C1", None).unwrap())
            .unwrap()
            .to_sim_event();
        assert_eq!(e.event, EventKind::GpChange);
        assert_eq!(e.to.as_ref().map(OdsCode::as_str), Some("B82002"));
    }

    #[test]
    fn refuses_messages_it_cannot_act_on() {
        let a04 = build(EventKind::OutpatientAttendance, &alice(), at(), "C1", None).unwrap();
        assert!(read(&a04.replace("9990000018", "9990000000"))
            .unwrap_err()
            .to_string()
            .contains("NHS number"));
        assert!(read(&a04.replace("ADT^A04", "ADT^A05"))
            .unwrap_err()
            .to_string()
            .contains("A05"));
        assert!(read(&a04.replace("ADT^A04", "ORU^R01"))
            .unwrap_err()
            .to_string()
            .contains("not an ADT"));
        let mut nobody = alice();
        nobody.practice = None;
        let a08 = build(EventKind::GpChange, &nobody, at(), "C1", None).unwrap();
        assert!(read(&a08).is_err());
    }
}
