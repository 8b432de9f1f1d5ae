//! The HL7 v2 readers: the input is a message (MDM^T02, ADT, ACK, anything). Every field
//! read, as a document, an ADT event and a timestamp, and acknowledged; never a panic.

#![no_main]

use lettergate::protocol::clock::Timestamp;
use lettergate::protocol::hl7::message::{escape, unescape, Message};
use lettergate::protocol::hl7::{adt, mdm, mllp, parse_ts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Message::parse(&text) {
        for name in m.segment_names() {
            for f in 0..12 {
                for c in 0..4 {
                    let _ = m.text(name, f, c);
                }
            }
        }
    }
    let _ = mdm::read(&text);
    let _ = adt::read(&text);
    for field in text.split(['|', '^']) {
        let _ = parse_ts(field);
        let _ = unescape(field);
    }
    assert_eq!(
        unescape(&escape(&text)),
        text.replace("\r\n", "\n").replace('\r', "\n")
    );
    let _ = mllp::ack(&text, "AA", Some(&text), Timestamp(0));
});
