//! [`CaptureGroup`]: every capture one scenario run needs, started together from a
//! [`CapturePlan`], proved alive with a canary each when the run is over, and released on
//! every path.
//!
//! Design constraints:
//! - One group serves every kind of run: the built-in simulator's (a MESH endpoint with an
//!   endpoint-lookup directory, MLLP and a drop folder when the scenario routes there) and a
//!   target's (lettergate's MESH and HTTP endpoints, MLLP, a watched folder, a poller of a
//!   real MESH). A fix to how captures start, prove themselves or stop is made once, here.
//! - Nothing is leaked. A capture that fails to start releases those started before it; a run
//!   that fails calls [`CaptureGroup::release`]; [`CaptureGroup::finish`] stops every capture
//!   even when one of them fails its canary. Each stop waits for the listener's task to end,
//!   so the next scenario can listen on the same fixed port.
//! - "Nothing captured" must never be a dead capture: [`CaptureGroup::finish`] sends each
//!   capture lettergate runs a canary through its own front door (a MESH message, an HTTP
//!   request, an MLLP message, a dropped file) and requires it counted, and requires the MESH
//!   poller to have polled successfully after the wait.
//! - MLLP and folder captures record into the log of the MESH or HTTP endpoint (or a log of
//!   their own when neither runs), so one numbering orders every letter of the scenario.

use super::folder::KnownFiles;
use super::poll::{MeshPoller, PollError};
use super::server::{CaptureConfig, CaptureError, CaptureServer, Endpoint, GpReceiver};
use super::sink::LogSink;
use super::store::{CaptureLog, CapturedLetter};
use super::{FolderCapture, MllpCapture};
use crate::protocol::clock::Clock;
use crate::protocol::itk3::Itk3Response;
use crate::protocol::limits::Limits;
use crate::protocol::mesh::client::{MeshClient, MeshConfig, OutboundMessage, SendOutcome};
use crate::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Every capture one scenario run needs.
#[derive(Debug)]
pub struct CapturePlan {
    /// The scenario's capture folder.
    pub dir: PathBuf,
    /// Stamps arrivals: the scenario's virtual clock, or the system's.
    pub clock: Clock,
    pub mesh: Option<MeshPlan>,
    /// lettergate's HTTP capture alone (MESH requests refused); records under `dir/http`.
    pub http: Option<SocketAddr>,
    pub mllp: Option<SocketAddr>,
    pub folder: Option<FolderPlan>,
}

/// lettergate's MESH endpoint, with its HTTP catch-all on the same port.
#[derive(Debug)]
pub struct MeshPlan {
    pub listen: SocketAddr,
    pub shared_key: String,
    /// Mailbox id → password.
    pub mailboxes: BTreeMap<String, String>,
    /// The mailboxes a practice system collects from.
    pub monitored: BTreeSet<String>,
    /// The synthetic GP receiver, when the scenario checks ITK3 acknowledgements.
    pub gp: Option<GpReceiver>,
    /// What endpoint lookup answers.
    pub directory: Vec<Endpoint>,
    /// The mailbox (one of `mailboxes`) lettergate's own canary is sent from and to.
    pub canary_mailbox: String,
}

#[derive(Debug)]
pub struct FolderPlan {
    pub path: PathBuf,
    pub interval: Duration,
}

/// What a run keeps from one scenario's captures to the next: its MESH poller, with every
/// message it has dealt with, and the files its watched folder holds. So a letter captured for
/// one scenario, or one already waiting before the run began, is never taken for another's.
#[derive(Default)]
pub struct Carried {
    pub poller: Option<MeshPoller>,
    pub files: KnownFiles,
}

/// The scenario a GP receiver answers for; a target run replaces it as its events are driven.
pub type ScenarioCell = Arc<RwLock<Arc<Scenario>>>;

/// The synthetic GP practices' ITK3 business responses, from the scenario in `known`:
/// the practice of the mailbox answers as the scenario says; an unknown mailbox that the
/// patient is not known (30002).
pub fn gp_receiver(known: ScenarioCell) -> GpReceiver {
    GpReceiver(Arc::new(move |mailbox: &str, nhs, at| {
        let Ok(s) = known.read().map(|s| s.clone()) else {
            return Itk3Response::PatientNotKnown;
        };
        let practice = s.practices.values().find(|p| p.mailbox == mailbox);
        practice.map_or(Itk3Response::PatientNotKnown, |p| {
            s.gp_response(&p.key, nhs, at)
        })
    }))
}

/// The synthetic GP practices' answers for the scenarios of a wave run at once, each in its
/// cell: the first whose events are about the patient answers as [`gp_receiver`] does for
/// it (else the first that knows the patient from its fixtures, as a scenario run alone
/// would). (Scenarios that register one patient differently are never in one wave.)
pub fn wave_gp_receiver(known: Vec<ScenarioCell>) -> GpReceiver {
    GpReceiver(Arc::new(move |mailbox: &str, nhs, at| {
        let scenarios: Vec<Arc<Scenario>> = known
            .iter()
            .filter_map(|cell| cell.read().ok().map(|s| s.clone()))
            .collect();
        let about = |s: &&Arc<Scenario>| {
            s.patient_by_nhs(&nhs)
                .is_some_and(|p| !s.patient_events(&p.key).is_empty())
        };
        let knows = |s: &&Arc<Scenario>| s.patient_by_nhs(&nhs).is_some();
        let answering = scenarios
            .iter()
            .find(about)
            .or_else(|| scenarios.iter().find(knows));
        let Some(s) = answering else {
            return Itk3Response::PatientNotKnown;
        };
        let practice = s.practices.values().find(|p| p.mailbox == mailbox);
        practice.map_or(Itk3Response::PatientNotKnown, |p| {
            s.gp_response(&p.key, nhs, at)
        })
    }))
}

/// Why a scenario's captures could not start, run, or be proved alive.
#[derive(Debug, thiserror::Error)]
pub enum CaptureGroupError {
    #[error("could not capture")]
    Endpoint(#[source] CaptureError),
    #[error("could not capture over MLLP")]
    Mllp(#[source] CaptureError),
    #[error("could not watch the drop folder")]
    Folder(#[source] CaptureError),
    #[error("could not capture")]
    Log(#[source] std::io::Error),
    #[error("could not capture: {0}")]
    Closed(super::sink::SinkError),
    #[error("could not capture from MESH")]
    Poll(#[source] PollError),
    #[error("the capture path was not proven alive: {what} did not count its canary ({why})")]
    Dead { what: String, why: String },
    #[error("the capture path was not proven alive: MESH was never polled")]
    NeverPolled,
}

/// The running captures of one scenario. End it with [`CaptureGroup::finish`] or
/// [`CaptureGroup::release`].
pub struct CaptureGroup<'c> {
    carried: &'c mut Carried,
    clock: Clock,
    /// The MESH endpoint, with the mailbox its canary goes through.
    mesh: Option<(CaptureServer, MeshConfig)>,
    http: Option<CaptureServer>,
    /// The log MLLP and folder captures record into when no endpoint runs.
    own: Option<Arc<LogSink>>,
    mllp: Option<MllpCapture>,
    /// The folder watcher, and the folder it watches.
    folder: Option<(FolderCapture, PathBuf)>,
    /// The log the run's MESH poller records into for this scenario.
    poll: Option<CaptureLog>,
    polls_ok: usize,
}

type Result<T, E = CaptureGroupError> = std::result::Result<T, E>;

impl<'c> CaptureGroup<'c> {
    /// Starts every capture of `plan`; on an error, those already started are released.
    pub async fn start(plan: CapturePlan, carried: &'c mut Carried) -> Result<CaptureGroup<'c>> {
        let mut group = CaptureGroup {
            carried,
            clock: plan.clock.clone(),
            mesh: None,
            http: None,
            own: None,
            mllp: None,
            folder: None,
            poll: None,
            polls_ok: 0,
        };
        match group.start_each(plan).await {
            Ok(()) => Ok(group),
            Err(e) => {
                group.release().await;
                Err(e)
            }
        }
    }

    async fn start_each(&mut self, plan: CapturePlan) -> Result<()> {
        let clock = plan.clock.clone();
        if let Some(m) = plan.mesh {
            self.mesh = Some(start_mesh(m, &plan.dir, clock.clone()).await?);
        }
        if let Some(listen) = plan.http {
            self.http = Some(start_http(listen, &plan.dir, clock.clone()).await?);
        }
        if self.mesh.is_none() && self.http.is_none() {
            let log = CaptureLog::create(&plan.dir).map_err(CaptureGroupError::Log)?;
            self.own = Some(Arc::new(LogSink::new(log)));
        }
        let sink = self.sink();
        if let (Some(addr), Some(sink)) = (plan.mllp, &sink) {
            let m = MllpCapture::start(addr, sink.clone(), clock.clone())
                .await
                .map_err(CaptureGroupError::Mllp)?;
            self.mllp = Some(m);
        }
        if let (Some(f), Some(sink)) = (plan.folder, sink) {
            let known = self.carried.files.clone();
            let w = FolderCapture::start_knowing(f.path.clone(), f.interval, sink, clock, known)
                .map_err(CaptureGroupError::Folder)?;
            self.folder = Some((w, f.path));
        }
        if self.carried.poller.is_some() {
            let log =
                CaptureLog::create(&plan.dir.join("mesh-poll")).map_err(CaptureGroupError::Log)?;
            self.poll = Some(log);
        }
        Ok(())
    }

    /// The log MLLP and folder captures record into: an endpoint's, or the group's own.
    fn sink(&self) -> Option<Arc<LogSink>> {
        match (&self.mesh, &self.http, &self.own) {
            (Some((s, _)), _, _) => Some(s.sink()),
            (None, Some(s), _) => Some(s.sink()),
            (None, None, own) => own.clone(),
        }
    }

    /// The MESH endpoint's base URL, when it runs.
    pub fn mesh_url(&self) -> Option<String> {
        self.mesh.as_ref().map(|(s, _)| s.url())
    }

    /// The MLLP listener's address, when it runs.
    pub fn mllp_addr(&self) -> Option<SocketAddr> {
        self.mllp.as_ref().map(MllpCapture::addr)
    }

    /// The watched folder, when there is one.
    pub fn folder_path(&self) -> Option<&Path> {
        self.folder.as_ref().map(|(_, p)| p.as_path())
    }

    /// Polls the MESH server, if there is one to poll. A failed poll is a harness failure:
    /// letters lettergate cannot see are not letters that were not sent.
    pub async fn poll(&mut self) -> Result<()> {
        if let (Some(poller), Some(log)) = (&mut self.carried.poller, &mut self.poll) {
            poller
                .poll_once(log, &self.clock)
                .await
                .map_err(CaptureGroupError::Poll)?;
            self.polls_ok += 1;
        }
        Ok(())
    }

    /// How many letters every capture has recorded so far (canaries aside).
    pub fn captured(&self) -> usize {
        let endpoint = |s: &CaptureServer| s.captured();
        self.mesh.as_ref().map_or(0, |(s, _)| endpoint(s))
            + self.http.as_ref().map_or(0, endpoint)
            + self
                .own
                .as_ref()
                .and_then(|s| s.with_log(|l| l.letters.len()))
                .unwrap_or(0)
            + self.poll.as_ref().map_or(0, |l| l.letters.len())
    }

    /// Copies of the letters every capture has recorded so far (canaries aside), their bodies
    /// written out so they can be read back: for a wave of scenarios to count each one's
    /// letters while it waits. Numbered by arrival within each capture, not yet together.
    pub fn letters_so_far(&mut self) -> Vec<CapturedLetter> {
        let copy = |log: &mut CaptureLog| {
            // A failed flush leaves a body unreadable now; `finish` reports the write error.
            let _ = log.flush();
            log.letters.clone()
        };
        let mut all = Vec::new();
        let sinks = [
            self.mesh.as_ref().map(|(s, _)| s.sink()),
            self.http.as_ref().map(CaptureServer::sink),
            self.own.clone(),
        ];
        for sink in sinks.into_iter().flatten() {
            all.extend(sink.with_log(copy).unwrap_or_default());
        }
        if let Some(log) = &mut self.poll {
            all.extend(copy(log));
        }
        all
    }

    /// Polls once more, proves every capture alive with its canary, stops them all and
    /// returns what they captured, numbered together in the order the letters arrived. Every
    /// capture is stopped even when an earlier one fails; the first failure is returned.
    pub async fn finish(mut self, http: &reqwest::Client) -> Result<Vec<CapturedLetter>> {
        let mut first = self.poll().await.err();
        note(&mut first, self.finish_mllp().await);
        note(&mut first, self.finish_folder().await);
        let mut logs = Vec::new();
        let mesh = self.finish_mesh(http).await;
        let endpoint = self.finish_http(http).await;
        let own = self.close_own();
        let poll = self.finish_poll();
        for log in [mesh, endpoint, own, poll] {
            logs.extend(note(&mut first, log).flatten());
        }
        if let Some(e) = first {
            return Err(e);
        }
        // One numbering over every capture, in the order the letters arrived.
        let Some(mut all) = logs.pop() else {
            return Ok(Vec::new());
        };
        for l in logs {
            all.letters.extend(l.letters);
        }
        all.renumber(super::store::Numbering::for_clock(&self.clock));
        Ok(all.letters)
    }

    /// Stops every capture without proving any alive, for a run that failed: its listeners,
    /// ports and tasks are free when this returns. What they captured is dropped.
    pub async fn release(mut self) {
        if let Some(m) = self.mllp.take() {
            m.finish().await;
        }
        if let Some((f, _)) = self.folder.take() {
            // The files it saw stay known, so the next scenario does not take them for its own.
            if let Ok(files) = f.finish().await {
                self.carried.files = files;
            }
        }
        if let Some((server, _)) = self.mesh.take() {
            let _ = server.finish().await;
        }
        if let Some(server) = self.http.take() {
            let _ = server.finish().await;
        }
        if let Some(own) = self.own.take() {
            let _ = own.close();
        }
    }

    fn canaries(&self) -> u32 {
        self.sink()
            .and_then(|s| s.with_log(|l| l.canaries))
            .unwrap_or(0)
    }

    async fn finish_mllp(&mut self) -> Result<()> {
        let Some(m) = self.mllp.take() else {
            return Ok(());
        };
        let before = self.canaries();
        let sent = crate::protocol::hl7::mllp::send(
            m.addr(),
            &super::mllp::canary_message(),
            Duration::from_secs(10),
        )
        .await;
        m.finish().await;
        match self.canaries() > before {
            true => Ok(()),
            false => Err(dead("the MLLP listener", format!("{sent:?}"))),
        }
    }

    async fn finish_folder(&mut self) -> Result<()> {
        let Some((f, dir)) = self.folder.take() else {
            return Ok(());
        };
        let before = self.canaries();
        let dropped = super::folder::drop_canary(&dir);
        let finished = f.finish().await;
        if let Ok(p) = &dropped {
            let _ = std::fs::remove_file(p);
        }
        self.carried.files = finished.map_err(CaptureGroupError::Folder)?;
        if self.canaries() > before {
            return Ok(());
        }
        let why = match dropped {
            Ok(p) => format!("{} was dropped", p.display()),
            Err(e) => format!("it could not be written: {e}"),
        };
        Err(dead(&format!("the watched folder {}", dir.display()), why))
    }

    async fn finish_mesh(&mut self, http: &reqwest::Client) -> Result<Option<CaptureLog>> {
        let Some((server, canary)) = self.mesh.take() else {
            return Ok(None);
        };
        let counted = |s: &CaptureServer| s.sink().with_log(|l| l.canaries).unwrap_or(0);
        let before = counted(&server);
        let msg = OutboundMessage::canary(&canary.mailbox);
        let sent = MeshClient::new(http.clone(), canary).send(&msg).await;
        let alive = counted(&server) > before;
        let log = server.finish().await.map_err(CaptureGroupError::Endpoint)?;
        match alive && matches!(sent, Ok(SendOutcome::Accepted { .. })) {
            true => Ok(Some(log)),
            false => Err(dead("the MESH endpoint", format!("{sent:?}"))),
        }
    }

    async fn finish_http(&mut self, http: &reqwest::Client) -> Result<Option<CaptureLog>> {
        let Some(server) = self.http.take() else {
            return Ok(None);
        };
        let counted = |s: &CaptureServer| s.sink().with_log(|l| l.canaries).unwrap_or(0);
        let before = counted(&server);
        let sent = http
            .post(format!("{}/lettergate/canary", server.url()))
            .header("mex-WorkflowID", crate::protocol::mesh::CANARY_WORKFLOW)
            .body("canary")
            .send()
            .await
            .map(|r| r.status());
        let alive = counted(&server) > before;
        let log = server.finish().await.map_err(CaptureGroupError::Endpoint)?;
        match alive {
            true => Ok(Some(log)),
            false => Err(dead("the HTTP endpoint", format!("{sent:?}"))),
        }
    }

    fn close_own(&mut self) -> Result<Option<CaptureLog>> {
        match self.own.take() {
            Some(sink) => sink.close().map(Some).map_err(CaptureGroupError::Closed),
            None => Ok(None),
        }
    }

    fn finish_poll(&mut self) -> Result<Option<CaptureLog>> {
        let (Some(poller), Some(mut log)) = (&self.carried.poller, self.poll.take()) else {
            return Ok(None);
        };
        if self.polls_ok == 0 {
            return Err(CaptureGroupError::NeverPolled);
        }
        log.flush().map_err(CaptureGroupError::Log)?;
        let unmatched = poller.unmatched_reports().len();
        if unmatched > 0 {
            eprintln!("note: {unmatched} MESH REPORT(s) in the sending mailbox refer to no letter this scenario captured");
        }
        Ok(Some(log))
    }
}

/// Keeps the first error of `r` in `first`; the value, if there was one.
fn note<T>(first: &mut Option<CaptureGroupError>, r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            first.get_or_insert(e);
            None
        }
    }
}

fn dead(what: &str, why: String) -> CaptureGroupError {
    CaptureGroupError::Dead {
        what: what.to_string(),
        why,
    }
}

async fn start_mesh(m: MeshPlan, dir: &Path, clock: Clock) -> Result<(CaptureServer, MeshConfig)> {
    let password = m
        .mailboxes
        .get(&m.canary_mailbox)
        .cloned()
        .unwrap_or_default();
    let shared_key = m.shared_key.clone();
    let server = CaptureServer::start_with_directory(
        CaptureConfig {
            listen: m.listen,
            shared_key: m.shared_key,
            mailboxes: m.mailboxes,
            dir: dir.to_path_buf(),
            monitored: m.monitored,
            gp: m.gp,
            limits: Limits::current(),
        },
        m.directory,
        clock,
    )
    .await
    .map_err(CaptureGroupError::Endpoint)?;
    let canary = MeshConfig {
        base_url: server.url(),
        mailbox: m.canary_mailbox,
        password,
        shared_key,
    };
    Ok((server, canary))
}

/// The HTTP capture alone: no mailboxes, so MESH requests are refused and everything else is
/// an HTTP letter.
async fn start_http(listen: SocketAddr, dir: &Path, clock: Clock) -> Result<CaptureServer> {
    CaptureServer::start(
        CaptureConfig {
            listen,
            shared_key: String::new(),
            mailboxes: BTreeMap::new(),
            dir: dir.join("http"),
            monitored: Default::default(),
            gp: None,
            limits: Limits::current(),
        },
        clock,
    )
    .await
    .map_err(CaptureGroupError::Endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port free now, on loopback.
    fn free_port() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn plan(dir: &Path, mesh: SocketAddr, http: SocketAddr, mllp: SocketAddr) -> CapturePlan {
        CapturePlan {
            dir: dir.to_path_buf(),
            clock: Clock::System,
            mesh: Some(MeshPlan {
                listen: mesh,
                shared_key: "TestKey".into(),
                mailboxes: BTreeMap::from([("RXXHC001".into(), "secret".into())]),
                monitored: BTreeSet::new(),
                gp: None,
                directory: Vec::new(),
                canary_mailbox: "RXXHC001".into(),
            }),
            http: Some(http),
            mllp: Some(mllp),
            folder: Some(FolderPlan {
                path: dir.join("drop"),
                interval: Duration::from_millis(20),
            }),
        }
    }

    fn http() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    #[tokio::test]
    async fn every_capture_counts_its_canary_and_nothing_is_a_letter() {
        let dir = tempfile::tempdir().unwrap();
        let mut carried = Carried::default();
        let p = plan(dir.path(), free_port(), free_port(), free_port());
        let group = CaptureGroup::start(p, &mut carried).await.unwrap();
        let letters = group.finish(&http()).await.unwrap();
        assert!(letters.is_empty(), "{letters:?}");
    }

    #[tokio::test]
    async fn a_capture_that_fails_to_start_releases_those_started_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mesh, http_port) = (free_port(), free_port());
        // Taken: the MLLP listener, started after both endpoints, cannot listen there.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut carried = Carried::default();
        let p = plan(dir.path(), mesh, http_port, taken.local_addr().unwrap());
        let Err(e) = CaptureGroup::start(p, &mut carried).await else {
            panic!("the MLLP listener started on a port in use");
        };
        assert!(matches!(e, CaptureGroupError::Mllp(_)), "{e:?}");
        // Both endpoints let go of their ports when the start failed.
        std::net::TcpListener::bind(mesh).unwrap();
        std::net::TcpListener::bind(http_port).unwrap();
    }

    /// Issue 11 (point 7): a scenario that fails releases its fixed ports, so the next one
    /// listens on them.
    #[tokio::test]
    async fn a_released_group_frees_its_fixed_ports_for_the_next_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let (mesh, http_port, mllp) = (free_port(), free_port(), free_port());
        let mut carried = Carried::default();
        let group = CaptureGroup::start(plan(dir.path(), mesh, http_port, mllp), &mut carried)
            .await
            .unwrap();
        group.release().await;
        let next = CaptureGroup::start(plan(dir.path(), mesh, http_port, mllp), &mut carried)
            .await
            .unwrap_or_else(|e| panic!("{}", crate::protocol::chain(&e)));
        assert!(next.finish(&http()).await.unwrap().is_empty());
    }
}
