//! lettergate's MESH endpoint over loopback: the input is one HTTP request, written as
//! `METHOD PATH`, header lines `Name: value`, an empty line and the body. `Authorization:
//! SIGN <mailbox> [<password>]` is replaced by a fresh `NHSMESH` token signed for that mailbox
//! (with its registered password unless one is given), so requests get past authentication;
//! `Content-Length` is set to the body's length. Every request is answered within ten
//! seconds; every letter the endpoint accepted over MESH came with a valid token.

#![no_main]

use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::letter::Transport;
use lettergate::protocol::mesh::auth;
use lettergate::{CaptureConfig, CaptureServer};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "TestKey";
const MAILBOXES: [(&str, &str); 2] = [("RXXHC001", "sender-pw"), ("A81001HC001", "gp-pw")];
/// Requests one endpoint takes before it is finished, checked and started afresh, so that
/// its capture folder stays small.
const PER_SERVER: u32 = 2000;

struct Running {
    rt: tokio::runtime::Runtime,
    server: Option<(CaptureServer, tempfile::TempDir)>,
    served: u32,
}

fn start(rt: &tokio::runtime::Runtime) -> (CaptureServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = CaptureConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        shared_key: KEY.into(),
        mailboxes: MAILBOXES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect(),
        dir: dir.path().to_path_buf(),
        monitored: [MAILBOXES[1].0.to_string()].into_iter().collect(),
        gp: None,
        limits: lettergate::protocol::limits::Limits::default(),
    };
    let server = rt
        .block_on(CaptureServer::start(
            config,
            Clock::virtual_at(Timestamp::now()),
        ))
        .unwrap();
    (server, dir)
}

/// Finishes the endpoint and checks its log.
fn finish(rt: &tokio::runtime::Runtime, server: CaptureServer) {
    let log = rt
        .block_on(server.finish())
        .expect("the endpoint finishes with its log");
    for l in &log.letters {
        if l.transport == Transport::Mesh && l.accepted() {
            assert!(l.auth_valid, "accepted without a valid token: {l:?}");
        }
    }
}

/// The request the input describes, as bytes on the wire.
fn request(data: &[u8], host: &str) -> Vec<u8> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next().unwrap_or_default();
    let first = if first.contains(' ') {
        first.to_string()
    } else {
        format!("POST /messageexchange/RXXHC001/outbox{first}")
    };
    let mut out = format!("{first} HTTP/1.1\r\nHost: {host}\r\n");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let lower = name.trim().to_ascii_lowercase();
        if ["content-length", "transfer-encoding", "connection", "host"].contains(&lower.as_str()) {
            continue;
        }
        let value = value.trim();
        let value = match value.strip_prefix("SIGN ") {
            Some(rest) if lower == "authorization" => {
                let mut words = rest.split(' ');
                let mailbox = words.next().unwrap_or_default();
                let password = words.next().map(str::to_string).unwrap_or_else(|| {
                    MAILBOXES
                        .iter()
                        .find(|(m, _)| *m == mailbox)
                        .map_or("none", |(_, p)| p)
                        .to_string()
                });
                auth::header(KEY, mailbox, &password)
            }
            _ => value.to_string(),
        };
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn exchange(addr: &str, wire: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(wire).await?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await?;
    Ok(answer)
}

fuzz_target!(|data: &[u8]| {
    static RUNNING: OnceLock<Mutex<Running>> = OnceLock::new();
    let running = RUNNING.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Mutex::new(Running {
            rt,
            server: None,
            served: 0,
        })
    });
    let mut r = running.lock().unwrap();
    let r = &mut *r;
    if r.served >= PER_SERVER {
        if let Some((server, _dir)) = r.server.take() {
            finish(&r.rt, server);
        }
        r.served = 0;
    }
    if r.server.is_none() {
        r.server = Some(start(&r.rt));
    }
    r.served += 1;
    let (server, _) = r.server.as_ref().unwrap();
    let addr = server
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let wire = request(data, &addr);
    let answer =
        r.rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), exchange(&addr, &wire)).await
        })
        .expect("an answer within ten seconds");
    if let Ok(answer) = answer {
        assert!(
            answer.starts_with(b"HTTP/1."),
            "not HTTP: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
});
