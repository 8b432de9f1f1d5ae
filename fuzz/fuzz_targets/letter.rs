//! The letter readers: the input is a captured body (ITK3 in FHIR JSON or XML, a print
//! request, an MDM^T02 in a dropped file), read on every transport. A letter or an error;
//! never a panic.

#![no_main]

use lettergate::protocol::fhir::xml;
use lettergate::protocol::itk3;
use lettergate::protocol::letter::{KindTable, Transport};
use lettergate::protocol::read::{classify, explain_letter, letter_content, parse_letter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for t in [
        Transport::Mesh,
        Transport::Http,
        Transport::Mllp,
        Transport::Folder,
    ] {
        if let Ok(facts) = parse_letter(t, data) {
            assert_eq!(facts.digest.len(), 16);
            let _ = classify(&facts, KindTable::standard());
        }
        let _ = letter_content(t, data);
        let _ = explain_letter(t, data);
    }
    let _ = itk3::read_ack(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = xml::to_json(text);
    }
});
