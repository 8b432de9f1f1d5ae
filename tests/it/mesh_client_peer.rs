//! NHS Digital's own MESH client (PyPI `mesh-client`) sends letters into lettergate's MESH
//! endpoint: its authorisation is accepted, its chunked and gzipped sends are put back
//! together byte for byte, and a wrong shared key is refused and recorded as refused. Also
//! lettergate's own MeshClient chunks and gzips the same way, and chunks out of order or
//! missing are refused and recorded, never silently dropped or half-recorded.

use crate::support::fixtures::capture_config;
use crate::support::{http, peers};
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::mesh::auth;
use lettergate::protocol::mesh::client::{
    gzip, MeshClient, MeshConfig, OutboundMessage, SendOutcome, TransferOptions,
};
use lettergate::{CaptureLog, CaptureServer, Endpoint};
use serde_json::Value;

const KEY: &str = "TestKey";
const SENDER: &str = "RXXHC001";
const SENDER_PASSWORD: &str = "sender-pw";
const GP: &str = "A81001HC001";

async fn server(dir: &std::path::Path) -> CaptureServer {
    let config = capture_config(dir, &[(SENDER, SENDER_PASSWORD), (GP, "gp-pw")]);
    let directory = vec![Endpoint {
        ods: "A81001".into(),
        mailbox_id: GP.into(),
        mailbox_name: "Riverside Surgery".into(),
        workflows: vec!["TOC_FHIR_OP_ATTEN".into()],
    }];
    CaptureServer::start_with_directory(config, directory, Clock::virtual_at(Timestamp(1_000)))
        .await
        .unwrap()
}

/// Bytes that are not trivially compressible and not valid UTF-8 everywhere, so a body
/// changed anywhere (a chunk lost, doubled, reordered or left gzipped) shows.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half the bytes from a small alphabet, so gzip has something to do.
            if i % 2 == 0 {
                b"abcdefgh"[(x % 8) as usize]
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

const MESH_CLIENT_SCRIPT: &str = r#"
import json, sys
from mesh_client import MeshClient
url, mbx, pw, key, wrong_key, small, large, chunk = sys.argv[1:9]
out = {}
with MeshClient(url, mailbox=mbx, password=pw, shared_key=key.encode(), max_retries=0) as c:
    c.handshake()
    out["small"] = c.send_message("A81001HC001", open(small, "rb").read(),
        workflow_id="TOC_FHIR_OP_ATTEN", local_id="small-1", subject="clinic letter",
        filename="small.json", content_type="application/fhir+json")
    out["large"] = c.send_message("A81001HC001", open(large, "rb").read(),
        workflow_id="TOC_FHIR_IP_DISCH", local_id="large-1",
        max_chunk_size=int(chunk), compress=True)
    out["lookup"] = c.lookup_endpoint("A81001", "TOC_FHIR_OP_ATTEN")
    out["lookup_other_workflow"] = c.lookup_endpoint("A81001", "SOME_OTHER_WF")
with MeshClient(url, mailbox=mbx, password=pw, shared_key=wrong_key.encode(), max_retries=0) as c:
    try:
        c.handshake()
        out["wrong_key_handshake"] = 200
    except Exception as e:
        out["wrong_key_handshake"] = getattr(getattr(e, "response", None), "status_code", repr(e))
    try:
        c.send_message("A81001HC001", b"refused", workflow_id="TOC_FHIR_OP_ATTEN", local_id="wrong-key-1")
        out["wrong_key_send"] = "accepted"
    except Exception as e:
        out["wrong_key_send"] = type(e).__name__ + ": " + str(e)
print(json.dumps(out))
"#;

fn by_local_id<'a>(log: &'a CaptureLog, local_id: &str) -> &'a lettergate::CapturedLetter {
    let found: Vec<_> = log
        .letters
        .iter()
        .filter(|l| l.local_id.as_deref() == Some(local_id))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one letter with local id {local_id}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_client_sends_small_and_chunked_gzipped_letters_that_arrive_intact_and_a_wrong_key_is_refused(
) {
    let dir = tempfile::tempdir().unwrap();
    let s = server(&dir.path().join("capture")).await;
    let small = br#"{"resourceType":"Bundle","type":"message","note":"small letter"}"#.to_vec();
    // 300 kB in 64 kB chunks: five chunks, each gzipped on its own by mesh-client.
    let large = pseudo_random(300_000, 7);
    let chunk = 64 * 1024;
    let (small_path, large_path) = (dir.path().join("small"), dir.path().join("large"));
    std::fs::write(&small_path, &small).unwrap();
    std::fs::write(&large_path, &large).unwrap();
    let url = s.url();
    let args: Vec<String> = vec![
        url,
        SENDER.into(),
        SENDER_PASSWORD.into(),
        KEY.into(),
        "NotTheKey".into(),
        small_path.to_string_lossy().into(),
        large_path.to_string_lossy().into(),
        chunk.to_string(),
    ];
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        peers::python(MESH_CLIENT_SCRIPT, &args)
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "mesh-client failed:\n{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    let log = s.finish().await.unwrap();

    assert_eq!(log.handshakes, 1, "only the right key's handshake counts");
    let small_letter = by_local_id(&log, "small-1");
    assert_eq!(small_letter.message_id, out["small"].as_str().unwrap());
    assert_eq!(small_letter.route, format!("{SENDER} -> {GP}"));
    assert_eq!(
        small_letter.workflow_id.as_deref(),
        Some("TOC_FHIR_OP_ATTEN")
    );
    assert!(small_letter.accepted() && small_letter.auth_valid);
    assert_eq!(small_letter.read_body().unwrap(), small);

    let large_letter = by_local_id(&log, "large-1");
    assert_eq!(large_letter.message_id, out["large"].as_str().unwrap());
    assert_eq!(large_letter.route, format!("{SENDER} -> {GP}"));
    assert_eq!(
        large_letter.workflow_id.as_deref(),
        Some("TOC_FHIR_IP_DISCH")
    );
    assert!(large_letter.accepted() && large_letter.auth_valid);
    assert_eq!(large_letter.body_bytes, large.len());
    assert!(
        large_letter.read_body().unwrap() == large,
        "the chunked, gzipped letter is not byte-for-byte what mesh-client sent"
    );

    assert_eq!(
        out["lookup"]["results"],
        serde_json::json!([{"mailbox_id": GP, "mailbox_name": "Riverside Surgery"}])
    );
    assert_eq!(
        out["lookup_other_workflow"]["results"],
        serde_json::json!([])
    );

    assert_eq!(out["wrong_key_handshake"], 403, "{out}");
    let refusal = out["wrong_key_send"].as_str().unwrap();
    assert!(refusal != "accepted", "a wrong shared key was accepted");
    let refused = by_local_id(&log, "wrong-key-1");
    assert_eq!(refused.status, 403);
    assert!(!refused.auth_valid && !refused.accepted());
    assert_eq!(log.letters.len(), 3, "nothing else was recorded");
}

fn sender(url: &str) -> MeshClient {
    MeshClient::new(
        http(),
        MeshConfig {
            base_url: url.into(),
            mailbox: SENDER.into(),
            password: SENDER_PASSWORD.into(),
            shared_key: KEY.into(),
        },
    )
}

#[tokio::test]
async fn lettergates_own_client_sends_in_gzipped_chunks_and_the_endpoint_records_one_whole_letter()
{
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let body = pseudo_random(100_000, 3);
    let client = sender(&s.url()).with_transfer(TransferOptions {
        chunk_size: 30_000,
        compress: true,
    });
    let msg = OutboundMessage {
        to: GP.into(),
        workflow_id: "TOC_FHIR_OP_ATTEN".into(),
        subject: None,
        local_id: Some("chunked-1".into()),
        file_name: None,
        content_type: "application/octet-stream".into(),
        body: body.clone(),
    };
    let SendOutcome::Accepted { message_id } = client.send(&msg).await.unwrap() else {
        panic!("the chunked send was refused")
    };
    let log = s.finish().await.unwrap();
    assert_eq!(log.letters.len(), 1, "four chunks make one letter");
    let l = &log.letters[0];
    assert_eq!(l.message_id, message_id);
    assert!(l.accepted());
    assert!(
        l.read_body().unwrap() == body,
        "the body changed on the way"
    );
}

/// A raw chunk POST, as a MESH client would make it.
async fn post_chunk(
    url: &str,
    path: &str,
    range: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = http()
        .post(format!("{url}/messageexchange/{SENDER}{path}"))
        .header("Authorization", auth::header(KEY, SENDER, SENDER_PASSWORD))
        .header("Mex-Chunk-Range", range)
        .body(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn chunks_out_of_order_are_refused_and_a_message_left_incomplete_is_recorded_as_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let url = s.url();
    let first = [
        ("Mex-To", GP),
        ("Mex-WorkflowID", "TOC_FHIR_OP_ATTEN"),
        ("Mex-LocalID", "three-chunks"),
        ("Content-Encoding", "gzip"),
    ];
    let (status, answer) = post_chunk(&url, "/outbox", "1:3", &first, gzip(b"one ")).await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["message_id"].as_str().unwrap().to_string();
    // Chunk 3 before chunk 2: refused, and the message stays open for chunk 2.
    let (status, answer) = post_chunk(
        &url,
        &format!("/outbox/{id}/3"),
        "3:3",
        &[("Content-Encoding", "gzip")],
        gzip(b"three"),
    )
    .await;
    assert_eq!(status, 417, "{answer}");
    let (status, _) = post_chunk(
        &url,
        &format!("/outbox/{id}/2"),
        "2:3",
        &[("Content-Encoding", "gzip")],
        gzip(b"two "),
    )
    .await;
    assert_eq!(status, 202);
    // A first chunk that is not chunk 1.
    let (status, _) = post_chunk(&url, "/outbox", "2:2", &first, gzip(b"x")).await;
    assert_eq!(status, 417);
    // A chunk for a message nobody started.
    let (status, _) = post_chunk(&url, "/outbox/NO_SUCH_ID/2", "2:2", &[], b"x".to_vec()).await;
    assert_eq!(status, 417);
    let log = s.finish().await.unwrap();
    let refusals: Vec<&str> = log
        .letters
        .iter()
        .filter_map(|l| l.refusal.as_deref())
        .collect();
    assert_eq!(log.letters.len(), 4, "{refusals:?}");
    assert!(log.letters.iter().all(|l| !l.accepted()), "{refusals:?}");
    assert!(
        refusals.iter().any(|r| r.contains("out of order")),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|r| r.contains("must be chunk 1")),
        "{refusals:?}"
    );
    assert!(
        refusals.iter().any(|r| r.contains("NO_SUCH_ID")),
        "{refusals:?}"
    );
    let incomplete = log
        .letters
        .iter()
        .find(|l| {
            l.refusal
                .as_deref()
                .is_some_and(|r| r.contains("incomplete"))
        })
        .expect("the message missing chunk 3 is recorded");
    assert_eq!(incomplete.local_id.as_deref(), Some("three-chunks"));
    assert!(incomplete.refusal.as_deref().unwrap().contains("2 of 3"));
    assert_eq!(incomplete.read_body().unwrap(), b"one two ");
}
