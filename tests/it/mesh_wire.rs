//! What the simulator puts on the wire, checked against an independent HTTP peer (wiremock)
//! rather than lettergate's own endpoint: every MESH request carries a valid `NHSMESH`
//! signature and an ITK3 bundle whose workflow id and event code match its letter kind.

use crate::support::fixtures::{alice, riverside, trust_outbound};
use crate::support::http;
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::letter::{EventKind, LetterKind};
use lettergate::protocol::mesh::auth::{signature, Token};
use lettergate::{SimConfig, SimEvent, Simulator};
use serde_json::{json, Value};
use std::collections::HashSet;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "TestKey";
const PASSWORD: &str = "sim-password";

async fn drive_every_kind(server: &MockServer) -> Simulator {
    let start = Timestamp::parse("2025-03-03T09:00:00Z").unwrap();
    let out = trust_outbound(server.uri(), PASSWORD, KEY, server.uri());
    let mut sim = Simulator::new(SimConfig::baseline(), Clock::virtual_at(start), out, http());
    sim.handshake().await.unwrap();
    sim.register_practice(riverside());
    let nhs = alice().nhs_number;
    sim.register_patient(alice());
    let events = [
        (0, EventKind::OutpatientAttendance),
        (1, EventKind::LetterSigned),
        (2, EventKind::Admission),
        (3, EventKind::Discharge),
        (4, EventKind::EmergencyAttendance),
        (5, EventKind::EmergencyDischarge),
        (6, EventKind::Admission),
        (7, EventKind::Death),
    ];
    for (h, event) in events {
        sim.apply(SimEvent {
            at: start.plus(lettergate::protocol::clock::Span::hours(h)),
            clinical_at: None,
            event,
            nhs_number: nhs,
            to: None,
            second_signer: false,
            local_id: None,
            signs: Default::default(),
            held_for_signature: false,
        })
        .await
        .unwrap();
    }
    sim.advance_to(start.plus(lettergate::protocol::clock::Span::days(2)))
        .await
        .unwrap();
    sim
}

fn kind_from_subject(subject: &str) -> LetterKind {
    LetterKind::ALL
        .into_iter()
        .find(|k| subject.starts_with(&k.words()))
        .unwrap_or_else(|| panic!("subject {subject}"))
}

/// A MESH peer that answers the handshake, answers every send with `outbox`, and takes
/// patient copies; `sends` is how many outbox POSTs it must see in all.
async fn mesh_peer(outbox: ResponseTemplate, sends: u64) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/messageexchange/RXXHC001"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"mailbox_id": "RXXHC001"})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/messageexchange/RXXHC001/outbox"))
        .respond_with(outbox)
        .expect(sends)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/messageexchange/RXXHC001/inbox"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"messages": []})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/print/v1/letters"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn every_mesh_request_carries_a_valid_nhsmesh_signature_and_a_matching_itk3_bundle() {
    let accepted = ResponseTemplate::new(202)
        .set_body_json(json!({"message_id": "20250303090000000000_ABCDEF"}));
    let server = mesh_peer(accepted, 4).await;
    drive_every_kind(&server).await;

    let requests = server.received_requests().await.unwrap();
    let mesh: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path().starts_with("/messageexchange/"))
        .collect();
    let sends: Vec<_> = mesh
        .iter()
        .filter(|r| r.url.path().ends_with("/outbox"))
        .collect();
    assert_eq!(
        sends.len(),
        4,
        "clinic letter, discharge summary, emergency discharge, death notification"
    );
    let mut nonces = HashSet::new();
    for r in &mesh {
        let header = r.headers.get("authorization").and_then(|v| v.to_str().ok());
        let token = Token::parse(header).unwrap();
        assert_eq!(token.mailbox, "RXXHC001");
        // Recompute the HMAC from its parts, independently of Token::verify.
        let expected = signature(
            KEY,
            &token.mailbox,
            &token.nonce,
            &token.nonce_count,
            PASSWORD,
            &token.timestamp,
        );
        assert_eq!(token.hash, expected, "signature of {}", r.url);
        assert!(token.verify(KEY, "wrong").is_err());
        assert!(nonces.insert(token.nonce.clone()), "a nonce was reused");
        assert_eq!(
            r.headers.get("accept").unwrap(),
            "application/vnd.mesh.v2+json"
        );
    }
    let mut kinds = HashSet::new();
    for r in sends {
        let h = |n: &str| {
            r.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let kind = kind_from_subject(&h("mex-subject"));
        kinds.insert(kind);
        assert_eq!(h("mex-to"), "A81001HC001");
        assert_eq!(
            Some(h("mex-workflowid").as_str()),
            kind.workflow_id(),
            "{kind}"
        );
        assert!(!h("mex-localid").is_empty());
        let bundle: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "message");
        let header = &bundle["entry"][0]["resource"];
        assert_eq!(header["resourceType"], "MessageHeader");
        assert_eq!(
            header["event"]["code"].as_str(),
            kind.itk3_event(),
            "{kind}"
        );
        assert_eq!(header["source"]["endpoint"], "RXXHC001");
        let focus = header["focus"][0]["reference"].as_str().unwrap();
        let doc = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["fullUrl"] == focus)
            .unwrap();
        assert_eq!(doc["resource"]["type"], "document");
        let text = doc["resource"].to_string();
        assert!(text.contains("\"resourceType\":\"Composition\""));
        assert!(text.contains("https://fhir.nhs.uk/Id/nhs-number") && text.contains("9990000018"));
        assert!(
            text.contains("https://fhir.nhs.uk/Id/ods-organization-code")
                && text.contains("A81001")
        );
    }
    assert_eq!(kinds.len(), 4);
    let print: Vec<_> = requests
        .iter()
        .filter(|r| r.url.path() == "/print/v1/letters")
        .collect();
    assert_eq!(print.len(), 1, "one patient copy");
}

#[tokio::test]
async fn a_refused_send_is_recorded_by_the_simulator_and_never_retried() {
    let refused = ResponseTemplate::new(417).set_body_json(json!({"errorCode": "12"}));
    let server = mesh_peer(refused, 4).await;
    let sim = drive_every_kind(&server).await;
    let refused: Vec<_> = sim
        .sent()
        .iter()
        .filter(|r| r.kind.goes_to_practice())
        .collect();
    assert_eq!(refused.len(), 4);
    for r in refused {
        assert!(r.outcome.to_string().starts_with("rejected (417)"), "{r:?}");
        assert_eq!(r.message_id, None);
    }
    // `expect(4)` is verified when the server drops: one POST per letter, no retry.
}
