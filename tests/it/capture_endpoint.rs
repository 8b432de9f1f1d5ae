//! lettergate's own MESH endpoint answers as MESH does and records everything it is sent.

use crate::support::fixtures::capture_config;
use crate::support::http;
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::letter::Transport;
use lettergate::protocol::mesh::auth;
use lettergate::protocol::mesh::client::{MeshClient, MeshConfig, OutboundMessage, SendOutcome};
use lettergate::protocol::mesh::CANARY_WORKFLOW;
use lettergate::CaptureServer;

async fn server(dir: &std::path::Path) -> CaptureServer {
    let config = capture_config(dir, &[("RXXHC001", "sender-pw"), ("A81001HC001", "gp-pw")]);
    CaptureServer::start(config, Clock::virtual_at(Timestamp(1_000)))
        .await
        .unwrap()
}

fn client(url: &str, password: &str) -> MeshClient {
    MeshClient::new(
        http(),
        MeshConfig {
            base_url: url.into(),
            mailbox: "RXXHC001".into(),
            password: password.into(),
            shared_key: "TestKey".into(),
        },
    )
}

fn message(to: &str, workflow: &str) -> OutboundMessage {
    OutboundMessage {
        to: to.into(),
        workflow_id: workflow.into(),
        subject: None,
        local_id: Some("L1".into()),
        file_name: None,
        content_type: "application/fhir+json".into(),
        body: b"{\"not\": \"a letter\"}".to_vec(),
    }
}

#[tokio::test]
async fn accepts_a_signed_send_refuses_bad_auth_and_unknown_mailboxes_and_records_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let good = client(&s.url(), "sender-pw");
    assert_eq!(good.handshake().await.unwrap(), 200);
    let SendOutcome::Accepted { message_id } = good
        .send(&message("A81001HC001", "TOC_FHIR_OP_ATTEN"))
        .await
        .unwrap()
    else {
        panic!("a correctly signed send should be accepted")
    };
    assert!(!message_id.is_empty());
    let bad = client(&s.url(), "wrong-pw");
    assert!(matches!(
        bad.send(&message("A81001HC001", "TOC_FHIR_OP_ATTEN"))
            .await
            .unwrap(),
        SendOutcome::Rejected { status: 403, .. }
    ));
    let SendOutcome::Rejected { status, body } = good
        .send(&message("Z99999HC001", "TOC_FHIR_OP_ATTEN"))
        .await
        .unwrap()
    else {
        panic!("an unknown mailbox should be refused")
    };
    assert_eq!(status, 417);
    assert!(body.contains("\"errorCode\":\"12\""), "{body}");
    assert!(matches!(
        good.send(&message("RXXHC001", CANARY_WORKFLOW))
            .await
            .unwrap(),
        SendOutcome::Accepted { .. }
    ));

    let log = s.finish().await.unwrap();
    assert_eq!(log.handshakes, 1);
    assert_eq!(log.canaries, 1);
    let statuses: Vec<u16> = log.letters.iter().map(|l| l.status).collect();
    assert_eq!(
        statuses,
        vec![202, 403, 417],
        "every request but the canary is kept, refused ones too"
    );
    let first = &log.letters[0];
    assert!(first.auth_valid);
    assert_eq!(first.message_id, message_id);
    assert_eq!(
        first.received_at,
        Timestamp(1_000),
        "stamped with the shared clock"
    );
    assert_eq!(first.workflow_id.as_deref(), Some("TOC_FHIR_OP_ATTEN"));
    assert!(first.facts.is_err(), "the body is not a letter and says so");
    assert_eq!(first.read_body().unwrap(), b"{\"not\": \"a letter\"}");
    assert!(!log.letters[1].auth_valid);
    assert!(log.letters[2]
        .refusal
        .as_deref()
        .unwrap()
        .contains("MESH error 12"));
}

#[tokio::test]
async fn refuses_a_reused_nonce() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let token = auth::header("TestKey", "RXXHC001", "sender-pw");
    let http = http();
    let send = || {
        http.post(format!("{}/messageexchange/RXXHC001/outbox", s.url()))
            .header("Authorization", &token)
            .header("mex-To", "A81001HC001")
            .header("mex-WorkflowID", "TOC_FHIR_OP_ATTEN")
            .body("x")
            .send()
    };
    assert_eq!(send().await.unwrap().status().as_u16(), 202);
    assert_eq!(send().await.unwrap().status().as_u16(), 403);
    let log = s.finish().await.unwrap();
    assert!(log.letters[1]
        .refusal
        .as_deref()
        .unwrap()
        .contains("was used before"));
}

#[tokio::test]
async fn any_other_path_is_an_http_capture() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let r = http()
        .post(format!("{}/docman/v1/documents", s.url()))
        .body("%PDF-1.4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let log = s.finish().await.unwrap();
    assert_eq!(log.letters.len(), 1);
    assert_eq!(log.letters[0].transport, Transport::Http);
    assert_eq!(log.letters[0].route, "POST /docman/v1/documents");
}

/// The HTTP capture's canary (a request on the canary workflow) is counted, not recorded;
/// any other request on the same path is a letter, however unreadable.
#[tokio::test]
async fn the_http_canary_is_counted_and_nothing_else_is() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let http = http();
    let url = format!("{}/lettergate/canary", s.url());
    let canary = http
        .post(&url)
        .header("mex-WorkflowID", CANARY_WORKFLOW)
        .body("canary")
        .send()
        .await
        .unwrap();
    assert_eq!(canary.status().as_u16(), 202);
    let other = http.post(&url).body("canary").send().await.unwrap();
    assert_eq!(other.status().as_u16(), 202);
    let log = s.finish().await.unwrap();
    assert_eq!(log.canaries, 1);
    assert_eq!(log.letters.len(), 1);
    assert_eq!(log.letters[0].transport, Transport::Http);
}
