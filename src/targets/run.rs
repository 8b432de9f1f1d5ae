//! Running scenarios against a target: drive each scenario's events through the target's
//! driver, in real time, capture what comes out where the target file says, wait until it
//! settles, then check it exactly as a simulator run is checked.
//!
//! Scenarios run one after another: a staging EHR is one shared system, and the same synthetic
//! patients appear in several scenarios. Each scenario's timeline is driven at once, in order,
//! and is re-based onto the times its events were actually driven, so "within 3d" means three
//! days from when the EHR was told. A letter that has not arrived when `wait.max` runs out is
//! missing.

use super::check::{authorization, http_client};
use super::file::{RawRequest, Template};
use super::matching::{attribute, Driven};
use super::{secret, Target};
use crate::capture::folder::KnownFiles;
use crate::capture::poll::{MailboxCredentials, MeshPoller, PollConfig};
use crate::capture::server::{CaptureConfig, CaptureServer, GpReceiver};
use crate::capture::CapturedLetter;
use crate::capture::{CaptureLog, FolderCapture, LogSink, MllpCapture};
use crate::expect::{unmatched_letter, Finding};
use crate::protocol::chain;
use crate::protocol::clock::{Clock, Span, Timestamp};
use crate::protocol::fhir::r4::{self, FhirRequest, PatientState};
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::EventKind;
use crate::protocol::mesh::client::{MeshClient, MeshConfig, OutboundMessage, SendOutcome};
use crate::run::{check_with, errored, Outcome, RunConfig};
use crate::scenario::{Event, Scenario};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Runs every scenario against the target, one at a time, calling `on_outcome` after each.
pub async fn run_target(
    t: &Target,
    scenarios: &[Arc<Scenario>],
    config: RunConfig,
    mut on_outcome: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    if t.raw.capture.mesh_endpoint.is_none() {
        eprintln!(
            "note: ITK3 acknowledgements are not checked against target {}: they are seen only when lettergate runs the MESH endpoint (capture.mesh_endpoint)",
            t.name()
        );
    }
    let mut run = match RunState::before_run(t).await {
        Ok(r) => r,
        Err(e) => {
            for s in scenarios {
                let o = errored(s, &config, e.clone(), 0);
                on_outcome(&o);
                outcomes.push(o);
            }
            return outcomes;
        }
    };
    // Every scenario run so far, so a letter that comes late is known for whose it is.
    let mut history: Vec<Driven> = Vec::new();
    for s in scenarios {
        let started = Instant::now();
        let local_ids = super::matching::local_ids(s.timeline.len());
        let result = drive_and_capture(t, s, &config, local_ids.clone(), &mut run).await;
        history.push(Driven {
            id: s.id.clone(),
            local_ids,
            patients: event_patients(s),
            driven_at: result.as_ref().map_or(vec![], |r| r.1.clone()),
        });
        let o = match result {
            Ok((rebased, _, letters)) => {
                let (mine, before) = sort_out(t, &rebased, letters, &history);
                let mut o = check_with(&rebased, &config, &mine, before);
                o.elapsed_ms = started.elapsed().as_millis() as u64;
                o
            }
            Err(e) => errored(s, &config, e, started.elapsed().as_millis() as u64),
        };
        on_outcome(&o);
        outcomes.push(o);
    }
    outcomes
}

/// The patients a scenario's events are about (its fixtures bring many more).
pub(crate) fn event_patients(s: &Scenario) -> Vec<NhsNumber> {
    let mut p: Vec<NhsNumber> = s
        .timeline
        .iter()
        .map(|e| s.patients[&e.patient].nhs_number)
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}

/// Sorts what was captured while the last scenario of `history` ran (`s`, re-based) into its
/// own letters, numbered again from 1, and findings: a letter of a scenario checked before it
/// came is not counted here but said, and one the target's `match:` could not match is
/// counted here (by its NHS number or its time) and said.
fn sort_out(
    t: &Target,
    s: &Scenario,
    letters: Vec<CapturedLetter>,
    history: &[Driven],
) -> (Vec<CapturedLetter>, Vec<Finding>) {
    let current = history.len().saturating_sub(1);
    let (mut mine, mut findings, mut unmatched) = (Vec::new(), Vec::new(), Vec::new());
    for l in letters {
        let m = attribute(&t.raw.match_by, &l, history);
        match m.owner {
            Some(i) if i != current => findings.push(unmatched_letter(
                s,
                &l,
                None,
                format!(
                    "it belongs to scenario {}, which was checked before it arrived; it is not counted here",
                    history[i].id
                ),
            )),
            _ => {
                if let Some(why) = m.unmatched {
                    unmatched.push((mine.len(), why));
                }
                mine.push(l);
            }
        }
    }
    for (i, l) in mine.iter_mut().enumerate() {
        l.seq = i as u32 + 1;
    }
    for (i, why) in unmatched {
        let l = &mine[i];
        findings.push(unmatched_letter(
            s,
            l,
            Some(l.seq),
            format!(
                "match: {} could not tie it to a scenario: {why}; it is counted with the scenario running when it came",
                t.raw.match_by.name()
            ),
        ));
    }
    (mine, findings)
}

/// Sends a scenario's events to a target, one request per event.
pub(crate) struct Driver<'a> {
    t: &'a Target,
    http: reqwest::Client,
    authorization: Option<String>,
    scenario: &'a Scenario,
    /// What the EHR has been told of each patient, by key.
    patients: HashMap<String, PatientState>,
    /// The local id of each event of the timeline (see [`super::matching`]).
    local_ids: Vec<String>,
    sent: u32,
}

impl<'a> Driver<'a> {
    /// A driver for `scenario`'s events, each sent with its local id from `local_ids`.
    pub(crate) async fn new(
        t: &'a Target,
        scenario: &'a Scenario,
        local_ids: Vec<String>,
    ) -> Result<Driver<'a>, String> {
        let http = http_client(None, Duration::from_secs(30))?;
        let auth = match (&t.raw.drive.fhir, &t.raw.drive.http) {
            (Some(f), _) => f.auth.as_ref(),
            (_, Some(h)) => h.auth.as_ref(),
            _ => None,
        };
        let authorization = authorization(&http, auth).await?;
        if t.raw.drive.hl7v2.is_some() {
            // ADT carries patient administration only; say so before anything is sent.
            if let Some(e) = scenario
                .timeline
                .iter()
                .find(|e| crate::protocol::hl7::adt::trigger_for(e.kind).is_none())
            {
                return Err(format!(
                    "the hl7v2 driver cannot tell the EHR `{}`: ADT carries patient administration (attendances, admissions, discharges, deaths, registrations), not document workflow; drive this scenario with a fhir or http target; nothing was sent",
                    e.kind.name()
                ));
            }
        }
        if let Some(h) = &t.raw.drive.http {
            // Every event the scenario has needs a request before anything is sent.
            let missing: Vec<&str> = scenario
                .timeline
                .iter()
                .map(|e| e.kind)
                .filter(|k| !h.requests.keys().any(|n| n.0 == *k))
                .map(EventKind::name)
                .collect();
            if let Some(first) = missing.first() {
                return Err(format!(
                    "the target's http driver has no request for `{first}` (add it under drive.http.requests); nothing was sent"
                ));
            }
        }
        Ok(Driver {
            t,
            http,
            authorization,
            scenario,
            patients: HashMap::new(),
            local_ids,
            sent: 0,
        })
    }

    fn base(&self) -> &str {
        match (&self.t.raw.drive.fhir, &self.t.raw.drive.http) {
            (Some(f), _) => &f.base_url.0,
            (_, Some(h)) => &h.base_url.0,
            _ => "",
        }
    }

    fn placeholders(&self, i: usize, at: Timestamp) -> BTreeMap<&'static str, String> {
        let s = self.scenario;
        let e = &s.timeline[i];
        let p = &s.patients[&e.patient];
        let (given, family) = p.name.rsplit_once(' ').unwrap_or(("", p.name.as_str()));
        let ods = |key: Option<&String>| {
            key.and_then(|k| s.practices.get(k))
                .map(|pr| pr.ods.to_string())
                .unwrap_or_default()
        };
        let hl7 = at.rfc3339().replace(['-', ':', 'T'], "");
        BTreeMap::from([
            ("nhs_number", p.nhs_number.to_string()),
            ("patient_name", p.name.clone()),
            ("family_name", family.to_string()),
            ("given_name", given.to_string()),
            ("born", p.born.clone()),
            ("practice_ods", ods(p.practice.as_ref())),
            ("event", e.kind.name().to_string()),
            ("at", at.rfc3339()),
            ("at_hl7", hl7.trim_end_matches('Z').to_string()),
            ("to_practice_ods", ods(e.to_practice.as_ref())),
            ("local_id", self.local_ids[i].clone()),
            ("scenario", s.id.clone()),
        ])
    }

    async fn send(
        &mut self,
        method: &str,
        url: &str,
        body: Option<String>,
        headers: &[(String, String)],
        what: &str,
    ) -> Result<(), String> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.http.request(m, url);
        if let Some(a) = &self.authorization {
            req = req.header("authorization", a);
        }
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| {
            format!("could not drive the target: {method} {url} ({what}) failed: {e}")
        })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            let excerpt: String = text.chars().take(300).collect();
            return Err(format!(
                "could not drive the target: {method} {url} ({what}) answered {status}: {excerpt}"
            ));
        }
        self.sent += 1;
        Ok(())
    }

    async fn template(&mut self, r: &RawRequest, i: usize, at: Timestamp) -> Result<(), String> {
        let values = self.placeholders(i, at);
        let e = &self.scenario.timeline[i];
        let fill = |t: &Template| fill(&t.0, &values);
        let url = format!("{}/{}", self.base(), fill(&r.path).trim_start_matches('/'));
        let headers: Vec<(String, String)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), fill(v)))
            .collect();
        let body = r.body.as_ref().map(fill);
        self.send(&r.method.0.clone(), &url, body, &headers, e.kind.name())
            .await
    }

    async fn fhir(&mut self, req: FhirRequest, what: &str) -> Result<(), String> {
        let url = format!("{}/{}", self.base(), req.path);
        let headers = vec![(
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        )];
        self.send(req.method, &url, Some(req.body.to_string()), &headers, what)
            .await
    }

    /// Sends the event's ADT message over MLLP and requires an AA (or CA) acknowledgement.
    async fn hl7(
        &mut self,
        h: &super::file::RawHl7Driver,
        i: usize,
        at: Timestamp,
    ) -> Result<(), String> {
        use crate::protocol::hl7::message::escape;
        let s = self.scenario;
        let e = &s.timeline[i];
        let mut p = self
            .patients
            .get(&e.patient)
            .cloned()
            .unwrap_or_else(|| self.initial(&e.patient));
        match e.kind {
            EventKind::GpChange => {
                p.practice = e
                    .to_practice
                    .as_ref()
                    .and_then(|k| s.practices.get(k))
                    .map(|pr| pr.ods.clone())
            }
            EventKind::Death => p.died_at = Some(at),
            _ => {}
        }
        let record = crate::protocol::event::PatientRecord {
            nhs_number: p.nhs_number,
            name: p.name.clone(),
            born: p.born.clone(),
            practice: p.practice.clone(),
            named_gp: p.named_gp.clone(),
        };
        let control_id = format!("LG{}", self.sent + 1);
        let msg = crate::protocol::hl7::adt::build(
            e.kind,
            &record,
            at,
            &control_id,
            Some(&self.local_ids[i]),
        )
        .ok_or_else(|| format!("no ADT message for `{}`", e.kind.name()))?;
        // MSH-3 to MSH-6 as the target file names them.
        let msh = format!(
            "MSH|^~\\&|{}|{}|{}|{}|",
            escape(&h.sending_application),
            escape(&h.sending_facility),
            escape(h.receiving_application.as_deref().unwrap_or("EHR")),
            escape(h.receiving_facility.as_deref().unwrap_or("TRUST")),
        );
        let msg = msg.replacen("MSH|^~\\&|LETTERGATE|DRIVER|EHR|TRUST|", &msh, 1);
        let addr = tokio::net::lookup_host(&h.address.0)
            .await
            .map_err(|e| {
                format!(
                    "could not drive the target: {} does not resolve: {e}",
                    h.address.0
                )
            })?
            .next()
            .ok_or_else(|| {
                format!(
                    "could not drive the target: {} does not resolve",
                    h.address.0
                )
            })?;
        let timeout = Duration::from_secs(h.ack_timeout.0 .0.max(1) as u64);
        crate::protocol::hl7::mllp::send(addr, &msg, timeout)
            .await
            .map_err(|err| {
                format!(
                    "could not drive the target: ADT for {} to {addr} was not accepted: {err}",
                    e.kind.name()
                )
            })?;
        self.patients.insert(e.patient.clone(), p);
        self.sent += 1;
        Ok(())
    }

    /// The patient as the scenario starts them.
    fn initial(&self, key: &str) -> PatientState {
        let p = &self.scenario.patients[key];
        PatientState {
            nhs_number: p.nhs_number,
            name: p.name.clone(),
            born: p.born.clone(),
            practice: self.scenario.registered_ods(p),
            named_gp: p.named_gp.clone(),
            died_at: None,
        }
    }

    /// Drives event `i` of the timeline at `at` (now).
    pub(crate) async fn event(&mut self, i: usize, at: Timestamp) -> Result<(), String> {
        let e: &Event = &self.scenario.timeline[i];
        if let Some(h) = &self.t.raw.drive.http {
            let r = h
                .requests
                .iter()
                .find(|(k, _)| k.0 == e.kind)
                .map(|(_, r)| r.clone());
            return match r {
                Some(r) => self.template(&r, i, at).await,
                None => Err(format!("no request for `{}`", e.kind.name())),
            };
        }
        if let Some(h) = self.t.raw.drive.hl7v2.clone() {
            return self.hl7(&h, i, at).await;
        }
        let Some(f) = &self.t.raw.drive.fhir else {
            return Err("the target has no driver".into());
        };
        if let Some((_, r)) = f.requests.iter().find(|(k, _)| k.0 == e.kind) {
            let r = r.clone();
            return self.template(&r, i, at).await;
        }
        // The patient first, as the EHR's registration would have them.
        if !self.patients.contains_key(&e.patient) {
            let p = self.initial(&e.patient);
            self.fhir(r4::patient(&p), "register the patient").await?;
            self.patients.insert(e.patient.clone(), p);
        }
        let nhs = self.scenario.patients[&e.patient].nhs_number;
        let local_id = self.local_ids[i].clone();
        match r4::request_for(e.kind, &nhs, at, e.second_signer, Some(&local_id)) {
            Some(req) => self.fhir(req, e.kind.name()).await,
            None => {
                let s = self.scenario;
                let mut p = self.patients[&e.patient].clone();
                match e.kind {
                    EventKind::Death => p.died_at = Some(at),
                    EventKind::NamedGpLeft => p.named_gp = None,
                    _ => {
                        p.practice = e
                            .to_practice
                            .as_ref()
                            .and_then(|k| s.practices.get(k))
                            .map(|pr| pr.ods.clone())
                    }
                }
                self.fhir(r4::patient(&p), e.kind.name()).await?;
                self.patients.insert(e.patient.clone(), p);
                Ok(())
            }
        }
    }
}

/// How the MESH poller signs in, from a target's `capture.mesh_poll`, with the secrets read.
pub(crate) fn poll_config(p: &super::file::RawMeshPoll) -> Result<PollConfig, String> {
    let creds = |m: &super::file::RawMailbox| {
        secret(&m.password_env, &format!("{}'s password", m.id))
            .map(|pw| MailboxCredentials::new(&m.id, pw))
    };
    Ok(PollConfig {
        base_url: p.url.0.clone(),
        shared_key: secret(&p.shared_key_env, "the MESH shared key")?,
        recipients: p.mailboxes.iter().map(creds).collect::<Result<_, _>>()?,
        sender: p.sending_mailbox.as_ref().map(creds).transpose()?,
        tls: super::check::tls_options(p.tls.as_ref()),
        acknowledge: p.acknowledge,
        acknowledge_reports: false,
        workflows: None,
    })
}

/// Fills `{{placeholder}}`s (names were checked when the file was loaded).
pub fn fill(template: &str, values: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find("}}") {
            Some(j) => {
                let name = rest[i + 2..i + 2 + j].trim();
                out.push_str(values.get(name).map_or("", String::as_str));
                rest = &rest[i + 2 + j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where a target's letters are captured: lettergate's own endpoints (MESH with the HTTP
/// catch-all on one port, HTTP alone, MLLP, a folder) recording into one log, and a MESH
/// poller recording into its own; their letters are numbered together at the end.
struct Captures {
    /// The MESH endpoint, with the mailbox its canary goes through.
    mesh: Option<(CaptureServer, MeshConfig)>,
    http: Option<CaptureServer>,
    /// The log MLLP and folder captures record into when no endpoint runs.
    sink: Option<Arc<LogSink>>,
    /// The log MLLP and folder captures record into: an endpoint's, or `sink`.
    shared: Arc<LogSink>,
    mllp: Option<MllpCapture>,
    /// The folder watcher, and the folder it watches.
    folder: Option<(FolderCapture, std::path::PathBuf)>,
    /// The log the run's MESH poller records into for this scenario.
    poll: Option<CaptureLog>,
    polls_ok: usize,
}

/// What a target run keeps from one scenario to the next: its MESH poller, with every message
/// it has dealt with, and the files its watched folder holds. So a letter captured for one
/// scenario, or one already waiting before the run began, is never taken for another's.
pub(crate) struct RunState {
    poller: Option<MeshPoller>,
    files: KnownFiles,
}

impl RunState {
    /// Notes what is waiting in the MESH mailboxes and the folder before anything is driven,
    /// and leaves it out of the run (where it is: nothing is acknowledged or removed).
    async fn before_run(t: &Target) -> Result<RunState, String> {
        let c = &t.raw.capture;
        let mut poller = None;
        if let Some(p) = &c.mesh_poll {
            let mut pl = MeshPoller::new(poll_config(p)?)
                .map_err(|e| format!("could not capture from MESH: {}", chain(&e)))?;
            let waiting = pl
                .skip_waiting()
                .await
                .map_err(|e| format!("could not capture from MESH: {}", chain(&e)))?
                .len();
            if waiting > 0 {
                eprintln!("note: {waiting} message(s) were waiting in the MESH mailboxes before the run began; they are left where they are, and out of the run");
            }
            poller = Some(pl);
        }
        let files = match &c.folder {
            Some(f) => {
                let known = KnownFiles::in_folder(&f.path)
                    .map_err(|e| format!("could not read the folder {}: {e}", f.path.display()))?;
                if !known.is_empty() {
                    eprintln!(
                        "note: {} file(s) were in the folder {} before the run began; they are left out of the run",
                        known.len(),
                        f.path.display()
                    );
                }
                known
            }
            None => KnownFiles::default(),
        };
        Ok(RunState { poller, files })
    }
}

impl Captures {
    /// `gp` answers for the practices with ITK3 acknowledgements, as in a simulator run:
    /// lettergate's MESH endpoint stands in for the practices' mailboxes.
    async fn start(
        t: &Target,
        dir: &std::path::Path,
        gp: Option<GpReceiver>,
        run: &RunState,
    ) -> Result<Captures, String> {
        let c = &t.raw.capture;
        let failed = |e: &dyn std::error::Error| format!("could not capture: {}", chain(e));
        let mut mesh = None;
        if let Some(m) = &c.mesh_endpoint {
            let key = secret(&m.shared_key_env, "the MESH shared key")?;
            let mut mailboxes = BTreeMap::new();
            for (id, env) in &m.mailboxes {
                mailboxes.insert(id.clone(), secret(env, &format!("{id}'s password"))?);
            }
            let (canary_box, canary_pw) = mailboxes
                .iter()
                .next()
                .map(|(k, v)| (k.clone(), v.clone()))
                .ok_or("capture.mesh_endpoint.mailboxes is empty")?;
            let server = CaptureServer::start(
                CaptureConfig {
                    listen: m.listen.0,
                    shared_key: key.clone(),
                    monitored: mailboxes.keys().cloned().collect(),
                    mailboxes,
                    dir: dir.to_path_buf(),
                    gp,
                },
                Clock::System,
            )
            .await
            .map_err(|e| failed(&e))?;
            let canary = MeshConfig {
                base_url: server.url(),
                mailbox: canary_box,
                password: canary_pw,
                shared_key: key,
            };
            mesh = Some((server, canary));
        }
        let mut http = None;
        if let Some(h) = &c.http_endpoint {
            // No mailboxes: MESH requests are refused, everything else is an HTTP letter.
            let server = CaptureServer::start(
                CaptureConfig {
                    listen: h.listen.0,
                    shared_key: String::new(),
                    mailboxes: BTreeMap::new(),
                    dir: dir.join("http"),
                    monitored: Default::default(),
                    gp: None,
                },
                Clock::System,
            )
            .await
            .map_err(|e| failed(&e))?;
            http = Some(server);
        }
        let mut sink = None;
        let shared_sink = match (&mesh, &http) {
            (Some((s, _)), _) => s.sink(),
            (None, Some(s)) => s.sink(),
            (None, None) => {
                let log = CaptureLog::create(dir).map_err(|e| failed(&e))?;
                let s = Arc::new(LogSink::new(log));
                sink = Some(s.clone());
                s
            }
        };
        let mllp = match &c.mllp {
            Some(m) => Some(
                MllpCapture::start(m.listen.0, shared_sink.clone(), Clock::System)
                    .await
                    .map_err(|e| failed(&e))?,
            ),
            None => None,
        };
        let folder = match &c.folder {
            Some(f) => Some((
                FolderCapture::start_knowing(
                    f.path.clone(),
                    Duration::from_secs(f.poll_interval.0 .0.max(1) as u64),
                    shared_sink.clone(),
                    Clock::System,
                    run.files.clone(),
                )
                .map_err(|e| failed(&e))?,
                f.path.clone(),
            )),
            None => None,
        };
        let poll = match &run.poller {
            Some(_) => Some(CaptureLog::create(&dir.join("mesh-poll")).map_err(|e| failed(&e))?),
            None => None,
        };
        Ok(Captures {
            mesh,
            http,
            sink,
            shared: shared_sink,
            mllp,
            folder,
            poll,
            polls_ok: 0,
        })
    }

    /// Polls the MESH server, if there is one to poll. A failed poll is a harness failure:
    /// letters lettergate cannot see are not letters that were not sent.
    async fn poll(&mut self, run: &mut RunState) -> Result<(), String> {
        if let (Some(poller), Some(log)) = (&mut run.poller, &mut self.poll) {
            poller
                .poll_once(log, &Clock::System)
                .await
                .map_err(|e| format!("could not capture from MESH: {}", chain(&e)))?;
            self.polls_ok += 1;
        }
        Ok(())
    }

    fn captured(&self) -> usize {
        let endpoint = |s: &CaptureServer| s.captured();
        self.mesh.as_ref().map_or(0, |(s, _)| endpoint(s))
            + self.http.as_ref().map_or(0, endpoint)
            + self
                .sink
                .as_ref()
                .and_then(|s| s.with_log(|l| l.letters.len()))
                .unwrap_or(0)
            + self.poll.as_ref().map_or(0, |l| l.letters.len())
    }

    /// Stops every capture and returns what it captured, after proving each was alive: every
    /// capture lettergate runs (MESH endpoint, HTTP endpoint, MLLP listener, folder watcher)
    /// counts a canary sent through it, and the MESH server was polled successfully after the
    /// wait. Without that, "nothing captured" could be a dead capture.
    async fn finish(
        mut self,
        http: &reqwest::Client,
        run: &mut RunState,
    ) -> Result<Vec<CapturedLetter>, String> {
        self.poll(run).await?;
        let failed = |e: &dyn std::error::Error| format!("could not capture: {}", chain(e));
        let dead = |what: &str, why: String| {
            format!(
                "the capture path was not proven alive: {what} did not count its canary ({why})"
            )
        };
        let shared = self.shared.clone();
        let canaries = |sink: &LogSink| sink.with_log(|l| l.canaries).unwrap_or(0);
        if let Some(m) = self.mllp.take() {
            let before = canaries(&shared);
            let sent = crate::protocol::hl7::mllp::send(
                m.addr(),
                &crate::capture::mllp::canary_message(),
                Duration::from_secs(10),
            )
            .await;
            m.finish().await;
            if canaries(&shared) <= before {
                return Err(dead("the MLLP listener", format!("{sent:?}")));
            }
        }
        if let Some((f, dir)) = self.folder.take() {
            let before = canaries(&shared);
            let dropped = crate::capture::folder::drop_canary(&dir);
            run.files = f.finish().await.map_err(|e| failed(&e))?;
            if let Ok(p) = &dropped {
                let _ = std::fs::remove_file(p);
            }
            if canaries(&shared) <= before {
                return Err(dead(
                    &format!("the watched folder {}", dir.display()),
                    match dropped {
                        Ok(p) => format!("{} was dropped", p.display()),
                        Err(e) => format!("it could not be written: {e}"),
                    },
                ));
            }
        }
        let mut logs = Vec::new();
        if let Some((server, canary)) = self.mesh {
            let before = canaries(&server.sink());
            let client = MeshClient::new(http.clone(), canary.clone());
            let msg = OutboundMessage::canary(&canary.mailbox);
            let sent = client.send(&msg).await;
            let counted = canaries(&server.sink()) > before;
            let log = server.finish().await.map_err(|e| failed(&e))?;
            if !matches!(sent, Ok(SendOutcome::Accepted { .. })) || !counted {
                return Err(dead("the MESH endpoint", format!("{sent:?}")));
            }
            logs.push(log);
        }
        if let Some(server) = self.http {
            let before = canaries(&server.sink());
            let sent = http
                .post(format!("{}/lettergate/canary", server.url()))
                .header("mex-WorkflowID", crate::protocol::mesh::CANARY_WORKFLOW)
                .body("canary")
                .send()
                .await
                .map(|r| r.status());
            let counted = canaries(&server.sink()) > before;
            let log = server.finish().await.map_err(|e| failed(&e))?;
            if !counted {
                return Err(dead("the HTTP endpoint", format!("{sent:?}")));
            }
            logs.push(log);
        }
        if let Some(sink) = self.sink {
            logs.push(
                sink.close()
                    .map_err(|e| format!("could not capture: {e}"))?,
            );
        }
        if let (Some(poller), Some(mut log)) = (&run.poller, self.poll) {
            if self.polls_ok == 0 {
                return Err("the capture path was not proven alive: MESH was never polled".into());
            }
            log.flush().map_err(|e| failed(&e))?;
            let unmatched = poller.unmatched_reports().len();
            if unmatched > 0 {
                eprintln!("note: {unmatched} MESH REPORT(s) in the sending mailbox refer to no letter this scenario captured");
            }
            logs.push(log);
        }
        // One numbering over every capture, in the order the letters arrived.
        let mut all = match logs.pop() {
            Some(l) => l,
            None => return Ok(Vec::new()),
        };
        for l in logs {
            all.letters.extend(l.letters);
        }
        all.renumber();
        Ok(all.letters)
    }
}

/// The scenario as run against `t`: its timeline on the times its events were driven
/// (`driven`, in order; an event not yet driven lies in the far future, so nothing answers
/// from an event that has not happened), the target's severity overrides under the
/// scenario's own, and acknowledgements left out where lettergate cannot see them.
pub(crate) fn rebase(t: &Target, s: &Scenario, driven: &[Timestamp]) -> Scenario {
    let mut r = s.clone();
    r.start = driven.first().copied().unwrap_or_else(Timestamp::now);
    r.real_time = true;
    for (i, e) in r.timeline.iter_mut().enumerate() {
        e.at = driven.get(i).copied().unwrap_or(Timestamp(i64::MAX / 4));
    }
    for (kind, severity) in &t.raw.severity {
        r.severity.entry(*kind).or_insert(*severity);
    }
    if t.raw.capture.mesh_endpoint.is_none() {
        // ITK3 acknowledgements are seen only where lettergate is the MESH server; polling
        // a real MESH it does not see the EHR collect them (see `run_target`'s note).
        r.acknowledgements = false;
        for x in &mut r.expect {
            x.acknowledged = false;
            x.business_ack = None;
        }
    }
    r.reindex();
    r
}

/// Drives `s` with `local_ids` and captures its letters: the scenario re-based onto the times
/// its events were driven, those times, and the letters.
async fn drive_and_capture(
    t: &Target,
    s: &Arc<Scenario>,
    config: &RunConfig,
    local_ids: Vec<String>,
    run: &mut RunState,
) -> Result<(Scenario, Vec<Timestamp>, Vec<CapturedLetter>), String> {
    let mut rebased = rebase(t, s, &[]);
    let now_known = Arc::new(RwLock::new(Arc::new(rebased.clone())));
    let gp = {
        let known = now_known.clone();
        GpReceiver(Arc::new(move |mailbox: &str, nhs, at| {
            let s = known.read().map(|s| s.clone());
            let Ok(s) = s else {
                return crate::protocol::itk3::Itk3Response::PatientNotKnown;
            };
            let practice = s.practices.values().find(|p| p.mailbox == mailbox);
            practice.map_or(crate::protocol::itk3::Itk3Response::PatientNotKnown, |p| {
                s.gp_response(&p.key, nhs, at)
            })
        }))
    };
    let mut captures = Captures::start(
        t,
        &config.work_dir.join(&s.id),
        s.acknowledgements.then_some(gp),
        run,
    )
    .await?;
    let mut driver = Driver::new(t, s, local_ids).await?;
    let mut driven = Vec::new();
    for i in 0..s.timeline.len() {
        let at = Timestamp::now();
        driven.push(at);
        rebased = rebase(t, s, &driven);
        if let Ok(mut k) = now_known.write() {
            *k = Arc::new(rebased.clone());
        }
        driver.event(i, at).await?;
    }
    let expected: usize = s.expect.iter().map(|x| x.count as usize).sum();
    let w = &t.raw.wait;
    let secs = |sp: Span| Duration::from_secs(sp.0.max(0) as u64);
    let (max, interval, settle) = (secs(w.max.0), secs(w.poll_interval.0), secs(w.settle.0));
    let started = Instant::now();
    let (mut last_count, mut last_change) = (captures.captured(), Instant::now());
    while started.elapsed() < max {
        tokio::time::sleep(interval.min(settle).max(Duration::from_millis(100))).await;
        captures.poll(run).await?;
        let n = captures.captured();
        if n != last_count {
            (last_count, last_change) = (n, Instant::now());
        }
        if n >= expected && last_change.elapsed() >= settle {
            break;
        }
    }
    let letters = captures.finish(&driver.http, run).await?;
    Ok((rebased, driven, letters))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::letter::Transport;
    use crate::targets::matching::tests::{letter, mesh};

    /// What came while the second of two scenarios about alice ran: its own letter, a late
    /// one of the first (said, not counted), and one with no local id (counted, and said).
    #[test]
    fn a_late_letter_of_an_earlier_scenario_is_said_and_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        std::fs::write(&file, "name: t\nnon_production: true\ndrive:\n  fhir: {base_url: http://127.0.0.1:1/fhir}\ncapture:\n  http_endpoint: {listen: 127.0.0.1:0}\nmatch: local_id\n").unwrap();
        let t = crate::targets::load(&file).unwrap();
        let scenarios = crate::scenario::load_all(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/outpatient/clinic_letter.yaml"
        ))])
        .unwrap()
        .0;
        let s = &scenarios[0];
        let ran = |id: &str, at: i64| Driven {
            id: id.into(),
            local_ids: crate::targets::matching::local_ids(3),
            patients: event_patients(s),
            driven_at: vec![Timestamp(at)],
        };
        let history = [ran("first", 100), ran("second", 200)];
        let letters = vec![
            letter(
                dir.path(),
                Transport::Mesh,
                &mesh(Some(&history[1].local_ids[0])),
                Timestamp(210),
            ),
            letter(
                dir.path(),
                Transport::Mesh,
                &mesh(Some(&history[0].local_ids[2])),
                Timestamp(220),
            ),
            letter(dir.path(), Transport::Mesh, &mesh(None), Timestamp(230)),
        ];
        let (mine, said) = sort_out(&t, s, letters, &history);
        assert_eq!(mine.len(), 2);
        assert_eq!(mine.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2]);
        let said: Vec<String> = said
            .iter()
            .map(|f| f.describe(crate::protocol::ids::Identifiers::Masked))
            .collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].starts_with("unmatched letter: clinic letter for alice")
                && said[0]
                    .contains("belongs to scenario first, which was checked before it arrived"),
            "{said:?}"
        );
        assert!(
            said[1].starts_with("unmatched letter #2: clinic letter for alice")
                && said[1].contains("match: local_id could not tie it"),
            "{said:?}"
        );

        // By NHS number the same letters all belong to the scenario running: nothing said.
        let by_nhs = Target {
            raw: crate::targets::file::RawTarget {
                match_by: crate::targets::file::MatchBy::NhsNumber,
                ..t.raw.clone()
            },
            ..t.clone()
        };
        let letters = vec![letter(
            dir.path(),
            Transport::Mesh,
            &mesh(Some(&history[0].local_ids[2])),
            Timestamp(220),
        )];
        let (mine, said) = sort_out(&by_nhs, s, letters, &history);
        assert_eq!((mine.len(), said.len()), (1, 0));
    }

    #[test]
    fn fills_placeholders_and_leaves_the_rest() {
        let v = BTreeMap::from([("nhs_number", "9990000018".to_string())]);
        assert_eq!(
            fill("/p/{{nhs_number}}?x={{ nhs_number }}", &v),
            "/p/9990000018?x=9990000018"
        );
        assert_eq!(fill("no {{ end", &v), "no {{ end");
        assert_eq!(fill("{\"a\": 1}", &v), "{\"a\": 1}");
    }
}
