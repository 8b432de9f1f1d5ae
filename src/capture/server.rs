//! [`CaptureServer`]: lettergate's own MESH-compatible endpoint and HTTP capture, on one
//! loopback port per scenario run.
//!
//! It answers as MESH does (202 with a message id, 403 for bad authorisation, 417 code `12`
//! for an unregistered recipient) and records every request it is sent, accepted or refused:
//! nothing received is discarded. Any other path is an HTTP capture (a print service, a
//! document route) that answers 202.

use super::parse::parse_letter;
use super::store::{CaptureLog, CapturedLetter};
use crate::clock::Clock;
use crate::letter::Transport;
use crate::mesh::auth::{AuthError, Token};
use crate::mesh::{API_ROOT, CANARY_WORKFLOW};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// What the endpoint accepts.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub listen: SocketAddr,
    pub shared_key: String,
    /// Registered mailboxes and their passwords; only these may send or receive.
    pub mailboxes: BTreeMap<String, String>,
    /// Where the received messages of this run are written.
    pub dir: PathBuf,
}

struct Shared {
    config: CaptureConfig,
    clock: Clock,
    /// Taken by [`CaptureServer::finish`]; a request after that finds `None` and is refused.
    log: Mutex<Option<CaptureLog>>,
    nonces: Mutex<HashSet<(String, String)>>,
    counter: AtomicU64,
    /// The first failure to write to disk; a run with one cannot be trusted.
    write_error: Mutex<Option<String>>,
}

/// A running capture endpoint. [`CaptureServer::finish`] stops it and hands back the log.
pub struct CaptureServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
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
    Write(String),
    #[error("the capture endpoint stopped unexpectedly")]
    Crashed,
}

impl CaptureServer {
    pub async fn start(config: CaptureConfig, clock: Clock) -> Result<CaptureServer, CaptureError> {
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
        let addr = listener.local_addr().map_err(|source| CaptureError::Bind {
            addr: config.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            config,
            clock,
            log: Mutex::new(Some(log)),
            nonces: Mutex::new(HashSet::new()),
            counter: AtomicU64::new(0),
            write_error: Mutex::new(None),
        });
        let app = Router::new()
            .route(&format!("{API_ROOT}/{{mailbox}}"), post(handshake))
            .route(&format!("{API_ROOT}/{{mailbox}}/outbox"), post(send))
            .fallback(http_capture)
            .layer(DefaultBodyLimit::max(100 * 1024 * 1024))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(CaptureServer {
            addr,
            shared,
            stop: Some(tx),
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the endpoint, waits for requests under way, and returns what it captured.
    pub async fn finish(mut self) -> Result<CaptureLog, CaptureError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(|_| CaptureError::Crashed)?;
        if let Some(e) = self
            .shared
            .write_error
            .lock()
            .map_err(|_| CaptureError::Crashed)?
            .take()
        {
            return Err(CaptureError::Write(e));
        }
        // Connection tasks may still hold the shared state for a moment after shutdown, so the
        // log is taken out of it rather than the state unwrapped.
        let log = self
            .shared
            .log
            .lock()
            .map_err(|_| CaptureError::Crashed)?
            .take();
        log.ok_or(CaptureError::Crashed)
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
        let stamp = crate::clock::compact_utc_now();
        format!("{stamp}_{:06X}", n & 0xFF_FFFF)
    }

    /// Checks the token against the path's mailbox, its password and earlier nonces.
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
        let fresh = self
            .nonces
            .lock()
            .map(|mut n| {
                n.insert((
                    token.mailbox.clone(),
                    format!("{}:{}", token.nonce, token.nonce_count),
                ))
            })
            .unwrap_or(false);
        if !fresh {
            return Err(AuthError::ReusedNonce(token.nonce));
        }
        Ok(())
    }

    fn record(&self, letter: CapturedLetter, body: &[u8]) {
        let result = self
            .log
            .lock()
            .map_err(|e| e.to_string())
            .and_then(|mut guard| {
                let log = guard
                    .as_mut()
                    .ok_or("a message arrived after the capture was closed")?;
                if letter.workflow_id.as_deref() == Some(CANARY_WORKFLOW) && letter.accepted() {
                    log.canaries += 1;
                    return Ok(());
                }
                log.record(letter, body).map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            if let Ok(mut w) = self.write_error.lock() {
                w.get_or_insert(e);
            }
        }
    }
}

fn mesh_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"errorEvent": "SEND", "errorCode": code, "errorDescription": description})),
    )
        .into_response()
}

async fn handshake(
    State(s): State<Arc<Shared>>,
    Path(mailbox): Path<String>,
    headers: HeaderMap,
) -> Response {
    match s.authorise(&headers, &mailbox) {
        Ok(()) => {
            if let Some(log) = s.log.lock().ok().as_mut().and_then(|g| g.as_mut()) {
                log.handshakes += 1;
            }
            (StatusCode::OK, Json(json!({"mailbox_id": mailbox}))).into_response()
        }
        Err(e) => mesh_error(
            StatusCode::FORBIDDEN,
            "02",
            &format!("refused authorisation: {e}"),
        ),
    }
}

async fn send(
    State(s): State<Arc<Shared>>,
    Path(mailbox): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = s.clock.now();
    let to = header(&headers, "mex-to");
    let workflow = header(&headers, "mex-workflowid");
    let mex_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("mex-"))
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let auth = s.authorise(&headers, &mailbox);
    let refused = |status: StatusCode, code: &str, msg: String, description: Option<&str>| {
        let response = mesh_error(status, code, description.unwrap_or(&msg));
        (status.as_u16(), Some(msg), String::new(), response)
    };
    let (status, refusal, message_id, response) = match (&auth, &to, &workflow) {
        (Err(e), _, _) => refused(
            StatusCode::FORBIDDEN,
            "02",
            format!("refused authorisation: {e}"),
            None,
        ),
        (Ok(()), None, _) | (Ok(()), _, None) => refused(
            StatusCode::BAD_REQUEST,
            "06",
            "missing mex-To or mex-WorkflowID".into(),
            None,
        ),
        (Ok(()), Some(to), Some(_)) if !s.config.mailboxes.contains_key(to) => refused(
            StatusCode::EXPECTATION_FAILED,
            "12",
            format!("unregistered recipient mailbox `{to}` (MESH error 12)"),
            Some("Unregistered to address"),
        ),
        (Ok(()), Some(_), Some(_)) => {
            let id = s.message_id();
            let response = (StatusCode::ACCEPTED, Json(json!({"message_id": id}))).into_response();
            (202, None, id, response)
        }
    };
    let letter = CapturedLetter {
        seq: 0,
        transport: Transport::Mesh,
        received_at,
        message_id,
        from_mailbox: Some(mailbox.clone()),
        to_mailbox: to.clone(),
        workflow_id: workflow,
        route: format!("{mailbox} -> {}", to.unwrap_or_default()),
        status,
        refusal,
        auth_valid: auth.is_ok(),
        mex_headers,
        body_bytes: body.len(),
        body_file: PathBuf::new(),
        facts: parse_letter(Transport::Mesh, &body),
    };
    s.record(letter, &body);
    response
}

async fn http_capture(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_at = s.clock.now();
    let id = format!("HTTP-{:06}", s.counter.fetch_add(1, Ordering::SeqCst) + 1);
    let letter = CapturedLetter {
        seq: 0,
        transport: Transport::Http,
        received_at,
        message_id: id.clone(),
        from_mailbox: None,
        to_mailbox: None,
        workflow_id: None,
        route: format!("{method} {}", uri.path()),
        status: 202,
        refusal: None,
        auth_valid: false,
        mex_headers: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| vec![("content-type".to_string(), v.to_string())])
            .unwrap_or_default(),
        body_bytes: body.len(),
        body_file: PathBuf::new(),
        facts: parse_letter(Transport::Http, &body),
    };
    s.record(letter, &body);
    (StatusCode::ACCEPTED, Json(json!({"id": id}))).into_response()
}
