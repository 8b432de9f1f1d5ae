//! The MESH endpoint's request handling: the `NHSMESH` token (parsed, then verified), the
//! chunk range, the content encoding, the assembly of chunks, and the endpoint itself over
//! loopback with hostile requests. Never a panic; a token changed in any way but the case of
//! its hash is refused; no request without a valid token is recorded as accepted.

use super::letters::{docs, simulator_body};
use lettergate::fuzzing::{decode, parse_range, Assemblies, FirstChunk};
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::limits::Limits;
use lettergate::protocol::mesh::auth::{self, Token};
use lettergate::protocol::mesh::client::gzip;
use lettergate::{CaptureConfig, CaptureServer};
use proptest::prelude::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "TestKey";
/// The message cap chunks are assembled under (the default).
const MAX: u64 = 100 * 1024 * 1024;
const MAILBOXES: [(&str, &str); 2] = [("RXXHC001", "sender-pw"), ("A81001HC001", "gp-pw")];

proptest! {
    #![proptest_config(super::config(256))]

    /// Any `Authorization` header is parsed or refused, never a panic; a parsed token is
    /// verified or refused.
    #[test]
    fn any_authorization_header_is_parsed_or_refused(h in "(NHSMESH )?[ -~]{0,120}") {
        if let Ok(t) = Token::parse(Some(&h)) {
            let _ = t.verify(KEY, "sender-pw");
        }
    }

    /// A signed header verifies with its password only; with any one character changed
    /// (but the case of a hex digit of its hash) it is refused.
    #[test]
    fn a_signed_header_changed_in_any_way_is_refused(
        at in any::<prop::sample::Index>(),
        to in "[ -~]",
        mailbox in "[A-Z0-9]{3,12}",
        password in "[ -~]{1,20}",
    ) {
        let h = auth::header(KEY, &mailbox, &password);
        let token = Token::parse(Some(&h)).unwrap();
        prop_assert_eq!(token.verify(KEY, &password), Ok(()));
        let other = format!("{password}x");
        prop_assert!(token.verify(KEY, &other).is_err());
        let i = at.index(h.len());
        let mut changed = h.clone();
        changed.replace_range(i..i + 1, &to);
        let hash_from = h.len() - 64;
        let only_case = i >= hash_from && h[i..i + 1].eq_ignore_ascii_case(&to);
        if changed != h && !only_case {
            let accepted = Token::parse(Some(&changed)).is_ok_and(|t| {
                t.verify(KEY, &password).is_ok() && t.mailbox == mailbox
            });
            prop_assert!(!accepted, "{} accepted as {}", changed, h);
        }
    }

    /// `mex-Chunk-Range` is read as `n:N` with 1 <= n <= N, or refused.
    #[test]
    fn a_chunk_range_is_read_or_refused(h in "[0-9: ]{0,30}|[ -~]{0,30}") {
        if let Ok(r) = parse_range(Some(&h)) {
            prop_assert!(1 <= r.n && r.n <= r.total);
            prop_assert_eq!(parse_range(Some(&format!("{}:{}", r.n, r.total))).unwrap(), r);
        }
    }

    /// A gzipped chunk decodes to what was zipped; any bytes said to be gzip decode or are
    /// refused.
    #[test]
    fn gzip_chunks_decode_to_what_was_zipped(body in prop::collection::vec(any::<u8>(), 0..2048), junk in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert_eq!(decode(Some("gzip"), &gzip(&body), &Limits::default()).unwrap(), body.clone());
        prop_assert_eq!(decode(Some(" GZIP "), &gzip(&body), &Limits::default()).unwrap(), body.clone());
        prop_assert_eq!(decode(None, &body, &Limits::default()).unwrap(), body);
        let _ = decode(Some("gzip"), &junk, &Limits::default());
        // A bomb: more than the cap once inflated, refused rather than inflated.
        let small = Limits { max_message: 1024, ..Limits::default() };
        prop_assert!(decode(Some("gzip"), &gzip(&vec![0; 4096]), &small).is_err());
        let mut truncated = gzip(&junk);
        truncated.truncate(truncated.len() / 2);
        prop_assert!(decode(Some("gzip"), &truncated, &Limits::default()).is_err());
    }

    /// A message cut in N chunks and sent in order assembles to itself; chunks with any
    /// numbers, ranges and mailboxes are taken or refused, never a panic.
    #[test]
    fn chunks_assemble_in_order_and_anything_else_is_refused(
        body in prop::collection::vec(any::<u8>(), 1..600),
        n in 1usize..6,
        noise in prop::collection::vec(("(RXXHC001|OTHER)", "(m1|m2)", "[0-9]{1,3}|[ -~]{0,4}", proptest::option::of("[0-9]{1,3}:[0-9]{1,3}|[ -~]{0,8}")), 0..8),
    ) {
        let mut a = Assemblies::default();
        let first = FirstChunk { mailbox: "RXXHC001".into(), to: None, workflow: None, local_id: None, mex_headers: vec![] };
        let parts: Vec<&[u8]> = body.chunks(body.len().div_ceil(n)).collect();
        let total = parts.len();
        a.start("m1", first.clone(), total, parts[0].to_vec());
        for (mailbox, id, path_n, range) in &noise {
            if let Ok(Some(whole)) = a.add(mailbox, id, path_n, range.as_deref(), b"x".to_vec(), MAX) {
                // Noise that happens to be the next chunks: start again.
                prop_assert_eq!(whole.received, whole.total);
                a = Assemblies::default();
                a.start("m1", first.clone(), total, parts[0].to_vec());
            }
        }
        if total == 1 {
            prop_assert!(a.add("RXXHC001", "m1", "2", Some("2:1"), vec![], MAX).is_err());
            return Ok(());
        }
        let mut whole = None;
        for (i, p) in parts.iter().enumerate().skip(1) {
            let range = format!("{}:{total}", i + 1);
            match a.add("RXXHC001", "m1", &(i + 1).to_string(), Some(&range), p.to_vec(), MAX) {
                Ok(w) => whole = w,
                // Noise moved the message on; nothing more to check.
                Err(_) => return Ok(()),
            }
        }
        let whole = whole.expect("the last chunk completes the message");
        prop_assert_eq!(whole.body, body);
    }
}

/// One HTTP request to the endpoint, as bytes on the wire could say it.
#[derive(Clone)]
struct Request {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Whether the request carries a token the endpoint should accept.
    signed: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(300).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &self.headers)
            .field("signed", &self.signed)
            .field("body", &body)
            .finish()
    }
}

fn auth_header() -> impl Strategy<Value = (Option<String>, bool)> {
    let mb = "(RXXHC001|A81001HC001|X26HC005)";
    prop_oneof![
        3 => (0..2usize).prop_map(|i| (Some(auth::header(KEY, MAILBOXES[i].0, MAILBOXES[i].1)), true)),
        1 => (0..2usize).prop_map(|i| (Some(auth::header(KEY, MAILBOXES[i].0, "wrong")), false)),
        1 => mb.prop_map(|m| (Some(auth::header("OtherKey", &m, "sender-pw")), false)),
        1 => Just((None, false)),
        1 => "[ -~]{0,80}".prop_map(|h| (Some(h), false)),
        1 => "NHSMESH [A-Z0-9]{1,12}:[ -~&&[^:]]{1,36}:[0-9]{1,3}:[0-9]{12}:[0-9a-f]{64}".prop_map(|h| (Some(h), false)),
    ]
}

fn requests() -> impl Strategy<Value = Request> {
    let mailbox = "(RXXHC001|A81001HC001|X26HC005|[A-Za-z0-9%._-]{0,12})";
    let path = prop_oneof![
        1 => mailbox.prop_map(|m| format!("/messageexchange/{m}")),
        3 => mailbox.prop_map(|m| format!("/messageexchange/{m}/outbox")),
        1 => (mailbox, "[A-Za-z0-9_]{0,20}", "[0-9]{1,3}|[ -~&&[^ /?#]]{0,5}").prop_map(|(m, id, n)| format!("/messageexchange/{m}/outbox/{id}/{n}")),
        1 => mailbox.prop_map(|m| format!("/messageexchange/{m}/inbox")),
        1 => (mailbox, "[A-Za-z0-9_]{0,20}").prop_map(|(m, id)| format!("/messageexchange/{m}/inbox/{id}")),
        1 => (mailbox, "[A-Za-z0-9_]{0,20}").prop_map(|(m, id)| format!("/messageexchange/{m}/inbox/{id}/status/acknowledged")),
        1 => "/messageexchange/endpointlookup/[A-Z0-9]{0,8}/[A-Z_]{0,20}",
        1 => "/[ -~&&[^ ?#]]{0,40}",
    ];
    let body = prop_oneof![
        docs().prop_map(|d| simulator_body(&d).1),
        prop::collection::vec(any::<u8>(), 0..300),
    ];
    (
        prop_oneof![4 => Just("POST"), 1 => Just("GET"), 1 => Just("PUT"), 1 => Just("DELETE")],
        path,
        auth_header(),
        proptest::option::of("(A81001HC001|RXXHC001|X26HC005|[ -~]{0,20})"),
        proptest::option::of("(TOC_FHIR_OP_ATTEN|LETTERGATE_CANARY|[ -~]{0,20})"),
        proptest::option::of(
            "(1:1|1:2|2:2|0:0|18446744073709551615:18446744073709551615|[ -~]{0,12})",
        ),
        proptest::option::of("(gzip|identity|br|[ -~]{0,8})"),
        body,
    )
        .prop_map(
            |(method, path, (auth, signed), to, workflow, range, encoding, body)| {
                let mut headers = vec![];
                let mut push = |k: &str, v: Option<String>| {
                    if let Some(v) = v {
                        headers.push((k.to_string(), v));
                    }
                };
                push("Authorization", auth);
                push("mex-To", to);
                push("mex-WorkflowID", workflow);
                push("mex-Chunk-Range", range);
                let gzipped = encoding.as_deref() == Some("gzip");
                push("Content-Encoding", encoding);
                let body = if gzipped { gzip(&body) } else { body };
                Request {
                    method,
                    path,
                    headers,
                    body,
                    signed,
                }
            },
        )
}

/// Sends `r` on a fresh connection, as raw HTTP/1.1, and reads the whole answer.
async fn send(addr: &str, r: &Request) -> Result<String, String> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut head = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", r.method, r.path);
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        r.body.len()
    ));
    s.write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(&r.body).await.map_err(|e| e.to_string())?;
    // No half-close: hyper drops a connection whose read side ends, answered or not.
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

proptest! {
    #![proptest_config(super::config(24))]

    /// Issue 13, point 7: hostile requests to the MESH endpoint (any path, method, token,
    /// recipient, chunk range, encoding and body) are each answered, and recorded as
    /// accepted only with a valid token; the endpoint then finishes with its log.
    #[test]
    fn hostile_requests_to_the_mesh_endpoint_are_answered_and_never_accepted_unsigned(
        batch in prop::collection::vec(requests(), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let config = CaptureConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                shared_key: KEY.into(),
                mailboxes: MAILBOXES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect(),
                dir: dir.path().to_path_buf(),
                monitored: Default::default(),
                gp: None,
                limits: Limits::default(),
            };
            let server = CaptureServer::start(config, Clock::virtual_at(Timestamp::now())).await.unwrap();
            let addr = server.url().trim_start_matches("http://").trim_end_matches('/').to_string();
            for r in &batch {
                let answer = send(&addr, r).await.map_err(|e| TestCaseError::fail(format!("{e}: {r:?}")))?;
                prop_assert!(answer.starts_with("HTTP/1.1 "), "no HTTP answer to {:?}: {:?}", r, answer);
                let outbox = MAILBOXES.iter().any(|(m, _)| r.path == format!("/messageexchange/{m}/outbox"));
                if !r.signed && r.method == "POST" && outbox {
                    prop_assert!(answer.starts_with("HTTP/1.1 403"), "an unsigned {:?} was answered {:?}", r, answer);
                }
            }
            let log = server.finish().await.map_err(|e| TestCaseError::fail(e.to_string()))?;
            for l in &log.letters {
                if l.accepted() && l.transport == lettergate::protocol::letter::Transport::Mesh {
                    prop_assert!(l.auth_valid, "accepted without a valid token: {:?}", l);
                }
            }
            Ok(())
        })?;
    }
}
