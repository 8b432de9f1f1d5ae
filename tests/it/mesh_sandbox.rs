//! lettergate against NHS Digital's mesh-sandbox (full NHSMESH authentication, file store):
//! its MeshClient sends (whole, and in gzipped chunks), lists, downloads and acknowledges;
//! the simulator sends a scenario's letters to it unchanged; and the MESH poller collects
//! them, acknowledges them, and attaches REPORTs injected through the sandbox's admin API.

use crate::support::fixtures::{load, trust_outbound};
use crate::support::loopback::free_port;
use crate::support::{http, peers, root};
use lettergate::protocol::clock::Clock;
use lettergate::protocol::mesh::client::{
    MeshClient, MeshConfig, MeshError, OutboundMessage, SendOutcome, TransferOptions,
};
use lettergate::CaptureLog;
use lettergate::{MailboxCredentials, MeshPoller, PollConfig, PollError};
use lettergate::{SimConfig, Simulator};
use peers::SANDBOX_PASSWORD;
use serde_json::json;
use std::collections::BTreeSet;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "SandboxKey";
const SENDER: &str = "RXXHC001";

fn base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn client(port: u16, mailbox: &str) -> MeshClient {
    MeshClient::new(
        http(),
        MeshConfig {
            base_url: base(port),
            mailbox: mailbox.into(),
            password: SANDBOX_PASSWORD.into(),
            shared_key: KEY.into(),
        },
    )
}

fn message(to: &str, local_id: &str, body: Vec<u8>) -> OutboundMessage {
    OutboundMessage {
        to: to.into(),
        workflow_id: "TOC_FHIR_OP_ATTEN".into(),
        subject: Some("letter".into()),
        local_id: Some(local_id.into()),
        file_name: Some(format!("{local_id}.json")),
        content_type: "application/fhir+json".into(),
        body,
    }
}

fn varied(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7919) % 251) as u8).collect()
}

async fn accepted(c: &MeshClient, m: &OutboundMessage) -> String {
    match c.send(m).await.unwrap() {
        SendOutcome::Accepted { message_id } => message_id,
        other => panic!("mesh-sandbox refused the send: {other:?}"),
    }
}

#[tokio::test]
async fn mesh_client_handshakes_sends_whole_and_chunked_gzip_lists_downloads_and_acknowledges() {
    let store = tempfile::tempdir().unwrap();
    let sandbox = peers::mesh_sandbox(store.path(), KEY, &["LGSEND01", "LGRECV01"]);
    let sender = client(sandbox.port, "LGSEND01");
    let receiver = client(sandbox.port, "LGRECV01");
    assert_eq!(sender.handshake().await.unwrap(), 200);
    assert_eq!(receiver.handshake().await.unwrap(), 200);

    let small = br#"{"resourceType":"Bundle"}"#.to_vec();
    let large = varied(100_000);
    let small_id = accepted(&sender, &message("LGRECV01", "small", small.clone())).await;
    let chunked = sender.clone().with_transfer(TransferOptions {
        chunk_size: 40_000,
        compress: true,
    });
    let large_id = accepted(&chunked, &message("LGRECV01", "large", large.clone())).await;

    let listed: BTreeSet<String> = receiver.list_inbox().await.unwrap().into_iter().collect();
    assert_eq!(listed, BTreeSet::from([small_id.clone(), large_id.clone()]));
    let got_small = receiver.download(&small_id).await.unwrap();
    assert_eq!(got_small.body, small);
    assert_eq!(got_small.header("mex-From"), Some("LGSEND01"));
    assert_eq!(got_small.header("mex-LocalID"), Some("small"));
    assert_eq!(got_small.message_type(), Some("DATA"));
    let got_large = receiver.download(&large_id).await.unwrap();
    assert_eq!(got_large.header("mex-Total-Chunks"), Some("3"));
    assert!(
        got_large.body == large,
        "the chunked message changed on the way"
    );

    for id in [&small_id, &large_id] {
        assert_eq!(receiver.acknowledge(id).await.unwrap(), 200);
    }
    assert!(receiver.list_inbox().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_listing_is_an_error_not_an_empty_inbox() {
    let store = tempfile::tempdir().unwrap();
    let sandbox = peers::mesh_sandbox(store.path(), KEY, &["LGRECV01"]);
    let mut wrong = client(sandbox.port, "LGRECV01");
    wrong = MeshClient::new(
        http(),
        MeshConfig {
            password: "not-the-password".into(),
            ..wrong.config().clone()
        },
    );
    let listed = wrong.list_inbox().await;
    assert!(
        matches!(listed, Err(MeshError::Refused { status: 403, .. })),
        "{listed:?}"
    );
}

/// Loads scenarios from the project's `scenarios/` folder.
fn scenarios(names: &[&str]) -> Vec<std::sync::Arc<lettergate::Scenario>> {
    let paths: Vec<_> = names
        .iter()
        .map(|n| root().join("scenarios").join(n))
        .collect();
    let loaded = load(&paths);
    assert_eq!(loaded.len(), names.len());
    loaded
}

async fn admin_report(port: u16, linked: &str, local_id: &str) -> String {
    let resp = http()
        .post(format!("{}/messageexchange/admin/report", base(port)))
        .json(&json!({
            "mailbox_id": SENDER, "code": "14", "description": "not collected",
            "workflow_id": "TOC_FHIR_OP_ATTEN", "local_id": local_id,
            "linked_message_id": linked, "status": "undeliverable",
        }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let v: serde_json::Value = resp.json().await.unwrap();
    v["message_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poller_collects_what_the_simulator_sent_to_mesh_sandbox_and_attaches_reports() {
    let loaded = scenarios(&[
        "outpatient/clinic_letter.yaml",
        "inpatient/discharge_summary.yaml",
        "death/in_hospital.yaml",
    ]);
    let mut mailboxes: BTreeSet<String> = BTreeSet::from([SENDER.to_string()]);
    for s in &loaded {
        mailboxes.extend(s.practices.values().map(|p| p.mailbox.clone()));
    }
    let store = tempfile::tempdir().unwrap();
    let names: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
    let sandbox = peers::mesh_sandbox(store.path(), KEY, &names);
    let print = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(202))
        .mount(&print)
        .await;

    let recipients: Vec<MailboxCredentials> = mailboxes
        .iter()
        .filter(|m| *m != SENDER)
        .map(|m| MailboxCredentials::new(m.clone(), SANDBOX_PASSWORD))
        .collect();
    let mut poller = MeshPoller::with_http(
        PollConfig {
            base_url: base(sandbox.port),
            shared_key: KEY.into(),
            recipients: recipients.clone(),
            sender: Some(MailboxCredentials::new(SENDER, SANDBOX_PASSWORD)),
            acknowledge: true,
            ..PollConfig::default()
        },
        http(),
    );
    let capture = tempfile::tempdir().unwrap();
    let mut log = CaptureLog::create(capture.path()).unwrap();

    let mut sent = Vec::new();
    for s in &loaded {
        let clock = Clock::virtual_at(s.start);
        let out = trust_outbound(base(sandbox.port), SANDBOX_PASSWORD, KEY, print.uri());
        let mut sim = Simulator::new(SimConfig::baseline(), clock.clone(), out, http());
        lettergate::drive_simulator(&mut sim, s).await.unwrap();
        for r in sim.sent().iter().filter(|r| r.message_id.is_some()) {
            assert_eq!(r.outcome, "sent", "mesh-sandbox refused {r:?}");
            let ods = log_ods(s, r.nhs_number);
            sent.push((r.clone(), ods));
        }
        poller.poll_once(&mut log, &clock).await.unwrap();
    }
    assert!(sent.len() >= 3, "each scenario sends a MESH letter");

    // Every letter the simulator sent over MESH, and nothing else, was recorded.
    assert_eq!(log.letters.len(), sent.len());
    for (r, mailbox) in &sent {
        let id = r.message_id.as_deref().unwrap();
        let l = log.letters.iter().find(|l| l.message_id == id).unwrap();
        assert_eq!(l.route, format!("{SENDER} -> {mailbox}"));
        assert_eq!(l.local_id.as_deref(), Some(r.local_id.as_str()));
        assert_eq!(l.workflow_id.as_deref(), r.kind.workflow_id());
        let facts = l.facts.as_ref().unwrap();
        assert_eq!(facts.kind, Some(r.kind));
        assert_eq!(facts.nhs_number, Some(r.nhs_number));
        assert!(l.accepted() && l.auth_valid);
    }
    // Acknowledged: the recipients' inboxes are empty.
    for m in &recipients {
        assert!(client(sandbox.port, &m.mailbox)
            .list_inbox()
            .await
            .unwrap()
            .is_empty());
    }
    let totals = poller.totals().clone();
    assert_eq!(
        totals
            .mailboxes
            .values()
            .map(|m| m.acknowledged)
            .sum::<usize>(),
        sent.len()
    );

    // A REPORT about the second letter, and one about a message nobody captured.
    let about = sent[1].0.message_id.clone().unwrap();
    admin_report(sandbox.port, &about, &sent[1].0.local_id).await;
    admin_report(sandbox.port, "NO_SUCH_MESSAGE", "stray").await;
    let stats = poller.poll_once(&mut log, &Clock::System).await.unwrap();
    assert_eq!(stats.reports_matched, 1);
    assert_eq!(stats.mailboxes[SENDER].reports, 2);
    for l in &log.letters {
        if l.message_id == about {
            assert_eq!(l.reports.len(), 1);
            assert_eq!(l.reports[0].code, "14");
            assert!(!l.reports[0].description.is_empty());
        } else {
            assert!(l.reports.is_empty(), "{} got a report", l.message_id);
        }
    }
    let unmatched = poller.unmatched_reports();
    assert_eq!(unmatched.len(), 1);
    assert_eq!(
        unmatched[0].linked_message_id.as_deref(),
        Some("NO_SUCH_MESSAGE")
    );
    // Polling again finds nothing new: reports are read once.
    let again = poller.poll_once(&mut log, &Clock::System).await.unwrap();
    assert_eq!(again.new_messages(), 0);
    assert_eq!(poller.unmatched_reports().len(), 1);
}

/// The mailbox the scenario's practices route a patient's letters to (no merges here).
fn log_ods(s: &lettergate::Scenario, nhs: lettergate::protocol::ids::NhsNumber) -> String {
    let patient = s.patients.values().find(|p| p.nhs_number == nhs).unwrap();
    let practice = patient.practice.as_ref().unwrap();
    s.practices[practice].mailbox.clone()
}

#[tokio::test]
async fn without_acknowledging_two_polls_record_each_message_once_and_leave_it_in_the_inbox() {
    let store = tempfile::tempdir().unwrap();
    let sandbox = peers::mesh_sandbox(store.path(), KEY, &[SENDER, "A81001HC001"]);
    let sender = client(sandbox.port, SENDER);
    let ids = [
        accepted(&sender, &message("A81001HC001", "L1", b"{}".to_vec())).await,
        accepted(&sender, &message("A81001HC001", "L2", b"[]".to_vec())).await,
    ];
    let mut poller = MeshPoller::with_http(
        PollConfig {
            base_url: base(sandbox.port),
            shared_key: KEY.into(),
            recipients: vec![MailboxCredentials::new("A81001HC001", SANDBOX_PASSWORD)],
            acknowledge: false,
            ..PollConfig::default()
        },
        http(),
    );
    let capture = tempfile::tempdir().unwrap();
    let mut log = CaptureLog::create(capture.path()).unwrap();
    let first = poller.poll_once(&mut log, &Clock::System).await.unwrap();
    let second = poller.poll_once(&mut log, &Clock::System).await.unwrap();
    assert_eq!(first.recorded(), 2);
    assert_eq!(second.recorded(), 0);
    assert_eq!(second.mailboxes["A81001HC001"].listed, 2);
    assert_eq!(log.letters.len(), 2);
    let recorded: BTreeSet<&str> = log.letters.iter().map(|l| l.message_id.as_str()).collect();
    assert_eq!(recorded, ids.iter().map(String::as_str).collect());
    let left: BTreeSet<String> = client(sandbox.port, "A81001HC001")
        .list_inbox()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(left, ids.iter().cloned().collect());
}

#[tokio::test]
async fn the_poller_fails_clearly_when_mesh_refuses_it_or_cannot_be_reached() {
    let store = tempfile::tempdir().unwrap();
    let sandbox = peers::mesh_sandbox(store.path(), KEY, &["A81001HC001"]);
    let config = |base_url: String, password: &str| PollConfig {
        base_url,
        shared_key: KEY.into(),
        recipients: vec![MailboxCredentials::new("A81001HC001", password)],
        ..PollConfig::default()
    };
    let capture = tempfile::tempdir().unwrap();
    let mut log = CaptureLog::create(capture.path()).unwrap();
    let mut refused = MeshPoller::with_http(config(base(sandbox.port), "wrong"), http());
    let err = refused
        .poll_once(&mut log, &Clock::System)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PollError::Handshake { status: 403, .. }),
        "{err}"
    );
    let closed = base(free_port());
    let mut unreachable = MeshPoller::with_http(config(closed, SANDBOX_PASSWORD), http());
    let err = unreachable
        .poll_once(&mut log, &Clock::System)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PollError::Mesh {
                source: MeshError::Unreachable(_),
                ..
            }
        ),
        "{err}"
    );
}
