//! The interop peers: programs nobody on this project wrote, installed by
//! `scripts/install-interop-peers.sh` into `.venv-interop` (or `$LETTERGATE_PEERS`).
//!
//! A missing peer fails the test with the command that installs it; it never passes silently.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The virtual environment holding the peers.
pub fn venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = std::env::var_os("LETTERGATE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-interop"));
    if !venv.join("bin/python").exists() {
        panic!(
            "the interop peers are not installed in {}: run `bash scripts/install-interop-peers.sh` \
             (or set LETTERGATE_PEERS to a virtual environment that has mesh-sandbox, mesh-client, \
             hl7, hl7apy and fhir.resources)",
            venv.display()
        );
    }
    venv
}

/// A program of the peers' virtual environment (`python`, `uvicorn`, `mllp_send`...).
pub fn bin(name: &str) -> PathBuf {
    let p = venv().join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/install-interop-peers.sh`",
        p.display()
    );
    p
}

/// Runs a Python snippet in the peers' environment; returns (exit code, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin("python"))
        .arg("-c")
        .arg(script)
        .args(args)
        // This machine sets CA bundles for requests; loopback peers use plain HTTP.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .expect("run the peers' python");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A free port on 127.0.0.1, chosen at random below the kernel's ephemeral range (which
/// starts at 32768), so that tests running at once, which each pick a port and bind it later,
/// do not pick the same one as the kernel keeps handing out.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = std::process::id() as u64 * 7919
        + SEQ.fetch_add(1, Ordering::SeqCst) * 104_729
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    // Never the same port twice in one test process, even before its server has bound it.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for i in 0..1000u64 {
        let port = 20_000 + ((seed + i * 7_727) % 12_000) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between 20000 and 32000");
}

/// A peer server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Waits until `port` accepts connections, or fails the test after `within`.
    pub fn wait_listening(mut self, within: Duration) -> Server {
        let started = Instant::now();
        while started.elapsed() < within {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the peer server exited early ({status})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the peer server did not listen on 127.0.0.1:{} within {within:?}",
            self.port
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// NHS Digital's mesh-sandbox on 127.0.0.1, full NHSMESH authentication with `shared_key`,
/// and a file store under `store` in which every mailbox in `mailboxes` exists (mesh-sandbox
/// registers each upper-case folder of its store as a mailbox, password `password`).
pub fn mesh_sandbox(store: &Path, shared_key: &str, mailboxes: &[&str]) -> Server {
    for m in mailboxes {
        std::fs::create_dir_all(store.join(m.to_uppercase())).unwrap();
    }
    let port = free_port();
    let child = Command::new(bin("uvicorn"))
        .args([
            "mesh_sandbox.api:app",
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
        ])
        .args(["--port", &port.to_string(), "--log-level", "warning"])
        .env("AUTH_MODE", "full")
        .env("STORE_MODE", "file")
        .env("MAILBOXES_DATA_DIR", store)
        .env("SHARED_KEY", shared_key)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mesh-sandbox");
    Server { child, port }.wait_listening(Duration::from_secs(30))
}

/// The password mesh-sandbox gives every mailbox of its file store.
pub const SANDBOX_PASSWORD: &str = "password";
