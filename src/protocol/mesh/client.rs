//! A MESH client as a real system speaks it: the handshake, sending (in chunks, optionally
//! gzipped, for large bodies), listing the inbox (following `links.next`), downloading (with
//! chunks and `Content-Encoding: gzip`) and acknowledging, each request with its own `NHSMESH`
//! token. The first POST of a send is never retried, as in NHS Digital's mesh-client, because
//! a retried send can duplicate a letter.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use lettergate::protocol::mesh::client::{MeshClient, MeshConfig, TlsOptions, TransferOptions};
//! let http = TlsOptions::default().http_client()?;
//! let config = MeshConfig {
//!     base_url: "https://mesh.example:443".into(),
//!     mailbox: "X26HC005".into(),
//!     password: std::env::var("MESH_PASSWORD")?,
//!     shared_key: std::env::var("MESH_SHARED_KEY")?,
//! };
//! let mesh = MeshClient::new(http, config)
//!     .with_transfer(TransferOptions { chunk_size: 20 * 1024 * 1024, compress: true });
//! for id in mesh.list_inbox().await? {
//!     let message = mesh.download(&id).await?;
//!     println!("{} bytes from {:?}", message.body.len(), message.header("mex-From"));
//! }
//! # Ok(()) }
//! ```

use super::{auth, MeshErrorCode, ACCEPT_V2, API_ROOT};
use crate::protocol::limits::{gunzip_capped, read_response_capped, Limits, ResponseError};
use std::io::Write;
use std::path::PathBuf;

/// Where and as whom to send.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// Base URL of the MESH server, such as `http://127.0.0.1:8700`.
    pub base_url: String,
    pub mailbox: String,
    pub password: String,
    pub shared_key: String,
}

/// The size of the chunks a large body is sent in unless configured: well under MESH's
/// 100 MB limit per request.
pub const DEFAULT_CHUNK_SIZE: usize = 20 * 1024 * 1024;

/// How bodies are put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferOptions {
    /// A body longer than this (before compression) is sent in chunks of this size.
    pub chunk_size: usize,
    /// Gzip each chunk on its own (`Content-Encoding: gzip`), as mesh-client does.
    pub compress: bool,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            compress: false,
        }
    }
}

/// TLS for an `https://` MESH: an optional client certificate and key (PEM files; MESH
/// authenticates the mailbox's system by its certificate) and an optional CA bundle to trust
/// besides the built-in roots.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    pub client_cert_pem: Option<PathBuf>,
    pub client_key_pem: Option<PathBuf>,
    pub ca_bundle_pem: Option<PathBuf>,
}

/// Why the TLS options could not be turned into an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to use {path} as PEM")]
    Pem {
        path: PathBuf,
        source: reqwest::Error,
    },
    #[error("a client certificate needs its key, and a key its certificate: give both")]
    HalfIdentity,
    #[error("failed to build the HTTP client")]
    Build(#[source] reqwest::Error),
}

impl TlsOptions {
    /// A reqwest builder with these options applied (rustls), for callers that add their own
    /// settings (timeouts, proxies).
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, TlsError> {
        let read = |path: &PathBuf| {
            read_regular(path).map_err(|source| TlsError::Read {
                path: path.clone(),
                source,
            })
        };
        let mut builder = reqwest::Client::builder().use_rustls_tls();
        if let Some(path) = &self.ca_bundle_pem {
            let certs = reqwest::Certificate::from_pem_bundle(&read(path)?).map_err(|source| {
                TlsError::Pem {
                    path: path.clone(),
                    source,
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&self.client_cert_pem, &self.client_key_pem) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert)?;
                pem.push(b'\n');
                pem.extend(read(key)?);
                let identity =
                    reqwest::Identity::from_pem(&pem).map_err(|source| TlsError::Pem {
                        path: cert.clone(),
                        source,
                    })?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => return Err(TlsError::HalfIdentity),
        }
        Ok(builder)
    }

    /// An HTTP client with these options.
    pub fn http_client(&self) -> Result<reqwest::Client, TlsError> {
        self.client_builder()?.build().map_err(TlsError::Build)
    }
}

/// One message to send.
#[derive(Clone, Debug)]
pub struct OutboundMessage {
    pub to: String,
    pub workflow_id: String,
    pub subject: Option<String>,
    pub local_id: Option<String>,
    pub file_name: Option<String>,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl OutboundMessage {
    /// A liveness message to `to` on [`crate::protocol::mesh::CANARY_WORKFLOW`]: a capture that records
    /// it proves the path letters take was alive, even when no letter was due.
    pub fn canary(to: &str) -> OutboundMessage {
        OutboundMessage {
            to: to.to_string(),
            workflow_id: crate::protocol::mesh::CANARY_WORKFLOW.into(),
            subject: Some("lettergate canary".into()),
            local_id: Some("CANARY".into()),
            file_name: None,
            content_type: "text/plain".into(),
            body: b"canary".to_vec(),
        }
    }
}

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted { message_id: String },
    Rejected { status: u16, body: String },
}

impl SendOutcome {
    /// The `errorCode` of a refusal's JSON body (`12` for an unregistered recipient), when it
    /// has one.
    pub fn error_code(&self) -> Option<MeshErrorCode> {
        let SendOutcome::Rejected { body, .. } = self else {
            return None;
        };
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["errorCode"].as_str().map(MeshErrorCode::parse)
    }
}

/// The request could not be made at all (connection refused, timeout).
#[derive(Debug, thiserror::Error)]
#[error("failed to reach MESH at {url}")]
pub struct TransportError {
    pub url: String,
    #[source]
    pub source: reqwest::Error,
}

/// Why an inbox request failed: MESH could not be reached, refused (403 for a bad token), or
/// answered something that is not MESH.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Unreachable(#[from] TransportError),
    #[error("MESH refused {url} with status {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("MESH's answer to {url} could not be read: {reason}")]
    BadAnswer { url: String, reason: String },
}

#[derive(Clone, Debug)]
pub struct MeshClient {
    http: reqwest::Client,
    config: MeshConfig,
    transfer: TransferOptions,
    /// A downloaded message is at most `max_message` (decompressed); any other answer at
    /// most `max_response`.
    limits: Limits,
}

/// Most pages of an inbox listing followed, so a server that keeps answering `links.next`
/// cannot keep a poll going for ever.
const MAX_PAGES: usize = 10_000;

impl MeshClient {
    pub fn new(http: reqwest::Client, config: MeshConfig) -> MeshClient {
        MeshClient {
            http,
            config,
            transfer: TransferOptions::default(),
            limits: Limits::current(),
        }
    }

    /// The same client reading answers within other limits.
    pub fn with_limits(mut self, limits: Limits) -> MeshClient {
        self.limits = limits;
        self
    }

    /// The same client with other chunk size and compression.
    pub fn with_transfer(mut self, transfer: TransferOptions) -> MeshClient {
        self.transfer = transfer;
        self
    }

    pub fn config(&self) -> &MeshConfig {
        &self.config
    }

    pub fn transfer(&self) -> TransferOptions {
        self.transfer
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}{API_ROOT}/{}{tail}",
            self.config.base_url.trim_end_matches('/'),
            self.config.mailbox
        )
    }

    fn auth(&self) -> String {
        auth::header(
            &self.config.shared_key,
            &self.config.mailbox,
            &self.config.password,
        )
    }

    /// `POST /{mailbox}`: says who we are with the `mex-Client*`/`mex-OS*` headers MESH
    /// requires; answers the status code.
    pub async fn handshake(&self) -> Result<u16, TransportError> {
        let url = self.url("");
        let resp = self
            .http
            .post(&url)
            .header("Authorization", self.auth())
            .header("Accept", ACCEPT_V2)
            .header(
                "mex-ClientVersion",
                concat!("lettergate-sim/", env!("CARGO_PKG_VERSION")),
            )
            .header("mex-OSName", std::env::consts::OS)
            .header("mex-OSArchitecture", std::env::consts::ARCH)
            .header("mex-OSVersion", "0")
            .send()
            .await
            .map_err(|source| TransportError { url, source })?;
        Ok(resp.status().as_u16())
    }

    /// Sends a message: in one `POST /{mailbox}/outbox`, or, when the body is longer than the
    /// chunk size, the first chunk there with `mex-Chunk-Range: 1:N` and each further chunk to
    /// `POST /{mailbox}/outbox/{id}/{n}`. With compression on, each chunk is gzipped on its
    /// own. A refused chunk makes the whole send `Rejected`, naming the chunk.
    pub async fn send(&self, msg: &OutboundMessage) -> Result<SendOutcome, TransportError> {
        let size = self.transfer.chunk_size.max(1);
        let chunks: Vec<&[u8]> = if msg.body.is_empty() {
            vec![&msg.body[..]]
        } else {
            msg.body.chunks(size).collect()
        };
        let total = chunks.len();
        let url = self.url("/outbox");
        let mut req = self
            .http
            .post(&url)
            .header("Authorization", self.auth())
            .header("Accept", ACCEPT_V2)
            .header("Content-Type", "application/octet-stream")
            .header("mex-To", &msg.to)
            .header("mex-WorkflowID", &msg.workflow_id)
            .header("mex-Content-Type", &msg.content_type);
        if total > 1 {
            req = req.header("mex-Chunk-Range", format!("1:{total}"));
        }
        for (name, value) in [
            ("mex-Subject", &msg.subject),
            ("mex-LocalID", &msg.local_id),
            ("mex-FileName", &msg.file_name),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        let (status, body) = self.post_chunk(req, &url, chunks[0]).await?;
        let message_id = (status == 202)
            .then(|| {
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("message_id")?.as_str().map(str::to_string))
            })
            .flatten();
        let Some(message_id) = message_id else {
            return Ok(SendOutcome::Rejected { status, body });
        };
        for (index, chunk) in chunks.iter().enumerate().skip(1) {
            let n = index + 1;
            let url = self.url(&format!("/outbox/{message_id}/{n}"));
            let req = self
                .http
                .post(&url)
                .header("Authorization", self.auth())
                .header("Accept", ACCEPT_V2)
                .header("Content-Type", "application/octet-stream")
                .header("mex-Chunk-Range", format!("{n}:{total}"));
            let (status, body) = self.post_chunk(req, &url, chunk).await?;
            if status != 202 && status != 200 {
                return Ok(SendOutcome::Rejected {
                    status,
                    body: format!("chunk {n} of {total} of message {message_id}: {body}"),
                });
            }
        }
        Ok(SendOutcome::Accepted { message_id })
    }

    /// Posts one chunk (gzipped when configured); answers the status and the body's text.
    async fn post_chunk(
        &self,
        mut req: reqwest::RequestBuilder,
        url: &str,
        chunk: &[u8],
    ) -> Result<(u16, String), TransportError> {
        req = if self.transfer.compress {
            req.header("Content-Encoding", "gzip").body(gzip(chunk))
        } else {
            req.body(chunk.to_vec())
        };
        let err = |source| TransportError {
            url: url.to_string(),
            source,
        };
        let resp = req.send().await.map_err(err)?;
        let status = resp.status().as_u16();
        let body =
            match read_response_capped(resp, self.limits.max_response, "LETTERGATE_MAX_RESPONSE")
                .await
            {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(ResponseError::Read(source)) => return Err(err(source)),
                Err(too_large) => format!("({too_large})"),
            };
        Ok((status, body))
    }

    /// `GET /{mailbox}/inbox`: the ids of the messages waiting, following `links.next` over
    /// every page. A refusal (403 for a bad token) is an error, never an empty inbox.
    pub async fn list_inbox(&self) -> Result<Vec<String>, MeshError> {
        let mut url = self.url("/inbox");
        let mut ids = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.get(&url).await?;
            let bytes = read_ok(
                resp,
                &url,
                self.limits.max_response,
                "LETTERGATE_MAX_RESPONSE",
            )
            .await?;
            let page: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| MeshError::BadAnswer {
                    url: url.clone(),
                    reason: format!("not JSON: {e}"),
                })?;
            let messages = page["messages"]
                .as_array()
                .ok_or_else(|| MeshError::BadAnswer {
                    url: url.clone(),
                    reason: "no `messages` list".into(),
                })?;
            ids.extend(
                messages
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_string)),
            );
            match page["links"]["next"].as_str() {
                Some(next) if !next.is_empty() => url = self.resolve(&url, next)?,
                _ => return Ok(ids),
            }
        }
        Err(MeshError::BadAnswer {
            url,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// A `links.next` is a path (`/messageexchange/...?continue_from=...`) or a full URL.
    fn resolve(&self, current: &str, next: &str) -> Result<String, MeshError> {
        reqwest::Url::parse(current)
            .and_then(|base| base.join(next))
            .map(String::from)
            .map_err(|e| MeshError::BadAnswer {
                url: current.to_string(),
                reason: format!("links.next `{next}` is not a URL: {e}"),
            })
    }

    /// `GET /{mailbox}/inbox/{id}`, then `GET /{mailbox}/inbox/{id}/{n}` for each further chunk
    /// (`mex-Total-Chunks`, or `mex-Chunk-Range: 1:N`): the `mex-*` headers (lower-case names)
    /// of the first chunk and the whole body, each chunk un-gzipped when it came with
    /// `Content-Encoding: gzip`.
    pub async fn download(&self, id: &str) -> Result<InboxMessage, MeshError> {
        let url = self.url(&format!("/inbox/{id}"));
        let resp = self.get(&url).await?;
        let headers: std::collections::BTreeMap<String, String> = resp
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("mex-"))
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let max = self.limits.max_message;
        let mut body = read_chunk(resp, &url, &self.limits).await?;
        let total = total_chunks(&headers);
        for n in 2..=total {
            let url = self.url(&format!("/inbox/{id}/{n}"));
            let resp = self.get(&url).await?;
            body.extend(read_chunk(resp, &url, &self.limits).await?);
            if body.len() as u64 > max {
                return Err(MeshError::BadAnswer {
                    url,
                    reason: format!(
                        "message {id} is larger than {} with chunk {n} of {total} (LETTERGATE_MAX_MESSAGE)",
                        crate::protocol::limits::show_size(max)
                    ),
                });
            }
        }
        Ok(InboxMessage {
            id: id.to_string(),
            headers,
            body,
        })
    }

    /// `PUT /{mailbox}/inbox/{id}/status/acknowledged`: the message is taken.
    pub async fn acknowledge(&self, id: &str) -> Result<u16, TransportError> {
        let url = self.url(&format!("/inbox/{id}/status/acknowledged"));
        let resp = self
            .http
            .put(&url)
            .header("Authorization", self.auth())
            .header("Accept", ACCEPT_V2)
            .send()
            .await
            .map_err(|source| TransportError { url, source })?;
        Ok(resp.status().as_u16())
    }

    /// A GET with no `Accept-Encoding`: reqwest is built without its gzip feature, so MESH
    /// sends bodies as stored; a gzipped one is decoded by [`read_chunk`].
    async fn get(&self, url: &str) -> Result<reqwest::Response, TransportError> {
        self.http
            .get(url)
            .header("Authorization", self.auth())
            .header("Accept", ACCEPT_V2)
            .send()
            .await
            .map_err(|source| TransportError {
                url: url.to_string(),
                source,
            })
    }
}

/// How many chunks a message has, from its first chunk's headers; 1 when not said.
fn total_chunks(headers: &std::collections::BTreeMap<String, String>) -> usize {
    let from_range = || {
        headers
            .get("mex-chunk-range")
            .and_then(|r| r.split_once(':'))
            .and_then(|(_, n)| n.trim().parse::<usize>().ok())
    };
    headers
        .get("mex-total-chunks")
        .and_then(|n| n.trim().parse::<usize>().ok())
        .or_else(from_range)
        .unwrap_or(1)
}

/// The body of a successful (200, or 206 for a chunk with more to follow) answer, at most
/// `cap` bytes.
async fn read_ok(
    resp: reqwest::Response,
    url: &str,
    cap: u64,
    variable: &'static str,
) -> Result<Vec<u8>, MeshError> {
    let status = resp.status().as_u16();
    let bytes = read_response_capped(resp, cap, variable)
        .await
        .map_err(|e| match e {
            ResponseError::Read(source) => MeshError::Unreachable(TransportError {
                url: url.to_string(),
                source,
            }),
            too_large => MeshError::BadAnswer {
                url: url.to_string(),
                reason: too_large.to_string(),
            },
        })?;
    if status != 200 && status != 206 {
        return Err(MeshError::Refused {
            url: url.to_string(),
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok(bytes.to_vec())
}

/// One downloaded chunk, un-gzipped if it says `Content-Encoding: gzip`, within the message
/// cap and the compression ratio.
async fn read_chunk(
    resp: reqwest::Response,
    url: &str,
    limits: &Limits,
) -> Result<Vec<u8>, MeshError> {
    let gzipped = resp
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
    let bytes = read_ok(resp, url, limits.max_message, "LETTERGATE_MAX_MESSAGE").await?;
    if gzipped {
        gunzip_capped(&bytes, limits).map_err(|e| MeshError::BadAnswer {
            url: url.to_string(),
            reason: format!("the gzip body cannot be decompressed: {e}"),
        })
    } else {
        Ok(bytes)
    }
}

/// Gzips `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// A message downloaded from an inbox.
#[derive(Clone, Debug)]
pub struct InboxMessage {
    pub id: String,
    /// The `mex-*` headers, names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl InboxMessage {
    /// A `mex-*` header by name, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// `mex-MessageType`: `DATA` or `REPORT`.
    pub fn message_type(&self) -> Option<&str> {
        self.header("mex-MessageType")
    }

    /// True for a MESH `REPORT` (a non-delivery or error report about a sent message).
    pub fn is_report(&self) -> bool {
        self.message_type()
            .is_some_and(|t| t.eq_ignore_ascii_case("REPORT"))
    }

    /// `mex-LinkedMsgID`: the message a REPORT is about.
    pub fn linked_message_id(&self) -> Option<&str> {
        self.header("mex-LinkedMsgID")
    }

    /// `mex-StatusCode`, such as `14` (not collected within 5 days).
    pub fn status_code(&self) -> Option<&str> {
        self.header("mex-StatusCode")
    }

    /// `mex-StatusCode` as a code; an absent one reads as the empty code, as a report shows
    /// it.
    pub fn report_code(&self) -> MeshErrorCode {
        MeshErrorCode::parse(self.status_code().unwrap_or(""))
    }

    /// `mex-StatusDescription`.
    pub fn status_description(&self) -> Option<&str> {
        self.header("mex-StatusDescription")
    }
}

/// Reads a certificate or key a target file names: a regular file only, opened without
/// blocking, so a FIFO given as a certificate is refused rather than waited on. (The same rule
/// as `lettergate::files::read_regular`, which this lowest layer cannot import.)
fn read_regular(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NONBLOCK);
    }
    let mut f = o.open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "is not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {

    #[cfg(unix)]
    #[test]
    fn a_fifo_given_as_a_certificate_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ca.pem");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let tls = TlsOptions {
            ca_bundle_pem: Some(fifo),
            ..TlsOptions::default()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(tls.client_builder().map(drop).map_err(|e| e.to_string()));
        });
        let built = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("blocked on a FIFO");
        assert!(built.unwrap_err().starts_with("failed to read"));
    }

    use super::*;

    #[test]
    fn total_chunks_come_from_either_header_and_default_to_one() {
        let h = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(total_chunks(&h(&[("mex-total-chunks", "3")])), 3);
        assert_eq!(total_chunks(&h(&[("mex-chunk-range", "1:4")])), 4);
        assert_eq!(total_chunks(&h(&[("mex-chunk-range", "1:0")])), 0);
        assert_eq!(total_chunks(&h(&[])), 1);
        assert_eq!(total_chunks(&h(&[("mex-total-chunks", "x")])), 1);
    }

    #[test]
    fn half_a_client_identity_is_refused() {
        let tls = TlsOptions {
            client_cert_pem: Some("cert.pem".into()),
            ..TlsOptions::default()
        };
        assert!(matches!(tls.client_builder(), Err(TlsError::HalfIdentity)));
        assert!(TlsOptions::default().http_client().is_ok());
    }
}
