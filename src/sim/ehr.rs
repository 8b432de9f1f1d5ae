//! [`Simulator`]: the simulated EHR's state, its letter rules, outbound queue and dispatcher.

use super::itk3::{self, LetterDoc};
use super::profile::SimConfig;
use crate::clock::{Clock, Timestamp};
use crate::ids::{NhsNumber, OdsCode};
use crate::letter::{EventKind, LetterKind};
use crate::mesh::client::{MeshClient, MeshConfig, OutboundMessage, SendOutcome, TransportError};
use crate::mesh::CANARY_WORKFLOW;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A patient as the simulated EHR (and its PDS) holds them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatientRecord {
    pub nhs_number: NhsNumber,
    pub name: String,
    pub born: String,
    /// The registered practice; `None` for no registered GP.
    pub practice: Option<OdsCode>,
    #[serde(default)]
    pub named_gp: Option<String>,
}

/// A practice in the MESH directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PracticeRecord {
    pub ods: OdsCode,
    pub name: String,
    pub mailbox: String,
    /// The workflow ids the mailbox is registered for; all Transfer of Care workflows unless
    /// given.
    #[serde(default = "all_workflows")]
    pub workflows: Vec<String>,
}

/// Every MESH workflow id a letter kind is sent with.
pub fn all_workflows() -> Vec<String> {
    let mut w: Vec<String> = LetterKind::ALL
        .iter()
        .filter_map(|k| k.workflow_id())
        .map(str::to_string)
        .collect();
    w.dedup();
    w
}

/// Like MESH endpoint lookup: (practice ODS code, workflow id) -> mailbox.
#[derive(Default, Clone, Debug)]
struct Directory {
    names: BTreeMap<OdsCode, String>,
    routes: BTreeMap<(OdsCode, String), String>,
}

impl Directory {
    fn add(&mut self, p: PracticeRecord) {
        for w in &p.workflows {
            self.routes
                .insert((p.ods.clone(), w.clone()), p.mailbox.clone());
        }
        self.names.insert(p.ods, p.name);
    }

    fn lookup(&self, ods: &OdsCode, workflow: &str) -> Option<&String> {
        self.routes.get(&(ods.clone(), workflow.to_string()))
    }
}

/// A clinical event as the simulator takes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimEvent {
    pub at: Timestamp,
    pub event: EventKind,
    pub nhs_number: NhsNumber,
    /// For `gp_change`: the new practice.
    #[serde(default)]
    pub to: Option<OdsCode>,
}

/// What the EHR believes happened to a letter.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SentRecord {
    pub local_id: String,
    pub kind: LetterKind,
    pub nhs_number: NhsNumber,
    pub at: Timestamp,
    /// `sent`, `rejected (417 ...)`, `not sent: ...`.
    pub outcome: String,
    pub message_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown patient ending {0}: register the patient first")]
    UnknownPatient(String),
    #[error("event at {at} is before the simulator's clock ({now})")]
    InThePast { at: Timestamp, now: Timestamp },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the MESH handshake was refused with status {0}")]
    Handshake(u16),
}

/// Where the simulator sends letters.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub mesh: MeshConfig,
    /// Base URL of the hybrid-mail print service.
    pub print_url: String,
}

#[derive(Clone, Debug)]
struct Queued {
    local_id: String,
    kind: LetterKind,
    nhs_number: NhsNumber,
    event_at: Timestamp,
    ready_at: Timestamp,
}

#[derive(Default, Clone, Debug)]
struct Chart {
    unsigned_attendances: VecDeque<Timestamp>,
    admitted_at: Option<Timestamp>,
    emergency_at: Option<Timestamp>,
    deceased: bool,
}

pub struct Simulator {
    config: SimConfig,
    clock: Clock,
    mesh: MeshClient,
    http: reqwest::Client,
    print_url: String,
    pds: BTreeMap<NhsNumber, PatientRecord>,
    directory: Directory,
    charts: BTreeMap<NhsNumber, Chart>,
    queue: VecDeque<Queued>,
    sent: Vec<SentRecord>,
    next_id: u64,
}

impl Simulator {
    pub fn new(config: SimConfig, clock: Clock, out: Outbound, http: reqwest::Client) -> Simulator {
        Simulator {
            config,
            clock,
            mesh: MeshClient::new(http.clone(), out.mesh),
            http,
            print_url: out.print_url,
            pds: BTreeMap::new(),
            directory: Directory::default(),
            charts: BTreeMap::new(),
            queue: VecDeque::new(),
            sent: Vec::new(),
            next_id: 1,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Says hello to MESH, as a real client does before its first send.
    pub async fn handshake(&self) -> Result<(), SimError> {
        match self.mesh.handshake().await? {
            200 => Ok(()),
            status => Err(SimError::Handshake(status)),
        }
    }

    pub fn register_patient(&mut self, p: PatientRecord) {
        self.charts.entry(p.nhs_number).or_default();
        self.pds.insert(p.nhs_number, p);
    }

    pub fn register_practice(&mut self, p: PracticeRecord) {
        self.directory.add(p);
    }

    /// The letters the EHR believes it sent or tried to send.
    pub fn sent(&self) -> &[SentRecord] {
        &self.sent
    }

    /// Moves the clock to the event's time (sending what falls due), then applies the event.
    pub async fn apply(&mut self, e: SimEvent) -> Result<(), SimError> {
        if e.at < self.now() {
            return Err(SimError::InThePast {
                at: e.at,
                now: self.now(),
            });
        }
        self.advance_to(e.at).await?;
        if !self.pds.contains_key(&e.nhs_number) {
            return Err(SimError::UnknownPatient(e.nhs_number.masked()));
        }
        let chart = self.charts.entry(e.nhs_number).or_default();
        // The time the letter reports on, when this event finalises one.
        let mut reported_at = Some(e.at);
        match e.event {
            EventKind::OutpatientAttendance => {
                chart.unsigned_attendances.push_back(e.at);
                reported_at = None;
            }
            EventKind::LetterSigned => reported_at = chart.unsigned_attendances.pop_front(),
            EventKind::Admission => {
                chart.admitted_at = Some(e.at);
                reported_at = None;
            }
            EventKind::Discharge => chart.admitted_at = None,
            EventKind::EmergencyAttendance => {
                chart.emergency_at = Some(e.at);
                reported_at = None;
            }
            EventKind::EmergencyDischarge => chart.emergency_at = None,
            EventKind::Death => {
                chart.deceased = true;
                chart.admitted_at = None;
            }
            EventKind::GpChange => {
                if let Some(p) = self.pds.get_mut(&e.nhs_number) {
                    p.practice = e.to.clone();
                }
                reported_at = None;
            }
            EventKind::LetterDrafted => reported_at = None,
        }
        let Some(event_at) = reported_at else {
            return Ok(());
        };
        let kinds: Vec<LetterKind> = self.config.letters_for(e.event).collect();
        for kind in kinds {
            let local_id = format!("SIM-{:06}", self.next_id);
            self.next_id += 1;
            self.queue.push_back(Queued {
                local_id,
                kind,
                nhs_number: e.nhs_number,
                event_at,
                ready_at: e.at,
            });
        }
        Ok(())
    }

    /// Runs the dispatcher at each of its ticks up to `t`, then sets the clock to `t`.
    pub async fn advance_to(&mut self, t: Timestamp) -> Result<(), SimError> {
        let step = self.config.dispatch_interval.0.max(1);
        while let Some(first) = self.queue.iter().map(|q| q.ready_at).min() {
            let from = first.0.max(self.now().0);
            let tick = Timestamp(from + (step - from.rem_euclid(step)) % step);
            if tick > t {
                break;
            }
            self.clock.advance_to(tick);
            let (due, later): (Vec<_>, Vec<_>) =
                self.queue.drain(..).partition(|q| q.ready_at <= tick);
            self.queue = later.into();
            for q in due {
                self.dispatch(q).await?;
            }
        }
        self.clock.advance_to(t);
        Ok(())
    }

    async fn dispatch(&mut self, q: Queued) -> Result<(), SimError> {
        let now = self.now();
        let Some(patient) = self.pds.get(&q.nhs_number).cloned() else {
            return Ok(());
        };
        let deceased = self.charts.get(&q.nhs_number).is_some_and(|c| c.deceased);
        let mut record = SentRecord {
            local_id: q.local_id.clone(),
            kind: q.kind,
            nhs_number: q.nhs_number,
            at: now,
            outcome: String::new(),
            message_id: None,
        };
        let mut doc = LetterDoc {
            kind: q.kind,
            local_id: q.local_id.clone(),
            nhs_number: q.nhs_number,
            patient_name: patient.name.clone(),
            born: patient.born.clone(),
            practice: None,
            trust_ods: self.config.trust_ods.clone(),
            trust_name: self.config.trust_name.clone(),
            sender_mailbox: self.mesh.config().mailbox.clone(),
            event_at: q.event_at,
            sent_at: now,
            sections: itk3::default_sections(q.kind),
        };
        if !q.kind.goes_to_practice() {
            if deceased {
                record.outcome = "not sent: the patient has died".into();
            } else {
                let url = format!("{}/print/v1/letters", self.print_url.trim_end_matches('/'));
                let resp = self
                    .http
                    .post(&url)
                    .json(&itk3::print_request(&doc))
                    .send()
                    .await
                    .map_err(|source| TransportError { url, source })?;
                record.outcome = if resp.status().is_success() {
                    "sent".into()
                } else {
                    format!("rejected ({})", resp.status())
                };
            }
            self.sent.push(record);
            return Ok(());
        }
        // Resolve the recipient now, from the patient index, as the EHR does at send time.
        let workflow = q.kind.workflow_id().unwrap_or_default().to_string();
        let route = patient
            .practice
            .as_ref()
            .filter(|p| !p.is_pseudo())
            .and_then(|ods| Some((ods, self.directory.lookup(ods, &workflow)?)));
        let Some((ods, mailbox)) = route else {
            record.outcome = format!(
                "not sent: no registered GP practice with a MESH route for {workflow} (exceptions list)"
            );
            self.sent.push(record);
            return Ok(());
        };
        let name = self.directory.names.get(ods).cloned().unwrap_or_default();
        doc.practice = Some((ods.to_string(), name));
        let mailbox = mailbox.clone();
        let body = serde_json::to_vec(&itk3::message_bundle(&doc)).unwrap_or_default();
        let msg = OutboundMessage {
            to: mailbox,
            workflow_id: workflow,
            subject: Some(format!("{} {}", q.kind.words(), q.local_id)),
            local_id: Some(q.local_id.clone()),
            file_name: Some(format!("{}.json", q.local_id)),
            content_type: "application/fhir+json".into(),
            body,
        };
        match self.mesh.send(&msg).await? {
            SendOutcome::Accepted { message_id } => {
                record.outcome = "sent".into();
                record.message_id = Some(message_id);
            }
            SendOutcome::Rejected { status, body } => {
                record.outcome = format!("rejected ({status}): {body}")
            }
        }
        self.sent.push(record);
        Ok(())
    }

    /// Sends a liveness message to its own mailbox over the same MESH route as letters,
    /// so a run can prove its capture path was alive even when no letter was due.
    pub async fn send_canary(&self) -> Result<SendOutcome, SimError> {
        let msg = OutboundMessage {
            to: self.mesh.config().mailbox.clone(),
            workflow_id: CANARY_WORKFLOW.into(),
            subject: Some("lettergate canary".into()),
            local_id: Some("CANARY".into()),
            file_name: None,
            content_type: "text/plain".into(),
            body: b"canary".to_vec(),
        };
        Ok(self.mesh.send(&msg).await?)
    }
}
