//! The default mapping of scenario events to FHIR R4 resources, both ways: the FHIR driver
//! builds these requests ([`request_for`]), and the simulator's FHIR API reads them back
//! ([`read`]), so the pair is tested end to end.
//!
//! | event | request |
//! |---|---|
//! | (patient first seen) | `PUT Patient?identifier={nhs}`: identifier, name, birthDate, `generalPractitioner` (the practice by ODS code, and the named GP by name) |
//! | `gp_change` | the same `PUT Patient`, with the new practice |
//! | `named_gp_left` | the same `PUT Patient`, without the named GP |
//! | `death` | the same `PUT Patient`, with `deceasedDateTime` |
//! | `outpatient_attendance` | `POST Encounter`: class `AMB`, status `finished`; a second signer as a `participant` of type `SPRF` |
//! | `admission` / `emergency_attendance` | `POST Encounter`: class `IMP` / `EMER`, status `in-progress` |
//! | `discharge` / `emergency_discharge` | `POST Encounter`: class `IMP` / `EMER`, status `finished`, `hospitalization.dischargeDisposition` `home` |
//! | `letter_drafted` | `POST Composition`: status `preliminary` |
//! | `letter_signed` | `POST Composition`: status `final`, one `legal` attester |
//! | (letter events after an admission or discharge) | the same Composition typed `Discharge summary` (373942005) instead of `Report of clinical encounter` (371531000) |
//! | `letter_countersigned` | `POST Composition`: status `final`, a `legal` and a `professional` attester |
//!
//! Every resource's subject is the patient by NHS number (a logical reference), and every
//! resource carries its clinical time. Encounters and Compositions carry lettergate's local id
//! for the event as an `identifier` of system [`LOCAL_ID_SYSTEM`]: an EHR that keeps it (as the
//! encounter's identifier, a visit number) lets `match: local_id` tie each letter to the event
//! it reports. A target file can replace any row with its own request.

use crate::protocol::clock::Timestamp;
use crate::protocol::ids::{NhsNumber, NhsNumberError, OdsCode, OdsCodeError};
use crate::protocol::itk3::{NHS_NUMBER_SYSTEM, ODS_SYSTEM};
use crate::protocol::letter::{EventKind, Signs};
use serde_json::{json, Value};

/// The identifier system of the local ids lettergate gives the events it drives.
pub use crate::protocol::itk3::LOCAL_ID_SYSTEM;

/// What the mapping needs to know about the patient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientState {
    pub nhs_number: NhsNumber,
    pub name: String,
    pub born: String,
    pub practice: Option<OdsCode>,
    pub named_gp: Option<String>,
    pub died_at: Option<Timestamp>,
}

/// One FHIR request: method, path below the base, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FhirRequest {
    pub method: &'static str,
    pub path: String,
    pub body: Value,
}

fn subject(nhs: &NhsNumber) -> Value {
    json!({"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs.to_string()}})
}

/// `PUT Patient?identifier=…`: creates or updates the patient.
pub fn patient(p: &PatientState) -> FhirRequest {
    let (given, family) = match p.name.rsplit_once(' ') {
        Some((g, f)) => (g.to_string(), f.to_string()),
        None => (String::new(), p.name.clone()),
    };
    let mut gps = Vec::new();
    if let Some(ods) = &p.practice {
        gps.push(json!({"type": "Organization", "identifier": {"system": ODS_SYSTEM, "value": ods.to_string()}}));
    }
    if let Some(gp) = &p.named_gp {
        gps.push(json!({"type": "Practitioner", "display": gp}));
    }
    let mut body = json!({
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": p.nhs_number.to_string()}],
        "name": [{"use": "official", "family": family, "given": [given], "text": p.name}],
        "birthDate": p.born,
        "generalPractitioner": gps,
    });
    if let Some(at) = p.died_at {
        body["deceasedDateTime"] = json!(at.rfc3339());
    }
    FhirRequest {
        method: "PUT",
        path: format!("Patient?identifier={NHS_NUMBER_SYSTEM}|{}", p.nhs_number),
        body,
    }
}

/// The request for an event that is not a change to the patient (see the table above), with
/// the event's local id; `None` for those that are (`gp_change`, `named_gp_left`, `death`:
/// send [`patient`]).
pub fn request_for(
    kind: EventKind,
    nhs: &NhsNumber,
    at: Timestamp,
    second_signer: bool,
    local_id: Option<&str>,
    signs: Signs,
) -> Option<FhirRequest> {
    let e = Driven {
        nhs,
        at,
        second_signer,
        identifier: local_id.map(|id| json!({"system": LOCAL_ID_SYSTEM, "value": id})),
        signs,
    };
    Some(match kind {
        EventKind::OutpatientAttendance => e.encounter("AMB", "finished", false),
        EventKind::Admission => e.encounter("IMP", "in-progress", false),
        EventKind::EmergencyAttendance => e.encounter("EMER", "in-progress", false),
        EventKind::Discharge => e.encounter("IMP", "finished", true),
        EventKind::EmergencyDischarge => e.encounter("EMER", "finished", true),
        EventKind::LetterDrafted => e.composition("preliminary", &[]),
        EventKind::LetterSigned => e.composition("final", &["legal"]),
        EventKind::LetterCountersigned => e.composition("final", &["legal", "professional"]),
        EventKind::GpChange | EventKind::NamedGpLeft | EventKind::Death => return None,
    })
}

/// What every event's resource carries: the patient, the time, a second signer, the local id.
struct Driven<'a> {
    nhs: &'a NhsNumber,
    at: Timestamp,
    second_signer: bool,
    identifier: Option<Value>,
    /// For a Composition: the document it is (a clinic letter or a discharge summary).
    signs: Signs,
}

impl Driven<'_> {
    fn encounter(&self, class: &str, status: &str, discharged: bool) -> FhirRequest {
        let at = self.at.rfc3339();
        let mut e = json!({
            "resourceType": "Encounter",
            "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": class},
            "subject": subject(self.nhs),
            "period": {"start": at},
        });
        if status == "finished" {
            e["period"]["end"] = json!(at);
        }
        if let Some(id) = &self.identifier {
            e["identifier"] = json!([id]);
        }
        if discharged {
            e["hospitalization"] = json!({"dischargeDisposition": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}]}});
        }
        if self.second_signer {
            e["participant"] = json!([
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}]},
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "SPRF"}]}]}
            ]);
        }
        FhirRequest {
            method: "POST",
            path: "Encounter".into(),
            body: e,
        }
    }

    fn composition(&self, status: &str, attesters: &[&str]) -> FhirRequest {
        let at = self.at.rfc3339();
        let (doc, title) = self.signs.document();
        let mut c = json!({
            "resourceType": "Composition",
            "status": status,
            "type": {"coding": [{"system": "http://snomed.info/sct", "code": doc.code, "display": doc.display}]},
            "subject": subject(self.nhs),
            "date": at,
            "title": title,
            "attester": attesters.iter().map(|m| json!({"mode": m, "time": at})).collect::<Vec<_>>(),
        });
        // R4's Composition has one identifier, not a list.
        if let Some(id) = &self.identifier {
            c["identifier"] = id.clone();
        }
        FhirRequest {
            method: "POST",
            path: "Composition".into(),
            body: c,
        }
    }
}

/// What a FHIR request told the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// A patient created or updated.
    Patient(PatientState),
    /// A clinical event.
    Event {
        kind: EventKind,
        nhs_number: NhsNumber,
        at: Option<Timestamp>,
        second_signer: bool,
        /// The resource's identifier: the sender's id for the event, which the EHR keeps as
        /// the encounter's (a visit number) and its letters then carry.
        local_id: Option<String>,
        /// For a Composition: the document it is, from its type.
        signs: Signs,
    },
}

/// The first identifier's value: Encounter's `identifier` is a list, Composition's one.
fn event_identifier(v: &Value) -> Option<String> {
    let id = match &v["identifier"] {
        Value::Array(ids) => ids.first()?,
        other => other,
    };
    id["value"].as_str().map(str::to_string)
}

/// Why the simulator's FHIR API cannot read a resource as a patient or an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum R4ReadError {
    #[error(
        "no NHS number: give `subject.identifier` (or `identifier`) with the NHS number system"
    )]
    NoNhsNumber,
    #[error(transparent)]
    NhsNumber(#[from] NhsNumberError),
    #[error(transparent)]
    Practice(#[from] OdsCodeError),
    #[error(
        "an Encounter of class `{class}` and status `{status}` is not an event the simulator knows"
    )]
    UnknownEncounter { class: String, status: String },
    #[error("a Composition of status `{0}` is not an event the simulator knows")]
    UnknownComposition(String),
    #[error("the simulator's FHIR API takes Patient, Encounter and Composition, not {}", .0.as_deref().unwrap_or("a body without resourceType"))]
    UnknownResource(Option<String>),
}

fn nhs_of(v: &Value) -> Result<NhsNumber, R4ReadError> {
    let id = v["subject"]["identifier"]["value"]
        .as_str()
        .or_else(|| {
            v["identifier"].as_array().and_then(|ids| {
                ids.iter()
                    .find(|i| i["system"] == NHS_NUMBER_SYSTEM)
                    .and_then(|i| i["value"].as_str())
            })
        })
        .ok_or(R4ReadError::NoNhsNumber)?;
    Ok(NhsNumber::parse(id)?)
}

fn time(v: &Value) -> Option<Timestamp> {
    v.as_str().and_then(|s| Timestamp::parse(s).ok())
}

/// Reads a resource sent to the simulator's FHIR API.
pub fn read(resource: &Value) -> Result<Read, R4ReadError> {
    match resource["resourceType"].as_str() {
        Some("Patient") => read_patient(resource),
        Some("Encounter") => read_encounter(resource),
        Some("Composition") => read_composition(resource),
        other => Err(R4ReadError::UnknownResource(other.map(str::to_string))),
    }
}

fn read_patient(resource: &Value) -> Result<Read, R4ReadError> {
    let gps = resource["generalPractitioner"].as_array();
    let practice = gps
        .into_iter()
        .flatten()
        .find(|g| g["identifier"]["system"] == ODS_SYSTEM)
        .and_then(|g| g["identifier"]["value"].as_str())
        .map(OdsCode::parse)
        .transpose()?;
    let named_gp = gps
        .into_iter()
        .flatten()
        .find(|g| g["type"] == "Practitioner")
        .and_then(|g| g["display"].as_str())
        .map(str::to_string);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    Ok(Read::Patient(PatientState {
        nhs_number: nhs_of(resource)?,
        name: text(&resource["name"][0]["text"]),
        born: text(&resource["birthDate"]),
        practice,
        named_gp,
        died_at: time(&resource["deceasedDateTime"]),
    }))
}

fn read_encounter(resource: &Value) -> Result<Read, R4ReadError> {
    let class = resource["class"]["code"].as_str().unwrap_or_default();
    let finished = resource["status"] == "finished";
    let kind = match (class, finished) {
        ("AMB", true) => EventKind::OutpatientAttendance,
        ("IMP", false) => EventKind::Admission,
        ("IMP", true) => EventKind::Discharge,
        ("EMER", false) => EventKind::EmergencyAttendance,
        ("EMER", true) => EventKind::EmergencyDischarge,
        _ => {
            return Err(R4ReadError::UnknownEncounter {
                class: class.to_string(),
                status: resource["status"].as_str().unwrap_or("").to_string(),
            })
        }
    };
    let second_signer = resource["participant"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["type"][0]["coding"][0]["code"] == "SPRF")
    });
    Ok(Read::Event {
        kind,
        nhs_number: nhs_of(resource)?,
        at: time(&resource["period"]["end"]).or(time(&resource["period"]["start"])),
        second_signer,
        local_id: event_identifier(resource),
        signs: Signs::ClinicLetter,
    })
}

fn read_composition(resource: &Value) -> Result<Read, R4ReadError> {
    let attesters = resource["attester"].as_array().map_or(0, Vec::len);
    let kind = match (resource["status"].as_str(), attesters) {
        (Some("preliminary"), _) => EventKind::LetterDrafted,
        (Some("final"), 2..) => EventKind::LetterCountersigned,
        (Some("final"), _) => EventKind::LetterSigned,
        (s, _) => return Err(R4ReadError::UnknownComposition(s.unwrap_or("").to_string())),
    };
    Ok(Read::Event {
        kind,
        nhs_number: nhs_of(resource)?,
        at: time(&resource["date"]),
        second_signer: false,
        local_id: event_identifier(resource),
        signs: Signs::of_document_type(
            resource["type"]["coding"][0]["code"].as_str().unwrap_or(""),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_events_say_which_document_they_are_about_both_ways() {
        let nhs = NhsNumber::parse("9990000018").unwrap();
        let at = Timestamp::parse("2025-01-06T09:30:00Z").unwrap();
        for signs in [Signs::ClinicLetter, Signs::DischargeSummary] {
            for kind in [EventKind::LetterDrafted, EventKind::LetterSigned] {
                let req = request_for(kind, &nhs, at, false, None, signs).unwrap();
                let code = req.body["type"]["coding"][0]["code"].as_str().unwrap();
                assert_eq!(code, signs.document().0.code);
                match read(&req.body).unwrap() {
                    Read::Event {
                        kind: k, signs: s, ..
                    } => assert_eq!((k, s), (kind, signs)),
                    other => panic!("{kind:?} read back as {other:?}"),
                }
            }
        }
    }

    #[test]
    fn every_event_reads_back_as_itself() {
        let nhs = NhsNumber::parse("9990000018").unwrap();
        let at = Timestamp::parse("2025-01-06T09:30:00Z").unwrap();
        for kind in EventKind::ALL {
            let Some(req) = request_for(
                kind,
                &nhs,
                at,
                false,
                Some("LG-ABCDEFGH-1"),
                Signs::ClinicLetter,
            ) else {
                continue;
            };
            match read(&req.body).unwrap() {
                Read::Event {
                    kind: k,
                    nhs_number,
                    at: when,
                    local_id,
                    ..
                } => {
                    assert_eq!((k, nhs_number, when), (kind, nhs, Some(at)));
                    assert_eq!(local_id.as_deref(), Some("LG-ABCDEFGH-1"), "{kind:?}");
                }
                other => panic!("{kind:?} read back as {other:?}"),
            }
        }
        let req = request_for(
            EventKind::OutpatientAttendance,
            &nhs,
            at,
            true,
            None,
            Signs::ClinicLetter,
        )
        .unwrap();
        assert!(matches!(
            read(&req.body).unwrap(),
            Read::Event {
                second_signer: true,
                local_id: None,
                ..
            }
        ));
    }

    #[test]
    fn a_patient_reads_back_with_practice_named_gp_and_death() {
        let p = PatientState {
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            name: "Alice Example".into(),
            born: "1950-01-01".into(),
            practice: Some(OdsCode::parse("A81001").unwrap()),
            named_gp: Some("Dr Jones".into()),
            died_at: Some(Timestamp::parse("2025-01-07T00:00:00Z").unwrap()),
        };
        let req = patient(&p);
        assert_eq!(req.method, "PUT");
        assert_eq!(read(&req.body).unwrap(), Read::Patient(p));
    }

    #[test]
    fn other_resources_are_refused_with_what_is_taken() {
        let e = read(&json!({"resourceType": "Observation"})).unwrap_err();
        assert!(
            e.to_string().contains("Patient, Encounter and Composition"),
            "{e}"
        );
    }
}
