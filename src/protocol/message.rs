//! An ITK3 message bundle read as tolerantly as FHIR allows and reported as strictly as ITK3
//! asks: [`read_message`] finds the header, the document, the patient, the encounter and the
//! recipient however a sender laid them out (nested or flat, `urn:uuid:` or relative
//! references, `receiver` or `destination`), and keeps in a [`Trail`] where each fact was read
//! from and each [`Rule`] the message breaks.
//!
//! Design constraints:
//! - A letter is unreadable only when nothing leads to its document. Everything else a sender
//!   got wrong is a [`Rule`] on the letter's facts, which the checks turn into a
//!   `non-conformant letter` finding: a GP system may be stricter than lettergate, and a trust
//!   must hear about it, but a healthy EHR's letters are still routed and checked.
//! - The kind of a letter is not decided here: [`super::read`] classifies the [`Document`]
//!   this module finds, so the table of kinds stays in one place.

use super::clock::Timestamp;
use super::fhir::bundle::{Bundle, Located, Via};
use super::fhir::xml::{many, one};
use super::ids::NhsNumber;
use super::itk3::{NHS_NUMBER_SYSTEM, ODS_SYSTEM};
use super::letter::Rule;
use serde_json::Value;
use std::collections::BTreeSet;

/// A fact a letter is checked on, as an explanation names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    Header,
    Document,
    Composition,
    DocumentType,
    Status,
    Patient,
    Encounter,
    ClinicalTime,
    Recipient,
    Event,
    MessageId,
}

impl Fact {
    pub fn words(self) -> &'static str {
        match self {
            Fact::Header => "header",
            Fact::Document => "document",
            Fact::Composition => "composition",
            Fact::DocumentType => "document type",
            Fact::Status => "status",
            Fact::Patient => "patient",
            Fact::Encounter => "encounter",
            Fact::ClinicalTime => "clinical time",
            Fact::Recipient => "recipient",
            Fact::Event => "ITK3 event",
            Fact::MessageId => "message id",
        }
    }
}

/// Where one fact of a letter was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced {
    pub fact: Fact,
    pub value: String,
    pub from: String,
}

/// What reading a letter went through: where each fact came from, and the rules it broke.
#[derive(Clone, Debug, Default)]
pub struct Trail {
    pub sources: Vec<Sourced>,
    pub rules: BTreeSet<Rule>,
}

impl Trail {
    pub fn note(&mut self, fact: Fact, value: impl Into<String>, from: impl Into<String>) {
        self.sources.push(Sourced {
            fact,
            value: value.into(),
            from: from.into(),
        });
    }

    fn followed(&mut self, via: Via) {
        if via == Via::ResourceId {
            self.rules.insert(Rule::ReferenceById);
        }
    }
}

/// Why a message bundle holds no letter lettergate can find.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message bundle has no MessageHeader")]
    NoHeader,
    #[error("the MessageHeader's focus does not point at a document")]
    NoFocus,
    #[error("the focus is not a Bundle of type document")]
    NotADocument,
    #[error("the document has no Composition")]
    NoComposition,
}

/// The parts of a letter's document, found and followed.
#[derive(Clone, Debug)]
pub struct Document<'a> {
    /// The document bundle (for the flat layout, the message bundle itself).
    pub bundle: Bundle<'a>,
    pub composition: Located<'a>,
    pub patient: Option<Located<'a>>,
    pub encounter: Option<Located<'a>>,
}

/// What a message says beyond its document: the event, the recipient, its id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    pub event: Option<String>,
    pub recipient_ods: Option<String>,
    pub recipient_mailbox: Option<String>,
    pub message_id: Option<String>,
}

/// Reads a message bundle: its document's parts, its envelope, and the trail.
pub fn read_message(v: &Value) -> Result<(Document<'_>, Envelope, Trail), MessageError> {
    let root = Bundle::root(v);
    let mut t = Trail::default();
    let header = header(&root, &mut t)?;
    let (bundle, composition) = focus(&root, &header, &mut t)?;
    let doc = parts(bundle, composition, &mut t);
    let mut env = Envelope {
        event: event(&header, &mut t),
        message_id: one(&v["identifier"])["value"].as_str().map(str::to_string),
        ..Envelope::default()
    };
    match &env.message_id {
        Some(id) => t.note(Fact::MessageId, id, "Bundle.identifier"),
        None => {
            t.rules.insert(Rule::MessageWithoutIdentifier);
        }
    }
    recipient(&root, &header, &mut env, &mut t);
    Ok((doc, env, t))
}

/// Reads a document bundle that is not inside a message (a print request's `document`).
pub fn read_document<'a>(
    v: &'a Value,
    path: &str,
    t: &mut Trail,
) -> Result<Document<'a>, MessageError> {
    if v["type"] != "document" {
        return Err(MessageError::NotADocument);
    }
    let bundle = Bundle::root(v).at(path);
    let composition = composition(&bundle, t)?;
    Ok(parts(bundle, composition, t))
}

/// The MessageHeader: the first entry, or (breaking FHIR's rule) a later one.
fn header<'a>(root: &Bundle<'a>, t: &mut Trail) -> Result<Located<'a>, MessageError> {
    let header = root
        .first_of("MessageHeader")
        .ok_or(MessageError::NoHeader)?;
    if root.entries().next().map(|e| e.path) != Some(header.path.clone()) {
        t.rules.insert(Rule::HeaderNotFirst);
    }
    if root.entries_without_full_url() > 0 {
        t.rules.insert(Rule::EntryWithoutFullUrl);
    }
    t.note(Fact::Header, "MessageHeader", &header.path);
    Ok(header)
}

/// The document and its Composition: through `MessageHeader.focus`, or, when the focus leads
/// nowhere, the message's one document bundle or one Composition.
fn focus<'a>(
    root: &Bundle<'a>,
    header: &Located<'a>,
    t: &mut Trail,
) -> Result<(Bundle<'a>, Located<'a>), MessageError> {
    let reference = one(&header.resource["focus"]);
    let found = root.resolve(reference, header).map(|(l, via)| {
        t.followed(via);
        let from = format!(
            "MessageHeader.focus `{}` {} → {}",
            reference["reference"].as_str().unwrap_or(""),
            via.words(),
            l.path
        );
        (l, from)
    });
    let found = found.or_else(|| {
        let only = only_document(root)?;
        t.rules.insert(Rule::FocusMissing);
        let from = format!(
            "the message's only {} ({})",
            only.resource_type(),
            only.path
        );
        Some((only, from))
    });
    let Some((target, from)) = found else {
        return Err(MessageError::NoFocus);
    };
    match target.resource_type() {
        "Bundle" if target.resource["type"] == "document" => {
            t.note(Fact::Document, "document Bundle", from);
            let doc = root.nested(&target);
            if doc.entries_without_full_url() > 0 {
                t.rules.insert(Rule::EntryWithoutFullUrl);
            }
            let comp = composition(&doc, t)?;
            Ok((doc, comp))
        }
        "Composition" => {
            t.rules.insert(Rule::FocusNotDocumentBundle);
            t.note(Fact::Document, "the message bundle (flat)", &from);
            t.note(Fact::Composition, "Composition", from);
            Ok((root.clone(), target))
        }
        _ => Err(MessageError::NotADocument),
    }
}

/// The message's one document bundle, or else its one Composition.
fn only_document<'a>(root: &Bundle<'a>) -> Option<Located<'a>> {
    let single = |pred: &dyn Fn(&Located) -> bool| {
        let mut found = root.entries().filter(|e| pred(e));
        let first = found.next()?;
        found.next().is_none().then_some(first)
    };
    single(&|e| e.resource_type() == "Bundle" && e.resource["type"] == "document")
        .or_else(|| single(&|e| e.resource_type() == "Composition"))
}

/// A document bundle's Composition: its first entry, or (breaking FHIR's rule) a later one.
fn composition<'a>(doc: &Bundle<'a>, t: &mut Trail) -> Result<Located<'a>, MessageError> {
    let comp = doc
        .first_of("Composition")
        .ok_or(MessageError::NoComposition)?;
    if doc.entries().next().map(|e| e.path) != Some(comp.path.clone()) {
        t.rules.insert(Rule::CompositionNotFirst);
    }
    t.note(Fact::Composition, "Composition", &comp.path);
    Ok(comp)
}

/// The patient and the encounter the Composition names, and what it says itself.
fn parts<'a>(bundle: Bundle<'a>, composition: Located<'a>, t: &mut Trail) -> Document<'a> {
    let patient = follow(&bundle, &composition, "subject", "Patient", t);
    let encounter = follow(&bundle, &composition, "encounter", "Encounter", t);
    let comp = composition.resource;
    let coding = one(&one(&comp["type"])["coding"]);
    if let Some(code) = coding["code"].as_str() {
        let words = format!("{code} {}", coding["display"].as_str().unwrap_or(""));
        t.note(
            Fact::DocumentType,
            words.trim_end(),
            format!("{}.resource Composition.type.coding", composition.path),
        );
    }
    match comp["status"].as_str() {
        Some(s) => t.note(Fact::Status, s, "Composition.status"),
        None => {
            t.rules.insert(Rule::CompositionWithoutStatus);
        }
    }
    Document {
        bundle,
        composition,
        patient,
        encounter,
    }
}

/// The resource `Composition.{field}` names; when the reference leads nowhere (or is
/// missing), the document's first resource of type `t`, with the rule broken when the
/// Composition named something else.
fn follow<'a>(
    bundle: &Bundle<'a>,
    comp: &Located<'a>,
    field: &str,
    resource_type: &str,
    t: &mut Trail,
) -> Option<Located<'a>> {
    let reference = &comp.resource[field];
    let fact = if resource_type == "Patient" {
        Fact::Patient
    } else {
        Fact::Encounter
    };
    if let Some((l, via)) = bundle
        .resolve(reference, comp)
        .filter(|(l, _)| l.resource_type() == resource_type)
    {
        t.followed(via);
        let from = format!(
            "Composition.{field} `{}` {} → {}",
            reference["reference"].as_str().unwrap_or(""),
            via.words(),
            l.path
        );
        t.sources.push(Sourced {
            fact,
            value: resource_type.into(),
            from,
        });
        return Some(l);
    }
    let first = bundle.first_of(resource_type)?;
    if !reference.is_null() {
        t.rules.insert(Rule::UnresolvedReference);
    }
    let from = format!("the document's first {resource_type} ({})", first.path);
    t.note(fact, resource_type, from);
    Some(first)
}

/// `MessageHeader.event` (STU3 Coding) or `eventCoding` (R4).
fn event(header: &Located, t: &mut Trail) -> Option<String> {
    let h = header.resource;
    let (code, from) = match h["event"]["code"].as_str() {
        Some(c) => (c, "MessageHeader.event.code"),
        None => (
            h["eventCoding"]["code"].as_str()?,
            "MessageHeader.eventCoding.code",
        ),
    };
    t.note(Fact::Event, code, from);
    Some(code.to_string())
}

/// The recipient the message names: `MessageHeader.receiver` (ITK3), or a
/// `destination`'s `receiver` (FHIR R4) or `endpoint` (a mailbox).
fn recipient(root: &Bundle, header: &Located, env: &mut Envelope, t: &mut Trail) {
    let h = header.resource;
    if let Some((ods, from)) = organisation(root, header, &h["receiver"], "receiver", t) {
        t.note(Fact::Recipient, &ods, from);
        env.recipient_ods = Some(ods);
    }
    for (i, d) in many(&h["destination"]).enumerate() {
        t.rules.insert(Rule::DestinationInHeader);
        let field = format!("destination[{i}].receiver");
        if let Some((ods, from)) = organisation(root, header, &d["receiver"], &field, t) {
            t.note(Fact::Recipient, &ods, from);
            env.recipient_ods.get_or_insert(ods);
        }
        if let Some(endpoint) = d["endpoint"].as_str().filter(|e| !e.is_empty()) {
            let mailbox = mailbox_of(endpoint);
            let from = format!("MessageHeader.destination[{i}].endpoint `{endpoint}` (a mailbox)");
            t.note(Fact::Recipient, mailbox, from);
            env.recipient_mailbox
                .get_or_insert_with(|| mailbox.to_string());
        }
    }
}

/// The ODS code of the organisation a header reference names: the referenced resource's
/// identifier, or the reference's own `identifier`.
fn organisation(
    root: &Bundle,
    header: &Located,
    reference: &Value,
    field: &str,
    t: &mut Trail,
) -> Option<(String, String)> {
    if reference.is_null() {
        return None;
    }
    if let Some(ods) = identifier(reference, ODS_SYSTEM) {
        let from = format!("MessageHeader.{field}.identifier ({ODS_SYSTEM})");
        return Some((ods, from));
    }
    let (org, via) = root.resolve(reference, header)?;
    t.followed(via);
    let ods = identifier(org.resource, ODS_SYSTEM)?;
    let from = format!(
        "MessageHeader.{field} `{}` {} → {} identifier ({ODS_SYSTEM})",
        reference["reference"].as_str().unwrap_or(""),
        via.words(),
        org.path
    );
    Some((ods, from))
}

/// The mailbox an endpoint names: the endpoint itself, or the last part of a URL or URN.
fn mailbox_of(endpoint: &str) -> &str {
    endpoint
        .rsplit(['/', ':'])
        .find(|p| !p.is_empty())
        .unwrap_or(endpoint)
}

/// The value of a resource's identifier of `system`.
pub fn identifier(resource: &Value, system: &str) -> Option<String> {
    many(&resource["identifier"])
        .find(|i| i["system"] == system)
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

/// The patient's NHS number, noted with where it was read.
pub fn nhs_number(doc: &Document, t: &mut Trail) -> Option<NhsNumber> {
    let p = doc.patient.as_ref()?;
    let n = NhsNumber::parse(&identifier(p.resource, NHS_NUMBER_SYSTEM)?).ok()?;
    let from = format!("{} Patient.identifier ({NHS_NUMBER_SYSTEM})", p.path);
    t.note(Fact::Patient, n.to_string(), from);
    Some(n)
}

/// When the clinical event happened: the Encounter's period (its end, else its start), else
/// `Composition.date`.
pub fn clinical_at(doc: &Document, t: &mut Trail) -> Option<Timestamp> {
    let period = doc.encounter.as_ref().map(|e| &e.resource["period"]);
    let candidates = [
        (period.map(|p| &p["end"]), "Encounter.period.end"),
        (period.map(|p| &p["start"]), "Encounter.period.start"),
        (Some(&doc.composition.resource["date"]), "Composition.date"),
    ];
    candidates.into_iter().find_map(|(v, from)| {
        let text = v?.as_str()?;
        let at = Timestamp::parse(text).ok()?;
        t.note(Fact::ClinicalTime, text, from);
        Some(at)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// How a test message is laid out; each field is one way the specifications (or a sender
    /// outside them) vary it.
    #[derive(Clone, Copy)]
    struct Layout {
        refs: Refs,
        recipient: To,
        flat: bool,
        full_urls: bool,
        header_first: bool,
        focus: bool,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum Refs {
        UrnUuid,
        Relative,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum To {
        Receiver,
        DestinationEndpoint,
        DestinationReceiver,
        Nobody,
    }

    const ITK: Layout = Layout {
        refs: Refs::UrnUuid,
        recipient: To::Receiver,
        flat: false,
        full_urls: true,
        header_first: true,
        focus: true,
    };

    const BASE: &str = "https://ehr.example.invalid/fhir/";

    /// (fullUrl, reference) of a resource.
    fn addr(l: &Layout, t: &str, id: &str) -> (String, String) {
        match l.refs {
            Refs::UrnUuid => (format!("urn:uuid:{id}"), format!("urn:uuid:{id}")),
            Refs::Relative => (format!("{BASE}{t}/{id}"), format!("{t}/{id}")),
        }
    }

    fn entry(l: &Layout, resource: Value) -> Value {
        let t = resource["resourceType"].as_str().unwrap().to_string();
        let id = resource["id"].as_str().unwrap().to_string();
        match l.full_urls {
            true => json!({"fullUrl": addr(l, &t, &id).0, "resource": resource}),
            false => json!({"resource": resource}),
        }
    }

    /// An ITK3 Transfer of Care message as the ITK3 Messaging Distribution and the eDischarge
    /// specification lay one out: MessageHeader (event, sender, receiver, source endpoint,
    /// focus) first, sender and receiver Organizations, and the document Bundle (Composition
    /// first, then Patient, Encounter, the GP practice) as the focus.
    fn message(l: Layout) -> Value {
        let r = |t: &str, id: &str| json!({"reference": addr(&l, t, id).1});
        let document = vec![
            entry(
                &l,
                json!({"resourceType": "Composition", "id": "c1", "status": "final",
                "type": {"coding": [{"system": "http://snomed.info/sct", "code": "373942005",
                    "display": "Discharge summary"}]},
                "subject": r("Patient", "p1"), "encounter": r("Encounter", "e1"),
                "date": "2025-03-12T10:00:00Z", "title": "Discharge summary"}),
            ),
            entry(
                &l,
                json!({"resourceType": "Patient", "id": "p1", "identifier": [
                {"system": NHS_NUMBER_SYSTEM, "value": "9990000018"}]}),
            ),
            entry(
                &l,
                json!({"resourceType": "Encounter", "id": "e1", "class": {"code": "IMP"},
                "period": {"start": "2025-03-10T10:00:00Z", "end": "2025-03-12T10:00:00Z"}}),
            ),
            entry(
                &l,
                json!({"resourceType": "Organization", "id": "gp", "identifier": [
                {"system": ODS_SYSTEM, "value": "A81001"}]}),
            ),
        ];
        let mut header = json!({"resourceType": "MessageHeader", "id": "h1",
            "event": {"system": "https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2",
                "code": "ITK003D", "display": "ITK eDischarge"},
            "sender": r("Organization", "trust"),
            "source": {"endpoint": "RXXHC001"}});
        match l.recipient {
            To::Receiver => header["receiver"] = r("Organization", "gp-h"),
            To::DestinationEndpoint => {
                header["destination"] = json!([{"name": "Riverside", "endpoint": "A81001HC001"}])
            }
            To::DestinationReceiver => {
                header["destination"] =
                    json!([{"endpoint": "urn:nhs:mesh", "receiver": r("Organization", "gp-h")}])
            }
            To::Nobody => {}
        }
        let mut entries = vec![];
        if l.flat {
            header["focus"] = json!([r("Composition", "c1")]);
            entries.extend(document);
        } else {
            header["focus"] = json!([r("Bundle", "d1")]);
            entries.push(entry(
                &l,
                json!({"resourceType": "Bundle", "id": "d1",
                "type": "document", "entry": document}),
            ));
        }
        if !l.focus {
            header.as_object_mut().unwrap().remove("focus");
        }
        entries.push(entry(
            &l,
            json!({"resourceType": "Organization", "id": "trust",
            "identifier": [{"system": ODS_SYSTEM, "value": "RXX"}]}),
        ));
        entries.push(entry(
            &l,
            json!({"resourceType": "Organization", "id": "gp-h",
            "identifier": [{"system": ODS_SYSTEM, "value": "A81001"}]}),
        ));
        let header = entry(&l, header);
        if l.header_first {
            entries.insert(0, header);
        } else {
            entries.push(header);
        }
        json!({"resourceType": "Bundle", "id": "m1", "type": "message",
            "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": "m1"},
            "entry": entries})
    }

    /// (NHS number, recipient ODS, recipient mailbox, rules) of a message.
    fn read(v: &Value) -> (Option<String>, Option<String>, Option<String>, Vec<Rule>) {
        let (doc, env, mut t) = read_message(v).unwrap();
        let nhs = nhs_number(&doc, &mut t).map(|n| n.to_string());
        assert!(clinical_at(&doc, &mut t).is_some());
        let rules = t.rules.into_iter().collect();
        (nhs, env.recipient_ods, env.recipient_mailbox, rules)
    }

    fn nhs() -> Option<String> {
        Some("9990000018".into())
    }

    #[test]
    fn an_itk3_message_with_urn_uuid_references_is_read_and_conformant() {
        assert_eq!(
            read(&message(ITK)),
            (nhs(), Some("A81001".into()), None, vec![])
        );
    }

    #[test]
    fn relative_references_against_restful_full_urls_are_read_and_conformant() {
        let l = Layout {
            refs: Refs::Relative,
            ..ITK
        };
        assert_eq!(
            read(&message(l)),
            (nhs(), Some("A81001".into()), None, vec![])
        );
    }

    #[test]
    fn a_destination_endpoint_gives_the_mailbox_and_breaks_the_itk3_header_rule() {
        let l = Layout {
            recipient: To::DestinationEndpoint,
            ..ITK
        };
        assert_eq!(
            read(&message(l)),
            (
                nhs(),
                None,
                Some("A81001HC001".into()),
                vec![Rule::DestinationInHeader]
            )
        );
    }

    #[test]
    fn a_destination_receiver_gives_the_ods_code_and_breaks_the_itk3_header_rule() {
        let l = Layout {
            recipient: To::DestinationReceiver,
            ..ITK
        };
        let (_, ods, mailbox, rules) = read(&message(l));
        assert_eq!(
            (ods.as_deref(), mailbox.as_deref(), rules),
            (
                Some("A81001"),
                Some("mesh"),
                vec![Rule::DestinationInHeader]
            )
        );
    }

    #[test]
    fn a_header_without_receiver_is_conformant_and_names_no_recipient() {
        let l = Layout {
            recipient: To::Nobody,
            ..ITK
        };
        assert_eq!(read(&message(l)), (nhs(), None, None, vec![]));
    }

    #[test]
    fn a_flat_message_focused_on_its_composition_is_read_and_said_to_be_flat() {
        let l = Layout { flat: true, ..ITK };
        assert_eq!(
            read(&message(l)),
            (
                nhs(),
                Some("A81001".into()),
                None,
                vec![Rule::FocusNotDocumentBundle]
            )
        );
    }

    #[test]
    fn entries_without_full_url_are_read_by_resource_id_and_both_rules_named() {
        let l = Layout {
            full_urls: false,
            ..ITK
        };
        assert_eq!(
            read(&message(l)),
            (
                nhs(),
                Some("A81001".into()),
                None,
                vec![Rule::EntryWithoutFullUrl, Rule::ReferenceById]
            )
        );
    }

    #[test]
    fn a_header_that_is_not_the_first_entry_is_found_and_the_rule_named() {
        let l = Layout {
            header_first: false,
            ..ITK
        };
        assert_eq!(read(&message(l)).3, vec![Rule::HeaderNotFirst]);
    }

    #[test]
    fn without_focus_the_messages_only_document_is_taken() {
        let l = Layout {
            focus: false,
            ..ITK
        };
        assert_eq!(
            read(&message(l)),
            (nhs(), Some("A81001".into()), None, vec![Rule::FocusMissing])
        );
        let flat = Layout {
            focus: false,
            flat: true,
            ..ITK
        };
        assert_eq!(
            read(&message(flat)).3,
            vec![Rule::FocusMissing, Rule::FocusNotDocumentBundle]
        );
    }

    #[test]
    fn a_patient_contained_in_the_composition_is_read() {
        let mut v = message(ITK);
        let comp = &mut v["entry"][1]["resource"]["entry"][0]["resource"];
        comp["contained"] = json!([{"resourceType": "Patient", "id": "pat", "identifier": [
            {"system": NHS_NUMBER_SYSTEM, "value": "9990000026"}]}]);
        comp["subject"] = json!({"reference": "#pat"});
        assert_eq!(read(&v).0.as_deref(), Some("9990000026"));
    }

    #[test]
    fn a_subject_that_leads_nowhere_falls_back_to_the_documents_patient_and_is_named() {
        let mut v = message(ITK);
        v["entry"][1]["resource"]["entry"][0]["resource"]["subject"] =
            json!({"reference": "urn:uuid:nobody"});
        assert_eq!(read(&v).0, nhs());
        assert_eq!(read(&v).3, vec![Rule::UnresolvedReference]);
    }

    #[test]
    fn a_message_whose_focus_and_contents_hold_no_document_is_unreadable() {
        let v = json!({"resourceType": "Bundle", "type": "message", "entry": [
            {"fullUrl": "urn:uuid:h", "resource": {"resourceType": "MessageHeader", "id": "h"}}]});
        assert_eq!(read_message(&v).unwrap_err(), MessageError::NoFocus);
        let v = json!({"resourceType": "Bundle", "type": "message", "entry": []});
        assert_eq!(read_message(&v).unwrap_err(), MessageError::NoHeader);
    }

    #[test]
    fn every_fact_is_noted_with_where_it_was_read() {
        let v = message(ITK);
        let (doc, _, mut t) = read_message(&v).unwrap();
        nhs_number(&doc, &mut t);
        clinical_at(&doc, &mut t);
        let from = |f: Fact| {
            t.sources
                .iter()
                .filter(|s| s.fact == f)
                .map(|s| s.from.clone())
                .collect::<Vec<_>>()
                .join(" | ")
        };
        assert_eq!(
            from(Fact::Document),
            "MessageHeader.focus `urn:uuid:d1` by fullUrl → Bundle.entry[1]"
        );
        assert!(from(Fact::Recipient)
            .starts_with("MessageHeader.receiver `urn:uuid:gp-h` by fullUrl → Bundle.entry[3]"));
        assert!(from(Fact::Patient).contains("Bundle.entry[1].resource.entry[1]"));
        assert_eq!(from(Fact::ClinicalTime), "Encounter.period.end");
        assert_eq!(from(Fact::Event), "MessageHeader.event.code");
    }
}
