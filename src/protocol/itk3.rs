//! ITK3 Transfer of Care messages as FHIR STU3 JSON: a `Bundle` of type `message` whose first
//! entry is the `MessageHeader` and whose focus is a `Bundle` of type `document` (Composition,
//! Patient, Practitioner, Organizations, Encounter).

use crate::protocol::clock::Timestamp;
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::LetterKind;
use serde_json::{json, Value};

pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";
pub const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const EVENT_SYSTEM: &str = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2";
pub const HANDLING_URL: &str =
    "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2";
/// The identifier system of the local id lettergate drives each event with (see
/// `fhir::r4`); the simulator's letters carry it on their Encounter.
pub const LOCAL_ID_SYSTEM: &str = "urn:lettergate:local-id";
pub const SNOMED: &str = "http://snomed.info/sct";

/// What a letter says and about whom; enough to build its document.
#[derive(Clone, Debug)]
pub struct LetterDoc {
    pub kind: LetterKind,
    pub local_id: String,
    /// The visit the letter reports on, as the EHR was told it (lettergate's local id for the
    /// event): the Encounter's identifier, PV1-19 in HL7. `None` when the EHR was given none.
    pub visit_id: Option<String>,
    pub nhs_number: NhsNumber,
    pub patient_name: String,
    pub born: String,
    /// The receiving practice (ODS, name); `None` for the patient's copy.
    pub practice: Option<(String, String)>,
    pub trust_ods: String,
    pub trust_name: String,
    pub sender_mailbox: String,
    /// When the clinical event the letter reports happened.
    pub event_at: Timestamp,
    /// When the letter was finalised: the date it carries, however late it is sent.
    pub written_at: Timestamp,
    /// When the letter is sent.
    pub sent_at: Timestamp,
    pub sections: Vec<(String, String)>,
}

fn urn() -> String {
    format!("urn:uuid:{}", uuid::Uuid::new_v4())
}

fn encounter_class(kind: LetterKind) -> (&'static str, &'static str) {
    match kind {
        LetterKind::ClinicLetter | LetterKind::PatientCopy => ("AMB", "ambulatory"),
        LetterKind::EmergencyDischarge => ("EMER", "emergency"),
        _ => ("IMP", "inpatient encounter"),
    }
}

/// The `Bundle` of type `document` for a letter.
pub fn document_bundle(doc: &LetterDoc) -> Value {
    let (comp, pat, prac, gp, trust, enc) = (urn(), urn(), urn(), urn(), urn(), urn());
    let dt = doc.kind.document_type();
    let (class, class_display) = encounter_class(doc.kind);
    let mut encounter = json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://hl7.org/fhir/v3/ActCode", "code": class, "display": class_display},
        "subject": {"reference": pat},
        "period": {"start": doc.event_at.rfc3339()},
    });
    if let Some(id) = &doc.visit_id {
        encounter["identifier"] = json!([{"system": LOCAL_ID_SYSTEM, "value": id}]);
    }
    if doc.kind == LetterKind::DeathNotification {
        encounter["hospitalization"] = json!({"dischargeDisposition": {"coding": [{
            "system": "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-DischargeMethod-1",
            "code": "4", "display": "Patient died"}]}});
    }
    let sections: Vec<Value> = doc
        .sections
        .iter()
        .map(|(title, text)| {
            json!({"title": title, "text": {"status": "generated",
                "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", escape(text))}})
        })
        .collect();
    let mut patient = json!({
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": doc.nhs_number.to_string()}],
        "name": [{"text": doc.patient_name}],
        "birthDate": doc.born,
    });
    let mut entries = vec![json!({"fullUrl": comp, "resource": {
        "resourceType": "Composition",
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": uuid::Uuid::new_v4().to_string()},
        "status": "final",
        "type": {"coding": [{"system": SNOMED, "code": dt.code, "display": dt.display}]},
        "subject": {"reference": pat},
        "encounter": {"reference": enc},
        "date": doc.written_at.rfc3339(),
        "author": [{"reference": prac}],
        "title": title(doc.kind),
        "custodian": {"reference": trust},
        "section": sections,
    }})];
    if let Some((ods, name)) = &doc.practice {
        patient["generalPractitioner"] = json!([{"reference": gp}]);
        entries.push(json!({"fullUrl": gp, "resource": organization(ods, name)}));
    }
    entries.push(json!({"fullUrl": pat, "resource": patient}));
    entries.push(
        json!({"fullUrl": prac, "resource": {"resourceType": "Practitioner",
        "name": [{"text": "Dr Ada Consultant"}]}}),
    );
    entries
        .push(json!({"fullUrl": trust, "resource": organization(&doc.trust_ods, &doc.trust_name)}));
    entries.push(json!({"fullUrl": enc, "resource": encounter}));
    json!({
        "resourceType": "Bundle",
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": uuid::Uuid::new_v4().to_string()},
        "type": "document",
        "entry": entries,
    })
}

/// An `Organization` by ODS code and name; an unknown (empty) code or name is left out, as FHIR
/// allows no empty strings.
fn organization(ods: &str, name: &str) -> Value {
    let mut org = json!({"resourceType": "Organization"});
    if !ods.is_empty() {
        org["identifier"] = json!([{"system": ODS_SYSTEM, "value": ods}]);
    }
    if !name.is_empty() {
        org["name"] = json!(name);
    }
    org
}

pub fn title(kind: LetterKind) -> &'static str {
    match kind {
        LetterKind::ClinicLetter => "Outpatient clinic letter",
        LetterKind::PatientCopy => "Your outpatient clinic letter",
        LetterKind::DischargeSummary => "Inpatient discharge summary",
        LetterKind::EmergencyDischarge => "Emergency department discharge letter",
        LetterKind::DeathNotification => "Notification of death in hospital",
    }
}

/// The ITK3 message `Bundle` that goes over MESH for a practice letter.
pub fn message_bundle(doc: &LetterDoc) -> Value {
    let document = document_bundle(doc);
    let doc_url = urn();
    let (ods, name) = doc.practice.clone().unwrap_or_default();
    let (gp, sender) = (urn(), urn());
    let handling = |key: &str, value: Value| {
        let mut e = json!({"url": key});
        let field = match &value {
            Value::Bool(_) => "valueBoolean",
            Value::String(_) => "valueString",
            _ => {
                if value.get("reference").is_some() {
                    "valueReference"
                } else {
                    "valueCoding"
                }
            }
        };
        e[field] = value;
        e
    };
    let definition = match doc.kind {
        LetterKind::ClinicLetter => "ITK-OPL-MessageDefinition-4",
        LetterKind::EmergencyDischarge => "ITK-ECD-MessageDefinition-4",
        _ => "ITK-IPD-MessageDefinition-4",
    };
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": ["https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1"]},
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": uuid::Uuid::new_v4().to_string()},
        "type": "message",
        "entry": [
            {"fullUrl": urn(), "resource": {
                "resourceType": "MessageHeader",
                "extension": [{"url": HANDLING_URL, "extension": [
                    handling("BusAckRequested", json!(true)),
                    handling("InfAckRequested", json!(true)),
                    handling("RecipientType", json!({"system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1", "code": "FA", "display": "For Action"})),
                    handling("MessageDefinition", json!({"reference": format!("https://fhir.nhs.uk/STU3/MessageDefinition/{definition}")})),
                    handling("SenderReference", json!(doc.local_id)),
                ]}],
                "event": {"system": EVENT_SYSTEM, "code": doc.kind.itk3_event().unwrap_or(""), "display": doc.kind.itk3_event_display()},
                "sender": {"reference": sender},
                "receiver": {"reference": gp},
                "timestamp": doc.sent_at.rfc3339(),
                "source": {"endpoint": doc.sender_mailbox},
                "focus": [{"reference": doc_url}],
            }},
            {"fullUrl": gp, "resource": organization(&ods, &name)},
            {"fullUrl": sender, "resource": organization(&doc.trust_ods, &doc.trust_name)},
            {"fullUrl": doc_url, "resource": document},
        ],
    })
}

/// Who a letter on paper (or over an HTTP document route) is addressed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaperRecipient {
    Patient,
    Practice { ods: String, name: String },
}

/// The request body for the hybrid-mail print service or an HTTP document route: who it is
/// for, and the document.
pub fn paper_request(doc: &LetterDoc, to: &PaperRecipient) -> Value {
    let recipient = match to {
        PaperRecipient::Patient => {
            json!({"type": "patient", "nhs_number": doc.nhs_number.to_string(), "name": doc.patient_name})
        }
        PaperRecipient::Practice { ods, name } => {
            json!({"type": "practice", "ods": ods, "name": name})
        }
    };
    json!({"recipient": recipient, "reference": doc.local_id, "document": document_bundle(doc)})
}

/// ITK3 response codes: the system, and what each code means.
pub const RESPONSE_SYSTEM: &str = "https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1";

pub fn response_display(code: u32) -> &'static str {
    match code {
        20013 => "Success",
        20007 => "Duplicate message",
        20008 => "Duplicate document",
        20009 => "Payload invalid",
        20002 => "Unrecognised recipient organisation",
        10004 => "Unsupported message definition",
        30001 => "Patient known here",
        30002 => "Patient not known here",
        30003 => "Patient no longer registered here",
        30004 => "Patient known here and recently deceased",
        _ => "Unknown response code",
    }
}

/// An ITK3 acknowledgement (`ITK008M`) of the message bundle `original_id`, from `ods`.
pub fn ack_bundle(original_id: &str, code: u32, ods: &str, mailbox: &str, at: Timestamp) -> Value {
    let (header, outcome, org) = (urn(), urn(), urn());
    let ok = matches!(code, 20013 | 30001 | 30003 | 30004);
    json!({
        "resourceType": "Bundle",
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": uuid::Uuid::new_v4().to_string()},
        "type": "message",
        "entry": [
            {"fullUrl": header, "resource": {
                "resourceType": "MessageHeader",
                "event": {"system": EVENT_SYSTEM, "code": "ITK008M", "display": "ITK Response"},
                "sender": {"reference": org},
                "timestamp": at.rfc3339(),
                "source": {"endpoint": mailbox},
                "response": {"identifier": original_id, "code": if ok { "ok" } else { "fatal-error" }, "details": {"reference": outcome}},
            }},
            {"fullUrl": outcome, "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": if ok { "information" } else { "error" }, "code": "informational",
                    "details": {"coding": [{"system": RESPONSE_SYSTEM, "code": code.to_string(), "display": response_display(code)}]}}],
            }},
            {"fullUrl": org, "resource": organization(ods, "")},
        ],
    })
}

/// Reads an acknowledgement: the id of the message it answers, and its response code.
pub fn read_ack(body: &[u8]) -> Option<(String, u32)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let entries = v["entry"].as_array()?;
    let header = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "MessageHeader")?;
    let original = header["response"]["identifier"].as_str()?.to_string();
    let outcome = entries
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "OperationOutcome")?;
    let code = outcome["issue"][0]["details"]["coding"][0]["code"]
        .as_str()?
        .parse()
        .ok()?;
    Some((original, code))
}

/// The fixed, readable content the simulator writes for each kind of letter.
pub fn default_sections(kind: LetterKind) -> Vec<(String, String)> {
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    match kind {
        LetterKind::ClinicLetter | LetterKind::PatientCopy => vec![
            s("Diagnoses", "Type 2 diabetes mellitus"),
            s("Medications", "Metformin 500 mg twice daily (started)"),
            s("Plan", "HbA1c in 3 months; clinic review in 6 months"),
        ],
        LetterKind::DischargeSummary => vec![
            s("Diagnoses", "Community-acquired pneumonia"),
            s("Procedures", "None"),
            s(
                "Medications",
                "Amoxicillin 500 mg three times daily for 5 days",
            ),
            s("Follow-up", "GP review in 2 weeks; chest X-ray in 6 weeks"),
        ],
        LetterKind::EmergencyDischarge => vec![
            s("Presenting complaint", "Fall with wrist injury"),
            s("Diagnoses", "Distal radius fracture, closed"),
            s("Medications", "Paracetamol 1 g four times daily as needed"),
            s("Follow-up", "Fracture clinic in 7 days"),
        ],
        LetterKind::DeathNotification => vec![
            s("Death", "Died in hospital; verification of death completed"),
            s("Cause of death", "To be confirmed by the medical examiner"),
        ],
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
