//! `lettergate explain`: where each fact of a captured letter was read from (issue 11), for a
//! body file and for a run's capture folder.

use crate::support::project::Project;
use serde_json::json;

/// An ITK3 message laid out as a supplier may within FHIR: RESTful fullUrls with relative
/// references, and no `MessageHeader.receiver` (ITK-MessageHeader-2 allows none; the MESH
/// mailbox then says who it is for).
fn relative_message_without_receiver() -> serde_json::Value {
    let base = "https://ehr.example.invalid/fhir/";
    json!({"resourceType": "Bundle", "type": "message",
        "identifier": {"value": "5e1f0a9c-7f68-4f5c-9b0e-2c1d3a4b5c6d"},
        "entry": [
        {"fullUrl": format!("{base}MessageHeader/h1"), "resource": {"resourceType": "MessageHeader",
            "id": "h1", "event": {"code": "ITK003D"}, "focus": [{"reference": "Bundle/d1"}]}},
        {"fullUrl": format!("{base}Bundle/d1"), "resource": {"resourceType": "Bundle", "id": "d1",
            "type": "document", "entry": [
            {"fullUrl": format!("{base}Composition/c1"), "resource": {"resourceType": "Composition",
                "id": "c1", "status": "final", "subject": {"reference": "Patient/p1"},
                "type": {"coding": [{"code": "373942005", "display": "Discharge summary"}]}}},
            {"fullUrl": format!("{base}Patient/p1"), "resource": {"resourceType": "Patient",
                "id": "p1", "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number",
                "value": "9990000018"}]}}
        ]}}
    ]})
}

#[test]
fn explain_names_where_each_fact_of_a_body_file_was_read_and_masks_nhs_numbers() {
    let p = Project::copy();
    let body = serde_json::to_string(&relative_message_without_receiver()).unwrap();
    p.write("letter.json", &body);
    let r = p.run(&["explain", "letter.json", "--transport", "mesh"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for line in [
        "kind            discharge_summary",
        "document        document Bundle          MessageHeader.focus `Bundle/d1` as a relative reference → Bundle.entry[1]",
        "Composition.subject `Patient/p1` as a relative reference → Bundle.entry[1].resource.entry[1]",
        "patient         *******018",
        "recipient                                none in the message: routed by the transport",
    ] {
        assert!(r.stdout.contains(line), "no `{line}` in:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains("non-conformant"), "{}", r.stdout);
    let shown = p.run(&["explain", "letter.json", "--show-identifiers"]);
    assert!(shown.stdout.contains("9990000018"), "{}", shown.stdout);
}

#[test]
fn explain_reads_a_capture_folder_with_the_numbers_of_the_run() {
    let p = Project::copy();
    let r = p.run(&[
        "run",
        "--check",
        "--work-dir",
        "work",
        "scenarios/inpatient/discharge_summary.yaml",
    ]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let runs = std::fs::read_dir(p.path("work/runs")).unwrap();
    let run = runs.flatten().next().unwrap().path();
    let folder = run.join("inpatient/discharge_summary");
    let r = p.run(&["explain", folder.to_str().unwrap(), "1"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("letter 1 via "), "{}", r.stdout);
    assert!(
        r.stdout.contains("MessageHeader.receiver `urn:uuid:"),
        "{}",
        r.stdout
    );
    let missing = p.run(&["explain", "no/such/folder"]);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
}
