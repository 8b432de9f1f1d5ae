//! Reading letters again with what a target file says about its EHR: its own rows of the
//! letter table (`letters:`) and its readers (`readers:`) for bodies that are not ITK3, HL7
//! MDM or lettergate's print request: a print service's own JSON, a Docman-like route, a
//! local API.
//!
//! A capture reads every body as the specifications shape it ([`parse_letter`]), before it
//! knows which target it serves. [`read_again`] then runs over a scenario's letters before
//! they are matched and checked: a letter on a transport and route a reader names is read by
//! the reader, so a print-service copy is a patient copy like any other, checked for a patient
//! who has died; any other letter is classified again with the target's own rows.
//!
//! [`parse_letter`]: crate::protocol::read::parse_letter

use super::file::{FieldPath, KindSource, RawReader, RecipientSource};
use super::matching::values_at;
use super::Target;
use crate::capture::CapturedLetter;
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::{KindSignals, KindTable, LetterFacts, LetterKind};
use crate::protocol::normalize::{mask_ids_in_text, normalize};
use crate::protocol::read::{classify, json_or_xml, ReadError};
use sha2::{Digest, Sha256};

/// Reads `letters` again as target `t` says: by its readers where one applies, else with its
/// own letter rows. Letters of a target that says neither are left as they are.
pub fn read_again(t: &Target, letters: &mut [CapturedLetter]) {
    if t.kinds.is_none() && t.readers.is_empty() {
        return;
    }
    let kinds = t.kinds.as_ref().unwrap_or(KindTable::standard());
    for l in letters.iter_mut() {
        match t.readers.iter().find(|r| applies(r, l)) {
            Some(reader) => {
                l.facts = match l.read_body() {
                    Ok(body) => read(reader, kinds, l, &body),
                    Err(e) => Err(ReadError::NotReadBack(std::sync::Arc::new(e))),
                };
                if l.local_id.is_none() {
                    l.local_id = l.facts.as_ref().ok().and_then(|f| f.reference.clone());
                }
            }
            None => {
                // A local row names codes the specification rows do not know, or takes
                // them; a letter it does not recognise keeps the kind it was read as.
                if let Ok(f) = &mut l.facts {
                    f.kind = classify(f, kinds).or(f.kind);
                }
            }
        }
    }
}

/// Whether `r` reads `l`: its transport, and its route when the reader names one.
fn applies(r: &RawReader, l: &CapturedLetter) -> bool {
    r.on.0 == l.transport
        && r.route
            .as_deref()
            .is_none_or(|route| l.route.contains(route))
}

/// The facts of one body as `reader` finds them. Unreadable (an error saying where
/// lettergate looked) when the patient or the recipient cannot be found.
fn read(
    reader: &RawReader,
    kinds: &KindTable,
    l: &CapturedLetter,
    body: &[u8],
) -> Result<LetterFacts, ReadError> {
    let missing = |what, path: &FieldPath| ReadError::NotAtPath {
        on: reader.on.0,
        what,
        path: path.to_string(),
    };
    let first = |p: &FieldPath| values_at(p, l.transport, body).into_iter().next();
    let digits = |v: String| v.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let nhs_number = first(&reader.nhs_number)
        .map(digits)
        .ok_or_else(|| missing("NHS number", &reader.nhs_number))?;
    // A value that fails the check digit is no patient either.
    let nhs_number = NhsNumber::parse(&nhs_number)
        .map_err(|_| missing("valid NHS number", &reader.nhs_number))?;
    let posted = reader
        .address
        .as_ref()
        .and_then(first)
        .is_some_and(|a| !a.trim().is_empty());
    let (to_patient, recipient_ods) = match (&reader.recipient, &reader.address) {
        (Some(RecipientSource::Patient), _) => (true, None),
        (Some(RecipientSource::At(path)), _) => match first(path) {
            Some(v) if v.trim().eq_ignore_ascii_case("patient") => (true, None),
            Some(ods) if !ods.trim().is_empty() => (false, Some(ods.trim().to_ascii_uppercase())),
            _ if posted => (true, None),
            _ => return Err(missing("recipient", path)),
        },
        (None, Some(_)) if posted => (true, None),
        (None, Some(path)) => return Err(missing("recipient's address", path)),
        // The loader refuses a reader with neither.
        (None, None) => return Err(missing("recipient", &reader.nhs_number)),
    };
    // The sender's own ids for the letter are new every run: not content.
    let own_ids: Vec<String> = [&reader.reference, &reader.document_id]
        .into_iter()
        .flatten()
        .filter_map(first)
        .collect();
    let mut facts = LetterFacts {
        kind: None,
        itk3_event: None,
        nhs_number: Some(nhs_number),
        recipient_ods,
        to_patient,
        document_id: reader.document_id.as_ref().and_then(first),
        digest: digest(body, &own_ids),
        message_id: None,
        reference: reader.reference.as_ref().and_then(first),
        visit_id: None,
        signals: KindSignals::default(),
        status: reader.status.as_ref().and_then(first),
        date: reader.date.as_ref().and_then(first),
        ..LetterFacts::default()
    };
    facts.kind = match &reader.kind {
        KindSource::Fixed(kind) => Some(copy_if_to_patient(*kind, to_patient)),
        KindSource::At(path) => first(path).and_then(|v| {
            let named = LetterKind::ALL.into_iter().find(|k| k.name() == v.trim());
            facts.signals.document_type = Some(v);
            match named {
                Some(kind) => Some(copy_if_to_patient(kind, to_patient)),
                None => classify(&facts, kinds),
            }
        }),
    };
    Ok(facts)
}

/// A clinic letter addressed to the patient is the patient's copy.
fn copy_if_to_patient(kind: LetterKind, to_patient: bool) -> LetterKind {
    match (kind, to_patient) {
        (LetterKind::ClinicLetter, true) => LetterKind::PatientCopy,
        (kind, _) => kind,
    }
}

/// SHA-256 of the normalised body, first 16 hex digits: a JSON or XML body in a canonical
/// rendering (serde_json's map is ordered by key), any other as its text.
fn digest(body: &[u8], own_ids: &[String]) -> String {
    let canonical = match json_or_xml(body) {
        Ok(v) => mask_json_strings(v, own_ids),
        Err(_) => mask_ids_in_text(&String::from_utf8_lossy(body), own_ids),
    };
    hex::encode(Sha256::digest(normalize(&canonical).as_bytes()))[..16].to_string()
}

/// A body of the target's own shape keeps its ids under keys of its own choosing: each string
/// value equal to one of `own_ids` is masked, wherever it is.
fn mask_json_strings(mut v: serde_json::Value, own_ids: &[String]) -> String {
    fn walk(v: &mut serde_json::Value, ids: &[String]) {
        match v {
            serde_json::Value::String(s) => {
                if let Some(n) = ids.iter().position(|id| id == s) {
                    *s = format!("[own-id-{}]", n + 1);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, ids)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, ids)),
            _ => {}
        }
    }
    walk(&mut v, own_ids);
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Finding;
    use crate::protocol::clock::Timestamp;
    use crate::protocol::letter::Transport;
    use crate::targets::matching::tests::letter;
    use serde_json::json;

    /// A patient's copy as the stand-in EHR (tests/standin) posts it to its print service, in
    /// that service's own JSON shape: not a shape lettergate invented.
    fn print_job(nhs: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "printJob": {"jobRef": "6f1c2b9e-0d1a-4a8e-9a57-1f0c7e2d4b10", "submittedAt": "2025-04-02T12:00:00Z", "client": "RXX", "mailClass": "SECOND"},
            "addressee": {"kind": "PATIENT", "nhsNo": nhs, "displayName": "Carol Example", "dob": "1938-11-30",
                          "postal": {"lines": ["19 Test Street", "Testtown"], "postcode": "ZZ99 3AA"}},
            "item": {"docRef": "2d0e8a40-5b7c-4f5e-8a1e-3c9b6d7f0a21", "title": "Outpatient letter", "letterType": "outpatient",
                     "snomedDocType": "823681000000100", "clinicDate": "2025-04-01", "writtenOn": "2025-04-02",
                     "status": "final", "pages": [{"heading": "Plan", "text": "Review in 6 months"}]}
        }))
        .unwrap()
    }

    const TARGET: &str = "name: t\nnon_production: true\ndrive:\n  fhir: {base_url: http://127.0.0.1:1/fhir}\ncapture:\n  http_endpoint: {listen: 127.0.0.1:0}\n";

    const PRINT_READER: &str = "readers:\n  - on: http\n    route: /api/v2/print-jobs\n    nhs_number: /addressee/nhsNo\n    recipient: /addressee/kind\n    kind: /item/snomedDocType\n    date: /item/writtenOn\n    status: /item/status\n    document_id: /item/docRef\n    reference: /printJob/jobRef\n";

    fn target(dir: &std::path::Path, extra: &str) -> Result<Target, crate::scenario::Diagnostic> {
        let p = dir.join("t.yaml");
        std::fs::write(&p, format!("{TARGET}{extra}")).unwrap();
        crate::targets::load(&p)
    }

    /// Carol is seen in clinic, her letter is signed the next day, and she dies three days
    /// later; her copy of the clinic letter is expected, posted to her.
    fn scenario(dir: &std::path::Path) -> std::sync::Arc<crate::scenario::Scenario> {
        let p = dir.join("copy.yaml");
        // Includes stay inside the suite folder: the shipped fixtures are copied into it.
        std::fs::create_dir_all(dir.join("fixtures")).unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scenarios/fixtures/common.yaml"
            ),
            dir.join("fixtures/common.yaml"),
        )
        .unwrap();
        std::fs::write(&p, "name: copy before death\ninclude: [fixtures/common.yaml]\ntimeline:\n  - at: 2025-04-01T10:00:00Z\n    event: outpatient_attendance\n    patient: carol\n  - after: 1d\n    event: letter_signed\n    patient: carol\n  - after: 3d\n    event: death\n    patient: carol\nexpect:\n  - letter: patient_copy\n    patient: carol\n").unwrap();
        let (mut scenarios, _) = crate::scenario::load_all(&[p]).unwrap();
        scenarios.remove(0)
    }

    fn posted(dir: &std::path::Path, at: &str) -> CapturedLetter {
        let at = Timestamp::parse(at).unwrap();
        let mut l = letter(dir, Transport::Http, &print_job("9990000034"), at);
        l.route = "POST /api/v2/print-jobs".into();
        l.local_id = None;
        l
    }

    fn check(
        t: &Target,
        s: &crate::scenario::Scenario,
        mut letters: Vec<CapturedLetter>,
    ) -> Vec<Finding> {
        read_again(t, &mut letters);
        for (i, l) in letters.iter_mut().enumerate() {
            l.seq = i as u32 + 1;
        }
        crate::expect::check_scoped(s, &letters)
            .into_iter()
            .map(|(_, f)| f)
            .collect()
    }

    #[test]
    fn a_print_services_own_json_is_unreadable_until_a_reader_says_where_things_are() {
        let dir = tempfile::tempdir().unwrap();
        let s = scenario(dir.path());
        let bare = target(dir.path(), "").unwrap();
        let findings = check(&bare, &s, vec![posted(dir.path(), "2025-04-02T12:00:00Z")]);
        let said: Vec<String> = findings
            .iter()
            .map(|f| f.describe(crate::protocol::ids::Identifiers::Masked))
            .collect();
        assert!(said.iter().any(|f| f.starts_with("unreadable")), "{said:?}");

        let read = target(dir.path(), PRINT_READER).unwrap();
        let mut letters = vec![posted(dir.path(), "2025-04-02T12:00:00Z")];
        read_again(&read, &mut letters);
        let f = letters[0].facts.as_ref().unwrap();
        assert_eq!(f.kind, Some(LetterKind::PatientCopy));
        assert!(f.to_patient);
        assert_eq!(f.nhs_number, NhsNumber::parse("9990000034").ok());
        assert_eq!(f.status.as_deref(), Some("final"));
        assert_eq!(f.date.as_deref(), Some("2025-04-02"));
        assert_eq!(
            letters[0].local_id.as_deref(),
            Some("6f1c2b9e-0d1a-4a8e-9a57-1f0c7e2d4b10")
        );
        let findings = check(&read, &s, vec![posted(dir.path(), "2025-04-02T12:00:00Z")]);
        assert_eq!(findings, vec![], "read and checked: the copy was expected");
    }

    #[test]
    fn a_reader_can_tell_a_patients_letter_by_its_postal_address() {
        let dir = tempfile::tempdir().unwrap();
        let s = scenario(dir.path());
        let by_address = PRINT_READER.replace(
            "    recipient: /addressee/kind\n",
            "    address: /addressee/postal/postcode\n",
        );
        let t = target(dir.path(), &by_address).unwrap();
        let mut letters = vec![posted(dir.path(), "2025-04-02T12:00:00Z")];
        read_again(&t, &mut letters);
        assert!(letters[0].facts.as_ref().unwrap().to_patient);
        assert_eq!(
            check(&t, &s, vec![posted(dir.path(), "2025-04-02T12:00:00Z")]),
            vec![]
        );
        // A body without the address: nobody to post it to, and the finding says where.
        let elsewhere = by_address.replace("/addressee/postal/postcode", "/addressee/postal/zip");
        let t = target(dir.path(), &elsewhere).unwrap();
        let said: Vec<String> = check(&t, &s, vec![posted(dir.path(), "2025-04-02T12:00:00Z")])
            .iter()
            .map(|f| f.describe(crate::protocol::ids::Identifiers::Masked))
            .collect();
        assert!(
            said.iter()
                .any(|f| f.starts_with("unreadable") && f.contains("/addressee/postal/zip")),
            "{said:?}"
        );
        // Neither a recipient nor an address: refused at load, pointing at `readers:`.
        let neither = by_address.replace("    address: /addressee/postal/postcode\n", "");
        let e = target(dir.path(), &neither).unwrap_err().to_string();
        assert!(
            e.contains("a reader needs `recipient:` or `address:`"),
            "{e}"
        );
    }

    /// The detection test: the same scenario passes with the copy posted before the death
    /// (above), and the copy posted after it is a letter to a deceased patient.
    #[test]
    fn a_print_service_copy_posted_after_the_patient_died_is_a_letter_to_a_deceased_patient() {
        let dir = tempfile::tempdir().unwrap();
        let s = scenario(dir.path());
        let t = target(dir.path(), PRINT_READER).unwrap();
        assert_eq!(
            check(&t, &s, vec![posted(dir.path(), "2025-04-02T12:00:00Z")]),
            vec![]
        );
        let findings = check(&t, &s, vec![posted(dir.path(), "2025-04-06T09:00:00Z")]);
        assert!(
            findings.iter().any(|f| matches!(
                f,
                Finding::LetterToDeceased {
                    kind: LetterKind::PatientCopy,
                    ..
                }
            )),
            "{findings:?}"
        );
    }

    #[test]
    fn a_reader_that_finds_no_patient_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(
            dir.path(),
            &PRINT_READER.replace("/addressee/nhsNo", "/addressee/nhs"),
        )
        .unwrap();
        let mut letters = vec![posted(dir.path(), "2025-04-02T12:00:00Z")];
        read_again(&t, &mut letters);
        let e = letters[0].facts.as_ref().unwrap_err().to_string();
        assert!(e.contains("no NHS number at /addressee/nhs"), "{e}");
        // Another route is not this reader's: read as before (unreadable there too).
        let mut other = posted(dir.path(), "2025-04-02T12:00:00Z");
        other.route = "POST /gp-documents/A81001".into();
        let before = other.facts.as_ref().map_err(ToString::to_string).cloned();
        read_again(&t, std::slice::from_mut(&mut other));
        let after = other.facts.as_ref().map_err(ToString::to_string).cloned();
        assert_eq!(after, before);
        assert!(after.is_err(), "not a shape lettergate reads by itself");
    }

    #[test]
    fn a_target_row_names_a_local_document_type_for_a_kind() {
        let dir = tempfile::tempdir().unwrap();
        let mut v =
            crate::protocol::itk3::message_bundle(&crate::targets::matching::tests::doc(None));
        let doc = v["entry"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["resource"]["type"] == "document")
            .unwrap();
        let comp = doc["resource"]["entry"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|e| e["resource"]["resourceType"] == "Composition")
            .unwrap();
        comp["resource"]["type"]["coding"][0]["code"] = "LOCAL-OPL".into();
        comp["resource"]["type"]["coding"][0]["display"] = "Clinic letter (local)".into();
        let body = serde_json::to_vec(&v).unwrap();
        let at = Timestamp::parse("2025-04-02T12:00:00Z").unwrap();
        let mut letters = vec![letter(dir.path(), Transport::Mesh, &body, at)];
        // ITK006D says it is a clinic letter even so; a row makes the document type say it.
        assert_eq!(
            letters[0].facts.as_ref().unwrap().kind,
            Some(LetterKind::ClinicLetter)
        );
        let header = &mut v["entry"][0]["resource"]["event"]["code"];
        *header = "LOCAL1".into();
        let body = serde_json::to_vec(&v).unwrap();
        letters = vec![letter(dir.path(), Transport::Mesh, &body, at)];
        assert_eq!(
            letters[0].facts.as_ref().unwrap().kind,
            None,
            "unrecognised"
        );
        let t = target(
            dir.path(),
            "letters:\n  - kind: clinic_letter\n    document_types: [LOCAL-OPL]\n",
        )
        .unwrap();
        read_again(&t, &mut letters);
        assert_eq!(
            letters[0].facts.as_ref().unwrap().kind,
            Some(LetterKind::ClinicLetter)
        );
    }

    #[test]
    fn letters_and_readers_are_strict_and_point_at_the_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let e = target(
            dir.path(),
            "letters:\n  - kind: clinic_leter\n    document_types: [X1]\n",
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (8, 11), "{e}");
        assert!(
            e.to_string().contains("did you mean `clinic_letter`?"),
            "{e}"
        );
        let e = target(dir.path(), "letters:\n  - kind: clinic_letter\n").unwrap_err();
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("names no code"), "{e}");
        assert!(
            e.help.as_deref().unwrap_or("").contains("document_types:"),
            "{e}"
        );
        let e = target(
            dir.path(),
            &PRINT_READER.replace("nhs_number:", "nhs_numbr:"),
        )
        .unwrap_err();
        assert_eq!(e.line, 10, "{e}");
        assert!(e.to_string().contains("nhs_number"), "{e}");
        let e = target(dir.path(), &PRINT_READER.replace("on: http", "on: htp")).unwrap_err();
        assert!(e.to_string().contains("did you mean `http`?"), "{e}");
        let e = target(
            dir.path(),
            &PRINT_READER.replace("/addressee/kind", "addressee.kind"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("or write `patient`"), "{e}");
        let t = target(
            dir.path(),
            &PRINT_READER.replace("/item/snomedDocType", "patient_copy"),
        )
        .unwrap();
        assert_eq!(
            t.readers[0].kind,
            KindSource::Fixed(LetterKind::PatientCopy)
        );
    }

    /// README's example ("When lettergate cannot read your EHR's letters") is a target file
    /// lettergate accepts.
    #[test]
    fn the_readme_example_target_file_loads() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let section = readme
            .split("### When lettergate cannot read your EHR's letters")
            .nth(1)
            .unwrap();
        let yaml = section
            .split("```yaml\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("staging.yaml");
        std::fs::write(&p, yaml).unwrap();
        let t = crate::targets::load(&p).unwrap();
        assert_eq!(t.readers.len(), 2);
        assert!(t.kinds.is_some());
    }
}
