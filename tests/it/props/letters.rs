//! The letter readers (ITK3 message bundles and print requests in FHIR JSON, FHIR XML, MDM
//! in a dropped file) on letters built by the simulator's builders and by the stand-in EHR,
//! mutated: a read is a letter or an error, never a panic. A letter the simulator builds
//! reads back as what it was built from.

use super::mutate::{mutated, Case};
use lettergate::protocol::clock::Timestamp;
use lettergate::protocol::fhir::xml;
use lettergate::protocol::ids::NhsNumber;
use lettergate::protocol::itk3::{self, LetterDoc, PaperRecipient};
use lettergate::protocol::letter::{KindTable, LetterKind, Transport};
use lettergate::protocol::read::{classify, explain_letter, letter_content, parse_letter};
use proptest::prelude::*;

const TRANSPORTS: [Transport; 4] = [
    Transport::Mesh,
    Transport::Http,
    Transport::Mllp,
    Transport::Folder,
];

/// A letter as the simulator writes one, with the given fields.
#[allow(clippy::too_many_arguments)]
pub fn doc(
    kind: LetterKind,
    serial: u32,
    ods: &str,
    name: &str,
    local_id: &str,
    visit_id: Option<String>,
    at: i64,
    sections: Vec<(String, String)>,
) -> LetterDoc {
    LetterDoc {
        kind,
        local_id: local_id.to_string(),
        visit_id,
        nhs_number: NhsNumber::synthetic(serial)
            .or_else(|| NhsNumber::synthetic(1))
            .unwrap(),
        patient_name: name.to_string(),
        born: "1950-01-01".into(),
        practice: kind
            .goes_to_practice()
            .then(|| (ods.to_string(), "Riverside Surgery".into())),
        trust_ods: "RXX".into(),
        trust_name: "Example Hospitals NHS Trust".into(),
        sender_mailbox: "RXXHC001".into(),
        event_at: Timestamp(at),
        written_at: Timestamp(at + 3600),
        sent_at: Timestamp(at + 4500),
        sections,
    }
}

/// Letters with random fields: every kind, NHS numbers, ODS codes, names and section text
/// of any characters, visits or none, times from 1970 to 9999.
pub fn docs() -> impl Strategy<Value = LetterDoc> {
    (
        0..LetterKind::ALL.len(),
        0u32..1_000_000,
        "[A-Z][0-9]{5}",
        any::<String>(),
        "[A-Za-z0-9-]{1,20}",
        proptest::option::of("[A-Za-z0-9-]{1,20}"),
        0i64..253_402_300_000 - 10_000,
        prop::collection::vec((any::<String>(), any::<String>()), 0..4),
    )
        .prop_map(|(k, serial, ods, name, local, visit, at, sections)| {
            doc(
                LetterKind::ALL[k],
                serial,
                &ods,
                &name,
                &local,
                visit,
                at,
                sections,
            )
        })
}

/// The bytes the simulator sends for `doc`: an ITK3 message bundle to a practice, a print
/// request for the patient's copy.
pub fn simulator_body(doc: &LetterDoc) -> (Transport, Vec<u8>) {
    if doc.kind.goes_to_practice() {
        (
            Transport::Mesh,
            serde_json::to_vec_pretty(&itk3::message_bundle(doc)).unwrap(),
        )
    } else {
        (
            Transport::Http,
            serde_json::to_vec_pretty(&itk3::paper_request(doc, &PaperRecipient::Patient)).unwrap(),
        )
    }
}

/// Seeds: the stand-in's letters (JSON and FHIR XML, every structural variant), the
/// simulator's letters of every kind (and an MDM message for the folder).
pub fn letter_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = super::seeds("letter");
    for kind in LetterKind::ALL {
        let d = doc(
            kind,
            1,
            "A81001",
            "Alice Example",
            "SIM-000001",
            Some("V-1".into()),
            1_736_154_000,
            itk3::default_sections(kind),
        );
        out.push((format!("simulator {kind:?}"), simulator_body(&d).1));
    }
    out
}

/// Every reader of a body, on every transport: none may panic.
pub fn read_every_way(body: &[u8]) {
    for t in TRANSPORTS {
        if let Ok(facts) = parse_letter(t, body) {
            assert_eq!(facts.digest.len(), 16, "{facts:?}");
            let _ = classify(&facts, KindTable::standard());
        }
        let _ = letter_content(t, body);
        let _ = explain_letter(t, body);
    }
    let _ = itk3::read_ack(body);
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = xml::to_json(text);
    }
}

fn reads(case: &Case) -> Result<(), TestCaseError> {
    read_every_way(&case.bytes);
    Ok(())
}

proptest! {
    #![proptest_config(super::config(128))]

    /// Issue 13, point 7: mutated ITK3 letters (JSON and XML, the stand-in's and the
    /// simulator's) are read as a letter or an error on every transport, never a panic.
    #[test]
    fn mutated_letters_are_read_or_refused(case in mutated(letter_seeds())) {
        reads(&case)?;
    }

    /// Any bytes at all.
    #[test]
    fn arbitrary_bytes_are_read_or_refused(body in prop::collection::vec(any::<u8>(), 0..512)) {
        read_every_way(&body);
    }

    /// What the simulator builds reads back: its kind, patient, recipient, visit and (for a
    /// print request) the sender's reference, and the sections as written.
    #[test]
    fn a_letter_the_simulator_builds_reads_back(d in docs()) {
        let (transport, body) = simulator_body(&d);
        let facts = parse_letter(transport, &body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(facts.kind, Some(d.kind));
        prop_assert_eq!(facts.nhs_number, Some(d.nhs_number));
        prop_assert_eq!(facts.visit_id.as_deref(), d.visit_id.as_deref());
        if let Some((ods, _)) = &d.practice {
            prop_assert_eq!(facts.recipient_ods.as_deref(), Some(ods.as_str()));
        } else {
            prop_assert!(facts.to_patient);
            prop_assert_eq!(facts.reference.as_deref(), Some(d.local_id.as_str()));
        }
        let content = letter_content(transport, &body).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(content.sections, d.sections.clone());
    }
}
