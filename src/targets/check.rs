//! `lettergate targets check`: contacts everything a target names (the driver's endpoint and
//! its credentials, every capture endpoint's address, every MESH mailbox) and says what works,
//! before any scenario runs. Nothing is sent that an EHR would act on: FHIR is asked for its
//! `metadata`, MLLP and HTTP drivers are connected to, MESH mailboxes are signed in to.

use super::file::{RawAuth, RawMeshEndpoint, RawMeshPoll, RawTls};
use super::model::{Capture, Drive, HttpDrive};
use super::{secret, Target, TargetError};
use crate::protocol::limits::read_response_capped;
use crate::protocol::mesh::client::{MeshClient, MeshConfig};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// One thing checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLine {
    /// `drive.fhir`, `capture.mesh_poll A81001HC001`...
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

impl CheckLine {
    fn new(what: impl Into<String>, result: Result<String, CheckFailure>) -> CheckLine {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(e) => (false, crate::protocol::chain(&e)),
        };
        CheckLine {
            what: what.into(),
            ok,
            detail,
        }
    }
}

/// Why one thing a target names does not work.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Several secrets not set, said at once.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Secrets(Vec<TargetError>),
    /// An error said on an earlier line too, as its message.
    #[error("{0}")]
    Again(String),
    #[error(transparent)]
    Url(<reqwest::Url as std::str::FromStr>::Err),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not connect to {address}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {address} within 10 s")]
    NoAnswer { address: String },
    #[error("GET {url} failed")]
    Get {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("GET {url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url} did not answer FHIR: it answered {answered}")]
    NotFhir { url: String, answered: String },
    #[error("GET {url}: the answer could not be read")]
    Unread {
        url: String,
        #[source]
        source: crate::protocol::limits::ResponseError,
    },
    #[error("GET {url} answered a {found} instead of a CapabilityStatement")]
    NotCapabilities { url: String, found: String },
    #[error("{url} refused {mailbox}'s sign-in with status {status}")]
    SignIn {
        url: String,
        mailbox: String,
        status: u16,
    },
    #[error("could not reach {url} for {mailbox}")]
    Unreachable {
        url: String,
        mailbox: String,
        #[source]
        source: crate::protocol::mesh::client::TransportError,
    },
    #[error("cannot read the folder {}", .path.display())]
    Folder {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The TLS options of a target's MESH server, as the MESH client takes them.
pub fn tls_options(tls: Option<&RawTls>) -> crate::protocol::mesh::client::TlsOptions {
    crate::protocol::mesh::client::TlsOptions {
        client_cert_pem: tls.map(|t| t.client_cert.clone()),
        client_key_pem: tls.map(|t| t.client_key.clone()),
        ca_bundle_pem: tls.and_then(|t| t.ca_cert.clone()),
    }
}

/// An HTTP client for a target: no proxy (targets are named exactly), a timeout, and the
/// client certificate and CA when the file gives them.
pub fn http_client(
    tls: Option<&RawTls>,
    timeout: Duration,
) -> Result<reqwest::Client, TargetError> {
    tls_options(tls)
        .client_builder()?
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(TargetError::HttpClient)
}

/// The most of any answer lettergate reads from a target (`LETTERGATE_MAX_RESPONSE`).
fn max_response() -> u64 {
    crate::protocol::limits::Limits::current().max_response
}

/// The `Authorization` header value for a driver, fetching an OAuth2 token when configured.
pub async fn authorization(
    http: &reqwest::Client,
    auth: Option<&RawAuth>,
) -> Result<Option<String>, TargetError> {
    let Some(auth) = auth else { return Ok(None) };
    if let Some(env) = &auth.bearer_token_env {
        return Ok(Some(format!("Bearer {}", secret(env, "the bearer token")?)));
    }
    if let Some(o) = &auth.oauth2 {
        let id = secret(&o.client_id_env, "the OAuth2 client id")?;
        let key = secret(&o.client_secret_env, "the OAuth2 client secret")?;
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", id),
            ("client_secret", key),
        ];
        if let Some(s) = &o.scope {
            form.push(("scope", s.clone()));
        }
        let resp = http
            .post(&o.token_url.0)
            .form(&form)
            .send()
            .await
            .map_err(|source| TargetError::TokenUnanswered {
                url: o.token_url.0.clone(),
                source,
            })?;
        let status = resp.status();
        let bytes = read_response_capped(resp, max_response(), "LETTERGATE_MAX_RESPONSE")
            .await
            .map_err(|source| TargetError::TokenUnread {
                url: o.token_url.0.clone(),
                source,
            })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        return match v["access_token"].as_str() {
            Some(t) if status.is_success() => Ok(Some(format!("Bearer {t}"))),
            _ => Err(TargetError::NoAccessToken { status }),
        };
    }
    Ok(None)
}

fn can_listen(addr: SocketAddr) -> Result<String, CheckFailure> {
    TcpListener::bind(addr)
        .map(|l| {
            let bound = l.local_addr().map_or(addr, |a| a);
            format!("can listen on {bound}")
        })
        .map_err(|source| CheckFailure::Listen { addr, source })
}

async fn can_connect(address: &str) -> Result<String, CheckFailure> {
    let address = address.to_string();
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(&address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(format!("connected to {address}")),
        Ok(Err(source)) => Err(CheckFailure::Connect { address, source }),
        Err(_) => Err(CheckFailure::NoAnswer { address }),
    }
}

async fn fhir_metadata(
    http: &reqwest::Client,
    base: &str,
    auth: Option<&RawAuth>,
) -> Result<String, CheckFailure> {
    let authz = authorization(http, auth).await?;
    let url = format!("{base}/metadata");
    let mut req = http.get(&url).header("accept", "application/fhir+json");
    if let Some(a) = authz {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.map_err(|source| CheckFailure::Get {
        url: url.clone(),
        source,
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(CheckFailure::Status { url, status });
    }
    let content_type = content_type(&resp);
    let body = read_response_capped(resp, max_response(), "LETTERGATE_MAX_RESPONSE")
        .await
        .map_err(|source| CheckFailure::Unread {
            url: url.clone(),
            source,
        })?;
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => {
            return Err(CheckFailure::NotFhir {
                url,
                answered: answered(status, content_type.as_deref(), &body),
            })
        }
    };
    match v["resourceType"].as_str() {
        Some("CapabilityStatement") => Ok(format!(
            "GET {url}: CapabilityStatement, FHIR {}",
            v["fhirVersion"].as_str().unwrap_or("version not given")
        )),
        other => Err(CheckFailure::NotCapabilities {
            url,
            found: other.unwrap_or("document without resourceType").into(),
        }),
    }
}

/// A response's `Content-Type`, as sent.
pub fn content_type(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Reads a FHIR server's answer to a request (at most the response cap) and, when it is not
/// FHIR ([`is_fhir`]), says what it was.
pub async fn not_fhir(resp: reqwest::Response) -> Option<String> {
    let status = resp.status();
    let kind = content_type(&resp);
    match read_response_capped(resp, max_response(), "LETTERGATE_MAX_RESPONSE").await {
        Ok(body) if is_fhir(&body) => None,
        Ok(body) => Some(answered(status, kind.as_deref(), &body)),
        Err(e) => Some(format!(
            "{status} {}, and {e}",
            crate::protocol::text::escape_controls(kind.as_deref().unwrap_or("no content type"))
        )),
    }
}

/// What a server answered in place of FHIR, in a few words a console can show: its status,
/// content type and the start of its body, control characters escaped.
pub fn answered(status: reqwest::StatusCode, content_type: Option<&str>, body: &[u8]) -> String {
    use crate::protocol::text::{escape_controls, truncate};
    let text = String::from_utf8_lossy(body);
    let squeezed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let excerpt = escape_controls(&truncate(&squeezed, 100)).into_owned();
    let kind =
        escape_controls(&truncate(content_type.unwrap_or("no content type"), 60)).into_owned();
    if excerpt.is_empty() {
        format!("{status} {kind} with an empty body")
    } else {
        format!("{status} {kind}: `{excerpt}`")
    }
}

/// Whether a FHIR server's answer to a request is FHIR: an empty body (a server may answer
/// `201` without one), or a JSON or XML resource.
pub fn is_fhir(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let t = text.trim_start();
    if t.is_empty() {
        return true;
    }
    if t.starts_with('<') {
        return t.contains("xmlns=\"http://hl7.org/fhir\"");
    }
    serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v["resourceType"].is_string())
}

async fn mesh_signin(
    http: &reqwest::Client,
    url: &str,
    shared_key: &str,
    mailbox: &str,
    password: &str,
) -> Result<String, CheckFailure> {
    let client = MeshClient::new(
        http.clone(),
        MeshConfig {
            base_url: url.to_string(),
            mailbox: mailbox.to_string(),
            password: password.to_string(),
            shared_key: shared_key.to_string(),
        },
    );
    let (url, mailbox) = (url.to_string(), mailbox.to_string());
    match client.handshake().await {
        Ok(s) if (200..300).contains(&s) => Ok(format!("signed in to {mailbox} at {url}")),
        Ok(status) => Err(CheckFailure::SignIn {
            url,
            mailbox,
            status,
        }),
        Err(source) => Err(CheckFailure::Unreachable {
            url,
            mailbox,
            source,
        }),
    }
}

/// Checks everything `t` names. The lines come in the file's order: driver, then capture.
pub async fn run(t: &Target) -> Vec<CheckLine> {
    let mut lines = check_drive(&t.drive).await;
    let c = &t.capture;
    if let Some(m) = &c.mesh_endpoint {
        lines.extend(check_mesh_endpoint(m));
    }
    if let Some(listen) = c.http_endpoint {
        lines.push(CheckLine::new("capture.http_endpoint", can_listen(listen)));
    }
    if let Some(listen) = c.mllp {
        lines.push(CheckLine::new("capture.mllp", can_listen(listen)));
    }
    lines.extend(check_folder(c));
    if let Some(p) = &c.mesh_poll {
        lines.extend(check_mesh_poll(p).await);
    }
    lines
}

/// How the driver makes the EHR know a scenario's patients, said by `targets check` and at
/// the start of a run, so a request template is never taken to register them when it does not.
pub fn registration(d: &Drive) -> &'static str {
    match d {
        Drive::Fhir(_) => "each patient is registered (`PUT Patient`) before their first event, also when the file gives that event's request",
        Drive::Http(_) => "not registered by lettergate: only the file's request templates are sent, so they (or the EHR's own data) must give the EHR each patient; `{{patient_name}}`, `{{born}}`, `{{practice_ods}}` fill in their details",
        Drive::Hl7v2(_) => "each event's ADT message carries the patient (PID, PD1)",
    }
}

/// An error met once and said on every line it stops, as its message.
fn again(e: &TargetError) -> CheckFailure {
    CheckFailure::Again(crate::protocol::chain(e))
}

async fn check_drive(d: &Drive) -> Vec<CheckLine> {
    let plain = http_client(None, Duration::from_secs(15));
    match d {
        Drive::Fhir(f) => {
            let r = match &plain {
                Ok(http) => fhir_metadata(http, &f.base_url, f.auth.as_ref()).await,
                Err(e) => Err(again(e)),
            };
            vec![
                CheckLine::new("drive.fhir", r),
                CheckLine::new("drive.fhir patients", Ok(registration(d).into())),
            ]
        }
        Drive::Hl7v2(h) => vec![CheckLine::new("drive.hl7v2", can_connect(&h.address).await)],
        Drive::Http(h) => {
            let mut lines = check_http_drive(h, &plain).await;
            lines.insert(
                1,
                CheckLine::new("drive.http patients", Ok(registration(d).into())),
            );
            lines
        }
    }
}

async fn check_http_drive(
    h: &HttpDrive,
    plain: &Result<reqwest::Client, TargetError>,
) -> Vec<CheckLine> {
    let r = match reqwest::Url::parse(&h.base_url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default().to_string();
            let port = u.port_or_known_default().unwrap_or(80);
            can_connect(&format!("{host}:{port}")).await
        }
        Err(e) => Err(CheckFailure::Url(e)),
    };
    let mut lines = vec![CheckLine::new("drive.http", r)];
    if h.auth.is_some() {
        let r = match plain {
            Ok(http) => authorization(http, h.auth.as_ref())
                .await
                .map(|_| "credentials read".to_string())
                .map_err(CheckFailure::from),
            Err(e) => Err(again(e)),
        };
        lines.push(CheckLine::new("drive.http auth", r));
    }
    lines
}

fn check_mesh_endpoint(m: &RawMeshEndpoint) -> Vec<CheckLine> {
    let mut missing = Vec::new();
    if let Err(e) = secret(&m.shared_key_env, "the MESH shared key") {
        missing.push(e);
    }
    for (mailbox, env) in &m.mailboxes {
        if let Err(e) = secret(env, &format!("{mailbox}'s password")) {
            missing.push(e);
        }
    }
    let r = match missing.is_empty() {
        true => Ok(format!(
            "shared key and {} mailbox passwords read",
            m.mailboxes.len()
        )),
        false => Err(CheckFailure::Secrets(missing)),
    };
    vec![
        CheckLine::new("capture.mesh_endpoint", can_listen(m.listen.0)),
        CheckLine::new("capture.mesh_endpoint secrets", r),
    ]
}

fn check_folder(c: &Capture) -> Option<CheckLine> {
    let f = c.folder.as_ref()?;
    let r = match std::fs::read_dir(&f.path) {
        Ok(entries) => Ok(format!(
            "{} is readable ({} entries now)",
            f.path.display(),
            entries.count()
        )),
        Err(source) => Err(CheckFailure::Folder {
            path: f.path.clone(),
            source,
        }),
    };
    Some(CheckLine::new("capture.folder", r))
}

async fn check_mesh_poll(p: &RawMeshPoll) -> Vec<CheckLine> {
    let http = http_client(p.tls.as_ref(), Duration::from_secs(15));
    let key = secret(&p.shared_key_env, "the MESH shared key");
    let mut lines = Vec::new();
    for mb in p.mailboxes.iter().chain(p.sending_mailbox.iter()) {
        let what = format!("capture.mesh_poll {}", mb.id);
        let pw = secret(&mb.password_env, &format!("{}'s password", mb.id));
        let r = match (&http, &key, pw) {
            (Err(e), _, _) | (_, Err(e), _) => Err(again(e)),
            (_, _, Err(e)) => Err(e.into()),
            (Ok(http), Ok(key), Ok(pw)) => mesh_signin(http, &p.url.0, key, &mb.id, &pw).await,
        };
        lines.push(CheckLine::new(what, r));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_empty_answer_or_a_fhir_resource_is_fhir() {
        assert!(is_fhir(b""));
        assert!(is_fhir(br#"{"resourceType": "Patient", "id": "1"}"#));
        assert!(is_fhir(
            b"<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"1\"/></Patient>"
        ));
        assert!(!is_fhir(b"<html><body>Welcome</body></html>"));
        assert!(!is_fhir(br#"{"ok": true}"#));
        assert!(!is_fhir(b"\xff\xfe not text"));
        assert_eq!(
            answered(
                reqwest::StatusCode::OK,
                Some("text/html"),
                b"<p>\n  hi\x1b[31m</p>"
            ),
            "200 OK text/html: `<p> hi\\u{1b}[31m</p>`"
        );
        assert_eq!(
            answered(reqwest::StatusCode::OK, None, b""),
            "200 OK no content type with an empty body"
        );
    }

    #[tokio::test]
    async fn oauth2_client_credentials_come_from_the_environment_and_give_a_bearer_token() {
        use wiremock::matchers::{body_string_contains, method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .and(body_string_contains("grant_type=client_credentials"))
            .and(body_string_contains("client_id=lg-test-client"))
            .and(body_string_contains("client_secret=s+cret%26"))
            .and(body_string_contains("scope=events"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                serde_json::json!({"access_token": "tok-123", "token_type": "bearer"}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let yaml = format!(
            "oauth2: {{token_url: {}/oauth/token, client_id_env: LG_UNIT_OAUTH_ID, client_secret_env: LG_UNIT_OAUTH_SECRET, scope: events}}",
            server.uri()
        );
        let auth: RawAuth = yaml_serde::from_str(&yaml).unwrap();
        let http = http_client(None, Duration::from_secs(5)).unwrap();
        // A variable not set is said by name, and nothing is asked of the token endpoint.
        let missing = authorization(&http, Some(&auth))
            .await
            .unwrap_err()
            .to_string();
        assert!(missing.contains("LG_UNIT_OAUTH_ID"), "{missing}");
        std::env::set_var("LG_UNIT_OAUTH_ID", "lg-test-client");
        std::env::set_var("LG_UNIT_OAUTH_SECRET", "s cret&");
        let got = authorization(&http, Some(&auth)).await.unwrap();
        assert_eq!(got.as_deref(), Some("Bearer tok-123"));
    }
}
