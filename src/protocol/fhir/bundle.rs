//! FHIR references resolved as the FHIR specification says, inside a message or document
//! [`Bundle`], and what each resolution went through ([`Via`]) so a reader can say where a fact
//! came from and which rule a sender broke.
//!
//! The rules (FHIR STU3 `bundle.html#references`, unchanged in R4):
//! - an absolute reference (`https://…/Patient/1`, `urn:uuid:…`) names the entry whose
//!   `fullUrl` is the same;
//! - a relative reference (`Patient/1`) is resolved against the base of the referring entry's
//!   RESTful `fullUrl`; with no such base, it names the entry holding a resource of that type and
//!   id;
//! - `#id` names a resource `contained` in the referring resource;
//! - a reference inside a nested bundle (the document inside an ITK3 message) is resolved in
//!   that bundle first, then in the bundle around it.
//!
//! A reference that names no entry this way, but whose last part is the id of a resource of the
//! bundle, is still followed ([`Via::ResourceId`]): a letter whose entries lack a `fullUrl` is
//! read, and the reader reports the broken rule instead of calling the letter unreadable.

use super::xml::many;
use serde_json::Value;

/// How a reference led to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The reference is an entry's `fullUrl` (absolute URL or `urn:uuid:`).
    FullUrl,
    /// A relative `Type/id`, against the referring entry's base or the resource's type and id.
    Relative,
    /// No entry's `fullUrl` matched; the resource with the reference's id was taken. Not
    /// conformant: FHIR resolves references through `fullUrl`.
    ResourceId,
    /// `#id`: a resource contained in the referring one.
    Contained,
}

impl Via {
    /// Words for an explanation: "by fullUrl".
    pub fn words(self) -> &'static str {
        match self {
            Via::FullUrl => "by fullUrl",
            Via::Relative => "as a relative reference",
            Via::ResourceId => "by resource id only (no entry has that fullUrl)",
            Via::Contained => "as a contained resource",
        }
    }
}

/// A resource found in a bundle, with where it is.
#[derive(Clone, Debug)]
pub struct Located<'a> {
    pub resource: &'a Value,
    /// The entry's `fullUrl`, when it has one.
    pub full_url: Option<&'a str>,
    /// Where it is, as a reader finds it: `Bundle.entry[1].resource.entry[2]`.
    pub path: String,
}

impl Located<'_> {
    pub fn resource_type(&self) -> &str {
        self.resource["resourceType"].as_str().unwrap_or("")
    }
}

/// One bundle level: its value and its path.
#[derive(Clone, Debug)]
struct Level<'a> {
    bundle: &'a Value,
    path: String,
}

/// A bundle to resolve references in: the innermost level first, then those around it.
#[derive(Clone, Debug)]
pub struct Bundle<'a> {
    levels: Vec<Level<'a>>,
}

impl<'a> Bundle<'a> {
    /// The outermost bundle of a body.
    pub fn root(bundle: &'a Value) -> Bundle<'a> {
        Bundle {
            levels: vec![Level {
                bundle,
                path: "Bundle".into(),
            }],
        }
    }

    /// The bundle `inner` (a `Bundle` resource found in this one), references resolved in it
    /// first and then here.
    pub fn nested(&self, inner: &Located<'a>) -> Bundle<'a> {
        let mut levels = vec![Level {
            bundle: inner.resource,
            path: format!("{}.resource", inner.path),
        }];
        levels.extend(self.levels.iter().cloned());
        Bundle { levels }
    }

    /// The same bundle, its own level named `path` (`document`, for a print request's).
    pub fn at(mut self, path: &str) -> Bundle<'a> {
        self.levels[0].path = path.into();
        self
    }

    /// The bundle's own value (the innermost level).
    pub fn value(&self) -> &'a Value {
        self.levels[0].bundle
    }

    /// The entries of the innermost level, in order.
    pub fn entries(&self) -> impl Iterator<Item = Located<'a>> + '_ {
        entries_of(&self.levels[0])
    }

    /// The first resource of type `t` in the innermost level.
    pub fn first_of(&self, t: &str) -> Option<Located<'a>> {
        self.entries().find(|e| e.resource_type() == t)
    }

    /// Every entry of the innermost level without a `fullUrl`.
    pub fn entries_without_full_url(&self) -> usize {
        self.entries().filter(|e| e.full_url.is_none()).count()
    }

    /// Follows `reference` (a FHIR `Reference`, or its `reference` string) made by `from`.
    pub fn resolve(&self, reference: &Value, from: &Located<'a>) -> Option<(Located<'a>, Via)> {
        let text = reference["reference"].as_str().or(reference.as_str())?;
        if let Some(id) = text.strip_prefix('#') {
            return contained(from, id).map(|l| (l, Via::Contained));
        }
        let text = without_history(text);
        let found = if is_absolute(text) {
            self.find(|e| e.full_url == Some(text))
                .map(|l| (l, Via::FullUrl))
        } else {
            self.relative(text, from).map(|l| (l, Via::Relative))
        };
        found.or_else(|| self.by_id(text).map(|l| (l, Via::ResourceId)))
    }

    /// A relative `Type/id`: against the referring entry's RESTful base, an entry whose
    /// `fullUrl` ends with it, or a resource of that type and id.
    fn relative(&self, text: &str, from: &Located<'a>) -> Option<Located<'a>> {
        let (t, id) = text.split_once('/')?;
        let against_base = from
            .full_url
            .and_then(restful_base)
            .map(|base| format!("{base}{text}"));
        if let Some(url) = against_base {
            if let Some(l) = self.find(|e| e.full_url == Some(url.as_str())) {
                return Some(l);
            }
        }
        let tail = format!("/{text}");
        self.find(|e| e.full_url.is_some_and(|u| u.ends_with(&tail)))
            .or_else(|| self.find(|e| e.resource_type() == t && e.resource["id"] == id))
    }

    /// The resource whose id is the reference's last part (after `urn:uuid:` or the last `/`),
    /// and whose type is the one the reference names, when it names one.
    fn by_id(&self, text: &str) -> Option<Located<'a>> {
        let id = text
            .strip_prefix("urn:uuid:")
            .or_else(|| text.strip_prefix("urn:oid:"))
            .unwrap_or_else(|| text.rsplit('/').next().unwrap_or(text));
        let t = text
            .rsplit('/')
            .nth(1)
            .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
        self.find(|e| e.resource["id"] == id && t.is_none_or(|t| e.resource_type() == t))
    }

    /// The first entry, innermost level first, for which `pred` holds.
    fn find(&self, pred: impl Fn(&Located<'a>) -> bool) -> Option<Located<'a>> {
        self.levels
            .iter()
            .find_map(|level| entries_of(level).find(|e| pred(e)))
    }
}

fn entries_of<'a, 'l>(level: &'l Level<'a>) -> impl Iterator<Item = Located<'a>> + 'l {
    many(&level.bundle["entry"])
        .enumerate()
        .map(move |(i, e)| Located {
            resource: &e["resource"],
            full_url: e["fullUrl"].as_str().filter(|u| !u.is_empty()),
            path: format!("{}.entry[{i}]", level.path),
        })
}

fn contained<'a>(from: &Located<'a>, id: &str) -> Option<Located<'a>> {
    many(&from.resource["contained"])
        .enumerate()
        .find(|(_, r)| r["id"] == id)
        .map(|(i, r)| Located {
            resource: r,
            full_url: None,
            path: format!("{}.contained[{i}]", from.path),
        })
}

fn is_absolute(reference: &str) -> bool {
    reference.starts_with("urn:") || reference.contains("://")
}

fn without_history(reference: &str) -> &str {
    reference
        .find("/_history/")
        .map_or(reference, |i| &reference[..i])
}

/// `https://ehr.example/fhir/` of `https://ehr.example/fhir/Patient/1`: a RESTful `fullUrl`
/// without its `Type/id`.
fn restful_base(full_url: &str) -> Option<&str> {
    if !full_url.contains("://") {
        return None;
    }
    let url = without_history(full_url);
    let mut parts = url.rsplitn(3, '/');
    let (_id, t, base) = (parts.next()?, parts.next()?, parts.next()?);
    t.chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase())
        .then(|| &url[..base.len() + 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A message bundle with a nested document, as the ITK3 Messaging Distribution lays it
    /// out: header first, its focus the document `Bundle` entry.
    fn message(patient_url: Option<&str>, subject: &str) -> Value {
        let mut patient_entry = json!({"resource": {"resourceType": "Patient", "id": "p1"}});
        if let Some(u) = patient_url {
            patient_entry["fullUrl"] = json!(u);
        }
        json!({"resourceType": "Bundle", "type": "message", "entry": [
            {"fullUrl": "urn:uuid:h1", "resource": {"resourceType": "MessageHeader", "id": "h1",
                "focus": [{"reference": "urn:uuid:d1"}]}},
            {"fullUrl": "urn:uuid:d1", "resource": {"resourceType": "Bundle", "id": "d1",
                "type": "document", "entry": [
                {"fullUrl": "https://ehr.example/fhir/Composition/c1",
                 "resource": {"resourceType": "Composition", "id": "c1",
                    "subject": {"reference": subject}}},
                patient_entry
            ]}}
        ]})
    }

    fn subject_of(v: &Value) -> Option<(String, Via)> {
        let root = Bundle::root(v);
        let header = root.first_of("MessageHeader")?;
        let (doc, _) = root.resolve(&header.resource["focus"][0], &header)?;
        let doc = root.nested(&doc);
        let comp = doc.first_of("Composition")?;
        let (p, via) = doc.resolve(&comp.resource["subject"], &comp)?;
        Some((p.path, via))
    }

    #[test]
    fn a_urn_uuid_reference_names_the_entry_with_that_full_url() {
        let v = message(Some("urn:uuid:p1"), "urn:uuid:p1");
        assert_eq!(
            subject_of(&v),
            Some(("Bundle.entry[1].resource.entry[1]".into(), Via::FullUrl))
        );
    }

    #[test]
    fn an_absolute_url_reference_names_the_entry_with_that_full_url() {
        let v = message(
            Some("https://ehr.example/fhir/Patient/p1"),
            "https://ehr.example/fhir/Patient/p1/_history/2",
        );
        assert_eq!(subject_of(&v).map(|s| s.1), Some(Via::FullUrl));
    }

    #[test]
    fn a_relative_reference_is_resolved_against_the_referring_entrys_base() {
        let v = message(Some("https://ehr.example/fhir/Patient/p1"), "Patient/p1");
        assert_eq!(subject_of(&v).map(|s| s.1), Some(Via::Relative));
    }

    #[test]
    fn a_relative_reference_with_no_restful_base_names_the_resource_of_that_type_and_id() {
        let v = message(Some("urn:uuid:p1"), "Patient/p1");
        assert_eq!(subject_of(&v).map(|s| s.1), Some(Via::Relative));
        let wrong_type = message(Some("urn:uuid:p1"), "Practitioner/p1");
        assert_eq!(subject_of(&wrong_type), None);
    }

    #[test]
    fn a_reference_to_an_entry_without_full_url_is_followed_by_id_and_said_to_be() {
        let v = message(None, "urn:uuid:p1");
        assert_eq!(subject_of(&v).map(|s| s.1), Some(Via::ResourceId));
    }

    #[test]
    fn a_reference_to_nothing_resolves_to_nothing() {
        let v = message(Some("urn:uuid:p1"), "urn:uuid:nobody");
        assert_eq!(subject_of(&v), None);
    }

    #[test]
    fn a_hash_reference_names_a_contained_resource() {
        let v = json!({"resourceType": "Bundle", "entry": [
            {"fullUrl": "urn:uuid:c1", "resource": {"resourceType": "Composition", "id": "c1",
                "contained": [{"resourceType": "Patient", "id": "pat"}],
                "subject": {"reference": "#pat"}}}
        ]});
        let root = Bundle::root(&v);
        let comp = root.first_of("Composition").unwrap();
        let (p, via) = root.resolve(&comp.resource["subject"], &comp).unwrap();
        assert_eq!(
            (p.path.as_str(), via),
            ("Bundle.entry[0].contained[0]", Via::Contained)
        );
    }

    #[test]
    fn a_reference_inside_a_nested_document_falls_back_to_the_message_bundle() {
        let mut v = message(Some("urn:uuid:p1"), "urn:uuid:org");
        v["entry"]
            .as_array_mut()
            .unwrap()
            .push(json!({"fullUrl": "urn:uuid:org", "resource": {"resourceType": "Organization", "id": "org"}}));
        assert_eq!(
            subject_of(&v),
            Some(("Bundle.entry[2]".into(), Via::FullUrl))
        );
    }

    #[test]
    fn the_restful_base_is_the_full_url_without_type_and_id() {
        assert_eq!(
            restful_base("https://ehr.example/fhir/Patient/1"),
            Some("https://ehr.example/fhir/")
        );
        assert_eq!(restful_base("urn:uuid:1"), None);
    }
}
