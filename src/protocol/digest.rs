//! The digest of a letter's content: the SHA-256 of its document bundle rendered as pretty
//! JSON (keys in order: canonical), with the EHR's own ids masked ([`super::normalize::mask_ids`])
//! and every normalisation step applied ([`super::normalize::normalize`]).
//!
//! Design constraint: every snapshot holds digests, so this must give exactly the digest of
//! masking a copy, rendering it with `serde_json::to_string_pretty` and normalising the text,
//! which is what it was first written as (and what its tests compare it with). It gives it
//! without the copy, the text or a scan of the whole text per step: the bundle is rendered
//! straight into the hash, ids masked on the way, and each step runs on the string tokens
//! (keys and values) alone, where every match of every step lies: no pattern takes a `"`, and
//! the JSON around strings (`": "`, `,`, brackets, numbers, `true`) matches none of them.

use super::normalize::{masked_id, own_id_numbers, Normalizer};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io;

/// The content digest of `bundle` with `ids` masked: 64 hex digits.
pub fn content_digest(bundle: &Value, ids: &[String]) -> String {
    let numbers = own_id_numbers(ids);
    let mut hash = HashWriter(Sha256::new());
    let formatter = Normalizing {
        pretty: PrettyFormatter::new(),
        normalizer: Normalizer::default(),
        in_string: false,
        string: Vec::with_capacity(256),
    };
    let mut ser = serde_json::Serializer::with_formatter(&mut hash, formatter);
    let root = Masked {
        v: bundle,
        key: "",
        numbers: &numbers,
    };
    // Writing into a hash cannot fail, and a `Value` always serialises.
    let _ = root.serialize(&mut ser);
    hex::encode(hash.0.finalize())
}

/// Feeds what is written into the hash.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A value as [`super::normalize::mask_ids`] would leave it: a string where a bundle keeps
/// ids (under `id`, `fullUrl`, `reference`, or an identifier's `value`) with the ids masked.
struct Masked<'a> {
    v: &'a Value,
    key: &'a str,
    numbers: &'a HashMap<&'a str, usize>,
}

impl Serialize for Masked<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.v {
            Value::String(text)
                if matches!(self.key, "id" | "fullUrl" | "reference" | "identifier") =>
            {
                match masked_id(text, self.numbers) {
                    Some(m) => s.serialize_str(&m),
                    None => s.serialize_str(text),
                }
            }
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(&Masked { v: x, ..*self })?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut map = s.serialize_map(Some(o.len()))?;
                for (k, x) in o {
                    // An identifier's `value` is an id; any other `value` is content.
                    let key = if self.key == "identifier" && k == "value" {
                        "identifier"
                    } else {
                        k.as_str()
                    };
                    map.serialize_entry(
                        k,
                        &Masked {
                            v: x,
                            key,
                            numbers: self.numbers,
                        },
                    )?;
                }
                map.end()
            }
            other => other.serialize(s),
        }
    }
}

/// serde_json's pretty formatter, with each string token's text (as escaped on the wire)
/// normalised before it is written.
struct Normalizing {
    pretty: PrettyFormatter<'static>,
    normalizer: Normalizer,
    /// Whether a string is being written, and what of it so far, escaped, between its quotes
    /// (one buffer for every string of the document).
    in_string: bool,
    string: Vec<u8>,
}

impl Formatter for Normalizing {
    fn begin_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.in_string = true;
        self.string.clear();
        self.pretty.begin_string(w)
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if self.in_string {
            self.string.extend_from_slice(fragment.as_bytes());
            Ok(())
        } else {
            self.pretty.write_string_fragment(w, fragment)
        }
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        if self.in_string {
            self.pretty.write_char_escape(&mut self.string, escape)
        } else {
            self.pretty.write_char_escape(w, escape)
        }
    }

    fn end_string<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.in_string {
            self.in_string = false;
            // Fragments are text and escapes ASCII: the buffer is UTF-8.
            let text = match std::str::from_utf8(&self.string) {
                Ok(text) => std::borrow::Cow::Borrowed(text),
                Err(_) => String::from_utf8_lossy(&self.string),
            };
            w.write_all(self.normalizer.apply(&text).as_bytes())?;
        }
        self.pretty.end_string(w)
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_array(w)
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array(w)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(w)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object(w)
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object(w)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_key(w)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::normalize::{fhir_own_ids, mask_ids, normalize_scanning_all};
    use serde_json::json;

    /// The digest as it was first computed: a masked copy, rendered, normalised, hashed.
    fn by_text(bundle: &Value) -> String {
        let mut own = bundle.clone();
        let ids = fhir_own_ids(&own);
        mask_ids(&mut own, &ids);
        let canonical = serde_json::to_string_pretty(&own).unwrap();
        hex::encode(Sha256::digest(
            normalize_scanning_all(&canonical).as_bytes(),
        ))
    }

    fn streamed(bundle: &Value) -> String {
        content_digest(bundle, &fhir_own_ids(bundle))
    }

    #[test]
    fn gives_the_digest_of_the_masked_normalised_text_for_every_letter_the_simulator_builds() {
        use crate::protocol::itk3::{self, LetterDoc, PaperRecipient};
        use crate::protocol::letter::LetterKind;
        for kind in LetterKind::ALL {
            let doc = LetterDoc {
                kind,
                local_id: "SIM-7K2M9QXA-000012".into(),
                visit_id: Some("LG-7K2M9QXA-3".into()),
                nhs_number: crate::protocol::ids::NhsNumber::parse("9990000018").unwrap(),
                patient_name: "Alice \"Al\" Example\n\t\u{1}é".into(),
                born: "1950-01-01".into(),
                practice: Some(("A81001".into(), "Riverside Surgery".into())),
                trust_ods: "RXX".into(),
                trust_name: "Lettergate Simulated NHS Trust".into(),
                sender_mailbox: "RXXHC001".into(),
                event_at: crate::protocol::clock::Timestamp(1_736_154_000),
                written_at: crate::protocol::clock::Timestamp(1_736_164_000),
                sent_at: crate::protocol::clock::Timestamp(1_736_174_000),
                sections: itk3::default_sections(kind),
            };
            let message = itk3::message_bundle(&doc);
            let paper = itk3::paper_request(&doc, &PaperRecipient::Patient);
            for v in [
                &message,
                &message["entry"][3]["resource"],
                &paper["document"],
            ] {
                assert_eq!(streamed(v), by_text(v), "{kind:?}");
            }
        }
    }

    #[test]
    fn gives_the_same_digest_as_the_text_on_values_every_step_changes() {
        let v = json!({
            "resourceType": "Bundle",
            "identifier": {"value": "SDN123450001"},
            "entry": [
                {"fullUrl": "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
                 "resource": {"resourceType": "Encounter", "id": "17",
                     "identifier": [{"value": "V-0042"}, {"value": "LG-ABCDEFGH-12"}],
                     "period": {"start": "2026-12-03T09:17:00Z", "end": "2026-13-03T09:17:00Z"}}},
                {"resource": {"resourceType": "Composition",
                     "encounter": {"reference": "Encounter/17"},
                     "title": "visit 17 at 127.0.0.1:41234, not 327.0.0.1:80",
                     "note": "20250303093000123456_ABC123 then 123E4567-E89B-12D3-A456-426614174000 and 00000000-0000-0000-0000-000000000001",
                     "2025-01-01T10:00:00Z": "a key that is a time",
                     "escaped": "line\r\nbreak \"quoted\" \\ back\n2025-01-06T09:00Z tab\t\u{7f}\u{1f}",
                     "sim": "SIM-7K2M9QXA-000001 LG-ABCDEFGH-12 LG-7K2M9QXA-3",
                     "numbers": [1, -2.5, 1e300, 0, true, false, null, [], {}],
                     "type": {"coding": [{"code": "17"}]}}}
            ]
        });
        assert_eq!(streamed(&v), by_text(&v));
        assert_eq!(streamed(&json!({})), by_text(&json!({})));
        assert_eq!(streamed(&json!("plain")), by_text(&json!("plain")));
    }

    #[test]
    fn content_changes_the_digest_and_the_ehrs_own_ids_do_not() {
        let a = json!({"resourceType": "Bundle", "identifier": {"value": "A-1"}, "title": "x"});
        let b = json!({"resourceType": "Bundle", "identifier": {"value": "B-2"}, "title": "x"});
        let c = json!({"resourceType": "Bundle", "identifier": {"value": "B-2"}, "title": "y"});
        assert_eq!(streamed(&a), streamed(&b));
        assert_ne!(streamed(&b), streamed(&c));
    }
}
