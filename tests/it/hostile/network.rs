//! Bounded everything (issue 13, point 4): a body is not read before its sender is
//! authenticated, inflating stops at a cap, slow or half-open connections are cut off and do
//! not keep a capture, a run or `sim serve` from stopping, a file or an answer too large is
//! refused without being read whole, and NHSMESH timestamps far from the clock are refused.
//! Each test names the example of the issue it reproduces.

use crate::support::fixtures::capture_config;
use crate::support::loopback::{free_port, Server};
use crate::support::{bin, http, output_within, root};
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::mesh::auth;
use lettergate::protocol::mesh::client::gzip;
use lettergate::{CaptureLog, CaptureServer};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SENDER: &str = "RXXHC001";
const PRACTICE: &str = "A81001HC001";

/// `members` gzip members of 1 MiB of zeros each, about 1 KiB apiece: 1024 of them are a
/// 1 MB body that inflates to 1 GiB, the bomb at a fifth of its size.
fn bomb(members: usize) -> Vec<u8> {
    gzip(&vec![0u8; 1024 * 1024]).repeat(members)
}

async fn endpoint(dir: &std::path::Path) -> CaptureServer {
    CaptureServer::start(
        capture_config(dir, &[(SENDER, "pw"), (PRACTICE, "x")]),
        Clock::virtual_at(Timestamp(1_736_154_000)),
    )
    .await
    .unwrap()
}

fn outbox(server: &CaptureServer) -> String {
    format!("{}/messageexchange/{SENDER}/outbox", server.url())
}

/// A gzipped send of `body` to the practice, with `authorization` if given.
async fn send_gzip(
    server: &CaptureServer,
    body: Vec<u8>,
    authorization: Option<String>,
) -> reqwest::Response {
    let mut req = http()
        .post(outbox(server))
        .header("mex-To", PRACTICE)
        .header("mex-WorkflowID", "TOC_FHIR_OP_ATTEN")
        .header("Content-Encoding", "gzip")
        .body(body);
    if let Some(a) = authorization {
        req = req.header("Authorization", a);
    }
    req.send().await.unwrap()
}

/// The only message `log` recorded.
fn only(log: &CaptureLog) -> &lettergate::CapturedLetter {
    assert_eq!(log.letters.len(), 1, "{:?}", log.letters);
    &log.letters[0]
}

#[tokio::test]
async fn a_gzip_bomb_without_authorization_is_refused_403_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = endpoint(dir.path()).await;
    let resp = send_gzip(&server, bomb(1024), None).await;
    assert_eq!(resp.status(), 403);
    let log = server.finish().await.unwrap();
    let refused = only(&log);
    assert_eq!(refused.status, 403);
    let why = refused.refusal.clone().unwrap();
    assert!(why.contains("no Authorization header"), "{why}");
    assert!(why.contains("the body was not read"), "{why}");
    // Not a byte of the megabyte was read, let alone inflated.
    assert_eq!(refused.body_bytes, 0);
}

#[tokio::test]
async fn an_authorised_gzip_bomb_is_refused_413_where_the_inflater_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let server = endpoint(dir.path()).await;
    let token = auth::header("TestKey", SENDER, "pw");
    let resp = send_gzip(&server, bomb(1024), Some(token)).await;
    assert_eq!(resp.status(), 413);
    let answer = resp.text().await.unwrap();
    assert!(answer.contains("gzip bomb"), "{answer}");
    // 1 MB that inflates to 1 GiB passes the ratio (100) and the message cap (100 MiB) at
    // about the same point; either stops it.
    assert!(answer.contains("(LETTERGATE_MAX_"), "{answer}");
    let log = server.finish().await.unwrap();
    assert_eq!(only(&log).status, 413);
}

#[tokio::test]
async fn an_ordinary_gzipped_letter_still_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let server = endpoint(dir.path()).await;
    let token = auth::header("TestKey", SENDER, "pw");
    let resp = send_gzip(
        &server,
        gzip(b"{\"resourceType\": \"Bundle\"}"),
        Some(token),
    )
    .await;
    assert_eq!(resp.status(), 202);
    let log = server.finish().await.unwrap();
    assert_eq!(only(&log).status, 202);
}

#[tokio::test]
async fn nhsmesh_timestamps_from_1999_or_2099_are_refused_403_even_correctly_signed() {
    let dir = tempfile::tempdir().unwrap();
    let server = endpoint(dir.path()).await;
    let url = format!("{}/messageexchange/{SENDER}", server.url());
    for ts in ["199901011200", "209901011200"] {
        let nonce = uuid::Uuid::new_v4().to_string();
        let hash = auth::signature("TestKey", SENDER, &nonce, "0", "pw", ts);
        let token = format!("NHSMESH {SENDER}:{nonce}:0:{ts}:{hash}");
        let resp = http()
            .post(&url)
            .header("Authorization", token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{ts}");
        let answer = resp.text().await.unwrap();
        assert!(answer.contains("LETTERGATE_MESH_CLOCK_SKEW"), "{answer}");
    }
    let now = auth::header("TestKey", SENDER, "pw");
    let resp = http()
        .post(&url)
        .header("Authorization", now)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    server.finish().await.unwrap();
}

#[tokio::test]
async fn five_connections_with_partial_headers_do_not_keep_the_capture_from_finishing() {
    let dir = tempfile::tempdir().unwrap();
    let server = endpoint(dir.path()).await;
    let addr = server.url().trim_start_matches("http://").to_string();
    let mut open = Vec::new();
    for _ in 0..5 {
        let mut c = tokio::net::TcpStream::connect(&addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        c.write_all(b"POST /messageexchange/RXXHC001/outbox HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        open.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The shutdown deadline is 5 s; 30 s is room for a loaded machine, not for a hang.
    let finished = tokio::time::timeout(Duration::from_secs(30), server.finish()).await;
    assert!(
        finished.is_ok(),
        "the capture waited for the half-open connections"
    );
    drop(open);
}

#[tokio::test]
async fn a_file_over_the_cap_in_a_watched_folder_is_recorded_refused_not_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    // Sparse: 200 MiB on paper, twice the default cap, nothing on disk.
    std::fs::File::create(drop.join("huge.json"))
        .unwrap()
        .set_len(200 * 1024 * 1024)
        .unwrap();
    let sink = std::sync::Arc::new(lettergate::LogSink::new(
        CaptureLog::create(&dir.path().join("log")).unwrap(),
    ));
    let watcher = lettergate::FolderCapture::start(
        drop,
        Duration::from_millis(20),
        sink.clone(),
        Clock::virtual_at(Timestamp(0)),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    watcher.finish().await.unwrap();
    let log = sink.close().unwrap();
    let huge = only(&log);
    assert_eq!(huge.status, 413);
    let why = huge.refusal.clone().unwrap();
    assert!(why.contains("LETTERGATE_MAX_MESSAGE"), "{why}");
}

#[tokio::test]
async fn polling_mesh_stops_inflating_a_downloaded_bomb_at_the_cap() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let mesh = MockServer::start().await;
    let inbox = format!("/messageexchange/{PRACTICE}/inbox");
    Mock::given(method("POST"))
        .and(path(format!("/messageexchange/{PRACTICE}")))
        .respond_with(ResponseTemplate::new(200))
        .mount(&mesh)
        .await;
    Mock::given(method("GET"))
        .and(path(inbox.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "messages": ["BOMB"], "links": {}
        })))
        .mount(&mesh)
        .await;
    // 200 MiB from 200 KiB: over the ratio cap by twenty times, under the message cap.
    Mock::given(method("GET"))
        .and(path(format!("{inbox}/BOMB")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .insert_header("mex-messagetype", "DATA")
                .insert_header("mex-workflowid", "TOC_FHIR_OP_ATTEN")
                .set_body_bytes(bomb(200)),
        )
        .mount(&mesh)
        .await;
    let mut poller = lettergate::MeshPoller::with_http(
        lettergate::PollConfig {
            base_url: mesh.uri(),
            shared_key: "TestKey".into(),
            recipients: vec![lettergate::MailboxCredentials::new(PRACTICE, "x")],
            ..lettergate::PollConfig::default()
        },
        http(),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut log = CaptureLog::create(dir.path()).unwrap();
    let e = poller
        .poll_once(&mut log, &Clock::System)
        .await
        .unwrap_err();
    let chain = lettergate::protocol::chain(&e);
    assert!(chain.contains("LETTERGATE_MAX_RATIO"), "{chain}");
    assert!(log.letters.is_empty());
}

/// `lettergate sim serve` on a free port (with ADT over MLLP on another), with `envs`.
fn sim_serve(envs: &[(&str, &str)]) -> (Server, u16) {
    let (port, adt) = (free_port(), free_port());
    let mut c = Command::new(bin());
    c.args(["sim", "serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--adt-listen", &format!("127.0.0.1:{adt}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let child = c.spawn().unwrap();
    (
        Server { child, port }.wait_listening(Duration::from_secs(20)),
        adt,
    )
}

/// What the peer sends on `c` before it closes it, or nothing after `within`.
fn read_until_closed(c: &mut TcpStream, within: Duration) -> Option<String> {
    c.set_read_timeout(Some(within)).unwrap();
    let mut out = Vec::new();
    match c.read_to_end(&mut out) {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(String::new()),
        Err(_) => None,
    }
}

#[test]
fn sim_serve_stops_on_ctrl_c_within_its_deadline_while_a_connection_is_half_open() {
    let (mut sim, _) = sim_serve(&[]);
    let mut c = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    c.write_all(b"POST /events HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-INT", &sim.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(s) = sim.child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(30) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.is_some_and(|s| s.success()),
        "sim serve did not stop on Ctrl-C: {status:?}"
    );
}

#[test]
fn sim_serve_cuts_off_partial_headers_and_idle_adt_and_answers_503_past_the_connection_limit() {
    let (sim, adt) = sim_serve(&[
        ("LETTERGATE_HEADER_TIMEOUT", "1s"),
        ("LETTERGATE_IDLE_TIMEOUT", "1s"),
        ("LETTERGATE_MAX_CONNECTIONS", "2"),
    ]);
    // Until wait_listening's probe connection is seen closed, it holds one of the two.
    std::thread::sleep(Duration::from_millis(500));
    let mut partial = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut quiet = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(("127.0.0.1", sim.port)).unwrap();
    let refused = read_until_closed(&mut third, Duration::from_secs(10)).unwrap();
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("LETTERGATE_MAX_CONNECTIONS"), "{refused}");
    // Both are closed by the server, well before the 15 s this waits.
    for c in [&mut partial, &mut quiet] {
        let answer = read_until_closed(c, Duration::from_secs(15));
        assert!(
            answer.as_ref().is_some_and(|a| !a.contains("200 OK")),
            "{answer:?}"
        );
    }
    let mut idle = TcpStream::connect(("127.0.0.1", adt)).unwrap();
    assert!(
        read_until_closed(&mut idle, Duration::from_secs(15)).is_some(),
        "an idle ADT connection stayed open"
    );
    drop(sim);
}

#[test]
fn a_run_is_not_kept_alive_past_its_wait_by_connections_sending_partial_headers() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let capture = format!("http://127.0.0.1:{capture_port}");
    let sim_port = free_port();
    let _sim = Server {
        child: Command::new(bin())
            .args(["sim", "serve", "--clock", "system"])
            .args(["--dispatch-interval", "1s"])
            .args(["--listen", &format!("127.0.0.1:{sim_port}")])
            .arg("--directory")
            .arg(root().join("scenarios/fixtures/common.yaml"))
            .args(["--mesh-url", &capture, "--print-url", &capture])
            .args(["--docman-url", &capture])
            .env("LETTERGATE_MESH_PASSWORD", "sender-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        port: sim_port,
    }
    .wait_listening(Duration::from_secs(20));
    let target = dir.path().join("sim-fhir.yaml");
    std::fs::write(
        &target,
        format!(
            "name: sim-fhir\nnon_production: true\ndrive:\n  fhir:\n    base_url: http://127.0.0.1:{sim_port}/fhir\ncapture:\n  mesh_endpoint:\n    listen: 127.0.0.1:{capture_port}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n      RXXHC001: LG_TEST_SENDER_PASSWORD\n      A81001HC001: LG_TEST_PRACTICE_PASSWORD\nwait: {{max: 8s, poll_interval: 1s, settle: 2s}}\n"
        ),
    )
    .unwrap();
    // Five connections to the run's capture as soon as it listens, each sending half a header
    // and then nothing, held open until the run is over.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut open = Vec::new();
            while open.len() < 5 && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match TcpStream::connect(("127.0.0.1", capture_port)) {
                    Ok(mut c) => {
                        let _ = c.write_all(b"POST /messageexchange/RXXHC001/outbox HTTP/1.1\r\n");
                        open.push(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            open.len()
        })
    };
    let started = Instant::now();
    let mut run = Command::new(bin());
    run.current_dir(root())
        .args(["run", "--target"])
        .arg(&target)
        .arg("--snapshots")
        .arg(dir.path().join("snapshots"))
        .arg("--work-dir")
        .arg(dir.path().join("work"))
        .arg("scenarios/outpatient/clinic_letter.yaml")
        .env("LG_TEST_MESH_KEY", "TestKey")
        .env("LG_TEST_SENDER_PASSWORD", "sender-secret")
        .env("LG_TEST_PRACTICE_PASSWORD", "practice-secret")
        .env("NO_COLOR", "1");
    // A wait of at most 8 s, a settle of 2 s and a shutdown deadline of 5 s: well under 60 s.
    let _ = output_within(&mut run, Duration::from_secs(60));
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let held = holder.join().unwrap();
    assert_eq!(held, 5, "the five connections were never opened");
    assert!(took < Duration::from_secs(60), "{took:?}");
}

#[test]
fn a_limit_that_is_not_a_size_or_a_duration_is_bad_input() {
    let ran = output_within(
        Command::new(bin())
            .current_dir(root())
            .args(["validate", "scenarios"])
            .env("LETTERGATE_MAX_BODY", "lots"),
        Duration::from_secs(30),
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("LETTERGATE_MAX_BODY=`lots` is not a size"),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn an_answer_over_the_response_cap_is_refused_not_read_whole() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let fhir = MockServer::start().await;
    let padding = "x".repeat(4096);
    Mock::given(method("GET"))
        .and(path("/fhir/metadata"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "padding": padding
        })))
        .mount(&fhir)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("fhir.yaml");
    std::fs::write(
        &target,
        format!(
            "name: capped\nnon_production: true\ndrive:\n  fhir:\n    base_url: {}/fhir\ncapture:\n  folder: {{path: '{}', poll_interval: 1s}}\n",
            fhir.uri(),
            dir.path().join("drop").display()
        ),
    )
    .unwrap();
    let check = |envs: &'static [(&'static str, &'static str)]| {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = Command::new(bin());
            c.args(["targets", "check"]).arg(&target);
            for (k, v) in envs {
                c.env(k, v);
            }
            output_within(&mut c, Duration::from_secs(60))
        })
    };
    let whole = check(&[]).await.unwrap();
    assert!(
        whole.stdout.contains("CapabilityStatement"),
        "{}",
        whole.stdout
    );
    let capped = check(&[("LETTERGATE_MAX_RESPONSE", "1KiB")]).await.unwrap();
    let out = format!("{}{}", capped.stdout, capped.stderr);
    assert_ne!(capped.code, 0, "{out}");
    assert!(out.contains("LETTERGATE_MAX_RESPONSE"), "{out}");
}
