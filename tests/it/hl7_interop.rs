//! HL7 v2 against independent peers: python `hl7`'s `mllp_send` delivers MDM^T02 messages into
//! lettergate's MLLP capture, hl7apy strictly validates every MDM^T02 and ADT message lettergate
//! builds, and a scenario with an MLLP practice catches a simulator that stops a letter kind.

use crate::support::fixtures::{alice, alice_letter, load, run_on_simulator};
use crate::support::{peers, root};
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::hl7::{adt, mdm};
use lettergate::protocol::ids::NhsNumber;
use lettergate::protocol::letter::{EventKind, LetterKind, Transport};
use lettergate::Finding;
use lettergate::SimConfig;
use lettergate::Verdict;
use lettergate::{CaptureLog, LogSink, MllpCapture};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A hand-written MDM^T02 (v2.4) as a trust's engine might send it, not built by lettergate.
const HAND_WRITTEN: &str = "MSH|^~\\&|EPR|RX1|DOCMAN|B82002|20240115103000||MDM^T02^MDM_T02|MSG00001|P|2.4|||AL|NE\r\
EVN|T02|20240115103000\r\
PID|1||9990000026^^^NHS^NH||EXAMPLE^BOB^^^MR||19420615|M\r\
PV1|1|O|CLINIC1^^^RX1||||C1234567^JONES^ANNE^^^DR\r\
TXA|1|CN|TX|20240115103000|C1234567^JONES^ANNE^^^DR||20240115103000|||||DOC0001^RX1|||||AU||AV\r\
OBX|1|TX|LETTER^Clinic letter^L||Dear Dr Brown, reviewed in clinic today \\T\\ discharged.||||||F\r";

fn built(kind: LetterKind) -> String {
    mdm::build(
        &alice_letter(kind),
        kind.goes_to_practice().then_some("A81001"),
    )
}

/// Runs `mllp_send --loose` with `file` against `port`; returns its stdout.
fn mllp_send(port: u16, file: &Path) -> String {
    let out = std::process::Command::new(peers::bin("mllp_send"))
        .args(["--loose", "-p", &port.to_string(), "-f"])
        .arg(file)
        .arg("127.0.0.1")
        .output()
        .expect("run mllp_send");
    assert!(
        out.status.success(),
        "mllp_send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_mllp_send_delivers_mdm_messages_that_are_recorded_intact_and_acked_aa() {
    let tmp = tempfile::tempdir().unwrap();
    let sink = Arc::new(LogSink::new(
        CaptureLog::create(&tmp.path().join("capture")).unwrap(),
    ));
    let clock = Clock::virtual_at(Timestamp::parse("2025-01-07T10:15:00Z").unwrap());
    let capture = MllpCapture::start("127.0.0.1:0".parse().unwrap(), sink.clone(), clock)
        .await
        .unwrap();
    let port = capture.addr().port();
    let ours = built(LetterKind::DischargeSummary);
    let not_a_letter = adt::build(
        EventKind::Admission,
        &alice(),
        Timestamp::parse("2025-01-06T09:00:00Z").unwrap(),
        "ADT-1",
        None,
    )
    .unwrap();
    let mut sent = Vec::new();
    for (name, text) in [
        ("ours.hl7", ours.clone()),
        ("hand_written.hl7", HAND_WRITTEN.to_string()),
        ("adt.hl7", not_a_letter.clone()),
    ] {
        let file = tmp.path().join(name);
        std::fs::write(&file, &text).unwrap();
        let stdout = tokio::task::spawn_blocking(move || mllp_send(port, &file))
            .await
            .unwrap();
        sent.push((text, stdout));
    }
    capture.finish().await;
    let log = sink.close().unwrap();

    // mllp_send heard AA for the letters, AE (with the reason) for the ADT message.
    assert!(sent[0].1.contains("MSA|AA|SIM-000002"), "{:?}", sent[0].1);
    assert!(sent[1].1.contains("MSA|AA|MSG00001"), "{:?}", sent[1].1);
    assert!(sent[2].1.contains("MSA|AE|ADT-1|"), "{:?}", sent[2].1);
    assert!(
        sent[2].1.contains("not a document message"),
        "{:?}",
        sent[2].1
    );

    assert_eq!(log.letters.len(), 3);
    for (l, (text, _)) in log.letters.iter().zip(&sent) {
        assert_eq!(l.transport, Transport::Mllp);
        assert_eq!(l.route, format!("MLLP 127.0.0.1:{port}"));
        // mllp_send strips the CR of the last segment; every other byte arrives as written.
        assert_eq!(
            l.read_body().unwrap(),
            text.trim_end_matches('\r').as_bytes()
        );
    }
    let f = log.letters[0].facts.as_ref().unwrap();
    assert_eq!(f.kind, Some(LetterKind::DischargeSummary));
    assert_eq!(f.nhs_number, NhsNumber::parse("9990000018").ok());
    assert_eq!(f.recipient_ods.as_deref(), Some("A81001"));
    assert_eq!(f.document_id.as_deref(), Some("SIM-000002"));
    assert_eq!(log.letters[0].local_id.as_deref(), Some("SIM-000002"));
    let hand = log.letters[1].facts.as_ref().unwrap();
    assert_eq!(hand.kind, Some(LetterKind::ClinicLetter));
    assert_eq!(hand.nhs_number, NhsNumber::parse("9990000026").ok());
    assert_eq!(hand.recipient_ods.as_deref(), Some("B82002"));
    assert_eq!(hand.document_id.as_deref(), Some("DOC0001"));
    let content = lettergate::protocol::read::letter_content(
        Transport::Mllp,
        &log.letters[1].read_body().unwrap(),
    )
    .unwrap();
    assert_eq!(
        content.sections,
        vec![(
            "Clinic letter".to_string(),
            "Dear Dr Brown, reviewed in clinic today & discharged.".to_string()
        )]
    );
    assert!(log.letters[2].refusal.is_some());
    assert_eq!(log.letters[2].status, 400);
}

/// hl7apy strict parse and validate of each file given; prints `file structure` per file.
const VALIDATE: &str = r#"
import sys
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
failed = 0
for path in sys.argv[1:]:
    text = open(path, "rb").read().decode("utf-8")
    try:
        msg = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        msg.validate()
        print(path.rsplit("/", 1)[-1], msg.name)
    except Exception as e:
        failed += 1
        print("INVALID", path, type(e).__name__, e, file=sys.stderr)
sys.exit(1 if failed else 0)
"#;

#[test]
fn hl7apy_strictly_validates_every_mdm_and_adt_message_lettergate_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    for kind in LetterKind::ALL {
        let path = tmp.path().join(format!("mdm_{kind}.hl7"));
        std::fs::write(&path, built(kind)).unwrap();
        files.push((path, "MDM_T02"));
        // As the simulator sends it when it was given the visit's number (PV1-19).
        let mut visited = alice_letter(kind);
        visited.visit_id = Some("LG-7K2M9QXA-1".into());
        let path = tmp.path().join(format!("mdm_{kind}_visit.hl7"));
        std::fs::write(&path, mdm::build(&visited, Some("A81001"))).unwrap();
        files.push((path, "MDM_T02"));
    }
    let patient = alice();
    let mut triggers = Vec::new();
    for event in EventKind::ALL {
        let Some(msg) = adt::build(
            event,
            &patient,
            Timestamp::parse("2025-01-06T09:00:00Z").unwrap(),
            "ADT-1",
            // The local id a target run sends as the visit number (PV1-19).
            Some("LG-7K2M9QXA-1"),
        ) else {
            continue;
        };
        let (trigger, _) = adt::trigger_for(event).unwrap();
        triggers.push(trigger);
        let path = tmp.path().join(format!("adt_{event}.hl7"));
        std::fs::write(&path, msg).unwrap();
        files.push((
            path,
            if trigger == "A03" {
                "ADT_A03"
            } else {
                "ADT_A01"
            },
        ));
    }
    for t in ["A01", "A03", "A04", "A08"] {
        assert!(triggers.contains(&t), "no scenario event builds an {t}");
    }
    let args: Vec<&str> = files.iter().map(|(p, _)| p.to_str().unwrap()).collect();
    let (code, stdout, stderr) = peers::python(VALIDATE, &args);
    assert_eq!(code, 0, "hl7apy refused a message:\n{stderr}");
    for (path, structure) in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            stdout.contains(&format!("{name} {structure}\n")),
            "{name} should parse as {structure}:\n{stdout}"
        );
    }
}

async fn run_scenario(sim: SimConfig) -> lettergate::Outcome {
    let scenario = load(&[root().join("scenarios/routing/mllp_and_folder_practices.yaml")]);
    run_on_simulator(sim, &scenario).await.1.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulator_that_stops_a_letter_kind_is_caught_on_the_mllp_and_folder_routes() {
    let clean = run_scenario(SimConfig::baseline()).await;
    assert_eq!(
        clean.verdict,
        Verdict::Pass,
        "{:?} {:?}",
        clean.findings,
        clean.error
    );
    let routes: Vec<Option<Transport>> = clean.captured.iter().map(|l| l.transport).collect();
    assert!(routes.contains(&Some(Transport::Mllp)), "{routes:?}");
    assert!(routes.contains(&Some(Transport::Folder)), "{routes:?}");

    for (kind, to) in [
        (LetterKind::ClinicLetter, "G87007"),
        (LetterKind::DischargeSummary, "H88008"),
    ] {
        let o = run_scenario(SimConfig::baseline().without_letter(kind)).await;
        let said: Vec<String> = o
            .findings
            .iter()
            .map(|f| f.describe(lettergate::protocol::ids::Identifiers::Masked))
            .collect();
        assert_eq!(o.verdict, Verdict::Fail, "without {kind}: {said:?}");
        assert!(
            o.findings.iter().any(|f| matches!(
                &f.finding,
                Finding::MissingLetter { kind: k, to: t, found: 0, .. } if *k == kind && t.starts_with(to)
            )),
            "without {kind}, a missing {kind} to {to}: {said:?}"
        );
    }
}
