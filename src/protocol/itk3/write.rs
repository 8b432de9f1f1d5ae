//! The ITK3 bundles written straight to JSON, as `serde_json` writes a [`serde_json::Value`]
//! (compact, every object's keys in byte order), without building the tree first: the
//! simulator writes one per letter, tens of thousands in a volume run.
//!
//! Design constraint: the bytes are exactly those of the `json!` trees this replaced (its
//! tests compare the two, UUIDs aside), so what a capture reads, stores and digests is the
//! same. Keys are written in order by hand; [`Obj`] checks the order in debug builds.

use super::{
    encounter_class, escape, title, urn, LetterDoc, PaperRecipient, EVENT_SYSTEM, HANDLING_URL,
    LOCAL_ID_SYSTEM, NHS_NUMBER_SYSTEM, ODS_SYSTEM, SNOMED,
};
use crate::protocol::letter::LetterKind;

const RFC4122: &str = "https://tools.ietf.org/html/rfc4122";

/// A JSON string, escaped as `serde_json` escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A JSON object being written; [`Obj::end`] closes it.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    last: Option<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, last: None }
    }

    /// Starts the member `key`: keys must come in byte order, as a `Value`'s map keeps them.
    fn key(&mut self, key: &'static str) -> &mut Vec<u8> {
        debug_assert!(
            self.last.is_none_or(|last| last < key),
            "{key} after {:?}",
            self.last
        );
        if self.last.is_some() {
            self.out.push(b',');
        }
        self.last = Some(key);
        string(self.out, key);
        self.out.push(b':');
        self.out
    }

    fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        string(self.key(key), value);
        self
    }

    /// A member whose value is JSON already (`true`, a constant object).
    fn raw(&mut self, key: &'static str, json: &str) -> &mut Self {
        self.key(key).extend_from_slice(json.as_bytes());
        self
    }

    /// `{"reference": to}`.
    fn reference(&mut self, key: &'static str, to: &str) -> &mut Self {
        Obj::new(self.key(key)).str("reference", to).end();
        self
    }

    /// A member holding an object written by `f`.
    fn obj(&mut self, key: &'static str, f: impl FnOnce(&mut Obj)) -> &mut Self {
        let mut o = Obj::new(self.key(key));
        f(&mut o);
        o.end();
        self
    }

    /// A member holding an array of the objects `f` writes, one per call of `item`.
    fn list(&mut self, key: &'static str, f: impl FnOnce(&mut List)) -> &mut Self {
        let out = self.key(key);
        out.push(b'[');
        let mut l = List { out, first: true };
        f(&mut l);
        l.out.push(b']');
        self
    }

    fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// The items of a JSON array being written.
struct List<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl List<'_> {
    fn item(&mut self, f: impl FnOnce(&mut Obj)) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        let mut o = Obj::new(self.out);
        f(&mut o);
        o.end();
    }

    fn str(&mut self, value: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        string(self.out, value);
    }
}

/// `{"system": system, "value": value}`, as identifiers and a list item.
fn identifier(o: &mut Obj, system: &str, value: &str) {
    o.str("system", system).str("value", value);
}

/// An `Organization` by ODS code and name; an unknown (empty) code or name is left out, as FHIR
/// allows no empty strings.
fn organization(o: &mut Obj, ods: &str, name: &str) {
    if !ods.is_empty() {
        o.list("identifier", |l| l.item(|i| identifier(i, ODS_SYSTEM, ods)));
    }
    if !name.is_empty() {
        o.str("name", name);
    }
    o.str("resourceType", "Organization");
}

/// The `Encounter` a letter reports on, of the patient at `pat`: its class, when it began,
/// the visit's id, and for a death the discharge method `4` (patient died).
fn encounter(o: &mut Obj, doc: &LetterDoc, pat: &str) {
    let (class, class_display) = encounter_class(doc.kind);
    o.obj("class", |c| {
        c.str("code", class)
            .str("display", class_display)
            .str("system", "http://hl7.org/fhir/v3/ActCode");
    });
    if doc.kind == LetterKind::DeathNotification {
        o.raw(
            "hospitalization",
            r#"{"dischargeDisposition":{"coding":[{"code":"4","display":"Patient died","system":"https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-DischargeMethod-1"}]}}"#,
        );
    }
    if let Some(id) = &doc.visit_id {
        o.list("identifier", |l| {
            l.item(|i| identifier(i, LOCAL_ID_SYSTEM, id))
        });
    }
    o.obj("period", |p| {
        p.str("start", &doc.event_at.rfc3339());
    })
    .str("resourceType", "Encounter")
    .str("status", "finished")
    .reference("subject", pat);
}

/// The `Bundle` of type `document` for a letter, written into `out`.
fn document_into(out: &mut Vec<u8>, doc: &LetterDoc) {
    let (comp, pat, prac, gp, trust, enc) = (urn(), urn(), urn(), urn(), urn(), urn());
    let dt = doc.kind.document_type();
    let mut bundle = Obj::new(out);
    bundle
        .list("entry", |entries| {
            entries.item(|e| {
                e.str("fullUrl", &comp).obj("resource", |c| {
                    c.list("author", |l| {
                        l.item(|a| {
                            a.str("reference", &prac);
                        })
                    })
                    .reference("custodian", &trust)
                    .str("date", &doc.written_at.rfc3339())
                    .reference("encounter", &enc)
                    .obj("identifier", |i| {
                        identifier(i, RFC4122, &uuid::Uuid::new_v4().to_string())
                    })
                    .str("resourceType", "Composition")
                    .list("section", |l| {
                        for (heading, text) in &doc.sections {
                            l.item(|s| {
                                s.obj("text", |t| {
                                    let div = format!(
                                        "<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>",
                                        escape(text)
                                    );
                                    t.str("div", &div).str("status", "generated");
                                })
                                .str("title", heading);
                            });
                        }
                    })
                    .str("status", "final")
                    .reference("subject", &pat)
                    .str("title", title(doc.kind))
                    .obj("type", |t| {
                        t.list("coding", |l| {
                            l.item(|c| {
                                c.str("code", dt.code)
                                    .str("display", dt.display)
                                    .str("system", SNOMED);
                            })
                        });
                    });
                });
            });
            if let Some((ods, name)) = &doc.practice {
                entries.item(|e| {
                    e.str("fullUrl", &gp)
                        .obj("resource", |o| organization(o, ods, name));
                });
            }
            entries.item(|e| {
                e.str("fullUrl", &pat).obj("resource", |p| {
                    p.str("birthDate", &doc.born);
                    if doc.practice.is_some() {
                        p.list("generalPractitioner", |l| {
                            l.item(|g| {
                                g.str("reference", &gp);
                            })
                        });
                    }
                    p.list("identifier", |l| {
                        l.item(|i| identifier(i, NHS_NUMBER_SYSTEM, &doc.nhs_number.to_string()))
                    })
                    .list("name", |l| {
                        l.item(|n| {
                            n.str("text", &doc.patient_name);
                        })
                    })
                    .str("resourceType", "Patient");
                });
            });
            entries.item(|e| {
                e.str("fullUrl", &prac).raw(
                    "resource",
                    r#"{"name":[{"text":"Dr Ada Consultant"}],"resourceType":"Practitioner"}"#,
                );
            });
            entries.item(|e| {
                e.str("fullUrl", &trust).obj("resource", |o| {
                    organization(o, &doc.trust_ods, &doc.trust_name)
                });
            });
            entries.item(|e| {
                e.str("fullUrl", &enc)
                    .obj("resource", |o| encounter(o, doc, &pat));
            });
        })
        .obj("identifier", |i| {
            identifier(i, RFC4122, &uuid::Uuid::new_v4().to_string())
        })
        .str("resourceType", "Bundle")
        .str("type", "document")
        .end();
}

/// The document bundle alone.
pub(super) fn document(doc: &LetterDoc) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    document_into(&mut out, doc);
    out
}

/// The ITK3 message `Bundle` for a practice letter, and its identifier.
pub(super) fn message(doc: &LetterDoc) -> (Vec<u8>, String) {
    let doc_url = urn();
    let (ods, name) = doc.practice.clone().unwrap_or_default();
    let (gp, sender) = (urn(), urn());
    let id = uuid::Uuid::new_v4().to_string();
    let definition = match doc.kind {
        LetterKind::ClinicLetter => "ITK-OPL-MessageDefinition-4",
        LetterKind::EmergencyDischarge => "ITK-ECD-MessageDefinition-4",
        _ => "ITK-IPD-MessageDefinition-4",
    };
    let mut out = Vec::with_capacity(6144);
    let mut bundle = Obj::new(&mut out);
    bundle.list("entry", |entries| {
        entries.item(|e| {
            e.str("fullUrl", &urn()).obj("resource", |h| {
                h.obj("event", |ev| {
                    ev.str("code", doc.kind.itk3_event().unwrap_or(""))
                        .str("display", doc.kind.itk3_event_display())
                        .str("system", EVENT_SYSTEM);
                })
                .list("extension", |l| {
                    l.item(|x| {
                        x.list("extension", |h| {
                            h.item(|x| { x.str("url", "BusAckRequested").raw("valueBoolean", "true"); });
                            h.item(|x| { x.str("url", "InfAckRequested").raw("valueBoolean", "true"); });
                            h.item(|x| {
                                x.str("url", "RecipientType").raw(
                                    "valueCoding",
                                    r#"{"code":"FA","display":"For Action","system":"https://fhir.nhs.uk/STU3/CodeSystem/ITK-RecipientType-1"}"#,
                                );
                            });
                            h.item(|x| {
                                let to = format!(
                                    "https://fhir.nhs.uk/STU3/MessageDefinition/{definition}"
                                );
                                x.str("url", "MessageDefinition").reference("valueReference", &to);
                            });
                            h.item(|x| {
                                x.str("url", "SenderReference")
                                    .str("valueString", &doc.local_id);
                            });
                        })
                        .str("url", HANDLING_URL);
                    })
                })
                .list("focus", |l| l.item(|f| { f.str("reference", &doc_url); }))
                .reference("receiver", &gp)
                .str("resourceType", "MessageHeader")
                .reference("sender", &sender)
                .obj("source", |s| { s.str("endpoint", &doc.sender_mailbox); })
                .str("timestamp", &doc.sent_at.rfc3339());
            });
        });
        entries.item(|e| {
            e.str("fullUrl", &gp)
                .obj("resource", |o| organization(o, &ods, &name));
        });
        entries.item(|e| {
            e.str("fullUrl", &sender)
                .obj("resource", |o| organization(o, &doc.trust_ods, &doc.trust_name));
        });
        entries.item(|e| {
            e.str("fullUrl", &doc_url);
            document_into(e.key("resource"), doc);
        });
    })
    .obj("identifier", |i| identifier(i, RFC4122, &id))
    .obj("meta", |m| {
        m.list("profile", |l| {
            l.str("https://fhir.nhs.uk/STU3/StructureDefinition/ITK-Message-Bundle-1")
        });
    })
    .str("resourceType", "Bundle")
    .str("type", "message")
    .end();
    (out, id)
}

/// The request body for the print service or an HTTP document route.
pub(super) fn paper(doc: &LetterDoc, to: &PaperRecipient) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut request = Obj::new(&mut out);
    document_into(request.key("document"), doc);
    request
        .obj("recipient", |r| match to {
            PaperRecipient::Patient => {
                r.str("name", &doc.patient_name)
                    .str("nhs_number", &doc.nhs_number.to_string())
                    .str("type", "patient");
            }
            PaperRecipient::Practice { ods, name } => {
                r.str("name", name).str("ods", ods).str("type", "practice");
            }
        })
        .str("reference", &doc.local_id)
        .end();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::normalize::Step;
    use serde_json::{json, Value};

    /// The bundles as they were built before: `json!` trees.
    mod trees {
        use super::super::super::{encounter_class, title};
        use super::super::super::{
            escape, LetterDoc, PaperRecipient, EVENT_SYSTEM, HANDLING_URL, LOCAL_ID_SYSTEM,
            NHS_NUMBER_SYSTEM, ODS_SYSTEM, SNOMED,
        };
        use crate::protocol::letter::LetterKind;
        use serde_json::{json, Value};

        fn urn() -> String {
            format!("urn:uuid:{}", uuid::Uuid::new_v4())
        }

        /// The `Bundle` of type `document` for a letter.
        pub fn document_bundle(doc: &LetterDoc) -> Value {
            let (comp, pat, prac, gp, trust, enc) = (urn(), urn(), urn(), urn(), urn(), urn());
            let dt = doc.kind.document_type();
            let encounter = encounter(doc, &pat);
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

        /// The `Encounter` a letter reports on, of the patient at `pat`: its class, when it began,
        /// the visit's id, and for a death the discharge method `4` (patient died).
        fn encounter(doc: &LetterDoc, pat: &str) -> Value {
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
            encounter
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
    }

    fn letters() -> Vec<LetterDoc> {
        let mut out = Vec::new();
        for kind in LetterKind::ALL {
            for (practice, visit) in [
                (
                    Some(("A81001".to_string(), "Riverside Surgery".to_string())),
                    None,
                ),
                (None, Some("LG-7K2M9QXA-3".to_string())),
                (Some((String::new(), String::new())), None),
            ] {
                out.push(LetterDoc {
                    kind,
                    local_id: "SIM-7K2M9QXA-000012".into(),
                    visit_id: visit,
                    nhs_number: crate::protocol::ids::NhsNumber::parse("9990000018").unwrap(),
                    patient_name: "Alice \"Al\" O'Example\n\té ☃ \u{1}".into(),
                    born: "1950-01-01".into(),
                    practice,
                    trust_ods: "RXX".into(),
                    trust_name: "Lettergate <Simulated> & NHS Trust".into(),
                    sender_mailbox: "RXXHC001".into(),
                    event_at: crate::protocol::clock::Timestamp(1_736_154_000),
                    written_at: crate::protocol::clock::Timestamp(1_736_164_000),
                    sent_at: crate::protocol::clock::Timestamp(1_736_174_000),
                    sections: [
                        super::super::default_sections(kind),
                        vec![("A <b>bold</b> & \"quoted\"".into(), "x < y\\z\u{7f}".into())],
                    ]
                    .concat(),
                });
            }
        }
        out
    }

    /// The bytes with every UUID numbered by first appearance: the same where the two put
    /// the same structure and the same ids in the same places.
    fn shape(bytes: &[u8]) -> String {
        Step::Uuids.apply(std::str::from_utf8(bytes).unwrap())
    }

    #[test]
    fn writes_the_bytes_the_json_trees_wrote() {
        for doc in letters() {
            let (message, id) = message(&doc);
            let tree = serde_json::to_vec(&trees::message_bundle(&doc)).unwrap();
            assert_eq!(shape(&message), shape(&tree), "{:?}", doc.kind);
            let v: Value = serde_json::from_slice(&message).unwrap();
            assert_eq!(v["identifier"]["value"], json!(id));
            let tree = serde_json::to_vec(&trees::document_bundle(&doc)).unwrap();
            assert_eq!(shape(&document(&doc)), shape(&tree));
            for to in [
                PaperRecipient::Patient,
                PaperRecipient::Practice {
                    ods: "B82002".into(),
                    name: "Hillside \"Surgery\"".into(),
                },
            ] {
                let tree = serde_json::to_vec(&trees::paper_request(&doc, &to)).unwrap();
                assert_eq!(shape(&paper(&doc, &to)), shape(&tree));
            }
        }
    }

    #[test]
    fn every_bundle_has_fresh_ids() {
        let doc = &letters()[0];
        assert_ne!(message(doc).1, message(doc).1);
        assert_ne!(document(doc), document(doc));
    }
}
