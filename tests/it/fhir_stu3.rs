//! FHIR STU3 against an independent peer: every ITK3 bundle the simulator builds and sends
//! validates as an STU3 `Bundle` with python `fhir.resources` (8.x, `fhir.resources.STU3`),
//! plus the bundle rules fhir.resources does not check. A deliberately broken bundle is
//! reported invalid by the same script, so the validation can fail.

use crate::support::fixtures::{alice_letter, run_on_simulator, shipped};
use crate::support::peers;
use lettergate::protocol::clock::Timestamp;
use lettergate::protocol::itk3::{self, PaperRecipient};
use lettergate::protocol::letter::LetterKind;
use lettergate::SimConfig;
use lettergate::{SnapshotStatus, Verdict};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// Validates every `*.json` file of the folder `argv[1]` in one process: one line per file,
/// `OK name` or `INVALID name: error`, then exits 1 if any is invalid (2 if there are none).
///
/// Besides `Bundle.model_validate` (types, cardinalities, required elements, unknown
/// elements, primitive formats), it checks what fhir.resources does not, in the outer bundle
/// and in every bundle nested in an entry: `Bundle.type` is `message` or `document`; a
/// message's first entry is a `MessageHeader`, a document's a `Composition`;
/// `MessageHeader.focus` is a list; every `urn:uuid:` reference resolves to a `fullUrl` of the
/// bundle (or of the bundle it is nested in).
const VALIDATOR: &str = r#"
import json, os, sys
from pydantic import ValidationError
from fhir.resources.STU3.bundle import Bundle

def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            elif k != "resource" or not (isinstance(v, dict) and v.get("resourceType") == "Bundle"):
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)

def rules(b, where, outer_urls):
    t = b.get("type")
    if t not in ("message", "document"):
        return f"{where}Bundle.type={t!r}, expected 'message' or 'document'"
    entries = b.get("entry") or []
    types = [(e.get("resource") or {}).get("resourceType") for e in entries]
    first = {"message": "MessageHeader", "document": "Composition"}[t]
    if not types or types[0] != first:
        return f"{where}Bundle.type={t} requires entry[0] to be {first}, got {types[:1]}"
    urls = outer_urls | {e.get("fullUrl") for e in entries if e.get("fullUrl")}
    for i, e in enumerate(entries):
        r = e.get("resource") or {}
        if r.get("resourceType") == "MessageHeader" and "focus" in r and not isinstance(r["focus"], list):
            return f"{where}entry[{i}] MessageHeader.focus is not a list"
        # A nested bundle's references are checked by the recursion below.
        for ref in ([] if r.get("resourceType") == "Bundle" else refs(r)):
            if ref.startswith("urn:uuid:") and ref not in urls:
                return f"{where}entry[{i}] {r.get('resourceType')} references {ref}, not in the bundle"
        if r.get("resourceType") == "Bundle":
            why = rules(r, f"{where}entry[{i}] (nested Bundle): ", urls)
            if why:
                return why
    return None

def check(path):
    try:
        data = json.load(open(path, "rb"))
    except ValueError as e:
        return f"not JSON: {e}"
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        return "resourceType is not 'Bundle'"
    try:
        Bundle.model_validate(data)
    except ValidationError as e:
        return " | ".join(str(e).splitlines())
    except Exception as e:  # fhir_core raises plain errors for some problems
        return f"{type(e).__name__}: {e}"
    return rules(data, "", set())

names = sorted(n for n in os.listdir(sys.argv[1]) if n.endswith(".json"))
bad = 0
for n in names:
    why = check(os.path.join(sys.argv[1], n))
    if why:
        bad += 1
        print(f"INVALID {n}: {why}")
    else:
        print(f"OK {n}")
sys.exit(2 if not names else (1 if bad else 0))
"#;

/// What the validator said about a folder of bundles.
struct Report {
    code: i32,
    ok: BTreeSet<String>,
    invalid: Vec<String>,
    stdout: String,
    stderr: String,
}

fn validate(dir: &Path) -> Report {
    let (code, stdout, stderr) = peers::python(VALIDATOR, &[dir.to_str().unwrap()]);
    let ok = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("OK "))
        .map(str::to_string)
        .collect();
    let invalid = stdout
        .lines()
        .filter(|l| l.starts_with("INVALID "))
        .map(str::to_string)
        .collect();
    Report {
        code,
        ok,
        invalid,
        stdout,
        stderr,
    }
}

/// Asserts that every one of the `written` files, and nothing else, validated.
fn assert_all_valid(dir: &Path, written: &BTreeSet<String>) {
    assert!(!written.is_empty(), "no bundle was written to validate");
    let r = validate(dir);
    assert_eq!(
        r.code,
        0,
        "not every bundle is valid FHIR STU3:\n{}\n{}\nstderr:\n{}",
        r.invalid.join("\n"),
        r.stdout,
        r.stderr
    );
    assert!(r.invalid.is_empty(), "{}", r.stdout);
    assert_eq!(
        &r.ok, written,
        "the validator must say OK for exactly the files written\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
}

fn write(dir: &Path, name: &str, bundle: &[u8], written: &mut BTreeSet<String>) {
    let name = format!("{name}.json");
    std::fs::write(dir.join(&name), bundle).unwrap();
    assert!(written.insert(name.clone()), "{name} written twice");
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// The ITK3 response codes the synthetic GP receiver sends: infrastructure (`20xxx`,
/// `10004`) and business (`30xxx`) acknowledgements.
const ACK_CODES: [u32; 10] = [
    20013, 20007, 20008, 20009, 20002, 10004, 30001, 30002, 30003, 30004,
];

#[test]
fn every_itk3_bundle_the_builder_makes_is_valid_fhir_stu3() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = BTreeSet::new();
    let mut kinds = 0;
    for kind in LetterKind::ALL {
        let d = alice_letter(kind);
        if kind.goes_to_practice() {
            // What goes over MESH (and into a watched folder) to the practice.
            write(
                dir.path(),
                &format!("message-{kind}"),
                &bytes(&itk3::message_bundle(&d)),
                &mut written,
            );
        }
        // As a target run makes them: the EHR was told the visit's id, which the
        // Encounter carries as its identifier. The paper copies carry it too.
        let mut d = d;
        d.visit_id = Some("LG-7K2M9QXA-1".into());
        if kind.goes_to_practice() {
            write(
                dir.path(),
                &format!("message-{kind}-visit"),
                &bytes(&itk3::message_bundle(&d)),
                &mut written,
            );
            // The paper copy to the practice, when it is not sent electronically.
            let paper = PaperRecipient::Practice {
                ods: "A81001".into(),
                name: "Riverside Surgery".into(),
            };
            let request = itk3::paper_request(&d, &paper);
            write(
                dir.path(),
                &format!("paper-practice-{kind}"),
                &bytes(&request["document"]),
                &mut written,
            );
        } else {
            // The patient's copy goes to print as a document bundle; it has no ITK3 event and
            // never goes in a message bundle.
            let request = itk3::paper_request(&d, &PaperRecipient::Patient);
            write(
                dir.path(),
                &format!("paper-patient-{kind}"),
                &bytes(&request["document"]),
                &mut written,
            );
        }
        kinds += 1;
    }
    assert_eq!(kinds, LetterKind::ALL.len());
    // Acknowledgements of a message bundle, as the synthetic GP receiver builds them: to a
    // practice it knows, and to one it could not read from the letter (empty ODS code).
    // An ack of a letter whose bundle id could not be read (`20009`) names the MESH message
    // instead (capture/server.rs), so every ack carries a non-empty original id, as here.
    let message = itk3::message_bundle(&alice_letter(LetterKind::ClinicLetter));
    let original = message["identifier"]["value"].as_str().unwrap().to_string();
    for code in ACK_CODES {
        for ods in ["A81001", ""] {
            let ack = itk3::ack_bundle(
                &original,
                code.into(),
                ods,
                "A81001HC001",
                Timestamp(1_736_155_060),
            );
            assert_eq!(
                itk3::read_ack(&serde_json::to_vec(&ack).unwrap()),
                Some((original.clone(), code.into()))
            );
            let who = if ods.is_empty() { "unknown" } else { ods };
            write(
                dir.path(),
                &format!("ack-{code}-{who}"),
                &bytes(&ack),
                &mut written,
            );
        }
    }
    assert!(written.len() >= LetterKind::ALL.len() + 2 * ACK_CODES.len());
    assert_all_valid(dir.path(), &written);
}

/// The bodies the simulator actually sent while the shipped hand-written scenarios ran on
/// baseline: every ITK3 message bundle captured on MESH or in a watched folder, and the
/// document of every print request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundle_the_simulator_sent_in_the_shipped_scenarios_is_valid_fhir_stu3() {
    let scenarios = shipped();
    assert!(!scenarios.is_empty());
    // The captures stay in `_work` until the end of the test.
    let (_work, outcomes) = run_on_simulator(SimConfig::baseline(), &scenarios).await;
    assert_eq!(outcomes.len(), scenarios.len());

    let dir = tempfile::tempdir().unwrap();
    let mut written = BTreeSet::new();
    let mut mesh = 0;
    let mut mesh_kinds = BTreeSet::new();
    for o in &outcomes {
        assert_eq!(
            (o.verdict, &o.snapshot),
            (Verdict::Pass, &SnapshotStatus::Matched),
            "{} should pass and match its snapshot on baseline: {:?} {:?}",
            o.scenario_id,
            o.findings,
            o.error
        );
        let index = std::fs::read_to_string(o.capture_dir.join("messages.ndjson"))
            .unwrap_or_else(|e| panic!("{}: {e}", o.capture_dir.display()));
        let bodies = std::fs::read(o.capture_dir.join("bodies.bin")).unwrap();
        let tag = o.scenario_id.replace(['/', ' '], "_");
        for line in index.lines() {
            let m: Value = serde_json::from_str(line).unwrap();
            let start = m["body_offset"].as_u64().unwrap() as usize;
            let len = m["body_bytes"].as_u64().unwrap() as usize;
            let body = &bodies[start..start + len];
            let seq = m["seq"].as_u64().unwrap();
            let transport = m["transport"].as_str().unwrap();
            let name = format!("{tag}-{seq:03}-{transport}");
            match transport {
                "mesh" => {
                    write(dir.path(), &name, body, &mut written);
                    mesh += 1;
                    if let Some(kind) = m["facts"]["Ok"]["kind"].as_str() {
                        mesh_kinds.insert(kind.to_string());
                    }
                }
                // A watched folder gets an ITK3 message bundle or an HL7 v2 MDM^T02.
                "folder" if body.first() == Some(&b'{') => {
                    write(dir.path(), &name, body, &mut written)
                }
                "http" => {
                    let request: Value = serde_json::from_slice(body).unwrap();
                    assert_eq!(request["document"]["resourceType"], "Bundle", "{name}");
                    write(
                        dir.path(),
                        &name,
                        &bytes(&request["document"]),
                        &mut written,
                    );
                }
                _ => {}
            }
        }
    }
    // Every kind of letter to a practice the simulator sends went over MESH at least once.
    let practice_kinds: BTreeSet<String> = LetterKind::SIMULATED
        .iter()
        .filter(|k| k.goes_to_practice())
        .map(|k| k.name().to_string())
        .collect();
    assert_eq!(
        mesh_kinds, practice_kinds,
        "the MESH bodies must cover every practice letter kind"
    );
    assert!(mesh >= practice_kinds.len(), "only {mesh} MESH bodies");
    assert_all_valid(dir.path(), &written);
    eprintln!(
        "validated {} bundles sent in {} scenarios ({mesh} over MESH)",
        written.len(),
        outcomes.len()
    );
}

fn header(b: &mut Value) -> &mut Value {
    &mut b["entry"][0]["resource"]
}

/// The patient of the document nested in a message bundle.
fn patient(b: &mut Value) -> &mut Value {
    let entries = b["entry"][3]["resource"]["entry"].as_array_mut().unwrap();
    let p = entries
        .iter_mut()
        .find(|e| e["resource"]["resourceType"] == "Patient")
        .unwrap();
    &mut p["resource"]
}

/// A broken bundle: its name, the change that breaks it, and a word its error must mention.
type Breakage = (&'static str, Box<dyn Fn(&mut Value)>, &'static str);

/// The negative control: the same script reports broken bundles, each one change away from a
/// valid one, as invalid, and still says OK for the valid one beside them.
#[test]
fn the_validator_reports_a_broken_bundle_as_invalid() {
    let good = itk3::message_bundle(&alice_letter(LetterKind::DischargeSummary));
    let broken: Vec<Breakage> = vec![
        (
            "no-source",
            Box::new(|b| {
                header(b).as_object_mut().unwrap().remove("source");
            }),
            "source",
        ),
        (
            "birth-date",
            Box::new(|b| patient(b)["birthDate"] = json!("15/01/1970")),
            "birthDate",
        ),
        (
            "focus-not-a-list",
            Box::new(|b| {
                let focus = header(b)["focus"][0].clone();
                header(b)["focus"] = focus;
            }),
            "focus",
        ),
        (
            "unknown-element",
            Box::new(|b| patient(b)["nickname"] = json!("Al")),
            "nickname",
        ),
        (
            "bundle-type",
            Box::new(|b| b["type"] = json!("letter")),
            "Bundle.type",
        ),
        (
            "header-not-first",
            Box::new(|b| b["entry"].as_array_mut().unwrap().swap(0, 1)),
            "entry[0]",
        ),
        (
            "dangling-reference",
            Box::new(|b| header(b)["focus"][0]["reference"] = json!("urn:uuid:nowhere")),
            "urn:uuid:nowhere",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.json"), bytes(&good)).unwrap();
    for (name, change, _) in &broken {
        let mut b = good.clone();
        change(&mut b);
        assert_ne!(b, good, "{name} changed nothing");
        std::fs::write(dir.path().join(format!("{name}.json")), bytes(&b)).unwrap();
    }
    let r = validate(dir.path());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        r.ok,
        BTreeSet::from(["good.json".to_string()]),
        "{}",
        r.stdout
    );
    assert_eq!(r.invalid.len(), broken.len(), "{}", r.stdout);
    for (name, _, why) in &broken {
        let line = r
            .invalid
            .iter()
            .find(|l| l.starts_with(&format!("INVALID {name}.json: ")))
            .unwrap_or_else(|| panic!("{name} not reported invalid:\n{}", r.stdout));
        assert!(line.contains(why), "{name} should mention {why}: {line}");
    }
}

/// Writes every `*.json` bundle of the folder `argv[1]` as FHIR XML beside it (`*.xml`), with
/// fhir.resources' own XML serialiser (lxml): XML that lettergate did not write.
const TO_XML: &str = r#"
import os, sys
from fhir.resources.STU3.bundle import Bundle
d = sys.argv[1]
for n in sorted(os.listdir(d)):
    if n.endswith(".json"):
        b = Bundle.model_validate_json(open(os.path.join(d, n), "rb").read())
        x = b.model_dump_xml(pretty_print=True)
        open(os.path.join(d, n[:-5] + ".xml"), "wb").write(x if isinstance(x, bytes) else x.encode())
        print("XML", n[:-5] + ".xml")
"#;

/// FHIR XML: every ITK3 message bundle the simulator builds (with and without the visit's
/// local id), written as STU3 XML by fhir.resources, reads as the same letter as its JSON
/// (kind, patient, recipient, ids, the visit, title and sections), over MESH, HTTP and a
/// folder.
#[test]
fn itk3_bundles_written_as_fhir_xml_by_fhir_resources_read_as_the_same_letters() {
    use lettergate::protocol::letter::Transport;
    use lettergate::protocol::read::{letter_content, parse_letter};
    let dir = tempfile::tempdir().unwrap();
    let mut json = Vec::new();
    for kind in LetterKind::ALL.into_iter().filter(|k| k.goes_to_practice()) {
        for visit in [None, Some("LG-7K2M9QXA-2")] {
            let mut d = alice_letter(kind);
            d.visit_id = visit.map(str::to_string);
            let name = format!("{kind}-{}", visit.map_or("no-visit", |_| "visit"));
            let body = bytes(&itk3::message_bundle(&d));
            std::fs::write(dir.path().join(format!("{name}.json")), &body).unwrap();
            json.push((name, body));
        }
    }
    let (code, stdout, stderr) = peers::python(TO_XML, &[dir.path().to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "fhir.resources could not write XML (it needs lxml: run `bash scripts/install-interop-peers.sh`):\n{stdout}\n{stderr}"
    );
    for (name, body) in &json {
        let xml = std::fs::read(dir.path().join(format!("{name}.xml")))
            .unwrap_or_else(|e| panic!("{name}.xml: {e}\n{stdout}\n{stderr}"));
        assert!(xml.starts_with(b"<?xml"), "{name}");
        let from_json = parse_letter(Transport::Mesh, body).unwrap();
        for transport in [Transport::Mesh, Transport::Http, Transport::Folder] {
            let from_xml = parse_letter(transport, &xml)
                .unwrap_or_else(|e| panic!("{name} over {transport}: {e}"));
            assert_eq!(
                (
                    &from_xml.kind,
                    &from_xml.itk3_event,
                    &from_xml.nhs_number,
                    &from_xml.recipient_ods,
                    &from_xml.document_id,
                    &from_xml.message_id,
                    &from_xml.visit_id,
                ),
                (
                    &from_json.kind,
                    &from_json.itk3_event,
                    &from_json.nhs_number,
                    &from_json.recipient_ods,
                    &from_json.document_id,
                    &from_json.message_id,
                    &from_json.visit_id,
                ),
                "{name} over {transport}"
            );
            assert_eq!(
                letter_content(transport, &xml).unwrap(),
                letter_content(Transport::Mesh, body).unwrap(),
                "{name} over {transport}"
            );
        }
        assert!(from_json.kind.is_some() && from_json.nhs_number.is_some());
    }
    // XML that is not a letter is said to be so, not read as one.
    let cut = std::fs::read(dir.path().join(format!("{}.xml", json[0].0))).unwrap();
    assert!(parse_letter(Transport::Mesh, &cut[..cut.len() / 2]).is_err());
}
