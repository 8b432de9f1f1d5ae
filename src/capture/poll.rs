//! [`MeshPoller`]: captures letters by polling a real MESH server, for a target EHR that
//! sends to a real (or staging, or sandbox) MESH rather than to lettergate's own endpoint.
//!
//! Each [`MeshPoller::poll_once`] lists every recipient mailbox (following `links.next`),
//! downloads each new message (all its chunks, un-gzipped), records it in a [`CaptureLog`]
//! through the same path as lettergate's endpoint, and acknowledges it when told to. It also
//! reads the sending mailbox for MESH `REPORT`s and attaches each to the letter whose message
//! id is the report's `mex-LinkedMsgID`; a report that arrives before its letter is kept until
//! the letter is polled, and one that never matches stays visible in
//! [`MeshPoller::unmatched_reports`].
//!
//! Design constraints:
//! - The harness must never pass because it could not capture: a refused handshake or
//!   listing (403), a refused connection, an acknowledgement MESH refused, or a failed write
//!   is an `Err`, never an empty inbox.
//! - With `acknowledge: false` the messages stay in MESH, so the poller remembers what it
//!   recorded and records each message id once across polls.
//! - The sending mailbox belongs to the EHR under test: the poller only reads it, and leaves
//!   everything there (REPORTs too, unless `acknowledge_reports`), so the EHR still sees its
//!   own acknowledgements and reports.
//!
//! ```no_run
//! # async fn f(log: &mut lettergate::CaptureLog) -> Result<(), Box<dyn std::error::Error>> {
//! use lettergate::{MailboxCredentials, MeshPoller, PollConfig};
//! use std::time::{Duration, Instant};
//! let config = PollConfig {
//!     base_url: "https://mesh.staging.example".into(),
//!     shared_key: std::env::var("MESH_SHARED_KEY")?,
//!     recipients: vec![MailboxCredentials::new("A81001HC001", std::env::var("GP_PASSWORD")?)],
//!     sender: Some(MailboxCredentials::new("RXXHC001", std::env::var("EHR_PASSWORD")?)),
//!     acknowledge: true,
//!     ..PollConfig::default()
//! };
//! let mut poller = MeshPoller::new(config)?;
//! let clock = lettergate::protocol::clock::Clock::System;
//! let deadline = Instant::now() + Duration::from_secs(600);
//! let stats = poller
//!     .poll_until(log, &clock, deadline, Duration::from_secs(5), Duration::from_secs(30))
//!     .await?;
//! println!("{} letters recorded", stats.recorded());
//! # Ok(()) }
//! ```

use super::inbox::ReportRecord;
use super::store::{CaptureLog, CapturedLetter};
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::letter::Transport;
use crate::protocol::mesh::client::{
    InboxMessage, MeshClient, MeshConfig, MeshError, TlsError, TlsOptions, TransferOptions,
};
use crate::protocol::read::parse_letter;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// A mailbox and its password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailboxCredentials {
    pub mailbox: String,
    pub password: String,
}

impl MailboxCredentials {
    pub fn new(mailbox: impl Into<String>, password: impl Into<String>) -> MailboxCredentials {
        MailboxCredentials {
            mailbox: mailbox.into(),
            password: password.into(),
        }
    }
}

/// Where to poll and what to do with what is found.
#[derive(Clone, Debug, Default)]
pub struct PollConfig {
    /// Base URL of the MESH server, such as `https://mesh.example` or `http://127.0.0.1:8700`.
    pub base_url: String,
    pub shared_key: String,
    /// The mailboxes letters are sent to (the practices').
    pub recipients: Vec<MailboxCredentials>,
    /// The sending EHR's mailbox, read for `REPORT`s; `None` reads no reports.
    pub sender: Option<MailboxCredentials>,
    /// Client certificate, key and CA bundle for `https://`.
    pub tls: TlsOptions,
    /// Acknowledge each recorded letter (it leaves the inbox); `false` leaves it in place.
    pub acknowledge: bool,
    /// Acknowledge the `REPORT`s read from the sending mailbox; `false` leaves them for the
    /// EHR.
    pub acknowledge_reports: bool,
    /// Record only letters on these workflow ids; `None` records every workflow. Letters on
    /// other workflows are neither recorded nor acknowledged.
    pub workflows: Option<BTreeSet<String>>,
}

/// What one mailbox gave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MailboxStats {
    /// Message ids listed (including ones seen in earlier polls).
    pub listed: usize,
    pub downloaded: usize,
    /// New letters recorded in the log.
    pub recorded: usize,
    /// New messages left alone: other workflows, or a sending mailbox's non-REPORT messages.
    pub skipped: usize,
    pub acknowledged: usize,
    /// New `REPORT`s read.
    pub reports: usize,
}

impl MailboxStats {
    fn add(&mut self, o: &MailboxStats) {
        self.listed += o.listed;
        self.downloaded += o.downloaded;
        self.recorded += o.recorded;
        self.skipped += o.skipped;
        self.acknowledged += o.acknowledged;
        self.reports += o.reports;
    }
}

/// What a poll (or several) did, per mailbox.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PollStats {
    pub polls: u32,
    pub mailboxes: BTreeMap<String, MailboxStats>,
    /// Reports attached to a letter.
    pub reports_matched: usize,
}

impl PollStats {
    /// New letters recorded, over every mailbox.
    pub fn recorded(&self) -> usize {
        self.mailboxes.values().map(|m| m.recorded).sum()
    }

    /// New letters and reports: what "something arrived" means for [`MeshPoller::poll_until`].
    pub fn new_messages(&self) -> usize {
        self.mailboxes
            .values()
            .map(|m| m.recorded + m.reports)
            .sum()
    }

    fn add(&mut self, o: &PollStats) {
        self.polls += o.polls;
        self.reports_matched += o.reports_matched;
        for (k, v) in &o.mailboxes {
            self.mailboxes.entry(k.clone()).or_default().add(v);
        }
    }
}

/// A `REPORT` read from the sending mailbox, not (yet) attached to a captured letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolledReport {
    /// The report's own MESH message id.
    pub report_id: String,
    /// `mex-LinkedMsgID`: the message it is about.
    pub linked_message_id: Option<String>,
    pub workflow_id: Option<String>,
    pub local_id: Option<String>,
    pub received_at: Timestamp,
    pub record: ReportRecord,
}

/// Why a poll could not finish; what it recorded before stays in the log.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("failed to set up TLS for MESH")]
    Tls(#[from] TlsError),
    #[error("failed to {action} mailbox {mailbox}")]
    Mesh {
        mailbox: String,
        action: &'static str,
        #[source]
        source: MeshError,
    },
    #[error("MESH refused the handshake of mailbox {mailbox} with status {status}")]
    Handshake { mailbox: String, status: u16 },
    #[error("MESH refused to acknowledge message {id} in mailbox {mailbox} with status {status}")]
    Acknowledge {
        mailbox: String,
        id: String,
        status: u16,
    },
    #[error("failed to record a message polled from mailbox {mailbox}")]
    Store {
        mailbox: String,
        #[source]
        source: std::io::Error,
    },
}

/// Polls MESH mailboxes into a [`CaptureLog`]. See the module documentation.
pub struct MeshPoller {
    config: PollConfig,
    recipients: Vec<MeshClient>,
    sender: Option<MeshClient>,
    /// Mailboxes that have said hello.
    shaken: HashSet<String>,
    /// `(mailbox, message id)` already dealt with.
    seen: HashSet<(String, String)>,
    unmatched: Vec<PolledReport>,
    totals: PollStats,
}

impl MeshPoller {
    /// A poller whose HTTP client is built from `config.tls` (rustls; system proxies apply),
    /// waiting for each answer at most the answer timeout (`LETTERGATE_ANSWER_TIMEOUT`): a MESH
    /// that accepts and never answers fails the poll rather than hanging it.
    pub fn new(config: PollConfig) -> Result<MeshPoller, PollError> {
        let timeout = crate::protocol::limits::Limits::current().answer_timeout;
        let http = config
            .tls
            .client_builder()?
            .timeout(timeout)
            .build()
            .map_err(TlsError::Build)?;
        Ok(MeshPoller::with_http(config, http))
    }

    /// A poller using the caller's HTTP client (`config.tls` is then not used).
    /// Messages recorded by an earlier poller (a previous `collect`), by recipient mailbox and
    /// MESH message id: they are not recorded again if still listed.
    pub fn already_recorded(&mut self, ids: impl IntoIterator<Item = (String, String)>) {
        self.seen.extend(ids);
    }

    pub fn with_http(config: PollConfig, http: reqwest::Client) -> MeshPoller {
        let client = |m: &MailboxCredentials| {
            MeshClient::new(
                http.clone(),
                MeshConfig {
                    base_url: config.base_url.clone(),
                    mailbox: m.mailbox.clone(),
                    password: m.password.clone(),
                    shared_key: config.shared_key.clone(),
                },
            )
            .with_transfer(TransferOptions::default())
        };
        MeshPoller {
            recipients: config.recipients.iter().map(client).collect(),
            sender: config.sender.as_ref().map(client),
            config,
            shaken: HashSet::new(),
            seen: HashSet::new(),
            unmatched: Vec::new(),
            totals: PollStats::default(),
        }
    }

    /// Lists every mailbox and leaves what is waiting there now out of every later poll (not
    /// downloaded, recorded or acknowledged): messages that were there before a target run
    /// began are not its letters. Returns them, by mailbox and message id.
    pub async fn skip_waiting(&mut self) -> Result<Vec<(String, String)>, PollError> {
        let mut skipped = Vec::new();
        let clients: Vec<MeshClient> = self
            .recipients
            .iter()
            .chain(self.sender.as_ref())
            .cloned()
            .collect();
        for client in &clients {
            self.handshake(client).await?;
            let ids = client
                .list_inbox()
                .await
                .map_err(|e| mesh_error(client, "list", e))?;
            let mailbox = client.config().mailbox.clone();
            for id in ids {
                let key = (mailbox.clone(), id);
                if self.seen.insert(key.clone()) {
                    skipped.push(key);
                }
            }
        }
        Ok(skipped)
    }

    /// Reports read from the sending mailbox that no captured letter matches (yet).
    pub fn unmatched_reports(&self) -> &[PolledReport] {
        &self.unmatched
    }

    /// Everything the poller's polls did so far.
    pub fn totals(&self) -> &PollStats {
        &self.totals
    }

    /// Polls every mailbox once: records new letters, reads reports, attaches them.
    pub async fn poll_once(
        &mut self,
        log: &mut CaptureLog,
        clock: &Clock,
    ) -> Result<PollStats, PollError> {
        let mut stats = PollStats {
            polls: 1,
            ..PollStats::default()
        };
        let recipients = self.recipients.clone();
        for client in &recipients {
            let mut st = MailboxStats::default();
            let result = self.poll_recipient(client, log, clock, &mut st).await;
            stats.add_mailbox(client, st);
            if let Err(e) = result {
                self.totals.add(&stats);
                return Err(e);
            }
        }
        if let Some(client) = self.sender.clone() {
            let mut st = MailboxStats::default();
            let result = self.poll_sender(&client, clock, &mut st).await;
            stats.add_mailbox(&client, st);
            if let Err(e) = result {
                self.totals.add(&stats);
                return Err(e);
            }
        }
        stats.reports_matched = self.attach_reports(log);
        self.totals.add(&stats);
        Ok(stats)
    }

    /// Polls every `interval` until nothing new (letter or report) has arrived for `settle`,
    /// or `deadline` passes; returns what all those polls did. The first error ends it.
    pub async fn poll_until(
        &mut self,
        log: &mut CaptureLog,
        clock: &Clock,
        deadline: Instant,
        interval: Duration,
        settle: Duration,
    ) -> Result<PollStats, PollError> {
        let mut all = PollStats::default();
        let mut last_new = Instant::now();
        loop {
            let stats = self.poll_once(log, clock).await?;
            all.add(&stats);
            let now = Instant::now();
            if stats.new_messages() > 0 {
                last_new = now;
            }
            if now.duration_since(last_new) >= settle || now >= deadline {
                return Ok(all);
            }
            let wait = interval.min(deadline.saturating_duration_since(now));
            tokio::time::sleep(wait).await;
        }
    }

    async fn handshake(&mut self, client: &MeshClient) -> Result<(), PollError> {
        let mailbox = &client.config().mailbox;
        if self.shaken.contains(mailbox) {
            return Ok(());
        }
        match client.handshake().await {
            Ok(200) => {
                self.shaken.insert(mailbox.clone());
                Ok(())
            }
            Ok(status) => Err(PollError::Handshake {
                mailbox: mailbox.clone(),
                status,
            }),
            Err(e) => Err(mesh_error(client, "say hello as", e.into())),
        }
    }

    async fn acknowledge(&self, client: &MeshClient, id: &str) -> Result<(), PollError> {
        match client.acknowledge(id).await {
            Ok(200) => Ok(()),
            Ok(status) => Err(PollError::Acknowledge {
                mailbox: client.config().mailbox.clone(),
                id: id.to_string(),
                status,
            }),
            Err(e) => Err(mesh_error(client, "acknowledge a message in", e.into())),
        }
    }

    /// Lists a recipient's inbox and takes each message not seen before: a REPORT is kept to
    /// attach, a letter of a wanted workflow recorded (and acknowledged when configured).
    async fn poll_recipient(
        &mut self,
        client: &MeshClient,
        log: &mut CaptureLog,
        clock: &Clock,
        st: &mut MailboxStats,
    ) -> Result<(), PollError> {
        self.handshake(client).await?;
        let mailbox = client.config().mailbox.clone();
        let ids = client
            .list_inbox()
            .await
            .map_err(|e| mesh_error(client, "list", e))?;
        st.listed = ids.len();
        for id in ids {
            let key = (mailbox.clone(), id.clone());
            if self.seen.contains(&key) {
                // Still listed: left in place on purpose, or an earlier acknowledgement failed.
                if self.config.acknowledge && self.recorded_here(log, &id) {
                    self.acknowledge(client, &id).await?;
                    st.acknowledged += 1;
                }
                continue;
            }
            let m = client
                .download(&id)
                .await
                .map_err(|e| mesh_error(client, "download from", e))?;
            st.downloaded += 1;
            let received_at = clock.now();
            if m.is_report() {
                self.seen.insert(key);
                st.reports += 1;
                self.unmatched.push(report_of(&m, received_at, false));
                continue;
            }
            if !self.wanted(&m) {
                self.seen.insert(key);
                st.skipped += 1;
                continue;
            }
            let store = |source| PollError::Store {
                mailbox: mailbox.clone(),
                source,
            };
            log.record_message(
                letter_of(&m, &mailbox, received_at),
                &header_list(&m),
                &m.body,
            )
            .map_err(store)?;
            self.seen.insert(key);
            st.recorded += 1;
            // On disk before the message leaves the mailbox: a crash loses nothing.
            log.flush().map_err(store)?;
            if self.config.acknowledge {
                self.acknowledge(client, &id).await?;
                st.acknowledged += 1;
            }
        }
        Ok(())
    }

    /// Whether a message's workflow is one the poll takes.
    fn wanted(&self, m: &InboxMessage) -> bool {
        match (&self.config.workflows, m.header("mex-WorkflowID")) {
            (None, _) => true,
            (Some(set), Some(w)) => set.contains(w),
            (Some(_), None) => false,
        }
    }

    /// True when message `id` is a letter in the log (not a skipped message).
    fn recorded_here(&self, log: &CaptureLog, id: &str) -> bool {
        log.letters.iter().any(|l| l.message_id == id)
    }

    async fn poll_sender(
        &mut self,
        client: &MeshClient,
        clock: &Clock,
        st: &mut MailboxStats,
    ) -> Result<(), PollError> {
        self.handshake(client).await?;
        let mailbox = client.config().mailbox.clone();
        let ids = client
            .list_inbox()
            .await
            .map_err(|e| mesh_error(client, "list", e))?;
        st.listed = ids.len();
        for id in ids {
            let key = (mailbox.clone(), id.clone());
            if !self.seen.insert(key) {
                continue;
            }
            let m = client
                .download(&id)
                .await
                .map_err(|e| mesh_error(client, "download from", e))?;
            st.downloaded += 1;
            if !m.is_report() {
                // The EHR's own acknowledgements and messages: not lettergate's to take.
                st.skipped += 1;
                continue;
            }
            st.reports += 1;
            let acknowledge = self.config.acknowledge_reports;
            if acknowledge {
                self.acknowledge(client, &id).await?;
                st.acknowledged += 1;
            }
            self.unmatched.push(report_of(&m, clock.now(), acknowledge));
        }
        Ok(())
    }

    /// Attaches the reports whose linked message is a captured letter; keeps the others.
    fn attach_reports(&mut self, log: &mut CaptureLog) -> usize {
        let mut matched = 0;
        self.unmatched.retain(|r| {
            let letter = r
                .linked_message_id
                .as_deref()
                .and_then(|id| log.letters.iter_mut().find(|l| l.message_id == id));
            match letter {
                Some(l) => {
                    l.reports.push(r.record.clone());
                    matched += 1;
                    false
                }
                None => true,
            }
        });
        matched
    }
}

impl PollStats {
    fn add_mailbox(&mut self, client: &MeshClient, st: MailboxStats) {
        self.mailboxes
            .entry(client.config().mailbox.clone())
            .or_default()
            .add(&st);
    }
}

fn mesh_error(client: &MeshClient, action: &'static str, source: MeshError) -> PollError {
    PollError::Mesh {
        mailbox: client.config().mailbox.clone(),
        action,
        source,
    }
}

/// A downloaded DATA message as a captured letter: MESH accepted and delivered it (202).
fn letter_of(m: &InboxMessage, polled: &str, received_at: Timestamp) -> CapturedLetter {
    let from = m.header("mex-From").map(str::to_string);
    let to = m.header("mex-To").unwrap_or(polled).to_string();
    let route = format!("{} -> {to}", from.clone().unwrap_or_default());
    CapturedLetter {
        from_mailbox: from,
        to_mailbox: Some(to),
        workflow_id: m.header("mex-WorkflowID").map(str::to_string),
        // MESH checked the sender's token; lettergate checked its own to download.
        auth_valid: true,
        local_id: m.header("mex-LocalID").map(str::to_string),
        ..CapturedLetter::received(
            Transport::Mesh,
            received_at,
            route,
            m.id.clone(),
            m.body.len(),
            parse_letter(Transport::Mesh, &m.body),
        )
    }
}

/// A message's headers as the log keeps them.
fn header_list(m: &InboxMessage) -> Vec<(String, String)> {
    m.headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn report_of(m: &InboxMessage, received_at: Timestamp, collected: bool) -> PolledReport {
    PolledReport {
        report_id: m.id.clone(),
        linked_message_id: m.linked_message_id().map(str::to_string),
        workflow_id: m.header("mex-WorkflowID").map(str::to_string),
        local_id: m.header("mex-LocalID").map(str::to_string),
        received_at,
        record: ReportRecord {
            code: m.report_code(),
            description: m.status_description().unwrap_or("").to_string(),
            collected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(linked: &str) -> PolledReport {
        PolledReport {
            report_id: format!("R-{linked}"),
            linked_message_id: Some(linked.into()),
            workflow_id: None,
            local_id: None,
            received_at: Timestamp(0),
            record: ReportRecord {
                code: crate::protocol::mesh::MeshErrorCode::NotCollected,
                description: "not collected".into(),
                collected: false,
            },
        }
    }

    #[test]
    fn a_report_read_before_its_letter_is_kept_and_attached_once_the_letter_is_polled() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CaptureLog::create(dir.path()).unwrap();
        let mut poller = MeshPoller::with_http(PollConfig::default(), reqwest::Client::new());
        poller.unmatched.push(report("M1"));
        assert_eq!(poller.attach_reports(&mut log), 0);
        assert_eq!(poller.unmatched_reports().len(), 1);
        let m = InboxMessage {
            id: "M1".into(),
            headers: [("mex-from", "RXXHC001"), ("mex-to", "A81001HC001")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: b"{}".to_vec(),
        };
        log.record_message(letter_of(&m, "A81001HC001", Timestamp(0)), &[], &m.body)
            .unwrap();
        assert_eq!(log.letters[0].route, "RXXHC001 -> A81001HC001");
        assert_eq!(poller.attach_reports(&mut log), 1);
        assert!(poller.unmatched_reports().is_empty());
        assert_eq!(log.letters[0].reports.len(), 1);
    }
}
