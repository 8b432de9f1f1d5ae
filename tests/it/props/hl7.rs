//! The HL7 v2 readers (messages, MDM^T02 documents, ADT events, timestamps) and the MLLP
//! frame reader, on the messages lettergate builds, mutated: never a panic, and what is
//! built or framed reads back.

use super::letters::docs;
use super::mutate::mutated;
use lettergate::protocol::clock::Timestamp;
use lettergate::protocol::hl7::message::{escape, unescape, Message};
use lettergate::protocol::hl7::{adt, mdm, mllp, parse_ts};
use lettergate::protocol::ids::{NhsNumber, OdsCode};
use lettergate::protocol::letter::EventKind;
use lettergate::PatientRecord;
use proptest::prelude::*;
use tokio::io::BufReader;

fn alice() -> PatientRecord {
    PatientRecord {
        nhs_number: NhsNumber::parse("9990000018").unwrap(),
        name: "Alice Example".into(),
        born: "1950-01-01".into(),
        practice: Some(OdsCode::parse("A81001").unwrap()),
        named_gp: None,
    }
}

/// An MDM^T02 of every kind of letter and an ADT message of every event that has one, as
/// lettergate builds them, and the committed seeds of `fuzz/seeds/hl7/`.
pub fn hl7_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = super::seeds("hl7");
    for kind in lettergate::protocol::letter::LetterKind::ALL {
        let d = super::letters::doc(
            kind,
            1,
            "A81001",
            "Alice Example",
            "SIM-000001",
            Some("V-1".into()),
            1_736_154_000,
            lettergate::protocol::itk3::default_sections(kind),
        );
        out.push((
            format!("mdm {kind:?}"),
            mdm::build(&d, Some("A81001")).into_bytes(),
        ));
    }
    for event in EventKind::ALL {
        if let Some(m) = adt::build(event, &alice(), Timestamp(1_736_154_000), "C1", Some("V-1")) {
            out.push((format!("adt {event:?}"), m.into_bytes()));
        }
    }
    out
}

/// Every HL7 reader on `text`: none may panic.
pub fn read_hl7_every_way(text: &str) {
    if let Ok(m) = Message::parse(text) {
        for name in m.segment_names() {
            for f in 0..12 {
                for c in 0..4 {
                    let _ = m.text(name, f, c);
                }
            }
        }
    }
    let _ = mdm::read(text);
    let _ = adt::read(text);
    let _ = parse_ts(text);
    for field in text.split(['|', '^']) {
        let _ = parse_ts(field);
        let _ = unescape(field);
    }
    let _ = mllp::ack(text, "AA", Some(text), Timestamp(0));
}

/// All the frames in `bytes`, as the MLLP capture reads them, until the end or an error.
fn frames(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut reader = BufReader::new(bytes);
        let mut out = Vec::new();
        loop {
            match mllp::read_frame(&mut reader).await {
                Ok(Some(f)) => out.push(f),
                Ok(None) => return Ok(out),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
}

proptest! {
    #![proptest_config(super::config(128))]

    /// Issue 13, point 7: mutated MDM and ADT messages are read or refused, never a panic.
    #[test]
    fn mutated_hl7_messages_are_read_or_refused(case in mutated(hl7_seeds())) {
        read_hl7_every_way(&case.text());
    }

    /// An MDM^T02 lettergate builds reads back as the letter it was built from.
    #[test]
    fn an_mdm_message_reads_back(d in docs()) {
        let text = mdm::build(&d, d.practice.as_ref().map(|(ods, _)| ods.as_str()));
        let (facts, content) = mdm::read(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(facts.kind, Some(d.kind));
        prop_assert_eq!(facts.nhs_number, Some(d.nhs_number));
        prop_assert_eq!(facts.visit_id.as_deref(), d.visit_id.as_deref());
        prop_assert_eq!(facts.document_id.as_deref(), Some(d.local_id.as_str()));
        let lines = |s: &str| s.replace("\r\n", "\n").replace('\r', "\n");
        let expected: Vec<(String, String)> =
            d.sections.iter().map(|(t, x)| (lines(t), lines(x))).collect();
        prop_assert_eq!(content.sections, expected);
    }

    /// Escaped text unescapes to itself (line breaks as `\n`).
    #[test]
    fn escaped_text_unescapes_to_itself(s in any::<String>()) {
        prop_assert_eq!(unescape(&escape(&s)), s.replace("\r\n", "\n").replace('\r', "\n"));
        prop_assert!(!escape(&s).contains(['|', '^', '~', '&', '\r', '\n']));
    }

    /// An HL7 timestamp lettergate writes reads back, from 1970 to 9999.
    #[test]
    fn an_hl7_timestamp_reads_back(t in 0i64..253_402_300_799) {
        prop_assert_eq!(parse_ts(&lettergate::protocol::hl7::ts(Timestamp(t))).ok(), Some(Timestamp(t)));
    }

    /// Any bytes on an MLLP connection: frames or an error, never a panic or a hang.
    #[test]
    fn arbitrary_bytes_on_an_mllp_connection_are_framed_or_refused(
        case in mutated(hl7_seeds().into_iter().map(|(n, b)| (n, mllp::frame(&String::from_utf8_lossy(&b)))).collect()),
    ) {
        let _ = frames(&case.bytes);
    }

    /// Messages framed one after another, with stray line breaks between frames, read back
    /// one by one.
    #[test]
    fn framed_messages_read_back(messages in prop::collection::vec("[^\u{1c}\u{0b}]{0,200}", 1..5)) {
        let mut wire = Vec::new();
        for m in &messages {
            wire.extend(mllp::frame(m));
            wire.extend(b"\r\n");
        }
        let back = frames(&wire).map_err(TestCaseError::fail)?;
        let back: Vec<String> = back.into_iter().map(|f| String::from_utf8(f).unwrap()).collect();
        prop_assert_eq!(back, messages);
    }
}

/// Writes the simulator's letters (ITK3 JSON, print requests, MDM^T02) and ADT messages into
/// `fuzz/seeds/`, as seeds of the fuzz targets: `cargo test --test it
/// props::hl7::write_simulator_seeds -- --ignored`, when the builders change.
#[test]
#[ignore = "writes fuzz/seeds/; run by hand when the simulator's builders change"]
fn write_simulator_seeds() {
    for (name, body) in super::letters::letter_seeds() {
        if let Some(kind) = name.strip_prefix("simulator ") {
            let ext = if body.starts_with(b"{") {
                "json"
            } else {
                "txt"
            };
            let path = super::seed_dir("letter").join(format!("simulator-{kind}.{ext}"));
            std::fs::write(path, body).unwrap();
        }
    }
    for (name, body) in hl7_seeds() {
        if let Some(what) = name.strip_prefix("mdm ").or(name.strip_prefix("adt ")) {
            let kind = &name[..3];
            let path = super::seed_dir("hl7").join(format!("simulator-{kind}-{what}.hl7"));
            std::fs::write(path, body).unwrap();
        }
    }
}
