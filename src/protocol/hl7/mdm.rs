//! Letters as HL7 v2.4 document messages, `MDM^T02` (original document notification and
//! content): [`build`] writes one from the simulator's [`LetterDoc`], [`read`] turns a received
//! one into the same [`LetterFacts`] and [`LetterContent`] a captured ITK3 bundle gives.
//!
//! Segments: MSH, EVN, PID, PV1, TXA, then one OBX of type TX for the title and one per
//! section, text escaped. Where lettergate puts what:
//!
//! | what | where |
//! |---|---|
//! | recipient practice ODS code | MSH-6 receiving facility (empty for the patient's copy) |
//! | sending trust | MSH-4 sending facility, TXA-12.2 |
//! | the sender's local id | MSH-10 control id and TXA-12 unique document number |
//! | kind of letter | TXA-2 document type, table below |
//! | patient | PID-3 NHS number `^^^NHS^NH`, PID-5 family^given, PID-7 birth date |
//! | encounter class | PV1-2: `O` outpatient, `I` inpatient, `E` emergency |
//! | clinical event, written | TXA-4 activity date/time, TXA-6 origination date/time |
//! | status | TXA-17 `AU` authenticated, TXA-19 `AV` available |
//! | title | `OBX|1|TX|TITLE^Document title^L||<title>` |
//! | each section | `OBX|n|TX|SECTION^<section title>^L||<text>` |
//!
//! TXA-2 codes: HL7 table 0270 (user-defined, "suggested values") where one fits, local codes
//! where none does (hl7apy reports those as warnings only):
//!
//! | kind | TXA-2 | |
//! |---|---|---|
//! | `clinic_letter` | `CN` | Consultation (table 0270) |
//! | `discharge_summary` | `DS` | Discharge summary (table 0270) |
//! | `emergency_discharge` | `ED` | Emergency department report (table 0270) |
//! | `death_notification` | `DN` | local: notification of death in hospital |
//! | `patient_copy` | `CP` | local: the patient's copy of a clinic letter |

use super::message::{component_of, escape, unescape, Message};
use super::segments::pv1;
use super::{date, ts, Hl7ReadError};
use crate::protocol::itk3::{self, LetterDoc};
use crate::protocol::letter::LetterKind;
use crate::protocol::letter::{LetterContent, LetterFacts};
use crate::protocol::normalize::normalize;
use sha2::{Digest, Sha256};

/// TXA-2 for a kind, and its words.
pub fn document_type(kind: LetterKind) -> (&'static str, &'static str) {
    match kind {
        LetterKind::ClinicLetter => ("CN", "Consultation"),
        LetterKind::DischargeSummary => ("DS", "Discharge summary"),
        LetterKind::EmergencyDischarge => ("ED", "Emergency department report"),
        LetterKind::DeathNotification => ("DN", "Notification of death in hospital"),
        // lettergate's own TXA-2 code, as for the other kinds (HL7 table 0270 is user-defined).
        LetterKind::MentalHealthDischarge => ("MH", "Mental health discharge summary"),
        LetterKind::PatientCopy => ("CP", "Patient copy of a clinic letter"),
    }
}

fn kind_of(code: &str) -> Option<LetterKind> {
    LetterKind::ALL
        .into_iter()
        .find(|k| document_type(*k).0 == code)
}

fn class(kind: LetterKind) -> &'static str {
    match kind {
        LetterKind::ClinicLetter | LetterKind::PatientCopy => "O",
        LetterKind::EmergencyDischarge => "E",
        LetterKind::DischargeSummary
        | LetterKind::DeathNotification
        | LetterKind::MentalHealthDischarge => "I",
    }
}

/// The MDM^T02 for a letter to `recipient_ods` (`None`: the patient's copy). MSH-10 is the
/// letter's local id, so a resent letter carries the same control id. Segments end in CR.
pub fn build(doc: &LetterDoc, recipient_ods: Option<&str>) -> String {
    let (code, _) = document_type(doc.kind);
    let (given, family) = super::segments::split_name(&doc.patient_name);
    let id = escape(&doc.local_id);
    let trust = escape(&doc.trust_ods);
    let mut segments = vec![
        format!(
            "MSH|^~\\&|EHR|{trust}|GP|{}|{}||MDM^T02^MDM_T02|{id}|P|2.4|||AL|NE",
            escape(recipient_ods.unwrap_or("")),
            ts(doc.sent_at)
        ),
        format!("EVN|T02|{}", ts(doc.sent_at)),
        format!(
            "PID|1||{}^^^NHS^NH||{}^{}||{}",
            doc.nhs_number,
            escape(&family),
            escape(&given),
            date(&doc.born)
        ),
        pv1(class(doc.kind), doc.visit_id.as_deref()),
        format!(
            "TXA|1|{code}|TX|{}|^CONSULTANT^ADA^^^DR|{}||||||{id}^{trust}|||||AU||AV",
            ts(doc.event_at),
            ts(doc.written_at)
        ),
        format!(
            "OBX|1|TX|TITLE^Document title^L||{}||||||F",
            escape(itk3::title(doc.kind))
        ),
    ];
    for (i, (title, text)) in doc.sections.iter().enumerate() {
        segments.push(format!(
            "OBX|{}|TX|SECTION^{}^L||{}||||||F",
            i + 2,
            escape(title),
            escape(text)
        ));
    }
    segments.join("\r") + "\r"
}

/// Reads a document message: its facts (kind from TXA-2, NHS number from PID-3, recipient
/// from MSH-6, document id and reference from TXA-12, message id from MSH-10, a digest of
/// everything after MSH and EVN) and its content. Errors say what is missing.
pub fn read(text: &str) -> Result<(LetterFacts, LetterContent), Hl7ReadError> {
    let m = Message::parse(text)?;
    match (m.get("MSH", 9, 1), m.get("MSH", 9, 2)) {
        (Some("MDM"), Some("T02")) => {}
        (t, e) => {
            let got = format!("{}^{}", t.unwrap_or(""), e.unwrap_or(""));
            return Err(Hl7ReadError::NotMdm(got));
        }
    }
    if m.segment("TXA").is_none() {
        return Err(Hl7ReadError::NoTxa);
    }
    let nhs_number = super::segments::nhs_number(&m)?;
    let code = m
        .get("TXA", 2, 1)
        .ok_or(Hl7ReadError::EmptyField("TXA-2 (document type)"))?;
    let kind = kind_of(code);
    let document_id = m
        .text("TXA", 12, 1)
        .ok_or(Hl7ReadError::EmptyField("TXA-12 (unique document number)"))?;
    let to_patient = kind == Some(LetterKind::PatientCopy);
    // Everything that is the document: not the envelope (MSH, EVN) with its send time.
    let canonical: Vec<String> = segments_after_envelope(text);
    // The EHR's own ids (its document number, its visit number) are not content.
    let own: Vec<String> = [Some(document_id.clone()), m.text("PV1", 19, 1)]
        .into_iter()
        .flatten()
        .collect();
    let canonical = crate::protocol::normalize::mask_ids_in_text(&canonical.join("\n"), &own);
    let digest = hex::encode(Sha256::digest(normalize(&canonical).as_bytes()));
    let facts = LetterFacts {
        kind,
        itk3_event: None,
        nhs_number: Some(nhs_number),
        recipient_ods: if to_patient {
            None
        } else {
            m.text("MSH", 6, 1)
        },
        to_patient,
        document_id: Some(document_id.clone()),
        digest: digest[..16].to_string(),
        message_id: m.text("MSH", 10, 1),
        reference: Some(document_id),
        visit_id: m.text("PV1", 19, 1),
        // TXA-2, so that a target's own letter rows can name a local document type.
        signals: crate::protocol::letter::KindSignals {
            document_type: Some(code.to_string()),
            ..Default::default()
        },
        status: None,
        date: None,
        dates: crate::protocol::dates::StatedDates::of_txa(
            m.get("TXA", 4, 1).and_then(|t| super::parse_ts(t).ok()),
            m.get("TXA", 6, 1).and_then(|t| super::parse_ts(t).ok()),
        ),
        ..Default::default()
    };
    let document_type = match kind {
        Some(k) => format!("{code} {}", document_type(k).1),
        None => code.to_string(),
    };
    Ok((facts, content(&m, document_type)))
}

/// The title and sections of a document message, from its text OBX segments: OBX-3 `TITLE`
/// holds the title, any other OBX-3 names a section.
fn content(m: &Message, document_type: String) -> LetterContent {
    let mut content = LetterContent {
        document_type: Some(document_type),
        title: None,
        sections: vec![],
    };
    for obx in m.segments("OBX") {
        if !matches!(component_of(obx, "OBX", 2, 1), Some("TX" | "FT" | "ST")) {
            continue;
        }
        let value = obx.get(5).map(|v| unescape(v)).unwrap_or_default();
        match component_of(obx, "OBX", 3, 1) {
            Some("TITLE") if content.title.is_none() => content.title = Some(value),
            _ => {
                // lettergate writes `SECTION^<title>^L`, where an empty title is no title;
                // other senders' OBX-3 is `code^text^system`, and a bare code names it.
                let title = match component_of(obx, "OBX", 3, 1) {
                    Some("SECTION") => component_of(obx, "OBX", 3, 2),
                    code => component_of(obx, "OBX", 3, 2).or(code),
                }
                .map(unescape)
                .unwrap_or_default();
                content.sections.push((title, value));
            }
        }
    }
    content
}

fn segments_after_envelope(text: &str) -> Vec<String> {
    text.split(['\r', '\n'])
        .map(str::trim_end)
        .filter(|s| !s.is_empty() && !s.starts_with("MSH|") && !s.starts_with("EVN|"))
        .map(str::to_string)
        .collect()
}

/// True when `body` looks like an HL7 v2 message (it starts with `MSH|`, perhaps after an
/// MLLP start block or a byte-order mark).
pub fn looks_like_hl7(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let body = body.strip_prefix(&[super::mllp::START]).unwrap_or(body);
    body.starts_with(b"MSH|")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::clock::Timestamp;
    use crate::protocol::ids::NhsNumber;

    pub(crate) fn doc(kind: LetterKind) -> LetterDoc {
        LetterDoc {
            kind,
            local_id: "SIM-000001".into(),
            visit_id: None,
            nhs_number: NhsNumber::parse("9990000018").unwrap(),
            patient_name: "Alice Example".into(),
            born: "1950-01-01".into(),
            practice: kind
                .goes_to_practice()
                .then(|| ("A81001".into(), "Riverside Surgery".into())),
            trust_ods: "RXX".into(),
            trust_name: "Trust".into(),
            sender_mailbox: "RXXHC001".into(),
            event_at: Timestamp(1_736_154_000),
            written_at: Timestamp(1_736_155_000),
            sent_at: Timestamp(1_736_155_900),
            sections: itk3::default_sections(kind),
        }
    }

    fn recipient(kind: LetterKind) -> Option<&'static str> {
        kind.goes_to_practice().then_some("A81001")
    }

    #[test]
    fn every_kind_round_trips_to_the_facts_and_content_of_its_document() {
        for kind in LetterKind::ALL {
            let d = doc(kind);
            let msg = build(&d, recipient(kind));
            let (facts, content) = read(&msg).unwrap();
            assert_eq!(facts.kind, Some(kind), "{msg}");
            assert_eq!(facts.nhs_number, Some(d.nhs_number));
            assert_eq!(facts.recipient_ods.as_deref(), recipient(kind));
            assert_eq!(facts.to_patient, !kind.goes_to_practice());
            assert_eq!(facts.document_id.as_deref(), Some("SIM-000001"));
            assert_eq!(facts.reference.as_deref(), Some("SIM-000001"));
            assert_eq!(facts.message_id.as_deref(), Some("SIM-000001"));
            assert_eq!(facts.itk3_event, None);
            assert_eq!(content.title.as_deref(), Some(itk3::title(kind)));
            assert_eq!(content.sections, d.sections);
            assert!(content
                .document_type
                .unwrap()
                .starts_with(document_type(kind).0));
        }
    }

    #[test]
    fn delimiters_in_the_text_are_escaped_and_read_back() {
        let mut d = doc(LetterKind::ClinicLetter);
        d.sections = vec![(
            "Plan | next^steps".into(),
            "A & B ~ C \\ D\nline two".into(),
        )];
        let msg = build(&d, Some("A81001"));
        assert_eq!(
            msg.matches('\r').count(),
            7,
            "one segment per line: {msg:?}"
        );
        assert_eq!(read(&msg).unwrap().1.sections, d.sections);
    }

    /// Found by the property tests of issue 13 (`props::hl7::an_mdm_message_reads_back`): a
    /// section without a title was read back titled `SECTION`, the code of its OBX-3.
    #[test]
    fn a_section_without_a_title_reads_back_without_one() {
        let mut d = doc(LetterKind::ClinicLetter);
        d.sections = vec![
            (String::new(), "text".into()),
            ("Plan".into(), String::new()),
        ];
        assert_eq!(
            read(&build(&d, Some("A81001"))).unwrap().1.sections,
            d.sections
        );
    }

    #[test]
    fn the_digest_ignores_the_send_time_but_not_the_content() {
        let a = doc(LetterKind::DischargeSummary);
        let mut later = a.clone();
        later.sent_at = Timestamp(a.sent_at.0 + 3600);
        let digest = |d: &LetterDoc| read(&build(d, Some("A81001"))).unwrap().0.digest;
        assert_eq!(digest(&a), digest(&later));
        let mut cut = a.clone();
        cut.sections.retain(|(t, _)| t != "Medications");
        assert_ne!(digest(&a), digest(&cut));
    }

    #[test]
    fn refuses_messages_that_are_not_documents() {
        let msg = build(&doc(LetterKind::ClinicLetter), Some("A81001"));
        assert!(read(&msg.replace("MDM^T02", "ADT^A04"))
            .unwrap_err()
            .to_string()
            .contains("MDM^T02"));
        assert!(read("canary").is_err());
        let no_txa: Vec<&str> = msg.split('\r').filter(|s| !s.starts_with("TXA")).collect();
        assert!(read(&no_txa.join("\r"))
            .unwrap_err()
            .to_string()
            .contains("TXA"));
    }

    #[test]
    fn an_unknown_document_type_is_read_but_of_no_known_kind() {
        let msg =
            build(&doc(LetterKind::ClinicLetter), Some("A81001")).replace("|CN|TX|", "|HP|TX|");
        let (facts, content) = read(&msg).unwrap();
        assert_eq!(facts.kind, None);
        assert_eq!(content.document_type.as_deref(), Some("HP"));
    }
}
