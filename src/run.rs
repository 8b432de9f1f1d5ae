//! Runs scenarios: each [`Scenario`] becomes an [`Outcome`]. One scenario run starts its own
//! capture endpoint on loopback, drives the target through the timeline on a virtual clock,
//! proves the capture path alive with a canary, then checks expectations and the snapshot.
//!
//! Scenarios run concurrently; outcomes come back in scenario order.

use crate::capture::{
    CaptureConfig, CaptureServer, Endpoint, FolderCapture, GpReceiver, MllpCapture,
};
use crate::expect::{self, Finding, Scope, Severity};
use crate::protocol::chain;
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::letter::Transport;
use crate::protocol::mesh::client::{MeshConfig, SendOutcome};
use crate::protocol::mesh::DEFAULT_SHARED_KEY;
use crate::scenario::model::PracticeStatus;
use crate::scenario::Scenario;
use crate::sim::ehr::SimError;
use crate::sim::ehr::{all_workflows, Outbound};
use crate::sim::{PatientRecord, PracticeRecord, SimConfig, SimEvent, Simulator};
use crate::snapshot::{self, Comparison, SnapshotMode, SnapshotStore};
use futures::StreamExt;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a scenario's drop folder is polled (real time).
const FOLDER_POLL: Duration = Duration::from_millis(50);

/// The mailbox the simulated trust sends from.
pub const SENDER_MAILBOX: &str = "RXXHC001";

/// Everything a run needs besides the scenarios.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub sim: SimConfig,
    pub store: SnapshotStore,
    pub mode: SnapshotMode,
    /// This run's folder; each scenario writes its captured messages below it.
    pub work_dir: PathBuf,
    pub jobs: usize,
    /// The address capture endpoints listen on; loopback unless configured.
    pub listen_ip: IpAddr,
}

impl RunConfig {
    pub fn new(sim: SimConfig, store: SnapshotStore, work_dir: PathBuf) -> RunConfig {
        RunConfig {
            sim,
            store,
            mode: SnapshotMode::New,
            work_dir,
            jobs: 8,
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every letter as expected and the snapshot matched.
    Pass,
    /// The system under test did something wrong: see the findings.
    Fail,
    /// The harness could not drive the target or capture; nothing is known.
    Error,
}

/// What happened to the scenario's snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    Matched,
    Changed,
    New,
    Accepted,
    /// Not compared, because the run failed before it could be.
    NotCompared,
}

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub scenario_id: String,
    pub name: String,
    pub path: PathBuf,
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// For each finding, the check it belongs to.
    pub scopes: Vec<Scope>,
    /// For each finding, its severity in this scenario.
    pub severities: Vec<Severity>,
    /// One line per captured message, for reports.
    pub captured: Vec<LetterLine>,
    /// The letters of the accepted snapshot, when there is one: the baseline.
    pub baseline: Option<Vec<LetterLine>>,
    /// Why the harness could not do its job, for [`Verdict::Error`].
    pub error: Option<String>,
    pub letters: usize,
    pub snapshot: SnapshotStatus,
    /// Where the pending `.snap.new` was written, if one was.
    pub pending_snapshot: Option<PathBuf>,
    /// The folder holding this scenario's captured messages.
    pub capture_dir: PathBuf,
    pub elapsed_ms: u64,
}

/// A captured letter in a few words, for reports and for comparing with the baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LetterLine {
    pub seq: u32,
    /// `clinic_letter`, ..., or `unrecognised`.
    pub kind: String,
    /// The scenario's key for the patient, or `unknown patient`.
    pub patient: String,
    /// The recipient practice's ODS code, `the patient`, or `unknown recipient`.
    pub recipient: String,
    pub transport: Option<Transport>,
    pub route: String,
    pub workflow: Option<String>,
    pub received_at: Option<Timestamp>,
    pub status: u16,
    pub acks: Vec<u32>,
}

impl LetterLine {
    fn of(s: &Scenario, l: &crate::capture::CapturedLetter) -> LetterLine {
        let facts = l.facts.as_ref().ok();
        let recipient = crate::protocol::read::recipient_label(facts);
        LetterLine {
            seq: l.seq,
            kind: facts
                .and_then(|f| f.kind)
                .map_or("unrecognised".into(), |k| k.name().to_string()),
            patient: facts
                .and_then(|f| f.nhs_number)
                .and_then(|n| s.patient_by_nhs(&n))
                .map_or("unknown patient".into(), |p| p.key.clone()),
            recipient,
            transport: Some(l.transport),
            route: l.route.clone(),
            workflow: l.workflow_id.clone(),
            received_at: Some(l.received_at),
            status: l.status,
            acks: l.acks.iter().map(|a| a.code.code()).collect(),
        }
    }

    /// The letters of a snapshot body, from their `letter N: kind for patient to recipient` lines.
    pub fn from_snapshot(body: &str) -> Vec<LetterLine> {
        body.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("letter ")?;
                let (seq, rest) = rest.split_once(": ")?;
                let (kind, rest) = rest.split_once(" for ")?;
                let (patient, recipient) = rest.split_once(" to ")?;
                Some(LetterLine {
                    seq: seq.parse().ok()?,
                    kind: kind.into(),
                    patient: patient.into(),
                    recipient: recipient.into(),
                    transport: None,
                    route: String::new(),
                    workflow: None,
                    received_at: None,
                    status: 0,
                    acks: vec![],
                })
            })
            .collect()
    }
}

/// Runs every scenario, at most `config.jobs` at once, calling `on_outcome` in scenario order
/// as soon as each outcome (and all before it) is known.
///
/// Scenarios are shared, not copied: a generated one holds tens of thousands of patients.
pub async fn run_all(
    scenarios: &[Arc<Scenario>],
    config: RunConfig,
    mut on_outcome: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let config = Arc::new(config);
    let http = match reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(h) => h,
        Err(e) => {
            return scenarios
                .iter()
                .map(|s| {
                    errored(
                        s,
                        &config,
                        format!("failed to build the HTTP client: {e}"),
                        0,
                    )
                })
                .collect();
        }
    };
    let mut outcomes = Vec::with_capacity(scenarios.len());
    let mut stream = futures::stream::iter(scenarios.iter().map(|s| {
        let (s, config, http) = (s.clone(), config.clone(), http.clone());
        async move {
            let (s2, c2) = (s.clone(), config.clone());
            tokio::spawn(async move { run_scenario(&s, &config, &http).await })
                .await
                .unwrap_or_else(|e| errored(&s2, &c2, format!("the scenario task failed: {e}"), 0))
        }
    }))
    .buffered(config.jobs.max(1));
    while let Some(o) = stream.next().await {
        on_outcome(&o);
        outcomes.push(o);
    }
    outcomes
}

pub(crate) fn errored(s: &Scenario, config: &RunConfig, error: String, elapsed_ms: u64) -> Outcome {
    Outcome {
        scenario_id: s.id.clone(),
        name: s.name.clone(),
        path: s.path.clone(),
        verdict: Verdict::Error,
        findings: Vec::new(),
        scopes: Vec::new(),
        severities: Vec::new(),
        captured: Vec::new(),
        baseline: None,
        error: Some(error),
        letters: 0,
        snapshot: SnapshotStatus::NotCompared,
        pending_snapshot: None,
        capture_dir: config.work_dir.join(&s.id),
        elapsed_ms,
    }
}

/// Runs one scenario against the built-in simulator.
pub async fn run_scenario(
    s: &Arc<Scenario>,
    config: &RunConfig,
    http: &reqwest::Client,
) -> Outcome {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    match drive_and_capture(s, config, http).await {
        Ok(letters) => {
            let mut outcome = check(s, config, &letters);
            outcome.elapsed_ms = ms();
            outcome
        }
        Err(e) => errored(s, config, e, ms()),
    }
}

/// The part of a run that needs the network: returns the captured letters, or why the
/// harness could not tell what the target sent.
async fn drive_and_capture(
    s: &Arc<Scenario>,
    config: &RunConfig,
    http: &reqwest::Client,
) -> Result<Vec<crate::capture::CapturedLetter>, String> {
    let clock = Clock::virtual_at(s.start);
    let mut mailboxes: BTreeMap<String, String> = s
        .practices
        .values()
        .map(|p| (p.mailbox.clone(), uuid::Uuid::new_v4().to_string()))
        .collect();
    let sender_password = uuid::Uuid::new_v4().to_string();
    mailboxes.insert(SENDER_MAILBOX.to_string(), sender_password.clone());
    // Practice systems collect only from the mailboxes of open practices.
    let monitored = s
        .practices
        .values()
        .filter(|p| p.status == PracticeStatus::Active)
        .map(|p| p.mailbox.clone())
        .collect();
    let scenario = s.clone();
    let gp = GpReceiver(Arc::new(move |mailbox: &str, nhs, at| {
        let practice = scenario.practices.values().find(|p| p.mailbox == mailbox);
        practice.map_or(crate::protocol::itk3::Itk3Response::PatientNotKnown, |p| {
            scenario.gp_response(&p.key, nhs, at)
        })
    }));
    // Endpoint lookup finds a practice's mailbox by its ODS code, as an EHR that looks up
    // before it sends would; a merged practice's code finds the practice it merged into, a
    // closed one's nothing.
    let directory = s
        .practices
        .values()
        .filter(|p| p.route == Transport::Mesh)
        .filter_map(|p| {
            let receiver = match &p.status {
                PracticeStatus::Active => p,
                PracticeStatus::MergedInto(k) => s.practices.get(k)?,
                PracticeStatus::Closed => return None,
            };
            Some(Endpoint {
                ods: p.ods.to_string(),
                mailbox_id: receiver.mailbox.clone(),
                mailbox_name: receiver.name.clone(),
                workflows: all_workflows(),
            })
        })
        .collect();
    let capture = CaptureServer::start_with_directory(
        CaptureConfig {
            listen: SocketAddr::new(config.listen_ip, 0),
            shared_key: DEFAULT_SHARED_KEY.to_string(),
            mailboxes,
            dir: config.work_dir.join(&s.id),
            monitored,
            gp: s.acknowledgements.then_some(gp),
        },
        directory,
        clock.clone(),
    )
    .await
    .map_err(|e| format!("could not capture: {}", chain(&e)))?;
    // MLLP and folder captures run only for scenarios with practices on those routes, and
    // record into the server's log so one renumbering orders every letter of the run.
    let wants = |t: Transport| s.practices.values().any(|p| p.route == t);
    let mllp = match wants(Transport::Mllp) {
        true => Some(
            MllpCapture::start(
                SocketAddr::new(config.listen_ip, 0),
                capture.sink(),
                clock.clone(),
            )
            .await
            .map_err(|e| format!("could not capture over MLLP: {}", chain(&e)))?,
        ),
        false => None,
    };
    let drop_dir = config.work_dir.join(&s.id).join("folder");
    let folder = match wants(Transport::Folder) {
        true => Some(
            FolderCapture::start(drop_dir.clone(), FOLDER_POLL, capture.sink(), clock.clone())
                .map_err(|e| format!("could not watch the drop folder: {}", chain(&e)))?,
        ),
        false => None,
    };
    let out = Outbound {
        mllp: mllp.as_ref().map(MllpCapture::addr),
        folder: folder.as_ref().map(|_| drop_dir.clone()),
        mesh: MeshConfig {
            base_url: capture.url(),
            mailbox: SENDER_MAILBOX.to_string(),
            password: sender_password,
            shared_key: DEFAULT_SHARED_KEY.to_string(),
        },
        print_url: capture.url(),
        docman_url: capture.url(),
    };
    let mut sim = Simulator::new(config.sim.clone(), clock, out, http.clone());
    let drive = async {
        drive_simulator(&mut sim, s).await?;
        sim.send_canary().await
    };
    let canary = drive
        .await
        .map_err(|e| format!("could not drive the simulator: {}", chain(&e)));
    // The other captures first: the server's finish closes the log they record into.
    if let Some(m) = mllp {
        m.finish().await;
    }
    let folder_done = match folder {
        Some(f) => f
            .finish()
            .await
            .map(|_| ())
            .map_err(|e| format!("could not watch the drop folder: {}", chain(&e))),
        None => Ok(()),
    };
    let log = capture
        .finish()
        .await
        .map_err(|e| format!("could not capture: {}", chain(&e)))?;
    folder_done?;
    match canary? {
        SendOutcome::Accepted { .. } if log.canaries > 0 && log.handshakes > 0 => Ok(log.letters),
        other => Err(format!(
            "the capture path was not proven alive: the canary letter was not recorded (send: {other:?}, canaries recorded: {}, handshakes: {})",
            log.canaries, log.handshakes
        )),
    }
}

/// The simulator's directory entries for a scenario's (or fixture file's) practices.
pub fn practice_records(
    practices: &BTreeMap<String, crate::scenario::Practice>,
) -> Vec<PracticeRecord> {
    practices
        .values()
        .map(|p| PracticeRecord {
            ods: p.ods.clone(),
            name: p.name.clone(),
            mailbox: p.mailbox.clone(),
            workflows: all_workflows(),
            closed: p.status == PracticeStatus::Closed,
            merged_into: match &p.status {
                PracticeStatus::MergedInto(k) => practices.get(k).map(|m| m.ods.clone()),
                _ => None,
            },
            route: p.route,
        })
        .collect()
}

/// Drives the simulator through a scenario: the handshake, the practices and patients, every
/// event of the timeline, then the observation period. Whatever MESH `sim` sends to (lettergate's
/// endpoint, or a real MESH a [`crate::capture::poll::MeshPoller`] reads) sees its letters.
pub async fn drive_simulator(sim: &mut Simulator, s: &Scenario) -> Result<(), SimError> {
    sim.handshake().await?;
    for p in practice_records(&s.practices) {
        sim.register_practice(p);
    }
    for p in s.patients.values() {
        sim.register_patient(PatientRecord {
            nhs_number: p.nhs_number,
            name: p.name.clone(),
            born: p.born.clone(),
            practice: s.registered_ods(p),
            named_gp: p.named_gp.clone(),
        });
    }
    for e in &s.timeline {
        let nhs_number = s.patients[&e.patient].nhs_number;
        let to = e
            .to_practice
            .as_ref()
            .and_then(|k| s.practices.get(k))
            .map(|p| p.ods.clone());
        sim.apply(SimEvent {
            at: e.at,
            event: e.kind,
            nhs_number,
            to,
            second_signer: e.second_signer,
            local_id: None,
        })
        .await?;
    }
    sim.advance_to(s.end().plus(s.observe_for)).await
}

/// Checks expectations and the snapshot; writes `.snap.new` or `.snap` as the mode says.
pub(crate) fn check(
    s: &Scenario,
    config: &RunConfig,
    letters: &[crate::capture::CapturedLetter],
) -> Outcome {
    check_with(s, config, letters, Vec::new())
}

/// As [`check`], with findings about the scenario made before it (a target run's letters
/// that could not be matched to it), which also keep it from becoming a baseline.
pub(crate) fn check_with(
    s: &Scenario,
    config: &RunConfig,
    letters: &[crate::capture::CapturedLetter],
    before: Vec<Finding>,
) -> Outcome {
    let (mut scopes, mut findings): (Vec<Scope>, Vec<Finding>) =
        expect::check_scoped(s, letters).into_iter().unzip();
    scopes.extend(before.iter().map(|_| Scope::Scenario));
    findings.extend(before);
    let body = snapshot::render(s, letters);
    let store = &config.store;
    let mut pending = None;
    let fail = |e: std::io::Error| Some(format!("could not write the snapshot: {e}"));
    let mut error = None;
    // Read the accepted snapshot once: for the comparison and for the baseline letters.
    let accepted = store.accepted_body(&s.id);
    let baseline = accepted
        .as_ref()
        .ok()
        .and_then(|b| b.as_deref())
        .map(LetterLine::from_snapshot);
    let compared = accepted.map(|old| snapshot::store::compare_bodies(old.as_deref(), &body));
    let status = match compared {
        Err(e) => {
            error = fail(e);
            SnapshotStatus::NotCompared
        }
        Ok(Comparison::Matches) => {
            if config.mode != SnapshotMode::Check {
                if let Err(e) = store.clear_pending(&s.id) {
                    error = fail(e);
                }
            }
            SnapshotStatus::Matched
        }
        Ok(cmp) => {
            // Only a clean scenario may become the accepted baseline.
            let accept = config.mode == SnapshotMode::Accept && findings.is_empty();
            let (status, finding) = match cmp {
                Comparison::Changed { diff, letters } => (
                    SnapshotStatus::Changed,
                    Finding::ContentChanged { letters, diff },
                ),
                _ => (
                    SnapshotStatus::New,
                    Finding::NewSnapshot {
                        path: store.path(&s.id).to_string_lossy().into_owned(),
                        written: config.mode != SnapshotMode::Check,
                    },
                ),
            };
            if accept {
                match store.write_accepted(&s.id, &s.path, &s.name, &body) {
                    Ok(_) => SnapshotStatus::Accepted,
                    Err(e) => {
                        error = fail(e);
                        status
                    }
                }
            } else {
                if config.mode != SnapshotMode::Check {
                    match store.write_pending(&s.id, &s.path, &s.name, &body) {
                        Ok(p) => pending = Some(p),
                        Err(e) => error = fail(e),
                    }
                }
                findings.push(finding);
                scopes.push(Scope::Snapshot);
                status
            }
        }
    };
    let verdict = match (&error, findings.is_empty()) {
        (Some(_), _) => Verdict::Error,
        (None, true) => Verdict::Pass,
        (None, false) => Verdict::Fail,
    };
    Outcome {
        scenario_id: s.id.clone(),
        name: s.name.clone(),
        path: s.path.clone(),
        verdict,
        severities: findings.iter().map(|f| s.severity_of(f.kind())).collect(),
        findings,
        scopes,
        captured: letters.iter().map(|l| LetterLine::of(s, l)).collect(),
        baseline,
        error,
        letters: letters.len(),
        snapshot: status,
        pending_snapshot: pending,
        capture_dir: config.work_dir.join(&s.id),
        elapsed_ms: 0,
    }
}
