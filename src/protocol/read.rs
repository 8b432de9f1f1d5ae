//! Reads the letter inside a captured message: [`LetterFacts`] from an ITK3 message bundle
//! (MESH), a print request (HTTP), an MDM^T02 message (MLLP), or a dropped file holding either
//! a bundle or an MDM message (folder), and the kind of letter it is. FHIR comes as JSON or as
//! XML ([`super::fhir::xml`]), on any transport.

use super::fhir::xml::XmlError;
use super::fhir::xml::{many, one};
use super::hl7::Hl7ReadError;
use super::message::{self, Document, Fact, MessageError, Trail};
use crate::protocol::letter::{
    KindSignals, KindTable, LetterKind, Transport, DISCHARGE_DESTINATION_DIED,
    DISCHARGE_METHOD_DIED,
};
use serde_json::Value;
use std::sync::Arc;

pub use super::letter::{LetterContent, LetterFacts};

/// Why a captured body is not a letter lettergate can read. The text is what the
/// unreadable-letter finding says; causes are part of it, and kept as text where the cause
/// cannot be cloned with the letter it belongs to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error("the body is a PDF document: lettergate keeps it, but cannot read whom it is for or what letter it is; send ITK3 FHIR (JSON or XML), a print request or an HL7 MDM^T02 message")]
    Pdf,
    #[error("the HL7 message is not UTF-8: {0}")]
    Hl7NotUtf8(std::str::Utf8Error),
    #[error("the XML body is not UTF-8: {0}")]
    XmlNotUtf8(std::str::Utf8Error),
    #[error("the body is XML but cannot be read as FHIR: {0}")]
    Xml(XmlError),
    #[error("body is neither JSON nor XML: {0}")]
    NotJson(Arc<serde_json::Error>),
    #[error("body is neither an ITK3 message bundle nor a print request")]
    NoEnvelope,
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error(transparent)]
    Hl7(#[from] Hl7ReadError),
    /// lettergate's own liveness message, which is counted, never read as a letter.
    #[error("a canary")]
    Canary,
    /// The reason as a capture log or ledger recorded it, read back.
    #[error("{0}")]
    Recorded(String),
    /// A target's reader (`readers:` in the target file) found nothing at a path: the letter's
    /// patient or recipient cannot be known.
    #[error("the reader for {on} found no {what} at {path}")]
    NotAtPath {
        on: Transport,
        what: &'static str,
        path: String,
    },
    /// The body a target's reader was to read could not be read back from disk.
    #[error("its body could not be read back: {0}")]
    NotReadBack(Arc<std::io::Error>),
}

/// Written as its text, so a capture log reads as before; read back as
/// [`ReadError::Recorded`].
impl serde::Serialize for ReadError {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ReadError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(ReadError::Recorded)
    }
}

/// Who a letter was addressed to, as snapshots and reports name it: the practice's ODS code,
/// `the patient`, or `unknown recipient`.
pub fn recipient_label(facts: Option<&LetterFacts>) -> String {
    match facts {
        Some(f) if f.to_patient => "the patient".to_string(),
        Some(f) => f
            .recipient_ods
            .clone()
            .unwrap_or_else(|| "unknown recipient".into()),
        None => "unknown recipient".into(),
    }
}

/// Reads a captured body. Errors say why it is not a letter.
pub fn parse_letter(transport: Transport, body: &[u8]) -> Result<LetterFacts, ReadError> {
    explain_letter(transport, body).map(|(facts, _)| facts)
}

/// Reads a captured body as [`parse_letter`] does, and says where each fact was read from
/// (`lettergate explain`).
pub fn explain_letter(
    transport: Transport,
    body: &[u8],
) -> Result<(LetterFacts, Trail), ReadError> {
    if let Some(text) = hl7_text(transport, body)? {
        let (facts, _) = crate::protocol::hl7::mdm::read(&text)?;
        return Ok((facts, hl7_trail()));
    }
    let v = json_or_xml(body)?;
    match envelope(transport, &v)? {
        Envelope::Message => from_message(&v),
        Envelope::PrintRequest => from_print_request(&v),
    }
}

/// The content of a captured body (its document's type, title and sections), read again from
/// the body when a snapshot needs it.
pub fn letter_content(transport: Transport, body: &[u8]) -> Result<LetterContent, ReadError> {
    if let Some(text) = hl7_text(transport, body)? {
        return Ok(crate::protocol::hl7::mdm::read(&text).map(|(_, content)| content)?);
    }
    let v = json_or_xml(body)?;
    let doc = match envelope(transport, &v)? {
        Envelope::Message => message::read_message(&v)?.0,
        Envelope::PrintRequest => {
            message::read_document(&v["document"], "document", &mut Trail::default())?
        }
    };
    let comp = doc.composition.resource;
    let coding = type_coding(comp);
    Ok(LetterContent {
        document_type: coding["code"]
            .as_str()
            .map(|c| format!("{c} {}", coding["display"].as_str().unwrap_or(""))),
        title: comp["title"].as_str().map(str::to_string),
        sections: many(&comp["section"])
            .map(|s| {
                (
                    s["title"].as_str().unwrap_or("").to_string(),
                    strip_tags(s["text"]["div"].as_str().unwrap_or("")),
                )
            })
            .collect(),
    })
}

/// Where an HL7 v2 document message's facts come from (fixed by the MDM^T02 layout).
fn hl7_trail() -> Trail {
    let mut t = Trail::default();
    t.note(Fact::Recipient, "MSH-6", "MSH-6 receiving facility");
    t.note(
        Fact::Patient,
        "PID-3",
        "PID-3 patient identifier list (NHS number)",
    );
    t.note(Fact::DocumentType, "TXA-2", "TXA-2 document type");
    t.note(Fact::MessageId, "MSH-10", "MSH-10 message control id");
    t
}

/// The text of an HL7 v2 body: always over MLLP, and for a dropped file when its content is
/// an HL7 message rather than JSON. `None` for bodies to read as JSON.
fn hl7_text(transport: Transport, body: &[u8]) -> Result<Option<String>, ReadError> {
    let hl7 = match transport {
        Transport::Mllp => true,
        Transport::Folder => crate::protocol::hl7::mdm::looks_like_hl7(body),
        Transport::Mesh | Transport::Http => false,
    };
    if !hl7 {
        return Ok(None);
    }
    std::str::from_utf8(body)
        .map(|t| Some(t.to_string()))
        .map_err(ReadError::Hl7NotUtf8)
}

/// A body as FHIR's JSON shape: JSON as it is, FHIR XML read into that shape. A PDF is named
/// as one, since it holds nothing lettergate can read.
pub fn json_or_xml(body: &[u8]) -> Result<Value, ReadError> {
    if body.starts_with(b"%PDF-") {
        return Err(ReadError::Pdf);
    }
    if super::fhir::xml::looks_like_xml(body) {
        let text = std::str::from_utf8(body).map_err(ReadError::XmlNotUtf8)?;
        return super::fhir::xml::to_json(text).map_err(ReadError::Xml);
    }
    serde_json::from_slice(body).map_err(|e| ReadError::NotJson(Arc::new(e)))
}

/// `Composition.type.coding[0]`.
fn type_coding(comp: &Value) -> &Value {
    one(&one(&comp["type"])["coding"])
}

/// How a letter travels: inside an ITK3 message bundle (with its MessageHeader) or as a print
/// or document request.
enum Envelope {
    Message,
    PrintRequest,
}

fn envelope(transport: Transport, v: &Value) -> Result<Envelope, ReadError> {
    match (transport, v.get("resourceType").and_then(Value::as_str)) {
        (_, Some("Bundle")) if v["type"] == "message" => Ok(Envelope::Message),
        (Transport::Http, _) if v.get("document").is_some() => Ok(Envelope::PrintRequest),
        _ => Err(ReadError::NoEnvelope),
    }
}

fn from_message(v: &Value) -> Result<(LetterFacts, Trail), ReadError> {
    let (doc, env, mut t) = message::read_message(v)?;
    let mut facts = from_document(&doc, false, &mut t);
    facts.itk3_event = env.event;
    // The ITK3 event is one of the signals of a letter's kind.
    facts.kind = classify(&facts, KindTable::standard());
    facts.recipient_ods = env.recipient_ods;
    facts.recipient_mailbox = env.recipient_mailbox;
    facts.message_id = env.message_id;
    facts.nonconformance = t.rules.iter().copied().collect();
    Ok((facts, t))
}

fn from_print_request(v: &Value) -> Result<(LetterFacts, Trail), ReadError> {
    let to_patient = v["recipient"]["type"] == "patient";
    let mut t = Trail::default();
    let doc = message::read_document(&v["document"], "document", &mut t)?;
    let mut facts = from_document(&doc, to_patient, &mut t);
    facts.reference = v["reference"].as_str().map(str::to_string);
    if v["recipient"]["type"] == "practice" {
        facts.recipient_ods = v["recipient"]["ods"].as_str().map(str::to_string);
        if let Some(ods) = &facts.recipient_ods {
            t.note(Fact::Recipient, ods, "recipient.ods of the print request");
        }
    }
    facts.nonconformance = t.rules.iter().copied().collect();
    Ok((facts, t))
}

fn from_document(doc: &Document, to_patient: bool, t: &mut Trail) -> LetterFacts {
    let comp = doc.composition.resource;
    let patient = doc.patient.as_ref().map(|p| p.resource);
    let encounter = doc.encounter.as_ref().map(|e| e.resource);
    // The EHR's own ids are new every run (running numbers as well as UUIDs): not content.
    let bundle = doc.bundle.value();
    let ids = crate::protocol::normalize::fhir_own_ids(bundle);
    let digest = crate::protocol::digest::content_digest(bundle, &ids);
    let mut facts = LetterFacts {
        nhs_number: message::nhs_number(doc, t),
        to_patient,
        document_id: one(&comp["identifier"])["value"]
            .as_str()
            .map(str::to_string),
        digest: digest[..16].to_string(),
        visit_id: encounter
            .and_then(|e| one(&e["identifier"])["value"].as_str().map(str::to_string)),
        signals: kind_signals(comp, patient, encounter),
        status: comp["status"].as_str().map(str::to_string),
        clinical_at: message::clinical_at(doc, t),
        dates: crate::protocol::dates::StatedDates::of_fhir(comp, encounter),
        ..LetterFacts::default()
    };
    facts.kind = classify(&facts, KindTable::standard());
    facts
}

/// The kind of a letter from what its document says (its type, encounter class, whether the
/// patient died), its ITK3 event and whether it is addressed to the patient, by `kinds`: the
/// specification rows ([`KindTable::standard`]) or those with a target's own.
pub fn classify(facts: &LetterFacts, kinds: &KindTable) -> Option<LetterKind> {
    kinds.classify(
        &facts.signals,
        facts.itk3_event.as_deref(),
        facts.to_patient,
    )
}

/// What a document says about its kind. The patient died when the Encounter's discharge method
/// (`Extension-CareConnect-DischargeMethod-1`) or discharge destination says so, or when the
/// Patient is `deceased[x]`. A discharge disposition of `4` is the discharge method's code in
/// the wrong element, as lettergate's simulator writes it: read as died too.
fn kind_signals(comp: &Value, patient: Option<&Value>, encounter: Option<&Value>) -> KindSignals {
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let hospitalization = encounter.map(|e| &e["hospitalization"]);
    let method_died = hospitalization.is_some_and(|h| {
        many(&h["extension"])
            .filter(|x| {
                x["url"]
                    .as_str()
                    .is_some_and(|u| u.contains("DischargeMethod"))
            })
            .any(|x| codes(&x["valueCodeableConcept"]).any(|c| c == DISCHARGE_METHOD_DIED))
    });
    let destination_died = hospitalization.is_some_and(|h| {
        codes(&h["dischargeDisposition"])
            .any(|c| c == DISCHARGE_DESTINATION_DIED || c == DISCHARGE_METHOD_DIED)
    });
    let deceased = patient.is_some_and(|p| {
        // FHIR XML read into JSON's shape keeps a boolean as its text.
        p["deceasedBoolean"] == true
            || p["deceasedBoolean"] == "true"
            || p["deceasedDateTime"].as_str().is_some()
    });
    KindSignals {
        document_type: text(&type_coding(comp)["code"]),
        encounter_class: encounter.and_then(|e| text(&e["class"]["code"])),
        died: method_died || destination_died || deceased,
    }
}

/// The codes of a CodeableConcept.
fn codes(concept: &Value) -> impl Iterator<Item = &str> {
    many(&concept["coding"]).filter_map(|c| c["code"].as_str())
}

fn strip_tags(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::clock::Timestamp;
    use crate::protocol::ids::NhsNumber;
    use crate::protocol::itk3::{self, LetterDoc};
    use crate::protocol::letter::DOC_CLINIC_LETTER;

    fn doc(kind: LetterKind) -> LetterDoc {
        LetterDoc {
            kind,
            local_id: "SIM-000001".into(),
            visit_id: None,
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            patient_name: "Alice Example".into(),
            born: "1950-01-01".into(),
            practice: Some(("A81001".into(), "Riverside Surgery".into())),
            trust_ods: "RXX".into(),
            trust_name: "Trust".into(),
            sender_mailbox: "X26HC005".into(),
            event_at: Timestamp(1_736_154_000),
            written_at: Timestamp(1_736_155_000),
            sent_at: Timestamp(1_736_155_000),
            sections: itk3::default_sections(kind),
        }
    }

    #[test]
    fn reads_back_every_kind_the_simulator_builds() {
        for kind in LetterKind::ALL {
            let d = doc(kind);
            let (transport, body) = if kind.goes_to_practice() {
                (Transport::Mesh, itk3::message_bundle(&d))
            } else {
                (
                    Transport::Http,
                    itk3::paper_request(&d, &itk3::PaperRecipient::Patient),
                )
            };
            let facts = parse_letter(transport, &serde_json::to_vec(&body).unwrap()).unwrap();
            assert_eq!(facts.kind, Some(kind));
            assert_eq!(facts.itk3_event.as_deref(), kind.itk3_event());
            assert_eq!(facts.nhs_number, Some(d.nhs_number));
            // The simulator's letters are conformant and final: no finding of issue 11.
            assert_eq!(facts.nonconformance, vec![]);
            assert_eq!(facts.status.as_deref(), Some("final"));
            assert!(facts.clinical_at.is_some());
            if kind.goes_to_practice() {
                assert_eq!(facts.recipient_ods.as_deref(), Some("A81001"));
            }
        }
    }

    /// A letter as the specifications let an EHR write it, not as the simulator does.
    fn message_json(kind: LetterKind, edit: impl Fn(&mut Value)) -> Vec<u8> {
        let mut v = itk3::message_bundle(&doc(kind));
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    }

    /// The resource of type `t` in the document nested in message `v`.
    fn in_document<'a>(v: &'a mut Value, t: &str) -> &'a mut Value {
        let entries = document_entries(v);
        let e = entries
            .iter_mut()
            .find(|e| e["resource"]["resourceType"] == t);
        &mut e.unwrap()["resource"]
    }

    fn document_entries(v: &mut Value) -> &mut Vec<Value> {
        let message = v["entry"].as_array_mut().unwrap();
        let doc = message
            .iter_mut()
            .find(|e| e["resource"]["type"] == "document");
        doc.unwrap()["resource"]["entry"].as_array_mut().unwrap()
    }

    #[test]
    fn a_death_is_read_from_the_discharge_method_the_destination_or_patient_deceased() {
        let kind = |body: &[u8]| parse_letter(Transport::Mesh, body).unwrap().kind;
        let method = message_json(LetterKind::DischargeSummary, |v| {
            in_document(v, "Encounter")["hospitalization"] = serde_json::json!({"extension": [{
                "url": "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-DischargeMethod-1",
                "valueCodeableConcept": {"coding": [{"code": "4", "display": "Patient died"}]}}]});
        });
        let destination = message_json(LetterKind::DischargeSummary, |v| {
            in_document(v, "Encounter")["hospitalization"] =
                serde_json::json!({"dischargeDisposition": {"coding": [{"code": "79"}]}});
        });
        // A death notification with no discharge Encounter at all.
        let deceased = message_json(LetterKind::DischargeSummary, |v| {
            in_document(v, "Patient")["deceasedDateTime"] = "2025-01-06T09:00:00Z".into();
            document_entries(v).retain(|e| e["resource"]["resourceType"] != "Encounter");
        });
        for body in [&method, &destination, &deceased] {
            assert_eq!(kind(body), Some(LetterKind::DeathNotification));
        }
        let alive = message_json(LetterKind::DischargeSummary, |_| {});
        assert_eq!(kind(&alive), Some(LetterKind::DischargeSummary));
    }

    #[test]
    fn each_discharge_is_read_by_its_event_and_the_outpatient_letter_by_its_document_type() {
        let kind = |body: &[u8]| parse_letter(Transport::Mesh, body).unwrap().kind;
        let with_event = |code: &'static str| {
            message_json(LetterKind::DischargeSummary, move |v| {
                v["entry"][0]["resource"]["event"]["code"] = code.into();
            })
        };
        assert_eq!(
            kind(&with_event("ITK004D")),
            Some(LetterKind::MentalHealthDischarge)
        );
        assert_eq!(
            kind(&with_event("ITK005D")),
            Some(LetterKind::EmergencyDischarge)
        );
        let opl = message_json(LetterKind::ClinicLetter, |v| {
            let comp = in_document(v, "Composition");
            comp["type"]["coding"][0]["code"] = "823681000000100".into();
        });
        assert_eq!(kind(&opl), Some(LetterKind::ClinicLetter));
    }

    #[test]
    fn the_digest_ignores_fresh_uuids_but_not_content() {
        let a = parse_letter(
            Transport::Mesh,
            &serde_json::to_vec(&itk3::message_bundle(&doc(LetterKind::ClinicLetter))).unwrap(),
        )
        .unwrap();
        let b = parse_letter(
            Transport::Mesh,
            &serde_json::to_vec(&itk3::message_bundle(&doc(LetterKind::ClinicLetter))).unwrap(),
        )
        .unwrap();
        assert_eq!(a.digest, b.digest);
        let mut changed = doc(LetterKind::ClinicLetter);
        changed.sections.pop();
        let c = parse_letter(
            Transport::Mesh,
            &serde_json::to_vec(&itk3::message_bundle(&changed)).unwrap(),
        )
        .unwrap();
        assert_ne!(a.digest, c.digest);
    }

    #[test]
    fn reads_the_content_again_from_the_body() {
        let d = doc(LetterKind::ClinicLetter);
        let mesh = serde_json::to_vec(&itk3::message_bundle(&d)).unwrap();
        let paper =
            serde_json::to_vec(&itk3::paper_request(&d, &itk3::PaperRecipient::Patient)).unwrap();
        for (transport, body) in [(Transport::Mesh, mesh), (Transport::Http, paper)] {
            let c = letter_content(transport, &body).unwrap();
            assert!(c.document_type.unwrap().starts_with(DOC_CLINIC_LETTER.code));
            assert!(c.title.is_some());
            let titles: Vec<&str> = c.sections.iter().map(|(t, _)| t.as_str()).collect();
            let expected: Vec<&str> = d.sections.iter().map(|s| s.0.as_str()).collect();
            assert_eq!(titles, expected);
            assert!(c.sections.iter().all(|(_, text)| !text.contains('<')));
        }
        assert!(letter_content(Transport::Mesh, b"canary").is_err());
    }

    #[test]
    fn an_mdm_message_over_mllp_gives_the_facts_of_the_same_letter_over_mesh() {
        for kind in LetterKind::ALL.into_iter().filter(|k| k.goes_to_practice()) {
            let d = doc(kind);
            let mesh = parse_letter(
                Transport::Mesh,
                &serde_json::to_vec(&itk3::message_bundle(&d)).unwrap(),
            )
            .unwrap();
            let mdm = crate::protocol::hl7::mdm::build(&d, Some("A81001"));
            let mllp = parse_letter(Transport::Mllp, mdm.as_bytes()).unwrap();
            assert_eq!(
                (mllp.kind, mllp.nhs_number, &mllp.recipient_ods),
                (mesh.kind, mesh.nhs_number, &mesh.recipient_ods)
            );
            assert_eq!(mllp.reference.as_deref(), Some("SIM-000001"));
            let content = letter_content(Transport::Mllp, mdm.as_bytes()).unwrap();
            let from_mesh = letter_content(
                Transport::Mesh,
                &serde_json::to_vec(&itk3::message_bundle(&d)).unwrap(),
            )
            .unwrap();
            assert_eq!(
                (content.title, content.sections),
                (from_mesh.title, from_mesh.sections)
            );
        }
    }

    #[test]
    fn a_dropped_file_is_read_by_its_content_bundle_or_mdm() {
        let d = doc(LetterKind::DischargeSummary);
        let bundle = serde_json::to_vec(&itk3::message_bundle(&d)).unwrap();
        let mdm = crate::protocol::hl7::mdm::build(&d, Some("A81001"));
        for body in [bundle, mdm.into_bytes()] {
            let facts = parse_letter(Transport::Folder, &body).unwrap();
            assert_eq!(facts.kind, Some(LetterKind::DischargeSummary));
            assert_eq!(facts.recipient_ods.as_deref(), Some("A81001"));
            assert!(letter_content(Transport::Folder, &body)
                .unwrap()
                .title
                .is_some());
        }
        assert!(parse_letter(Transport::Folder, b"hello").is_err());
        assert!(parse_letter(Transport::Mllp, br#"{"resourceType":"Bundle"}"#).is_err());
    }

    #[test]
    fn a_pdf_is_kept_but_said_to_be_unreadable() {
        let e = parse_letter(Transport::Http, b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a PDF document"), "{e}");
        let e = parse_letter(Transport::Http, b"<html><body>hello</body></html>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("XML but cannot be read as FHIR"), "{e}");
    }

    #[test]
    fn refuses_bodies_that_are_not_letters() {
        assert!(parse_letter(Transport::Mesh, b"canary").is_err());
        assert!(parse_letter(Transport::Mesh, br#"{"resourceType":"Patient"}"#).is_err());
    }
}
