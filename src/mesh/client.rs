//! A small MESH sender: the handshake and `POST /{mailbox}/outbox`, each request with its own
//! `NHSMESH` token. The first POST of a send is never retried, as in NHS Digital's
//! mesh-client, because a retried send can duplicate a letter.

use super::{auth, ACCEPT_V2, API_ROOT};

/// Where and as whom to send.
#[derive(Clone, Debug)]
pub struct MeshConfig {
    /// Base URL of the MESH server, such as `http://127.0.0.1:8700`.
    pub base_url: String,
    pub mailbox: String,
    pub password: String,
    pub shared_key: String,
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

/// What the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Accepted { message_id: String },
    Rejected { status: u16, body: String },
}

/// The request could not be made at all (connection refused, timeout).
#[derive(Debug, thiserror::Error)]
#[error("failed to reach MESH at {url}")]
pub struct TransportError {
    pub url: String,
    #[source]
    pub source: reqwest::Error,
}

#[derive(Clone, Debug)]
pub struct MeshClient {
    http: reqwest::Client,
    config: MeshConfig,
}

impl MeshClient {
    pub fn new(http: reqwest::Client, config: MeshConfig) -> MeshClient {
        MeshClient { http, config }
    }

    pub fn config(&self) -> &MeshConfig {
        &self.config
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

    /// `POST /{mailbox}`: says who we are; answers the status code.
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
            .header("mex-OSVersion", "0")
            .send()
            .await
            .map_err(|source| TransportError { url, source })?;
        Ok(resp.status().as_u16())
    }

    /// `POST /{mailbox}/outbox` with the `mex-*` headers of the message.
    pub async fn send(&self, msg: &OutboundMessage) -> Result<SendOutcome, TransportError> {
        let url = self.url("/outbox");
        let mut req = self
            .http
            .post(&url)
            .header("Authorization", self.auth())
            .header("Accept", ACCEPT_V2)
            .header("Content-Type", "application/octet-stream")
            .header("mex-To", &msg.to)
            .header("mex-WorkflowID", &msg.workflow_id)
            .header("mex-Content-Type", &msg.content_type)
            .body(msg.body.clone());
        for (name, value) in [
            ("mex-Subject", &msg.subject),
            ("mex-LocalID", &msg.local_id),
            ("mex-FileName", &msg.file_name),
        ] {
            if let Some(v) = value {
                req = req.header(name, v);
            }
        }
        let resp = req.send().await.map_err(|source| TransportError {
            url: url.clone(),
            source,
        })?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|source| TransportError { url, source })?;
        if status == 202 {
            let id = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message_id")?.as_str().map(str::to_string));
            if let Some(message_id) = id {
                return Ok(SendOutcome::Accepted { message_id });
            }
        }
        Ok(SendOutcome::Rejected { status, body })
    }

    /// `GET /{mailbox}/inbox`: the ids of the messages waiting.
    pub async fn list_inbox(&self) -> Result<Vec<String>, TransportError> {
        let url = self.url("/inbox");
        let resp = self.get(&url).await?;
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|source| TransportError { url, source })?;
        Ok(v["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect())
    }

    /// `GET /{mailbox}/inbox/{id}`: the `mex-*` headers (lower-case names) and the body.
    pub async fn download(&self, id: &str) -> Result<InboxMessage, TransportError> {
        let url = self.url(&format!("/inbox/{id}"));
        let resp = self.get(&url).await?;
        let headers = resp
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("mex-"))
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|source| TransportError { url, source })?
            .to_vec();
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

/// A message downloaded from an inbox.
#[derive(Clone, Debug)]
pub struct InboxMessage {
    pub id: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl InboxMessage {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}
