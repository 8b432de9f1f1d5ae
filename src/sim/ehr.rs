//! [`Simulator`]: the simulated EHR's state, its letter rules, outbound queue and dispatcher.
//!
//! Every fault knob of [`super::profile::Faults`] is read in exactly one place here, marked
//! `fault:`, so a reader can see what each profile changes.

use super::profile::SimConfig;
use crate::protocol::clock::{Clock, Span, Timestamp};
use crate::protocol::ids::{NhsNumber, OdsCode};
use crate::protocol::itk3::{self, LetterDoc, PaperRecipient};
use crate::protocol::letter::{EventKind, LetterKind, Signs, Transport};
use crate::protocol::mesh::client::{
    MeshClient, MeshConfig, MeshError, OutboundMessage, SendOutcome, TransportError,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How long the simulator waits for an MLLP ACK before it counts the send as failed.
const MLLP_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::protocol::event::{PatientRecord, SimEvent};

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
    /// Closed with no successor: letters cannot be delivered electronically.
    #[serde(default)]
    pub closed: bool,
    /// Merged into this practice: its letters go to that practice's mailbox.
    #[serde(default)]
    pub merged_into: Option<OdsCode>,
    /// `mesh`, `http` for a practice reached over an HTTP document route, `mllp` for one that
    /// takes HL7 v2 MDM^T02 messages, `folder` for one whose letters are dropped in a folder.
    #[serde(default = "mesh")]
    pub route: Transport,
}

fn mesh() -> Transport {
    Transport::Mesh
}

/// Every MESH workflow id a letter kind is sent with.
pub fn all_workflows() -> Vec<String> {
    let mut w: Vec<String> = LetterKind::SIMULATED
        .iter()
        .filter_map(|k| k.workflow_id())
        .map(str::to_string)
        .collect();
    w.dedup();
    w
}

/// What the EHR believes happened to a letter.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SentRecord {
    pub local_id: String,
    pub kind: LetterKind,
    pub nhs_number: NhsNumber,
    pub at: Timestamp,
    /// Shown and served as `sent`, `rejected (417 ...)`, `not sent: ...`.
    pub outcome: LetterOutcome,
    pub message_id: Option<String>,
    /// ITK3 acknowledgement codes collected from the inbox for this letter.
    pub acks: Vec<itk3::Itk3Response>,
    /// MESH REPORTs collected for this letter, as `code: description`.
    pub reports: Vec<String>,
    #[serde(skip)]
    bundle_id: Option<String>,
}

impl SentRecord {
    fn of(q: &Queued, at: Timestamp, outcome: LetterOutcome) -> SentRecord {
        SentRecord {
            local_id: q.local_id.clone(),
            kind: q.kind,
            nhs_number: q.nhs_number,
            at,
            outcome,
            message_id: None,
            acks: vec![],
            reports: vec![],
            bundle_id: None,
        }
    }
}

/// What the EHR believes became of a letter. It is shown, and served by the simulator's API,
/// as one line (`sent`, `rejected (417): ...`, `not sent: ...`), the form the EHR's own log
/// would take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LetterOutcome {
    /// `sent`: the receiver took it, or the EHR believes so.
    Sent,
    /// `rejected ({answer})`, then `: {detail}` when the receiver said more: a MESH status and
    /// body, an MLLP ACK code and text, an HTTP status.
    Rejected {
        answer: String,
        detail: Option<String>,
    },
    /// `not sent: {0}`: the EHR never tried, or could not reach the receiver.
    NotSent(String),
    /// `not sent electronically: the named GP has left; paper copy {0}`: posted instead, with
    /// how the print service answered.
    PaperCopyInstead(Box<LetterOutcome>),
}

impl fmt::Display for LetterOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LetterOutcome::Sent => f.write_str("sent"),
            LetterOutcome::Rejected {
                answer,
                detail: None,
            } => write!(f, "rejected ({answer})"),
            LetterOutcome::Rejected {
                answer,
                detail: Some(detail),
            } => write!(f, "rejected ({answer}): {detail}"),
            LetterOutcome::NotSent(why) => write!(f, "not sent: {why}"),
            LetterOutcome::PaperCopyInstead(paper) => write!(
                f,
                "not sent electronically: the named GP has left; paper copy {paper}"
            ),
        }
    }
}

impl Serialize for LetterOutcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Lets a test compare an outcome with the line it is shown as.
impl PartialEq<&str> for LetterOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.to_string().as_str() == *other
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("unknown patient ending {0}: register the patient first")]
    UnknownPatient(String),
    #[error("event at {at} is before the simulator's clock ({now})")]
    InThePast { at: Timestamp, now: Timestamp },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("the MESH handshake was refused with status {0}")]
    Handshake(u16),
}

/// Where the simulator sends letters.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub mesh: MeshConfig,
    /// Base URL of the hybrid-mail print service.
    pub print_url: String,
    /// Base URL of the HTTP document route (Docman-like) some practices use.
    pub docman_url: String,
    /// The MLLP receiver practices with `route: mllp` get their letters at, as MDM^T02.
    pub mllp: Option<SocketAddr>,
    /// The folder practices with `route: folder` get their letters dropped in.
    pub folder: Option<PathBuf>,
}

#[derive(Clone, Debug)]
struct Attendance {
    /// When the attendance happened clinically.
    at: Timestamp,
    second_signer: bool,
    /// The registration the EHR held when the patient attended.
    practice_then: Option<OdsCode>,
    visit_id: Option<String>,
}

#[derive(Clone, Debug)]
struct Queued {
    local_id: String,
    /// The visit the letter reports on, as the sender of the events named it.
    visit_id: Option<String>,
    kind: LetterKind,
    nhs_number: NhsNumber,
    /// When the event it reports on happened clinically.
    event_at: Timestamp,
    /// When it is ready to go, on the EHR's clock.
    ready_at: Timestamp,
    /// The date it carries: when it was finalised clinically (plus any delay).
    written_at: Timestamp,
    practice_then: Option<OdsCode>,
}

#[derive(Default, Clone, Debug)]
struct Chart {
    unsigned: VecDeque<Attendance>,
    awaiting_second_signer: VecDeque<Attendance>,
    deceased: bool,
    named_gp_left: bool,
    /// The id of the patient's latest admission or attendance, for letters about events
    /// that come without one (a death told as an update of the patient).
    visit_id: Option<String>,
    /// A discharge summary drafted before its discharge: the discharge then holds it.
    summary_drafted: bool,
    /// Discharges whose summaries wait for a signature: the discharge and what it reports.
    held_summaries: VecDeque<(EventKind, Reported)>,
}

/// The first of a chart's waiting items, and the queue's room given back once it is empty:
/// most patients have one letter waiting at a time, and a month's 125,000 charts kept 20 MB
/// of room for none.
fn pop_front<T>(q: &mut VecDeque<T>) -> Option<T> {
    let first = q.pop_front();
    if q.is_empty() {
        *q = VecDeque::new();
    }
    first
}

/// What a letter reports on: when the clinical event was, the registration the EHR held then,
/// and the visit's id.
#[derive(Clone, Debug)]
struct Reported {
    event_at: Timestamp,
    practice_then: Option<OdsCode>,
    visit_id: Option<String>,
}

/// The practice letters for a patient go to, after following merges.
struct Route {
    ods: OdsCode,
    name: String,
    mailbox: String,
    transport: Transport,
}

/// How many letters of one batch are on the wire at once (over one connection each, from
/// the pool of [`sending_client`]).
pub const IN_FLIGHT: usize = 8;

/// The HTTP client the simulator sends with, over MESH and HTTP routes alike: no proxy (its
/// endpoints are on loopback or named by the run) and 30 s per request. `lettergate bench`'s
/// loopback reference sends with the same client, so the two figures compare like with like.
pub fn sending_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
}

/// A letter ready to go, and how.
enum Delivery {
    Mesh {
        msg: OutboundMessage,
        attempts: u32,
    },
    /// A JSON POST (print service, document route); with `paper_copy`, a paper copy posted
    /// because the letter was not sent electronically.
    Http {
        url: String,
        body: Vec<u8>,
        paper_copy: bool,
    },
    /// An MDM^T02 over MLLP; only an `AA`/`CA` ACK makes it sent.
    Mllp {
        addr: SocketAddr,
        message: String,
    },
    /// A file written as `<name>.tmp`, stamped with the send time, then renamed to `<name>`.
    Folder {
        dir: PathBuf,
        name: String,
        body: Vec<u8>,
        at: Timestamp,
    },
}

/// What becomes of a letter once it is prepared: it goes over the network, or its outcome is
/// already settled (a fault skipped it, it could not be routed).
enum Step {
    Deliver(Delivery),
    Settled(LetterOutcome),
}

/// What the network said.
struct Delivered {
    outcome: LetterOutcome,
    message_ids: Vec<String>,
}

impl Delivered {
    fn one(outcome: LetterOutcome) -> Delivered {
        Delivered {
            outcome,
            message_ids: vec![],
        }
    }
}

impl Delivery {
    /// A JSON POST to `path` below the service at `base`.
    fn post(base: &str, path: &str, body: Vec<u8>, paper_copy: bool) -> Delivery {
        let url = format!("{}{path}", base.trim_end_matches('/'));
        Delivery::Http {
            url,
            body,
            paper_copy,
        }
    }

    async fn deliver(
        self,
        mesh: &MeshClient,
        http: &reqwest::Client,
    ) -> Result<Delivered, SimError> {
        match self {
            Delivery::Mesh { msg, attempts } => deliver_mesh(mesh, &msg, attempts).await,
            Delivery::Http {
                url,
                body,
                paper_copy,
            } => deliver_http(http, &url, body, paper_copy).await,
            Delivery::Mllp { addr, message } => {
                let outcome =
                    match crate::protocol::hl7::mllp::send(addr, &message, MLLP_TIMEOUT).await {
                        Ok(_) => LetterOutcome::Sent,
                        Err(crate::protocol::hl7::Hl7Error::Rejected { code, text }) => {
                            LetterOutcome::Rejected {
                                answer: code,
                                detail: Some(text),
                            }
                        }
                        Err(e) => LetterOutcome::NotSent(crate::protocol::chain(&e)),
                    };
                Ok(Delivered::one(outcome))
            }
            Delivery::Folder {
                dir,
                name,
                body,
                at,
            } => {
                let outcome = match drop_file(&dir, &name, &body, at) {
                    Ok(()) => LetterOutcome::Sent,
                    Err(e) => LetterOutcome::NotSent(format!("could not write {name}: {e}")),
                };
                Ok(Delivered::one(outcome))
            }
        }
    }
}

/// Posts a letter as JSON; any 2xx status is sent.
async fn deliver_http(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    paper_copy: bool,
) -> Result<Delivered, SimError> {
    let resp = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|source| TransportError {
            url: url.to_string(),
            source,
        })?;
    let outcome = if resp.status().is_success() {
        LetterOutcome::Sent
    } else {
        LetterOutcome::Rejected {
            answer: resp.status().to_string(),
            detail: None,
        }
    };
    Ok(Delivered::one(match paper_copy {
        true => LetterOutcome::PaperCopyInstead(Box::new(outcome)),
        false => outcome,
    }))
}

/// Sends over MESH `attempts` times (more than once only under `duplicate_sends`); the last
/// answer is the outcome, and every accepted message id is kept.
async fn deliver_mesh(
    mesh: &MeshClient,
    msg: &OutboundMessage,
    attempts: u32,
) -> Result<Delivered, SimError> {
    let mut d = Delivered::one(LetterOutcome::NotSent("no attempt was made".into()));
    for _ in 0..attempts {
        match mesh.send(msg).await? {
            SendOutcome::Accepted { message_id } => {
                d.outcome = LetterOutcome::Sent;
                d.message_ids.push(message_id);
            }
            SendOutcome::Rejected { status, body } => {
                d.outcome = LetterOutcome::Rejected {
                    answer: status.to_string(),
                    detail: Some(body),
                }
            }
        }
    }
    Ok(d)
}

/// Writes a file so a watcher never sees it half written: `<name>.tmp` first, its mtime set to
/// the simulator's clock (the time the letter was sent, on the scenario's clock), then renamed.
/// The temporary name is the drop-folder convention watchers know (so it is not random), but
/// it is created exclusively: a file or link planted there fails the write instead of being
/// written through, and a failed write removes what it created.
fn drop_file(dir: &Path, name: &str, body: &[u8], at: Timestamp) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(at.0.max(0) as u64);
    let written = f
        .write_all(body)
        .and_then(|_| f.sync_all())
        .and_then(|_| f.set_modified(mtime));
    drop(f);
    let result = written.and_then(|_| std::fs::rename(&tmp, dir.join(name)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `t` is on a working day in England: not a Saturday, Sunday or bank holiday.
fn is_working_day(t: Timestamp) -> bool {
    use crate::protocol::calendar::{bank_holidays, uk_day};
    use time::Weekday;
    let day = uk_day(t);
    !matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) && !bank_holidays().contains(day)
}

/// Whether `t` is in the hour before the clocks go forward in March (00:00 to 01:00 GMT): a
/// dispatcher that plans its runs on the clock in England puts those letters in the slots of
/// the hour that does not exist (01:00 to 02:00), which never run.
fn falls_in_missing_hour(t: Timestamp) -> bool {
    let forward = Timestamp(t.0 + 3600);
    crate::protocol::calendar::uk_offset(t) == 0
        && crate::protocol::calendar::uk_offset(forward) == 3600
}

/// Where the print service and the HTTP document route take letters.
const PRINT_PATH: &str = "/print/v1/letters";
const DOCMAN_PATH: &str = "/docman/v1/documents";

fn not_sent(why: &str) -> LetterOutcome {
    LetterOutcome::NotSent(why.to_string())
}

/// Why a practice letter has no practice to go to; the EHR puts it on its exceptions list.
#[derive(Debug, thiserror::Error)]
enum Unroutable {
    #[error("no registered GP practice")]
    NoPractice,
    #[error("practice {0} is not in the directory")]
    NotInDirectory(OdsCode),
    #[error("practice {0} is closed")]
    Closed(OdsCode),
}

pub struct Simulator {
    config: SimConfig,
    clock: Clock,
    mesh: MeshClient,
    http: reqwest::Client,
    out: Outbound,
    pds: BTreeMap<NhsNumber, PatientRecord>,
    directory: BTreeMap<OdsCode, PracticeRecord>,
    charts: BTreeMap<NhsNumber, Chart>,
    queue: VecDeque<Queued>,
    sent: Vec<SentRecord>,
    next_id: u64,
    /// Eight random characters new for every simulator, in each letter's local id
    /// (`SIM-<run>-000001`), so that no two runs or scenarios send a letter with one id: a
    /// letter carrying an id seen before is a replayed one (issue 13).
    run_token: String,
    stall_until: Option<Timestamp>,
    written_per_kind: BTreeMap<LetterKind, u32>,
    last_poll: Option<Timestamp>,
    /// Positions in `sent` by ITK3 bundle id and MESH message id, to match what comes back.
    by_bundle: HashMap<String, usize>,
    by_message: HashMap<String, usize>,
}

/// Eight characters of the alphabet lettergate's own local ids use, new every call.
fn run_token() -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uuid::Uuid::new_v4().as_bytes()[..8]
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect()
}

impl Simulator {
    pub fn new(config: SimConfig, clock: Clock, out: Outbound, http: reqwest::Client) -> Simulator {
        Simulator {
            config,
            clock,
            mesh: MeshClient::new(http.clone(), out.mesh.clone()),
            http,
            out,
            pds: BTreeMap::new(),
            directory: BTreeMap::new(),
            charts: BTreeMap::new(),
            queue: VecDeque::new(),
            sent: Vec::new(),
            next_id: 1,
            run_token: run_token(),
            stall_until: None,
            written_per_kind: BTreeMap::new(),
            last_poll: None,
            by_bundle: HashMap::new(),
            by_message: HashMap::new(),
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

    /// Registers many patients, as [`Simulator::register_patient`] one after the other does.
    /// Into an empty index they are built in one go, which packs the index's nodes full
    /// (inserted one by one in order, each node stays about half empty: 30 MB at a month's
    /// 125,000 patients).
    pub fn register_patients(&mut self, patients: impl IntoIterator<Item = PatientRecord>) {
        if !(self.pds.is_empty() && self.charts.is_empty()) {
            patients.into_iter().for_each(|p| self.register_patient(p));
            return;
        }
        // Of two records with one NHS number the last is kept, as inserting does.
        self.pds = patients.into_iter().map(|p| (p.nhs_number, p)).collect();
        self.charts = self.pds.keys().map(|k| (*k, Chart::default())).collect();
    }

    pub fn register_practice(&mut self, p: PracticeRecord) {
        self.directory.insert(p.ods.clone(), p);
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
        let Some((finalised, reported)) = self.record_event(&e)? else {
            return Ok(());
        };
        // The letter is dated when it was finalised clinically, however late the EHR is told.
        let written = e.clinical_at.unwrap_or(e.at);
        // A countersigned letter is final exactly as a signed one is; a signed discharge
        // summary sends the letters of its discharge.
        let rule_event = match finalised {
            EventKind::LetterCountersigned => EventKind::LetterSigned,
            other => other,
        };
        let kinds: Vec<LetterKind> = self.config.letters_for(rule_event).collect();
        for kind in kinds {
            self.queue_letter(kind, e.nhs_number, (e.at, written), reported.clone());
        }
        Ok(())
    }

    /// Writes the event into the patient's chart and the patient index; the event whose
    /// letters it finalises (itself, or the discharge whose summary it signs) and what they
    /// report on, or `None` when it finalises none (an attendance waits for its letter to be
    /// signed, a letter for its second signer, a drafted discharge summary for its signature).
    fn record_event(&mut self, e: &SimEvent) -> Result<Option<(EventKind, Reported)>, SimError> {
        let countersign_lost = self.config.faults.countersign_lost;
        let clinical = e.clinical_at.unwrap_or(e.at);
        let Some(patient) = self.pds.get_mut(&e.nhs_number) else {
            return Err(SimError::UnknownPatient(e.nhs_number.masked()));
        };
        let practice_now = patient.practice.clone();
        let chart = self.charts.entry(e.nhs_number).or_default();
        if matches!(
            e.event,
            EventKind::OutpatientAttendance | EventKind::Admission | EventKind::EmergencyAttendance
        ) && e.local_id.is_some()
        {
            chart.visit_id = e.local_id.clone();
        }
        // The event's own id, else the visit it belongs to.
        let visit_id = e.local_id.clone().or_else(|| chart.visit_id.clone());
        let reports = |(event_at, practice_then, visit_id)| {
            Ok(Some((
                e.event,
                Reported {
                    event_at,
                    practice_then,
                    visit_id,
                },
            )))
        };
        // The attendance a clinic letter reports on, or the event itself for the others. One
        // arm per event kind, read as a table: what each does to the chart.
        match e.event {
            EventKind::OutpatientAttendance => {
                chart.unsigned.push_back(Attendance {
                    at: clinical,
                    second_signer: e.second_signer,
                    practice_then: practice_now,
                    visit_id,
                });
                Ok(None)
            }
            // A discharge summary's signature, or its draft before the discharge.
            EventKind::LetterSigned | EventKind::LetterCountersigned
                if e.signs == Signs::DischargeSummary =>
            {
                chart.summary_drafted = false;
                Ok(pop_front(&mut chart.held_summaries))
            }
            EventKind::LetterDrafted if e.signs == Signs::DischargeSummary => {
                chart.summary_drafted = true;
                Ok(None)
            }
            EventKind::LetterSigned => match pop_front(&mut chart.unsigned) {
                Some(a) if a.second_signer => {
                    chart.awaiting_second_signer.push_back(a);
                    Ok(None)
                }
                Some(a) => reports((a.at, a.practice_then, a.visit_id.or(visit_id))),
                None => Ok(None),
            },
            // fault: countersign_lost
            EventKind::LetterCountersigned if countersign_lost => Ok(None),
            EventKind::LetterCountersigned => match pop_front(&mut chart.awaiting_second_signer) {
                Some(a) => reports((a.at, a.practice_then, a.visit_id.or(visit_id))),
                None => Ok(None),
            },
            EventKind::Death => {
                chart.deceased = true;
                reports((clinical, practice_now, visit_id))
            }
            EventKind::GpChange => {
                patient.practice = e.to.clone();
                Ok(None)
            }
            EventKind::NamedGpLeft => {
                chart.named_gp_left = true;
                Ok(None)
            }
            EventKind::Discharge | EventKind::EmergencyDischarge
                if e.held_for_signature || chart.summary_drafted =>
            {
                chart.summary_drafted = false;
                let held = Reported {
                    event_at: clinical,
                    practice_then: practice_now,
                    visit_id,
                };
                chart.held_summaries.push_back((e.event, held));
                Ok(None)
            }
            EventKind::Discharge | EventKind::EmergencyDischarge => {
                reports((clinical, practice_now, visit_id))
            }
            EventKind::LetterDrafted | EventKind::Admission | EventKind::EmergencyAttendance => {
                Ok(None)
            }
        }
    }

    fn queue_letter(
        &mut self,
        kind: LetterKind,
        nhs_number: NhsNumber,
        (final_at, written): (Timestamp, Timestamp),
        reported: Reported,
    ) {
        let faults = &self.config.faults;
        // fault: delay
        let delay = faults
            .delay
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(Span(0), |(_, d)| *d);
        let ready_at = final_at.plus(delay);
        // fault: stall
        if let (Some(stall), None) = (faults.stall, self.stall_until) {
            self.stall_until = Some(ready_at.plus(stall));
        }
        let local_id = format!("SIM-{}-{:06}", self.run_token, self.next_id);
        self.next_id += 1;
        self.queue.push_back(Queued {
            local_id,
            visit_id: reported.visit_id,
            kind,
            nhs_number,
            event_at: reported.event_at,
            ready_at,
            written_at: written.plus(delay),
            practice_then: reported.practice_then,
        });
    }

    /// Runs the dispatcher at each of its ticks up to `t`, then sets the clock to `t`. The
    /// inbox is polled after each batch and at least once a day of the clock.
    pub async fn advance_to(&mut self, t: Timestamp) -> Result<(), SimError> {
        let step = self.config.dispatch_interval.0.max(1);
        while let Some(first) = self.queue.iter().map(|q| q.ready_at).min() {
            let from = first
                .0
                .max(self.now().0)
                .max(self.stall_until.map_or(0, |s| s.0));
            let tick = Timestamp(from + (step - from.rem_euclid(step)) % step);
            if tick > t {
                break;
            }
            self.clock.advance_to(tick);
            let (due, later): (Vec<_>, Vec<_>) =
                self.queue.drain(..).partition(|q| q.ready_at <= tick);
            self.queue = later.into();
            self.send_batch(due).await?;
            self.poll_inbox().await?;
        }
        self.clock.advance_to(t);
        if self.last_poll.is_none_or(|p| t.since(p) >= Span::days(1)) {
            self.poll_inbox().await?;
        }
        Ok(())
    }

    /// The practice a letter for this patient goes to, following merges.
    fn route(&self, q: &Queued) -> Result<Route, Unroutable> {
        let faults = &self.config.faults;
        // fault: stale_registration
        let ods = if faults.stale_registration {
            q.practice_then.clone()
        } else {
            self.pds.get(&q.nhs_number).and_then(|p| p.practice.clone())
        };
        let ods = ods
            .filter(|o| !o.is_pseudo())
            .ok_or(Unroutable::NoPractice)?;
        let find = |ods: &OdsCode| {
            self.directory
                .get(ods)
                .ok_or_else(|| Unroutable::NotInDirectory(ods.clone()))
        };
        let mut practice = find(&ods)?;
        for _ in 0..=self.directory.len() {
            match &practice.merged_into {
                // fault: stale_directory
                Some(_) if faults.stale_directory => break,
                Some(next) => practice = find(next)?,
                None => break,
            }
        }
        if practice.closed {
            return Err(Unroutable::Closed(practice.ods.clone()));
        }
        Ok(Route {
            ods: practice.ods.clone(),
            name: practice.name.clone(),
            mailbox: practice.mailbox.clone(),
            transport: practice.route,
        })
    }

    /// Everything about sending a letter but the network: faults, routing, the document.
    fn prepare(&mut self, q: &Queued) -> (Step, Option<String>) {
        if !self.pds.contains_key(&q.nhs_number) {
            return (Step::Settled(not_sent("unknown patient")), None);
        }
        let written = self.written_per_kind.entry(q.kind).or_default();
        *written += 1;
        let nth = *written;
        self.prepare_nth(q, nth)
    }

    /// [`Simulator::prepare`] of the `nth` letter of its kind written, of a known patient.
    fn prepare_nth(&self, q: &Queued, nth: u32) -> (Step, Option<String>) {
        let Some(patient) = self.pds.get(&q.nhs_number) else {
            return (Step::Settled(not_sent("unknown patient")), None);
        };
        let chart = self.charts.get(&q.nhs_number);
        let deceased = chart.is_some_and(|c| c.deceased);
        let named_gp_left = chart.is_some_and(|c| c.named_gp_left);
        let faults = &self.config.faults;
        let mut doc = self.document(q, patient);
        // fault: send_one_in
        if let Some((_, n)) = faults.send_one_in.iter().find(|(k, _)| *k == q.kind) {
            if (nth - 1) % n.max(&1) != 0 {
                let skipped = not_sent("automatic sending skipped it");
                return (Step::Settled(skipped), None);
            }
        }
        // fault: silently_drop
        if faults.silently_drop.contains(&q.kind) {
            return (Step::Settled(LetterOutcome::Sent), None);
        }
        // fault: skip_weekend_events
        if faults.skip_weekend_events && !is_working_day(q.event_at) {
            let skipped = not_sent("the working-days batch skipped it");
            return (Step::Settled(skipped), None);
        }
        // fault: skip_missing_hour
        if faults.skip_missing_hour && falls_in_missing_hour(q.ready_at) {
            let lost = not_sent("its dispatch slot, in the hour the clocks skip, never ran");
            return (Step::Settled(lost), None);
        }
        if !q.kind.goes_to_practice() {
            // fault: copies_after_death
            if deceased && !faults.copies_after_death {
                return (Step::Settled(not_sent("the patient has died")), None);
            }
            let body = itk3::paper_json(&doc, &PaperRecipient::Patient);
            let print = Delivery::post(&self.out.print_url, PRINT_PATH, body, false);
            return (Step::Deliver(print), None);
        }
        let route = match self.route(q) {
            Ok(r) => r,
            Err(why) => {
                let outcome = LetterOutcome::NotSent(format!("{why} (exceptions list)"));
                return (Step::Settled(outcome), None);
            }
        };
        doc.practice = Some((route.ods.to_string(), route.name.clone()));
        let paper = PaperRecipient::Practice {
            ods: route.ods.to_string(),
            name: route.name.clone(),
        };
        // fault: skip_when_named_gp_left
        if faults.skip_when_named_gp_left && named_gp_left && patient.named_gp.is_some() {
            let body = itk3::paper_json(&doc, &paper);
            let print = Delivery::post(&self.out.print_url, PRINT_PATH, body, true);
            return (Step::Deliver(print), None);
        }
        self.to_practice(q, &doc, &route, &paper)
    }

    /// The document of a letter, with the sections the profile keeps.
    fn document(&self, q: &Queued, patient: &PatientRecord) -> LetterDoc {
        let faults = &self.config.faults;
        let mut sections = itk3::default_sections(q.kind);
        // fault: drop_section
        sections.retain(|(title, _)| {
            !faults
                .drop_section
                .iter()
                .any(|(k, t)| *k == q.kind && t == title)
        });
        LetterDoc {
            kind: q.kind,
            local_id: q.local_id.clone(),
            visit_id: q.visit_id.clone(),
            nhs_number: q.nhs_number,
            patient_name: patient.name.clone(),
            born: patient.born.clone(),
            practice: None,
            trust_ods: self.config.trust_ods.clone(),
            trust_name: self.config.trust_name.clone(),
            sender_mailbox: self.mesh.config().mailbox.clone(),
            // fault: date_when_sent
            event_at: if faults.date_when_sent {
                self.now()
            } else {
                q.event_at
            },
            // The document carries the date it was finalised, however late it is sent.
            written_at: if faults.date_when_sent {
                self.now()
            } else {
                q.written_at
            },
            sent_at: self.now(),
            sections,
        }
    }

    /// How a practice letter goes over the practice's route: an HTTP document route, MLLP, a
    /// folder or MESH; with the ITK3 bundle id when it goes over MESH, to match the
    /// acknowledgements that come back.
    fn to_practice(
        &self,
        q: &Queued,
        doc: &LetterDoc,
        route: &Route,
        paper: &PaperRecipient,
    ) -> (Step, Option<String>) {
        let step = match (route.transport, &self.out.mllp, &self.out.folder) {
            (Transport::Http, _, _) => {
                let body = itk3::paper_json(doc, paper);
                Delivery::post(&self.out.docman_url, DOCMAN_PATH, body, false)
            }
            (Transport::Mllp, Some(addr), _) => {
                let message = crate::protocol::hl7::mdm::build(doc, Some(route.ods.as_str()));
                Delivery::Mllp {
                    addr: *addr,
                    message,
                }
            }
            (Transport::Folder, _, Some(dir)) => Delivery::Folder {
                dir: dir.clone(),
                name: format!("{}.json", q.local_id),
                body: serde_json::to_vec_pretty(&itk3::message_bundle(doc)).unwrap_or_default(),
                at: self.now(),
            },
            (Transport::Mllp | Transport::Folder, _, _) => {
                let why = format!(
                    "practice {} takes letters over {}, and no {} is configured",
                    route.ods, route.transport, route.transport
                );
                return (Step::Settled(LetterOutcome::NotSent(why)), None);
            }
            (Transport::Mesh, _, _) => return self.over_mesh(q, doc, route),
        };
        (Step::Deliver(step), None)
    }

    /// A practice letter as a MESH message bundle.
    fn over_mesh(&self, q: &Queued, doc: &LetterDoc, route: &Route) -> (Step, Option<String>) {
        let faults = &self.config.faults;
        // fault: workflow_override
        let workflow = faults
            .workflow_override
            .iter()
            .find(|(k, _)| *k == q.kind)
            .map_or(q.kind.workflow_id().unwrap_or_default(), |(_, w)| *w)
            .to_string();
        let (body, bundle_id) = itk3::message_json(doc);
        let msg = OutboundMessage {
            to: route.mailbox.clone(),
            workflow_id: workflow,
            subject: Some(format!("{} {}", q.kind.words(), q.local_id)),
            local_id: Some(q.local_id.clone()),
            file_name: Some(format!("{}.json", q.local_id)),
            content_type: "application/fhir+json".into(),
            body,
        };
        // fault: duplicate_sends
        let attempts = if faults.duplicate_sends { 2 } else { 1 };
        (
            Step::Deliver(Delivery::Mesh { msg, attempts }),
            Some(bundle_id),
        )
    }

    /// Sends a batch that fell due at one tick, several letters in flight at once as a real
    /// dispatcher does, then records the outcomes in the order the letters were queued.
    async fn send_batch(&mut self, due: Vec<Queued>) -> Result<(), SimError> {
        let now = self.now();
        let (mesh, http) = (self.mesh.clone(), self.http.clone());
        // Each letter is prepared as a place on the wire frees up, not the whole batch first,
        // so that building one letter overlaps with the endpoint reading those in flight.
        let this = &mut *self;
        let results: Vec<_> = futures::stream::iter(due.into_iter().map(|q| {
            let (step, bundle_id) = this.prepare(&q);
            let record = SentRecord {
                bundle_id,
                ..SentRecord::of(&q, now, LetterOutcome::Sent)
            };
            let (mesh, http) = (mesh.clone(), http.clone());
            async move {
                let delivered = match step {
                    Step::Deliver(d) => d.deliver(&mesh, &http).await,
                    Step::Settled(outcome) => Ok(Delivered::one(outcome)),
                };
                (record, delivered)
            }
        }))
        .buffered(IN_FLIGHT)
        .collect()
        .await;
        for (mut record, delivered) in results {
            let d = delivered?;
            record.outcome = d.outcome;
            for id in &d.message_ids {
                self.by_message.insert(id.clone(), self.sent.len());
            }
            record.message_id = d.message_ids.last().cloned();
            // The bundle id is kept once, as the key that finds the record.
            if let Some(b) = record.bundle_id.take() {
                self.by_bundle.insert(b, self.sent.len());
            }
            self.sent.push(record);
        }
        Ok(())
    }

    /// Collects the inbox: ITK3 acknowledgements and MESH REPORTs about sent letters.
    async fn poll_inbox(&mut self) -> Result<(), SimError> {
        self.last_poll = Some(self.now());
        for id in self.mesh.list_inbox().await? {
            let m = self.mesh.download(&id).await?;
            if m.header("mex-MessageType") == Some("REPORT") {
                let linked = m.header("mex-LinkedMsgID").unwrap_or_default();
                let text = format!(
                    "{}: {}",
                    m.header("mex-StatusCode").unwrap_or("?"),
                    m.header("mex-StatusDescription").unwrap_or("")
                );
                if let Some(r) = self
                    .by_message
                    .get(linked)
                    .and_then(|i| self.sent.get_mut(*i))
                {
                    r.reports.push(text);
                }
            } else if let Some((bundle_id, code)) = itk3::read_ack(&m.body) {
                if let Some(r) = self
                    .by_bundle
                    .get(&bundle_id)
                    .and_then(|i| self.sent.get_mut(*i))
                {
                    r.acks.push(code);
                }
            }
            self.mesh.acknowledge(&id).await?;
        }
        Ok(())
    }

    /// Sends a liveness message to its own mailbox over the same MESH route as letters,
    /// so a run can prove its capture path was alive even when no letter was due.
    pub async fn send_canary(&self) -> Result<SendOutcome, SimError> {
        let msg = OutboundMessage::canary(&self.mesh.config().mailbox);
        Ok(self.mesh.send(&msg).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letter_outcomes_read_as_the_ehr_logs_them() {
        let rejected = |answer: &str, detail: Option<&str>| LetterOutcome::Rejected {
            answer: answer.into(),
            detail: detail.map(str::to_string),
        };
        for (outcome, shown) in [
            (LetterOutcome::Sent, "sent"),
            (rejected("417", Some("{}")), "rejected (417): {}"),
            (
                rejected("417 Expectation Failed", None),
                "rejected (417 Expectation Failed)",
            ),
            (
                not_sent("the patient has died"),
                "not sent: the patient has died",
            ),
            (
                LetterOutcome::PaperCopyInstead(Box::new(LetterOutcome::Sent)),
                "not sent electronically: the named GP has left; paper copy sent",
            ),
        ] {
            assert_eq!(outcome.to_string(), shown);
            assert_eq!(serde_json::to_value(&outcome).unwrap(), shown);
        }
    }
}
