//! [`CaptureServer`]: lettergate's own MESH-compatible endpoint and HTTP capture, on one
//! loopback port per scenario run.
//!
//! It answers as MESH does (202 with a message id, 403 for bad authorisation, 417 code `12`
//! for an unregistered recipient) and records every request it is sent, accepted or refused:
//! nothing received is discarded. It takes what real MESH clients send: chunked messages
//! (`mex-Chunk-Range`, assembled by [`super::chunks`]), gzipped chunks, `Transfer-Encoding:
//! chunked` bodies, header names in any case, no `mex-From` (the sender is the authenticated
//! mailbox); and it answers endpoint lookup from the directory it is started with. Any other path is an HTTP capture (a print service, a
//! document route) that answers 202.
//!
//! Behind the MESH endpoint stands a synthetic GP receiver: for a letter to a mailbox a
//! practice collects from, it answers as a practice system would, with an ITK3
//! infrastructure and a business acknowledgement in the sender's inbox; a letter to a mailbox
//! nobody collects from gets a MESH `REPORT` (status 14) five days later.

use super::chunks::{decode, parse_range, Assemblies, ChunkError, ChunkRange, FirstChunk};
use super::inbox::{About, AckRecord, Inbox, InboxItem};
use super::sink::{LogSink, SinkError};
use super::store::{CaptureLog, CapturedLetter};
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::ids::NhsNumber;
use crate::protocol::itk3::{self, Itk3Response};
use crate::protocol::letter::Transport;
use crate::protocol::limits::{show_size, Limits};
use crate::protocol::listen::HttpServer;
use crate::protocol::mesh::auth::{AuthError, Token};
use crate::protocol::mesh::{MeshErrorCode, API_ROOT};
use crate::protocol::read::parse_letter;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What the endpoint accepts.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub listen: SocketAddr,
    pub shared_key: String,
    /// Registered mailboxes and their passwords; only these may send or receive.
    pub mailboxes: BTreeMap<String, String>,
    /// Where the received messages of this run are written.
    pub dir: PathBuf,
    /// Mailboxes a practice system collects from; letters to other registered mailboxes are
    /// never collected, and MESH reports them after five days.
    pub monitored: BTreeSet<String>,
    /// The synthetic GP receiver that acknowledges collected letters; `None` sends no
    /// acknowledgements.
    pub gp: Option<GpReceiver>,
    /// Caps on bodies and messages, timeouts, the connection limit and the NHSMESH clock skew.
    pub limits: Limits,
}

/// Decides the ITK3 business response a practice gives: given the receiving mailbox, the
/// patient and the time, one of 30001 (known here), 30002 (not known here), 30003 (no longer
/// registered here) or 30004 (known here and recently deceased).
#[derive(Clone)]
pub struct GpReceiver(pub Arc<BusinessResponse>);

/// `(receiving mailbox, patient, time) -> business response code`.
pub type BusinessResponse = dyn Fn(&str, NhsNumber, Timestamp) -> Itk3Response + Send + Sync;

impl fmt::Debug for GpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GpReceiver")
    }
}

struct Shared {
    config: CaptureConfig,
    clock: Clock,
    /// The log, shared with the other captures of the run; closed by [`CaptureServer::finish`].
    sink: Arc<LogSink>,
    nonces: Mutex<HashSet<NonceKey>>,
    counter: AtomicU64,
    /// Numbers HTTP captures apart from MESH ids, so snapshots do not depend on MESH traffic.
    http_counter: AtomicU64,
    inbox: Mutex<Inbox>,
    /// Chunked messages under way.
    chunks: Mutex<Assemblies>,
    /// What endpoint lookup answers.
    directory: Vec<Endpoint>,
}

/// A nonce seen, with its count, for its mailbox: the first 128 bits of the SHA-256 of
/// `mailbox`, `nonce` and `count`, each length-prefixed, so two keys are equal only for the
/// same three texts (short of a 2^-64 chance over a billion requests). A run keeps one per
/// request, a quarter of a million in a month's run: 16 bytes each, not two strings.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
struct NonceKey(u128);

impl NonceKey {
    fn of(token: &Token) -> NonceKey {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [&token.mailbox, &token.nonce, &token.nonce_count] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let d = h.finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&d[..16]);
        NonceKey(u128::from_le_bytes(first))
    }
}

/// A running capture endpoint. [`CaptureServer::finish`] stops it and hands back the log.
pub struct CaptureServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: HttpServer,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to create the capture folder {dir}")]
    Store {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write a captured message to disk: {0}")]
    Write(SinkError),
    #[error("failed to start the MLLP capture")]
    Mllp(#[source] crate::protocol::hl7::Hl7Error),
    #[error("the capture endpoint stopped unexpectedly")]
    Crashed,
}

/// The MESH API under [`API_ROOT`]; any other path is an HTTP capture.
fn routes(shared: Arc<Shared>) -> Router {
    let max_body = usize::try_from(shared.config.limits.max_body).unwrap_or(usize::MAX);
    Router::new()
        .route(&format!("{API_ROOT}/{{mailbox}}"), post(handshake))
        .route(&format!("{API_ROOT}/{{mailbox}}/outbox"), post(send))
        .route(
            &format!("{API_ROOT}/{{mailbox}}/outbox/{{id}}/{{chunk}}"),
            post(send_chunk),
        )
        .route(
            &format!("{API_ROOT}/endpointlookup/{{ods}}/{{workflow}}"),
            get(endpoint_lookup),
        )
        .route(&format!("{API_ROOT}/{{mailbox}}/inbox"), get(list_inbox))
        .route(
            &format!("{API_ROOT}/{{mailbox}}/inbox/{{id}}"),
            get(download),
        )
        .route(
            &format!("{API_ROOT}/{{mailbox}}/inbox/{{id}}/status/acknowledged"),
            put(acknowledge),
        )
        .fallback(http_capture)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

/// A mailbox as MESH endpoint lookup (`GET /endpointlookup/{ods}/{workflow}`) answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The organisation's ODS code.
    pub ods: String,
    pub mailbox_id: String,
    pub mailbox_name: String,
    /// The workflow ids the mailbox is registered for; empty for any.
    pub workflows: Vec<String>,
}

impl CaptureServer {
    /// Starts the endpoint with no endpoint-lookup directory (lookups find nothing).
    pub async fn start(config: CaptureConfig, clock: Clock) -> Result<CaptureServer, CaptureError> {
        CaptureServer::start_with_directory(config, Vec::new(), clock).await
    }

    /// Starts the endpoint; endpoint lookup answers from `directory`.
    pub async fn start_with_directory(
        config: CaptureConfig,
        directory: Vec<Endpoint>,
        clock: Clock,
    ) -> Result<CaptureServer, CaptureError> {
        let log = CaptureLog::create(&config.dir).map_err(|source| CaptureError::Store {
            dir: config.dir.clone(),
            source,
        })?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| CaptureError::Bind {
                addr: config.listen,
                source,
            })?;
        let listen = config.listen;
        let limits = config.limits.clone();
        let shared = Arc::new(Shared {
            config,
            clock,
            sink: Arc::new(LogSink::new(log)),
            nonces: Mutex::new(HashSet::new()),
            counter: AtomicU64::new(0),
            http_counter: AtomicU64::new(0),
            inbox: Mutex::new(Inbox::default()),
            chunks: Mutex::new(Assemblies::default()),
            directory,
        });
        let app = routes(shared.clone());
        let server =
            HttpServer::start(listener, app, limits).map_err(|source| CaptureError::Bind {
                addr: listen,
                source,
            })?;
        Ok(CaptureServer {
            addr: server.local_addr(),
            shared,
            server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many messages it has recorded so far (canaries aside).
    pub fn captured(&self) -> usize {
        self.shared.sink.with_log(|l| l.letters.len()).unwrap_or(0)
    }

    /// The log this server records into, for other captures of the same run (MLLP, folder).
    /// Finish them before [`CaptureServer::finish`], which closes it.
    pub fn sink(&self) -> Arc<LogSink> {
        self.shared.sink.clone()
    }

    /// Stops the endpoint, waits for requests under way (at most the shutdown deadline), and
    /// returns what it captured.
    pub async fn finish(self) -> Result<CaptureLog, CaptureError> {
        if !self.server.shutdown().await {
            return Err(CaptureError::Crashed);
        }
        self.shared.record_incomplete();
        self.shared.make_due_reports();
        // Connection tasks may still hold the shared state for a moment after shutdown, so the
        // log is taken out of the sink rather than the state unwrapped.
        let mut log = self.shared.sink.close().map_err(CaptureError::Write)?;
        log.renumber(super::store::Numbering::for_clock(&self.shared.clock));
        Ok(log)
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Shared {
    fn message_id(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let stamp = crate::protocol::clock::compact_utc_now();
        format!("{stamp}_{:06X}", n & 0xFF_FFFF)
    }

    /// Checks the token against the path's mailbox, its password, the clock (within the
    /// skew) and earlier nonces.
    fn authorise(&self, headers: &HeaderMap, mailbox: &str) -> Result<(), AuthError> {
        let token = Token::parse(header(headers, "authorization").as_deref())?;
        if token.mailbox != mailbox {
            return Err(AuthError::UnknownMailbox(token.mailbox));
        }
        let password = self
            .config
            .mailboxes
            .get(mailbox)
            .ok_or_else(|| AuthError::UnknownMailbox(mailbox.to_string()))?;
        token.verify(&self.config.shared_key, password)?;
        token.check_time(
            time::OffsetDateTime::now_utc(),
            self.config.limits.mesh_clock_skew,
        )?;
        let fresh = self
            .nonces
            .lock()
            .map(|mut n| n.insert(NonceKey::of(&token)))
            .unwrap_or(false);
        if !fresh {
            return Err(AuthError::ReusedNonce(token.nonce));
        }
        Ok(())
    }

    /// Records a message; returns its sequence number, or `None` for a canary or a failure.
    fn record(
        &self,
        letter: CapturedLetter,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Option<u32> {
        self.sink.record(letter, headers, body)
    }

    fn with_letter(&self, seq: u32, f: impl FnOnce(&mut CapturedLetter)) {
        self.sink.with_log(|log| {
            if let Some(l) = log.letters.get_mut(seq as usize - 1) {
                f(l);
            }
        });
    }

    /// The synthetic GP receiver's part after MESH accepted letter `seq` for `to`.
    fn after_accept(&self, seq: u32, sender: &str, to: &str, workflow: &str, message_id: &str) {
        let now = self.clock.now();
        if !self.config.monitored.contains(to) {
            if let Ok(mut inbox) = self.inbox.lock() {
                inbox.note_uncollected(seq, message_id, sender, to, workflow, now);
            }
            return;
        }
        // Collected; with no GP receiver configured, nothing is acknowledged.
        let Some(gp) = self.config.gp.as_ref() else {
            return;
        };
        let mut facts = None;
        self.with_letter(seq, |l| facts = l.facts.clone().ok());
        let original = facts.as_ref().and_then(|f| f.message_id.clone());
        let mut codes = vec![if original.is_some() {
            Itk3Response::Success
        } else {
            Itk3Response::PayloadInvalid
        }];
        if let (Some(nhs), Some(_)) = (facts.as_ref().and_then(|f| f.nhs_number), &original) {
            codes.push((gp.0)(to, nhs, now));
        }
        let ods = facts.and_then(|f| f.recipient_ods).unwrap_or_default();
        // An unreadable letter has no bundle id to refer to: its 20009 names the MESH message
        // (an empty `response.identifier` is not valid FHIR).
        let about = original.as_deref().unwrap_or(message_id);
        for (index, code) in codes.into_iter().enumerate() {
            let body = itk3::ack_bundle(about, code, &ods, to, now);
            let item = InboxItem {
                id: self.message_id(),
                headers: vec![
                    ("mex-messagetype".into(), "DATA".into()),
                    ("mex-from".into(), to.into()),
                    ("mex-to".into(), sender.into()),
                    ("mex-workflowid".into(), format!("{workflow}_ACK")),
                    ("mex-content-type".into(), "application/fhir+json".into()),
                ],
                body: serde_json::to_vec(&body).unwrap_or_default(),
                about: About::Ack { seq, index },
            };
            if let Ok(mut inbox) = self.inbox.lock() {
                inbox.deliver(sender, item);
            }
            self.with_letter(seq, |l| {
                l.acks.push(AckRecord {
                    code,
                    collected: false,
                })
            });
        }
    }

    /// Puts the REPORTs that are due by the clock into the senders' inboxes.
    fn make_due_reports(&self) {
        let made = match self.inbox.lock() {
            Ok(mut inbox) => inbox.make_due_reports(self.clock.now(), || self.message_id()),
            Err(_) => return,
        };
        for (seq, report) in made {
            self.with_letter(seq, |l| l.reports.push(report));
        }
    }
}

/// MESH's answer to a request whose `NHSMESH` token is refused.
fn forbidden(e: AuthError) -> Response {
    Refused::Auth(e).response()
}

fn mesh_error(status: StatusCode, code: MeshErrorCode, description: &str) -> Response {
    (
        status,
        Json(json!({"errorEvent": "SEND", "errorCode": code, "errorDescription": description})),
    )
        .into_response()
}

/// MESH's answer to a message (or chunk) it took.
fn accepted(message_id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"message_id": message_id})),
    )
        .into_response()
}

/// Why the endpoint refuses a send or a chunk. The text is the refusal recorded with the
/// message; the status and MESH error code are what it answers.
#[derive(Debug, thiserror::Error)]
enum Refused {
    #[error("refused authorisation: {0}")]
    Auth(AuthError),
    #[error("missing mex-To or mex-WorkflowID")]
    MissingHeaders,
    #[error("unregistered recipient mailbox `{0}` (MESH error 12)")]
    Unregistered(String),
    #[error("the first POST of a message must be chunk 1, not {}:{}", .0.n, .0.total)]
    NotFirstChunk(ChunkRange),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
    #[error("the chunk store is unusable")]
    ChunkStore,
    #[error("the body is {0}")]
    BodyTooLarge(String),
    #[error("the body could not be read: {0}")]
    Body(String),
    #[error("{0}")]
    BodyTimeout(String),
}

impl Refused {
    fn status(&self) -> StatusCode {
        match self {
            Refused::Auth(_) => StatusCode::FORBIDDEN,
            Refused::MissingHeaders => StatusCode::BAD_REQUEST,
            Refused::Chunk(ChunkError::Gzip(_) | ChunkError::Encoding(_)) => {
                StatusCode::BAD_REQUEST
            }
            Refused::ChunkStore => StatusCode::INTERNAL_SERVER_ERROR,
            Refused::BodyTooLarge(_) | Refused::Chunk(ChunkError::TooLarge(_)) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Refused::Body(_) => StatusCode::BAD_REQUEST,
            Refused::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Refused::Unregistered(_) | Refused::NotFirstChunk(_) | Refused::Chunk(_) => {
                StatusCode::EXPECTATION_FAILED
            }
        }
    }

    fn code(&self) -> MeshErrorCode {
        match self {
            Refused::Auth(_) => MeshErrorCode::AuthorisationRefused,
            Refused::Unregistered(_) => MeshErrorCode::UnregisteredRecipient,
            _ => MeshErrorCode::BadRequest,
        }
    }

    /// The answer: MESH's own description for an unregistered recipient, the reason itself
    /// otherwise.
    fn response(&self) -> Response {
        let description = match self {
            Refused::Unregistered(_) => "Unregistered to address".to_string(),
            other => other.to_string(),
        };
        mesh_error(self.status(), self.code(), &description)
    }
}

async fn handshake(
    State(s): State<Arc<Shared>>,
    Path(mailbox): Path<String>,
    headers: HeaderMap,
) -> Response {
    match s.authorise(&headers, &mailbox) {
        Ok(()) => {
            s.sink.with_log(|log| log.handshakes += 1);
            (StatusCode::OK, Json(json!({"mailbox_id": mailbox}))).into_response()
        }
        Err(e) => forbidden(e),
    }
}

/// The `mex-*` headers of a request, names in lower case.
fn mex_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("mex-"))
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

impl Shared {
    /// Records a MESH message (a whole one, or a refused request) and, when it was accepted,
    /// lets the synthetic GP receiver answer it.
    #[allow(clippy::too_many_arguments)]
    fn record_mesh(
        &self,
        first: &FirstChunk,
        received_at: Timestamp,
        status: u16,
        refusal: Option<String>,
        auth_valid: bool,
        message_id: String,
        body: &[u8],
    ) {
        let mailbox = &first.mailbox;
        let to = first.to.clone();
        let letter = CapturedLetter {
            from_mailbox: Some(mailbox.clone()),
            to_mailbox: to.clone(),
            workflow_id: first.workflow.clone(),
            status,
            refusal,
            auth_valid,
            local_id: first.local_id.clone(),
            ..CapturedLetter::received(
                Transport::Mesh,
                received_at,
                format!("{mailbox} -> {}", to.clone().unwrap_or_default()),
                message_id.clone(),
                body.len(),
                parse_letter(Transport::Mesh, body),
            )
        };
        let accepted = letter.accepted();
        if let Some(seq) = self.record(letter, &first.mex_headers, body) {
            if accepted {
                let workflow = first.workflow.clone().unwrap_or_default();
                let to = to.unwrap_or_default();
                self.after_accept(seq, mailbox, &to, &workflow, &message_id);
            }
        }
    }

    /// Records the chunked messages whose chunks never all arrived, as refused.
    fn record_incomplete(&self) {
        let left = match self.chunks.lock() {
            Ok(mut c) => c.drain_incomplete(),
            Err(_) => return,
        };
        for a in left {
            let why = format!(
                "incomplete chunked message {}: {} of {} chunks arrived",
                a.message_id, a.received, a.total
            );
            let now = self.clock.now();
            self.record_mesh(&a.first, now, 417, Some(why), true, String::new(), &a.body);
        }
    }
}

/// `POST /{mailbox}/outbox`: a whole message, or the first chunk of a chunked one
/// (`mex-Chunk-Range: 1:N`), in any header case, gzipped or not. The sender is the
/// authenticated mailbox; a `mex-From` is not needed and not trusted.
async fn send(
    State(s): State<Arc<Shared>>,
    Path(mailbox): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = s.clock.now();
    let first = FirstChunk {
        mailbox: mailbox.clone(),
        to: header(&headers, "mex-to"),
        workflow: header(&headers, "mex-workflowid"),
        local_id: header(&headers, "mex-localid"),
        mex_headers: mex_headers(&headers),
    };
    // Authenticate before reading a byte of the body: a request MESH would refuse costs no
    // more than its headers.
    if let Err(e) = s.authorise(&headers, &mailbox) {
        return s.refuse(&first, received_at, Refused::Auth(e), false, None);
    }
    let body = match read_body(body, s.config.limits.max_body).await {
        Ok(body) => body,
        Err(refused) => return s.refuse(&first, received_at, refused, true, None),
    };
    match s.check_send(&first, &headers, &body) {
        Ok((range, chunk)) => {
            let message_id = s.message_id();
            if range.total > 1 {
                // Recorded once, with the whole body, when the last chunk arrives.
                if let Ok(mut c) = s.chunks.lock() {
                    c.start(&message_id, first, range.total, chunk);
                }
            } else {
                s.record_mesh(
                    &first,
                    received_at,
                    202,
                    None,
                    true,
                    message_id.clone(),
                    &chunk,
                );
            }
            accepted(&message_id)
        }
        Err(refused) => s.refuse(&first, received_at, refused, true, Some(&body)),
    }
}

/// `POST /{mailbox}/outbox/{message_id}/{n}`: chunk n of a chunked message. The message is
/// recorded, whole, when its last chunk arrives; a chunk out of order, of an unknown
/// message or from another mailbox is refused and recorded as refused.
async fn send_chunk(
    State(s): State<Arc<Shared>>,
    Path((mailbox, message_id, n)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = s.clock.now();
    let known = s
        .chunks
        .lock()
        .ok()
        .and_then(|c| c.first(&mailbox, &message_id).cloned());
    let mut first = known.unwrap_or(FirstChunk {
        mailbox: mailbox.clone(),
        to: None,
        workflow: None,
        local_id: None,
        mex_headers: vec![],
    });
    first.mex_headers = mex_headers(&headers);
    if let Err(e) = s.authorise(&headers, &mailbox) {
        return s.refuse(&first, received_at, Refused::Auth(e), false, None);
    }
    let body = match read_body(body, s.config.limits.max_body).await {
        Ok(body) => body,
        Err(refused) => return s.refuse(&first, received_at, refused, true, None),
    };
    let chunk = Chunk {
        mailbox: &mailbox,
        message_id: &message_id,
        n: &n,
    };
    match s.add_chunk(chunk, &headers, &body) {
        Ok(None) => accepted(&message_id),
        Ok(Some(whole)) => {
            let id = whole.message_id.clone();
            s.record_mesh(
                &whole.first,
                received_at,
                202,
                None,
                true,
                id.clone(),
                &whole.body,
            );
            accepted(&id)
        }
        Err(refused) => s.refuse(&first, received_at, refused, true, Some(&body)),
    }
}

/// Reads a request body of at most `cap` bytes (`LETTERGATE_MAX_BODY`); one that is larger,
/// or that does not arrive within the body deadline, is refused where it stands.
async fn read_body(body: Body, cap: u64) -> Result<Vec<u8>, Refused> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| {
            let why = crate::protocol::chain(&e);
            if crate::protocol::listen::BodyTimeout::caused(&e) {
                Refused::BodyTimeout(why)
            } else {
                Refused::Body(why)
            }
        })?;
        if (out.len() + piece.len()) as u64 > cap {
            return Err(Refused::BodyTooLarge(format!(
                "larger than {} (LETTERGATE_MAX_BODY)",
                show_size(cap)
            )));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// Which chunk a `POST /{mailbox}/outbox/{message_id}/{n}` sends.
struct Chunk<'a> {
    mailbox: &'a str,
    message_id: &'a str,
    n: &'a str,
}

impl Shared {
    /// Whether a first POST can be taken: authorised, addressed to a registered mailbox, the
    /// first chunk, and decodable; its chunk range and decoded body when it can.
    fn check_send(
        &self,
        first: &FirstChunk,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(ChunkRange, Vec<u8>), Refused> {
        let (Some(to), Some(_)) = (&first.to, &first.workflow) else {
            return Err(Refused::MissingHeaders);
        };
        if !self.config.mailboxes.contains_key(to) {
            return Err(Refused::Unregistered(to.clone()));
        }
        let range = parse_range(header(headers, "mex-chunk-range").as_deref())?;
        if range.n != 1 {
            return Err(Refused::NotFirstChunk(range));
        }
        let encoding = header(headers, "content-encoding");
        Ok((
            range,
            decode(encoding.as_deref(), body, &self.config.limits)?,
        ))
    }

    /// Adds a later chunk to its message; the whole message when it was the last.
    fn add_chunk(
        &self,
        chunk: Chunk,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<super::chunks::Assembly>, Refused> {
        let encoding = header(headers, "content-encoding");
        let decoded = decode(encoding.as_deref(), body, &self.config.limits)?;
        let range = header(headers, "mex-chunk-range");
        let mut c = self.chunks.lock().map_err(|_| Refused::ChunkStore)?;
        Ok(c.add(
            chunk.mailbox,
            chunk.message_id,
            chunk.n,
            range.as_deref(),
            decoded,
            self.config.limits.max_message,
        )?)
    }

    /// Records a refused request with its reason, and answers as MESH does. `body` is `None`
    /// when the body was not read (refused before it, or too large or too slow to read).
    fn refuse(
        &self,
        first: &FirstChunk,
        received_at: Timestamp,
        refused: Refused,
        auth_valid: bool,
        body: Option<&[u8]>,
    ) -> Response {
        let response = refused.response();
        let status = refused.status().as_u16();
        let why = match body {
            Some(_) => refused.to_string(),
            None => format!("{refused} (the body was not read)"),
        };
        let (why, body) = (Some(why), body.unwrap_or_default());
        self.record_mesh(
            first,
            received_at,
            status,
            why,
            auth_valid,
            String::new(),
            body,
        );
        response
    }
}

/// `GET /endpointlookup/{ods}/{workflow}` (no authorisation, as in MESH): the mailboxes
/// registered for the organisation and workflow, in the v2 shape.
async fn endpoint_lookup(
    State(s): State<Arc<Shared>>,
    Path((ods, workflow)): Path<(String, String)>,
) -> Response {
    let results: Vec<serde_json::Value> = s
        .directory
        .iter()
        .filter(|e| e.ods.eq_ignore_ascii_case(&ods))
        .filter(|e| e.workflows.is_empty() || e.workflows.contains(&workflow))
        .map(|e| json!({"mailbox_id": e.mailbox_id, "mailbox_name": e.mailbox_name}))
        .collect();
    (StatusCode::OK, Json(json!({"results": results}))).into_response()
}

async fn list_inbox(
    State(s): State<Arc<Shared>>,
    Path(mailbox): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = s.authorise(&headers, &mailbox) {
        return forbidden(e);
    }
    s.make_due_reports();
    let ids = s.inbox.lock().map(|i| i.list(&mailbox)).unwrap_or_default();
    let count = ids.len();
    (
        StatusCode::OK,
        Json(json!({"messages": ids, "links": {}, "approx_inbox_count": count})),
    )
        .into_response()
}

async fn download(
    State(s): State<Arc<Shared>>,
    Path((mailbox, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = s.authorise(&headers, &mailbox) {
        return forbidden(e);
    }
    let item = s
        .inbox
        .lock()
        .ok()
        .and_then(|i| i.get(&mailbox, &id).cloned());
    let Some(item) = item else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errorDescription": "no such message"})),
        )
            .into_response();
    };
    let mut response = (StatusCode::OK, item.body).into_response();
    for (k, v) in item
        .headers
        .into_iter()
        .chain([("mex-messageid".to_string(), id)])
    {
        if let (Ok(k), Ok(v)) = (
            axum::http::HeaderName::try_from(k),
            axum::http::HeaderValue::try_from(v),
        ) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

async fn acknowledge(
    State(s): State<Arc<Shared>>,
    Path((mailbox, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = s.authorise(&headers, &mailbox) {
        return forbidden(e);
    }
    let about = s
        .inbox
        .lock()
        .ok()
        .and_then(|mut i| i.acknowledge(&mailbox, &id));
    match about {
        Some(About::Ack { seq, index }) => s.with_letter(seq, |l| {
            if let Some(a) = l.acks.get_mut(index) {
                a.collected = true;
            }
        }),
        Some(About::Report { seq, index }) => s.with_letter(seq, |l| {
            if let Some(r) = l.reports.get_mut(index) {
                r.collected = true;
            }
        }),
        None => {}
    }
    (StatusCode::OK, Json(json!({"message_id": id}))).into_response()
}

async fn http_capture(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received_at = s.clock.now();
    let (body, refused) = match read_body(body, s.config.limits.max_body).await {
        Ok(body) => (Bytes::from(body), None),
        Err(refused) => (Bytes::new(), Some(refused)),
    };
    let facts = parse_letter(Transport::Http, &body);
    // The sender's own reference names the capture when there is one: several requests of a
    // batch arrive in any order, and a counter would number them differently every run.
    let id = match facts.as_ref().ok().and_then(|f| f.reference.clone()) {
        Some(reference) => format!("HTTP-{reference}"),
        None => format!(
            "HTTP-{:06}",
            s.http_counter.fetch_add(1, Ordering::SeqCst) + 1
        ),
    };
    let mut letter = CapturedLetter::received(
        Transport::Http,
        received_at,
        format!("{method} {}", uri.path()),
        id.clone(),
        body.len(),
        facts,
    );
    // lettergate's own canary, proving the HTTP capture alive: counted, not recorded.
    if header(&headers, "mex-workflowid").as_deref() == Some(crate::protocol::mesh::CANARY_WORKFLOW)
    {
        letter.workflow_id = Some(crate::protocol::mesh::CANARY_WORKFLOW.into());
    }
    let content_type: Vec<(String, String)> = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| vec![("content-type".to_string(), v.to_string())])
        .unwrap_or_default();
    if let Some(refused) = refused {
        // Too large or too slow: recorded as refused, so a letter cut off is a finding.
        letter.status = refused.status().as_u16();
        letter.refusal = Some(format!("{refused} (the body was not read)"));
        s.record(letter, &content_type, &body);
        return (
            refused.status(),
            Json(json!({"error": refused.to_string()})),
        )
            .into_response();
    }
    s.record(letter, &content_type, &body);
    (StatusCode::ACCEPTED, Json(json!({"id": id}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(mailbox: &str, nonce: &str, count: &str) -> NonceKey {
        NonceKey::of(&Token {
            mailbox: mailbox.into(),
            nonce: nonce.into(),
            nonce_count: count.into(),
            timestamp: "202501060900".into(),
            hash: "0".repeat(64),
        })
    }

    #[test]
    fn a_nonce_is_the_same_key_only_as_the_same_text_for_the_same_mailbox() {
        let n = "123e4567-e89b-12d3-a456-426614174000";
        assert_eq!(key("A", n, "0"), key("A", n, "0"));
        // Other texts of the same number, another count, another mailbox: other nonces.
        for other in [
            key("A", &n.to_uppercase(), "0"),
            key("A", &n.replace('-', ""), "0"),
            key("A", &format!("{{{n}}}"), "0"),
            key("A", n, "1"),
            key("A", n, "00"),
            key("B", n, "0"),
        ] {
            assert_ne!(other, key("A", n, "0"));
        }
        assert_eq!(key("A", "nonce-1", "0"), key("A", "nonce-1", "0"));
        // The parts are kept apart: moving text from one to the next is another key.
        assert_ne!(key("AB", "C", "0"), key("A", "BC", "0"));
        assert_ne!(key("A", "B:0", "0"), key("A", "B", "0:0"));
        assert_ne!(key("A", "nonce-1", "0"), key("A", "nonce-1", "1"));
    }
}
