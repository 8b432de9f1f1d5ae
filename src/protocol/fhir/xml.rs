//! FHIR's XML format (STU3 and R4 alike) read into the shape of its JSON format, so a letter
//! sent as XML (`application/fhir+xml`: an ITK3 message bundle over MESH, a document posted
//! over HTTP, a file dropped in a folder) is read by the same code as one sent as JSON.
//!
//! The rules of FHIR's XML format, and what each becomes:
//! - an element with a `value` attribute is a primitive: its value (a string: FHIR's JSON
//!   types numbers and booleans, which lettergate reads as text anyway);
//! - any other element is an object of its child elements, and of its `url` and `id`
//!   attributes (an extension's url);
//! - an element that repeats becomes a list; one that does not stays single, because XML does
//!   not say which elements may repeat. [`one`] and [`many`] read either shape;
//! - a resource inside its container (`<resource><Patient>…</Patient></resource>`, and the
//!   root) becomes an object with `resourceType`;
//! - XHTML narrative (`<div xmlns="http://www.w3.org/1999/xhtml">`) is kept as its markup.
//!
//! Hand-written on quick-xml (which the project already has through quick-junit): no
//! maintained Rust crate reads FHIR XML into its JSON shape.

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};
use serde_json::{Map, Value};

const XHTML: &str = "http://www.w3.org/1999/xhtml";

/// True when `body` looks like XML (after a byte-order mark and white space).
pub fn looks_like_xml(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

/// The first of a list, or the value itself.
pub fn one(v: &Value) -> &Value {
    match v {
        Value::Array(a) => a.first().unwrap_or(&Value::Null),
        other => other,
    }
}

/// Each of a list, or the value itself once (nothing for null).
pub fn many(v: &Value) -> impl Iterator<Item = &Value> {
    let (list, single): (&[Value], Option<&Value>) = match v {
        Value::Array(a) => (a, None),
        Value::Null => (&[], None),
        other => (&[], Some(other)),
    };
    list.iter().chain(single)
}

/// Why a text is not FHIR XML: where the XML is broken, or what in it FHIR does not have.
/// Causes from quick-xml are kept as text, so the error can be cloned with the letter it
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the body is not well-formed XML (at byte {at}): {why}")]
    NotWellFormed { at: u64, why: String },
    #[error("the XML document has no element")]
    NoElement,
    #[error("an XML element name is not UTF-8")]
    NameNotUtf8,
    #[error("a broken XML attribute: {0}")]
    Attribute(String),
    #[error("the XML ends inside <{0}>")]
    EndsInside(String),
    #[error("text directly inside <{0}>, which FHIR's XML format does not have")]
    Text(String),
    #[error("the narrative is not UTF-8: {0}")]
    NarrativeNotUtf8(String),
}

/// Reads a FHIR XML document. Errors say where the XML is broken or what is not FHIR.
pub fn to_json(text: &str) -> Result<Value, XmlError> {
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    loop {
        match reader.read_event().map_err(|e| xml_error(&reader, e))? {
            Event::Start(e) => {
                let name = local(&e)?;
                let mut root = Map::new();
                root.insert("resourceType".into(), Value::String(name));
                attributes(&e, &mut root)?;
                children(&mut reader, &e, &mut root)?;
                return Ok(Value::Object(root));
            }
            Event::Empty(e) => {
                let mut root = Map::new();
                root.insert("resourceType".into(), Value::String(local(&e)?));
                return Ok(Value::Object(root));
            }
            Event::Eof => return Err(XmlError::NoElement),
            // The declaration, comments, processing instructions, a doctype.
            _ => {}
        }
    }
}

fn xml_error(reader: &Reader<&[u8]>, e: quick_xml::Error) -> XmlError {
    XmlError::NotWellFormed {
        at: reader.buffer_position(),
        why: e.to_string(),
    }
}

fn local(e: &BytesStart) -> Result<String, XmlError> {
    std::str::from_utf8(e.local_name().as_ref())
        .map(str::to_string)
        .map_err(|_| XmlError::NameNotUtf8)
}

fn attr(e: &BytesStart, name: &str) -> Result<Option<String>, XmlError> {
    for a in e.attributes() {
        let a = a.map_err(|err| XmlError::Attribute(err.to_string()))?;
        if a.key.local_name().as_ref() == name.as_bytes() {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| XmlError::Attribute(err.to_string()))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// An element's `url` and `id` attributes, as its JSON has them.
fn attributes(e: &BytesStart, into: &mut Map<String, Value>) -> Result<(), XmlError> {
    for name in ["url", "id"] {
        if let Some(v) = attr(e, name)? {
            into.insert(name.into(), Value::String(v));
        }
    }
    Ok(())
}

/// Adds `value` under `key`, making a list of a key seen before.
fn push(into: &mut Map<String, Value>, key: String, value: Value) {
    match into.get_mut(&key) {
        None => {
            into.insert(key, value);
        }
        Some(Value::Array(list)) => list.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// Reads the children of `parent` (just started) up to its end, into `into`.
fn children(
    reader: &mut Reader<&[u8]>,
    parent: &BytesStart,
    into: &mut Map<String, Value>,
) -> Result<(), XmlError> {
    loop {
        match reader.read_event().map_err(|e| xml_error(reader, e))? {
            Event::Start(e) => {
                let name = local(&e)?;
                let value = element(reader, &e, &name)?;
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    // A resource in its container: the container is the resource.
                    into.insert("resourceType".into(), Value::String(name));
                    if let Value::Object(fields) = value {
                        into.extend(fields);
                    }
                } else {
                    push(into, name, value);
                }
            }
            Event::Empty(e) => {
                let name = local(&e)?;
                let value = match attr(&e, "value")? {
                    Some(v) => Value::String(v),
                    None => {
                        let mut m = Map::new();
                        attributes(&e, &mut m)?;
                        Value::Object(m)
                    }
                };
                if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    into.insert("resourceType".into(), Value::String(name));
                } else {
                    push(into, name, value);
                }
            }
            Event::End(_) => return Ok(()),
            Event::Eof => {
                return Err(XmlError::EndsInside(
                    String::from_utf8_lossy(parent.local_name().as_ref()).into_owned(),
                ))
            }
            Event::Text(t) if !t.is_empty() => {
                return Err(XmlError::Text(
                    String::from_utf8_lossy(parent.local_name().as_ref()).into_owned(),
                ))
            }
            _ => {}
        }
    }
}

/// One element (its start just read) as JSON.
fn element(reader: &mut Reader<&[u8]>, e: &BytesStart, name: &str) -> Result<Value, XmlError> {
    if name == "div" && attr(e, "xmlns")?.as_deref() == Some(XHTML) {
        let inner = reader
            .read_text(e.name())
            .map_err(|err| xml_error(reader, err))?;
        let inner = inner
            .decode()
            .map_err(|err| XmlError::NarrativeNotUtf8(err.to_string()))?;
        return Ok(Value::String(format!(
            "<div xmlns=\"{XHTML}\">{}</div>",
            inner.trim()
        )));
    }
    let value = attr(e, "value")?;
    let mut fields = Map::new();
    attributes(e, &mut fields)?;
    children(reader, e, &mut fields)?;
    Ok(match value {
        // A primitive with extensions: lettergate reads only its value.
        Some(v) => Value::String(v),
        None => Value::Object(fields),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_fhir_xml_into_the_shape_of_its_json() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- a comment -->
<Bundle xmlns="http://hl7.org/fhir">
  <identifier><system value="urn:x"/><value value="b&amp;1"/></identifier>
  <type value="message"/>
  <entry>
    <fullUrl value="urn:uuid:1"/>
    <resource>
      <Patient>
        <identifier><system value="s"/><value value="9990000018"/></identifier>
        <identifier><system value="t"/><value value="X"/></identifier>
        <extension url="https://e"><valueString value="v"/></extension>
        <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>a &amp; b</p></div></text>
      </Patient>
    </resource>
  </entry>
  <entry><fullUrl value="urn:uuid:2"/><resource><Practitioner/></resource></entry>
</Bundle>"#;
        let v = to_json(xml).unwrap();
        assert_eq!(
            v,
            json!({
                "resourceType": "Bundle",
                "identifier": {"system": "urn:x", "value": "b&1"},
                "type": "message",
                "entry": [
                    {"fullUrl": "urn:uuid:1", "resource": {
                        "resourceType": "Patient",
                        "identifier": [{"system": "s", "value": "9990000018"}, {"system": "t", "value": "X"}],
                        "extension": {"url": "https://e", "valueString": "v"},
                        "text": {"status": "generated",
                            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>a &amp; b</p></div>"}
                    }},
                    {"fullUrl": "urn:uuid:2", "resource": {"resourceType": "Practitioner"}}
                ]
            })
        );
        assert_eq!(one(&v["entry"])["fullUrl"], "urn:uuid:1");
        assert_eq!(one(&v["identifier"])["value"], "b&1");
        assert_eq!(many(&v["entry"]).count(), 2);
        assert_eq!(many(&v["identifier"]).count(), 1);
        assert_eq!(many(&v["nothing"]).count(), 0);
    }

    #[test]
    fn broken_xml_says_what_and_where() {
        let e = to_json("<Bundle><type value=\"message\"></Bundle>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not well-formed XML"), "{e}");
        let e = to_json("<Bundle><type value=\"message\"/>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("ends inside <Bundle>"), "{e}");
        let e = to_json("<Bundle>hello</Bundle>").unwrap_err().to_string();
        assert!(e.contains("text directly inside <Bundle>"), "{e}");
        assert!(to_json("<?xml version=\"1.0\"?>").is_err());
        assert!(looks_like_xml(b"\xEF\xBB\xBF  <Bundle/>"));
        assert!(!looks_like_xml(b"{\"resourceType\": \"Bundle\"}"));
    }
}
