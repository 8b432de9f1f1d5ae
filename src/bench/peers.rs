//! `bench --peers`: a peer in the same run. The same letters, sent by the same client as a
//! volume run's, to lettergate's own MESH endpoint (`peer-lettergate`) and to NHS Digital's
//! mesh-sandbox (`peer-mesh-sandbox`), what a trust would otherwise stand up as a test MESH.
//!
//! "The same client" is the simulator's: [`MeshClient`] over [`sending_client`], a fresh
//! `NHSMESH` token per request, the headers of a simulator letter (`mex-To`, `mex-WorkflowID`,
//! `mex-Subject`, `mex-LocalID`, `mex-FileName`, `mex-Content-Type`) and its ITK3 body, and
//! [`IN_FLIGHT`] letters on the wire at once, in order, as `send_batch` keeps them. Each
//! benchmark first proves its mailbox with a handshake and sends [`WARM_UP`] letters (so
//! every connection of the pool is open), then times `letters` more.
//!
//! lettergate's endpoint authenticates each request, reads the letter and stores it, as in a
//! volume run; its time runs until the endpoint has finished writing what it captured, and the
//! capture log must hold every letter sent. mesh-sandbox (full authentication, file store, one
//! uvicorn worker) is started on a free loopback port in a temporary store and killed
//! afterwards, on every path; its recipient's inbox must list every letter sent.
//!
//! Every send must be accepted (202 with a message id): one refusal fails the benchmark, so a
//! throughput of refused sends is never reported.

use super::reference::letter_body;
use super::{line, stats};
use crate::capture::server::CaptureError;
use crate::capture::{CaptureConfig, CaptureServer};
use crate::protocol::clock::Clock;
use crate::protocol::limits::Limits;
use crate::protocol::mesh::client::{
    MeshClient, MeshConfig, MeshError, OutboundMessage, SendOutcome, TransportError,
};
use crate::sim::ehr::{sending_client, IN_FLIGHT};
use futures::StreamExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The two benchmarks of the pair, in the order they run.
pub const NAMES: [&str; 2] = ["peer-lettergate", "peer-mesh-sandbox"];

/// The environment variable naming the peers' virtual environment, as for the tests.
pub const PEERS_ENV: &str = "LETTERGATE_PEERS";

/// The peers' virtual environment's folder, as `scripts/install-interop-peers.sh` makes it.
pub const VENV_DIR: &str = ".venv-interop";

/// Letters sent before the timed ones, to each peer.
pub const WARM_UP: u64 = 2 * IN_FLIGHT as u64;

const SENDER: &str = "RXXHC001";
const RECIPIENT: &str = "A81001HC001";
/// The password mesh-sandbox gives every mailbox of its file store; lettergate's endpoint is
/// given the same.
const PASSWORD: &str = "password";
const SHARED_KEY: &str = "BenchKey";
/// How long mesh-sandbox may take to listen (Python imports are slow on a busy machine).
const START_WITHIN: Duration = Duration::from_secs(60);

/// Why the pair could not give its figures.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("the interop peers are not installed: no bin/uvicorn in {tried}; run `bash scripts/install-interop-peers.sh` in the lettergate project, or set {PEERS_ENV} to a virtual environment that has mesh-sandbox")]
    NotInstalled { tried: String },
    #[error("failed to prepare or run the peer benchmark")]
    Io(#[from] std::io::Error),
    #[error("failed to build the sending client")]
    Client(#[from] reqwest::Error),
    #[error("lettergate's MESH endpoint failed")]
    Capture(#[from] CaptureError),
    #[error("failed to start mesh-sandbox ({uvicorn}): {why}")]
    Start { uvicorn: String, why: String },
    #[error("failed to reach {peer}")]
    Unreachable {
        peer: &'static str,
        #[source]
        source: TransportError,
    },
    #[error("{peer} refused the handshake of {SENDER} with status {status}")]
    Handshake { peer: &'static str, status: u16 },
    #[error("{peer} accepted {accepted} of {sent} letters, so no throughput is reported; the first refusal: {first}")]
    Refused {
        peer: &'static str,
        accepted: u64,
        sent: u64,
        first: String,
    },
    #[error("{peer} accepted {sent} letters but holds {held}")]
    Lost {
        peer: &'static str,
        sent: u64,
        held: u64,
    },
    #[error("failed to list mesh-sandbox's inbox of {RECIPIENT}")]
    Inbox(#[source] MeshError),
    #[error("unknown peer benchmark `{0}`; known: {known}", known = NAMES.join(", "))]
    Unknown(String),
}

/// Where the peers' virtual environment is looked for, as the tests look for it:
/// `$LETTERGATE_PEERS` alone when it is set; otherwise `.venv-interop` in the current folder,
/// then in the project this program was built from.
pub fn venv_candidates() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os(PEERS_ENV) {
        return vec![PathBuf::from(v)];
    }
    let mut found = vec![PathBuf::from(VENV_DIR)];
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join(VENV_DIR);
    if std::env::current_dir().is_ok_and(|d| d.join(VENV_DIR) != project) {
        found.push(project);
    }
    found
}

/// The first of [`venv_candidates`] that has mesh-sandbox's server, `bin/uvicorn`.
pub fn find_venv() -> Result<PathBuf, PeerError> {
    let candidates = venv_candidates();
    candidates
        .iter()
        .find(|v| v.join("bin").join("uvicorn").is_file())
        .cloned()
        .ok_or_else(|| PeerError::NotInstalled {
            tried: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
        })
}

/// Runs one benchmark of the pair in this process (the child side); its line. mesh-sandbox
/// comes from `venv`, else from [`find_venv`].
pub fn run(name: &str, letters: u64, venv: Option<&Path>) -> Result<String, PeerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match name {
        "peer-lettergate" => rt.block_on(lettergate(letters)),
        "peer-mesh-sandbox" => {
            let venv = match venv {
                Some(v) => v.to_path_buf(),
                None => find_venv()?,
            };
            // Started here, on the main thread, not on a runtime thread that may end first
            // (the child is told to die with the thread that started it).
            let mut sandbox = Sandbox::start(&venv)?;
            let out = rt.block_on(mesh_sandbox(&sandbox, letters));
            let server_rss = sandbox.peak_rss_mb();
            sandbox.stop();
            out.map(|l| format!("{l} server_rss_mb={server_rss:.1}"))
        }
        other => Err(PeerError::Unknown(other.to_string())),
    }
}

/// The pair side by side: `bench peers letters=… lettergate_per_s=… mesh_sandbox_per_s=…
/// lettergate_over_sandbox=…x`, from the `letters_per_s` of the two benchmarks' lines.
pub fn summary(ours: &str, theirs: &str) -> String {
    let rate = |l: &str| stats::field(l, "letters_per_s");
    let shown = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.0}"));
    let (a, b) = (rate(ours), rate(theirs));
    let over = match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}x", a / b),
        _ => "-".to_string(),
    };
    format!(
        "bench peers letters={} lettergate_per_s={} mesh_sandbox_per_s={} lettergate_over_sandbox={over}",
        stats::field(ours, "letters").map_or("-".to_string(), |n| format!("{n:.0}")),
        shown(a),
        shown(b),
    )
}

fn client(base_url: String) -> Result<MeshClient, PeerError> {
    Ok(MeshClient::new(
        sending_client()?,
        MeshConfig {
            base_url,
            mailbox: SENDER.into(),
            password: PASSWORD.into(),
            shared_key: SHARED_KEY.into(),
        },
    ))
}

/// Letters `from..from + n` as the simulator sends a clinic letter.
fn letters_from(from: u64, n: u64, body: &[u8]) -> Vec<OutboundMessage> {
    (from..from + n)
        .map(|i| {
            let local_id = format!("SIM-PEERBNCH-{:06}", i + 1);
            OutboundMessage {
                to: RECIPIENT.into(),
                workflow_id: "TOC_FHIR_OP_ATTEN".into(),
                subject: Some(format!("clinic letter {local_id}")),
                file_name: Some(format!("{local_id}.json")),
                local_id: Some(local_id),
                content_type: "application/fhir+json".into(),
                body: body.to_vec(),
            }
        })
        .collect()
}

/// Sends `batch`, [`IN_FLIGHT`] at a time in order; fails unless every letter was accepted.
async fn send_all(
    peer: &'static str,
    mesh: &MeshClient,
    batch: &[OutboundMessage],
) -> Result<(), PeerError> {
    let answers: Vec<_> = futures::stream::iter(batch.iter().map(|m| mesh.send(m)))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
    let mut accepted = 0;
    let mut first = None;
    for a in answers {
        match a {
            Ok(SendOutcome::Accepted { .. }) => accepted += 1,
            Ok(SendOutcome::Rejected { status, body }) => {
                first.get_or_insert_with(|| format!("status {status}: {body}"));
            }
            Err(e) => {
                first.get_or_insert_with(|| crate::protocol::chain(&e));
            }
        }
    }
    match first {
        None => Ok(()),
        Some(first) => Err(PeerError::Refused {
            peer,
            accepted,
            sent: batch.len() as u64,
            first,
        }),
    }
}

/// The handshake, the warm-up, then `letters` timed letters: when the timed ones started.
async fn send_letters(
    peer: &'static str,
    mesh: &MeshClient,
    letters: u64,
) -> Result<Instant, PeerError> {
    let status = mesh
        .handshake()
        .await
        .map_err(|source| PeerError::Unreachable { peer, source })?;
    if status != 200 {
        return Err(PeerError::Handshake { peer, status });
    }
    let body = letter_body();
    send_all(peer, mesh, &letters_from(0, WARM_UP, &body)).await?;
    let timed = letters_from(WARM_UP, letters, &body);
    let started = Instant::now();
    send_all(peer, mesh, &timed).await?;
    Ok(started)
}

fn extra(peer: &str) -> String {
    format!(
        " peer={peer} in_flight={IN_FLIGHT} warm_up={WARM_UP} body_bytes={}",
        letter_body().len()
    )
}

/// lettergate's own MESH endpoint on a free port of 127.0.0.1 with these mailboxes, writing
/// into `dir`: authenticating, reading and storing as in a volume run, no acknowledgements
/// (a volume run's scenario has them off).
async fn endpoint(dir: &Path, mailboxes: &[&str]) -> Result<CaptureServer, CaptureError> {
    CaptureServer::start(
        CaptureConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            shared_key: SHARED_KEY.into(),
            mailboxes: mailboxes
                .iter()
                .map(|m| (m.to_string(), PASSWORD.to_string()))
                .collect(),
            dir: dir.to_path_buf(),
            monitored: [RECIPIENT.to_string()].into(),
            gp: None,
            limits: Limits::current(),
        },
        Clock::System,
    )
    .await
}

/// The letters through lettergate's own MESH endpoint.
async fn lettergate(letters: u64) -> Result<String, PeerError> {
    const PEER: &str = "lettergate";
    let dir = tempfile::tempdir()?;
    let server = endpoint(&dir.path().join("capture"), &[SENDER, RECIPIENT]).await?;
    let mesh = client(server.url())?;
    let sent = send_letters(PEER, &mesh, letters).await;
    // Stopped on every path; its time counts until what it captured is written.
    let log = server.finish().await;
    let started = sent?;
    let log = log?;
    let wall = started.elapsed().as_secs_f64();
    all_held(PEER, letters, log.letters.len() as u64)?;
    Ok(line("peer-lettergate", letters, wall, None, &extra(PEER)))
}

/// Whether `peer` holds every letter sent to it: the warm-up and the `letters` timed.
fn all_held(peer: &'static str, letters: u64, held: u64) -> Result<(), PeerError> {
    if held == WARM_UP + letters {
        Ok(())
    } else {
        Err(PeerError::Lost {
            peer,
            sent: WARM_UP + letters,
            held,
        })
    }
}

/// mesh-sandbox, already started: the letters, then its recipient's inbox, which must list
/// them all.
async fn mesh_sandbox(sandbox: &Sandbox, letters: u64) -> Result<String, PeerError> {
    const PEER: &str = "mesh-sandbox";
    let base = format!("http://127.0.0.1:{}", sandbox.port);
    let mesh = client(base.clone())?;
    let started = send_letters(PEER, &mesh, letters).await?;
    let wall = started.elapsed().as_secs_f64();
    let recipient = MeshClient::new(
        sending_client()?,
        MeshConfig {
            mailbox: RECIPIENT.into(),
            ..mesh.config().clone()
        },
    );
    let held = recipient
        .list_inbox()
        .await
        .map_err(PeerError::Inbox)?
        .len() as u64;
    all_held(PEER, letters, held)?;
    Ok(line("peer-mesh-sandbox", letters, wall, None, &extra(PEER)))
}

/// mesh-sandbox as the tests start it (`tests/it/support/peers.rs`): `uvicorn
/// mesh_sandbox.api:app`, one worker, full NHSMESH authentication, a file store in which each
/// upper-case folder is a mailbox. Killed when stopped or dropped.
struct Sandbox {
    child: Child,
    port: u16,
    /// The store (`store/`) and uvicorn's output (`uvicorn.log`), removed when dropped.
    _dir: tempfile::TempDir,
}

impl Sandbox {
    fn start(venv: &Path) -> Result<Sandbox, PeerError> {
        let uvicorn = venv.join("bin").join("uvicorn");
        let dir = tempfile::tempdir()?;
        let store = dir.path().join("store");
        for m in [SENDER, RECIPIENT] {
            std::fs::create_dir_all(store.join(m))?;
        }
        let log_path = dir.path().join("uvicorn.log");
        let log = std::fs::File::create(&log_path)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut cmd = Command::new(&uvicorn);
        cmd.args(["mesh_sandbox.api:app", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string(), "--workers", "1"])
            .args(["--log-level", "warning"])
            .env("AUTH_MODE", "full")
            .env("STORE_MODE", "file")
            .env("MAILBOXES_DATA_DIR", &store)
            .env("SHARED_KEY", SHARED_KEY)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| PeerError::Start {
            uvicorn: uvicorn.display().to_string(),
            why: e.to_string(),
        })?;
        // From here on, dropping `sandbox` kills the child, whatever goes wrong.
        let mut sandbox = Sandbox {
            child,
            port,
            _dir: dir,
        };
        let failed = |why: String| PeerError::Start {
            uvicorn: uvicorn.display().to_string(),
            why: format!(
                "{why}; it printed: {}",
                std::fs::read_to_string(&log_path)
                    .unwrap_or_default()
                    .trim()
            ),
        };
        let started = Instant::now();
        loop {
            if let Some(status) = sandbox.child.try_wait()? {
                return Err(failed(format!("it exited ({status})")));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(sandbox);
            }
            if started.elapsed() > START_WITHIN {
                return Err(failed(format!(
                    "it did not listen on 127.0.0.1:{port} within {START_WITHIN:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's peak resident memory in MB (Linux `VmHWM`), 0 when unknown.
    fn peak_rss_mb(&self) -> f64 {
        super::peak_rss_mb_of(&self.child.id().to_string())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The child is killed if the thread that started it ends (this benchmark killed from
/// outside, say), so no mesh-sandbox outlives its benchmark.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_sets_the_two_rates_side_by_side() {
        let ours = "bench peer-lettergate letters=2000 wall_s=0.250 letters_per_s=8000 peak_rss_mb=30.0 ratio=- peer=lettergate";
        let theirs = "bench peer-mesh-sandbox letters=2000 wall_s=10.000 letters_per_s=200 peak_rss_mb=20.0 ratio=- peer=mesh-sandbox";
        assert_eq!(
            summary(ours, theirs),
            "bench peers letters=2000 lettergate_per_s=8000 mesh_sandbox_per_s=200 lettergate_over_sandbox=40.0x"
        );
        assert_eq!(
            summary(ours, "bench peer-mesh-sandbox letters=2000"),
            "bench peers letters=2000 lettergate_per_s=8000 mesh_sandbox_per_s=- lettergate_over_sandbox=-"
        );
    }

    #[tokio::test]
    async fn refused_sends_fail_the_benchmark_with_the_first_refusal() {
        // An endpoint on which the recipient is not registered: MESH's 417, code 12.
        let dir = tempfile::tempdir().unwrap();
        let server = endpoint(dir.path(), &[SENDER]).await.unwrap();
        let mesh = client(server.url()).unwrap();
        let err = send_letters("lettergate", &mesh, 5).await.unwrap_err();
        let PeerError::Refused {
            accepted,
            sent,
            first,
            ..
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!((*accepted, *sent), (0, WARM_UP));
        assert!(first.starts_with("status 417"), "{first}");
        assert!(
            err.to_string().contains("no throughput is reported"),
            "{err}"
        );
        server.finish().await.unwrap();
    }

    #[tokio::test]
    async fn a_wrong_password_is_a_refused_handshake() {
        let dir = tempfile::tempdir().unwrap();
        let server = endpoint(dir.path(), &[SENDER, RECIPIENT]).await.unwrap();
        let mut config = client(server.url()).unwrap().config().clone();
        config.password = "not-the-password".into();
        let mesh = MeshClient::new(sending_client().unwrap(), config);
        let err = send_letters("lettergate", &mesh, 5).await.unwrap_err();
        assert!(
            matches!(err, PeerError::Handshake { status: 403, .. }),
            "{err:?}"
        );
        server.finish().await.unwrap();
    }

    #[test]
    fn the_letters_are_the_simulators_with_a_local_id_each() {
        let body = letter_body();
        let batch = letters_from(WARM_UP, 3, &body);
        let ids: Vec<_> = batch.iter().map(|m| m.local_id.clone().unwrap()).collect();
        assert_eq!(
            ids,
            [
                "SIM-PEERBNCH-000017",
                "SIM-PEERBNCH-000018",
                "SIM-PEERBNCH-000019"
            ]
        );
        let m = &batch[0];
        assert_eq!(m.to, RECIPIENT);
        assert_eq!(m.workflow_id, "TOC_FHIR_OP_ATTEN");
        assert_eq!(
            m.subject.as_deref(),
            Some("clinic letter SIM-PEERBNCH-000017")
        );
        assert_eq!(m.file_name.as_deref(), Some("SIM-PEERBNCH-000017.json"));
        assert_eq!(m.body, body);
    }
}
