//! The YAML shape of a target file, as serde reads it. Strict like scenarios: unknown fields are
//! errors with did-you-mean, and each checked value carries its own line and column.
//!
//! Secrets never appear in the file: every credential is the *name* of an environment variable
//! (`token_env`, `password_env`, `shared_key_env`...), read when the target is used.

use crate::protocol::clock::Span;
use crate::protocol::de::parse_scalar;
use crate::protocol::letter::{EventKind, LetterKind, Transport};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Names the target in reports, and the folder of its snapshots (`snapshots/<name>/`).
    pub name: TargetName,
    #[serde(default)]
    pub description: Option<String>,
    /// The guard: lettergate drives only systems that declare themselves not production.
    #[serde(default)]
    pub non_production: Option<bool>,
    pub drive: RawDrive,
    pub capture: RawCapture,
    #[serde(default, rename = "match")]
    pub match_by: MatchBy,
    /// The clinical time the EHR is told: `now` (the default), `scenario`, or
    /// `{scenario: {not_after: YYYY-MM-DD}}` (README, "Clinical time").
    #[serde(default)]
    pub clock: TargetClock,
    #[serde(default)]
    pub wait: RawWait,
    /// How many scenarios may be driven at once against this target (README, "Scenarios in
    /// parallel").
    #[serde(default)]
    pub parallel: RawParallel,
    /// Severity overrides for kinds of finding, for every scenario run against this target.
    #[serde(default)]
    pub severity: BTreeMap<crate::expect::FindingKind, crate::expect::Severity>,
    /// `false`: the EHR does not collect ITK3 acknowledgements, so no scenario run against
    /// this target checks them (said once here, not in every scenario).
    #[serde(default)]
    pub acknowledgements: Option<bool>,
    /// Rows of the letter table of this EHR's own: local codes for a kind (README, "When
    /// lettergate cannot read your EHR's letters").
    #[serde(default)]
    pub letters: Vec<RawLetterRow>,
    /// How to read bodies that are not ITK3, HL7 MDM or lettergate's print request, per
    /// transport and route.
    #[serde(default)]
    pub readers: Vec<RawReader>,
}

/// A row of the letter table that a target adds: codes that say a letter is of `kind`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLetterRow {
    pub kind: KindName,
    /// `Composition.type` codes (or TXA-2 codes of an MDM message, or what a reader's `kind:`
    /// path holds).
    #[serde(default)]
    pub document_types: Vec<String>,
    /// ITK3 `MessageHeader.event` codes.
    #[serde(default)]
    pub itk3_events: Vec<String>,
}

/// A letter kind's name (`clinic_letter`, `discharge_summary`...), with did-you-mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindName(pub LetterKind);

/// A letter kind's name that names no kind, with the closest one when there is one.
#[derive(Debug, thiserror::Error)]
pub enum UnknownKind {
    #[error("unknown letter kind `{given}`; did you mean `{best}`?")]
    DidYouMean { given: String, best: &'static str },
    #[error("unknown letter kind `{given}`; known kinds: {known}")]
    Known { given: String, known: String },
}

impl KindName {
    fn parse(s: &str) -> Result<KindName, UnknownKind> {
        LetterKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .map(KindName)
            .ok_or_else(|| {
                let names = LetterKind::ALL.map(|k| k.name());
                match crate::scenario::diagnostic::closest(s, names) {
                    Some(best) => UnknownKind::DidYouMean {
                        given: s.to_string(),
                        best,
                    },
                    None => UnknownKind::Known {
                        given: s.to_string(),
                        known: names.join(", "),
                    },
                }
            })
    }
}

impl<'de> Deserialize<'de> for KindName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a letter kind", KindName::parse)
    }
}

/// How to read the letters that come on one transport (and route): where in the body each
/// fact is. Paths are those `match: {field: …}` takes ([`FieldPath`]).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReader {
    /// The transport whose letters it reads: `http`, `mesh`, `mllp` or `folder`.
    pub on: TransportName,
    /// Only letters whose route contains this text (`POST /api/v2/print-jobs`, a mailbox, a
    /// file name); every letter on the transport when absent.
    #[serde(default)]
    pub route: Option<String>,
    pub nhs_number: FieldPath,
    /// Who the letter is for: a path to a practice's ODS code (or the word `patient`), or
    /// `patient` for a capture where every letter goes to the patient. May be left out when
    /// `address` is given.
    #[serde(default)]
    pub recipient: Option<RecipientSource>,
    /// A path to the postal address the letter is posted to (a print service's addressee):
    /// a letter with an address there and no practice at `recipient` goes to the patient.
    #[serde(default)]
    pub address: Option<FieldPath>,
    /// What kind of letter it is: a path to a document type code (looked up in the letter
    /// table, with the target's own `letters:`) or a kind's name, or a kind's name.
    pub kind: KindSource,
    #[serde(default)]
    pub date: Option<FieldPath>,
    #[serde(default)]
    pub status: Option<FieldPath>,
    /// The letter's own id: duplicates are told by it.
    #[serde(default)]
    pub document_id: Option<FieldPath>,
    /// The sender's reference for the letter, which `match: local_id` looks at.
    #[serde(default)]
    pub reference: Option<FieldPath>,
}

/// A transport's name, with did-you-mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportName(pub Transport);

impl<'de> Deserialize<'de> for TransportName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const ALL: [Transport; 4] = [
            Transport::Http,
            Transport::Mesh,
            Transport::Mllp,
            Transport::Folder,
        ];
        parse_scalar(d, "a transport", |s| {
            ALL.into_iter()
                .find(|t| t.to_string() == s)
                .map(TransportName)
                .ok_or_else(|| {
                    let names = ALL.map(|t| t.to_string());
                    match crate::scenario::diagnostic::closest(s, names.iter().map(String::as_str))
                    {
                        Some(best) => format!("unknown transport `{s}`; did you mean `{best}`?"),
                        None => format!("unknown transport `{s}`; use http, mesh, mllp or folder"),
                    }
                })
        })
    }
}

/// Where a reader finds whom a letter is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientSource {
    /// Every letter it reads goes to the patient (a print service).
    Patient,
    /// The value here: an ODS code, or `patient` (in any case).
    At(FieldPath),
}

impl<'de> Deserialize<'de> for RecipientSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a recipient", |s| match s {
            "patient" => Ok(RecipientSource::Patient),
            _ => FieldPath::parse(s).map(RecipientSource::At).map_err(|e| {
                format!("{e}; or write `patient` when every letter read here goes to the patient")
            }),
        })
    }
}

/// Where a reader finds what kind a letter is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindSource {
    /// Every letter it reads is of this kind.
    Fixed(LetterKind),
    /// The value here: a document type code or a kind's name.
    At(FieldPath),
}

impl<'de> Deserialize<'de> for KindSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a letter kind or a field path", |s| {
            if let Ok(path) = FieldPath::parse(s) {
                return Ok(KindSource::At(path));
            }
            KindName::parse(s)
                .map(|k| KindSource::Fixed(k.0))
                .map_err(|e| {
                    format!("{e}; or give the field path that holds the kind or document type")
                })
        })
    }
}

/// Letters, digits, `-` and `_`: it becomes a folder name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetName(pub String);

impl<'de> Deserialize<'de> for TargetName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a target name", |s| {
            let ok = !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            match ok {
                true => Ok(TargetName(s.to_string())),
                false => Err(format!(
                    "invalid target name `{s}`: use letters, digits, `-` and `_` (it names the snapshot folder)"
                )),
            }
        })
    }
}

/// How lettergate tells the system under test what happened: exactly one driver.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrive {
    #[serde(default)]
    pub fhir: Option<RawFhirDriver>,
    #[serde(default)]
    pub hl7v2: Option<RawHl7Driver>,
    #[serde(default)]
    pub http: Option<RawHttpDriver>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFhirDriver {
    /// The FHIR R4 base, e.g. `https://epr-staging.example.nhs.uk/fhir`.
    pub base_url: HttpUrl,
    #[serde(default)]
    pub auth: Option<RawAuth>,
    /// Per event kind, a request that replaces the default mapping.
    #[serde(default)]
    pub requests: BTreeMap<EventName, RawRequest>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHl7Driver {
    /// Where the EHR's MLLP listener is, `host:port`.
    pub address: Address,
    #[serde(default = "lettergate")]
    pub sending_application: String,
    #[serde(default = "lettergate")]
    pub sending_facility: String,
    #[serde(default)]
    pub receiving_application: Option<String>,
    #[serde(default)]
    pub receiving_facility: Option<String>,
    /// How long to wait for each ACK.
    #[serde(default = "thirty_seconds")]
    pub ack_timeout: SpanValue,
}

fn lettergate() -> String {
    "LETTERGATE".into()
}

fn thirty_seconds() -> SpanValue {
    SpanValue(Span(30))
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttpDriver {
    pub base_url: HttpUrl,
    #[serde(default)]
    pub auth: Option<RawAuth>,
    /// One request per event kind the scenarios use; an event with no request is an error
    /// before anything is sent.
    pub requests: BTreeMap<EventName, RawRequest>,
}

/// An event kind's name (`outpatient_attendance`, `discharge`...), with did-you-mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventName(pub EventKind);

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "an event kind", |s| {
            EventKind::ALL
                .into_iter()
                .find(|k| k.name() == s)
                .map(EventName)
                .ok_or_else(|| {
                    let names = EventKind::ALL.map(|k| k.name());
                    match crate::scenario::diagnostic::closest(s, names) {
                        Some(best) => format!("unknown event kind `{s}`; did you mean `{best}`?"),
                        None => format!(
                            "unknown event kind `{s}`; known event kinds: {}",
                            names.join(", ")
                        ),
                    }
                })
        })
    }
}

/// A request template. `{{placeholder}}`s are filled from the event (see README, "Testing your
/// staging EHR"); an unknown placeholder is an error when the file is loaded.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    #[serde(default = "post")]
    pub method: Method,
    pub path: Template,
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    #[serde(default)]
    pub body: Option<Template>,
}

fn post() -> Method {
    Method("POST".into())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(pub String);

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "an HTTP method", |s| {
            let up = s.to_ascii_uppercase();
            match up.as_str() {
                "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => Ok(Method(up)),
                _ => Err(format!(
                    "unknown HTTP method `{s}`; use GET, POST, PUT, PATCH or DELETE"
                )),
            }
        })
    }
}

/// The placeholders a request template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "nhs_number",
    "patient_name",
    "family_name",
    "given_name",
    "born",
    "practice_ods",
    "event",
    "at",
    "at_hl7",
    "clinical_at",
    "clinical_at_hl7",
    "clinical_date",
    "to_practice_ods",
    "local_id",
    "scenario",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub String);

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a text with {{placeholders}}", |s| {
            for name in placeholders(s) {
                if !PLACEHOLDERS.contains(&name) {
                    let hint = match crate::scenario::diagnostic::closest(
                        name,
                        PLACEHOLDERS.iter().copied(),
                    ) {
                        Some(best) => format!("did you mean `{{{{{best}}}}}`?"),
                        None => format!("known placeholders: {}", PLACEHOLDERS.join(", ")),
                    };
                    return Err(format!("unknown placeholder `{{{{{name}}}}}`; {hint}"));
                }
            }
            Ok(Template(s.to_string()))
        })
    }
}

/// The names between `{{` and `}}` in `text`.
pub fn placeholders(text: &str) -> impl Iterator<Item = &str> {
    text.split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(name, _)| name.trim()))
}

/// Bearer token or OAuth2 client credentials, each read from environment variables.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    #[serde(default)]
    pub bearer_token_env: Option<EnvName>,
    #[serde(default)]
    pub oauth2: Option<RawOAuth2>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth2 {
    pub token_url: HttpUrl,
    pub client_id_env: EnvName,
    pub client_secret_env: EnvName,
    #[serde(default)]
    pub scope: Option<String>,
}

/// The name of an environment variable: upper-case letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvName(pub String);

impl<'de> Deserialize<'de> for EnvName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "an environment variable's name", |s| {
            let ok = !s.is_empty()
                && !s.starts_with(|c: char| c.is_ascii_digit())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            match ok {
                true => Ok(EnvName(s.to_string())),
                false => Err(format!(
                    "`{s}` is not an environment variable's name (like `EPR_TOKEN`): credentials are never written in a target file, only the name of the variable that holds them"
                )),
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub String);

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(
            d,
            "an http:// or https:// URL",
            |s| match reqwest::Url::parse(s) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    Ok(HttpUrl(s.trim_end_matches('/').to_string()))
                }
                Ok(_) => Err(format!("`{s}` is not an http:// or https:// URL")),
                Err(e) => Err(format!("`{s}` is not a URL: {e}")),
            },
        )
    }
}

/// `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(pub String);

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "host:port", |s| match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address(s.to_string()))
            }
            _ => Err(format!("`{s}` is not host:port (like `127.0.0.1:2575`)")),
        })
    }
}

/// An address lettergate listens on. Loopback unless the file says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "ip:port to listen on", |s| {
            s.parse::<SocketAddr>().map(Listen).map_err(|_| {
                format!("`{s}` is not ip:port to listen on (like `127.0.0.1:8443`; port 0 picks a free one)")
            })
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanValue(pub Span);

impl<'de> Deserialize<'de> for SpanValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a duration like 30s, 10m, 2h or 1d", |s| {
            Span::parse(s).map(SpanValue)
        })
    }
}

/// Where the target's letters come out: any of these, at least one.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    /// lettergate's own MESH-compatible server (and HTTP catch-all), which the EHR sends to.
    #[serde(default)]
    pub mesh_endpoint: Option<RawMeshEndpoint>,
    /// lettergate's HTTP capture on its own address (any path; JSON, XML or PDF bodies).
    #[serde(default)]
    pub http_endpoint: Option<RawListenOnly>,
    /// An MLLP listener that answers ACKs, for HL7 v2 MDM messages.
    #[serde(default)]
    pub mllp: Option<RawListenOnly>,
    /// A folder the EHR drops letters into.
    #[serde(default)]
    pub folder: Option<RawFolder>,
    /// A real MESH server whose recipient mailboxes lettergate signs in to.
    #[serde(default)]
    pub mesh_poll: Option<RawMeshPoll>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMeshEndpoint {
    pub listen: Listen,
    pub shared_key_env: EnvName,
    /// Mailbox id → the environment variable holding its password. The EHR's sending mailbox
    /// and every recipient mailbox.
    pub mailboxes: BTreeMap<String, EnvName>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListenOnly {
    pub listen: Listen,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFolder {
    pub path: PathBuf,
    #[serde(default = "two_seconds")]
    pub poll_interval: SpanValue,
}

fn two_seconds() -> SpanValue {
    SpanValue(Span(2))
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMeshPoll {
    pub url: HttpUrl,
    pub shared_key_env: EnvName,
    /// The recipient mailboxes to collect from.
    pub mailboxes: Vec<RawMailbox>,
    /// The EHR's sending mailbox, read for REPORTs (non-delivery and errors).
    #[serde(default)]
    pub sending_mailbox: Option<RawMailbox>,
    /// Acknowledge what was collected (the default), or leave it in place.
    #[serde(default = "yes")]
    pub acknowledge: bool,
    #[serde(default)]
    pub tls: Option<RawTls>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    pub id: String,
    pub password_env: EnvName,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM files: the client certificate and its key, and the CA that signs the server.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    #[serde(default)]
    pub ca_cert: Option<PathBuf>,
}

/// How a captured letter is matched to the scenario it belongs to (see
/// [`super::matching`]): `match: nhs_number` (the default), `match: local_id`, or
/// `match: {field: PATH}` / `match: {field: [PATH, ...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MatchBy {
    /// The NHS number in the letter.
    #[default]
    NhsNumber,
    /// The local id lettergate drove the event with, which the EHR carries into the letter
    /// (the document's Encounter identifier, HL7 PV1-19, `mex-LocalID`, a print request's
    /// `reference`, a dropped file's name).
    LocalId,
    /// The value at one of these places in the letter: a local id or an NHS number.
    Field(Vec<FieldPath>),
}

impl MatchBy {
    pub fn name(&self) -> &'static str {
        match self {
            MatchBy::NhsNumber => "nhs_number",
            MatchBy::LocalId => "local_id",
            MatchBy::Field(_) => "field",
        }
    }
}

impl<'de> Deserialize<'de> for MatchBy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MatchBy;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`nhs_number`, `local_id` or `{field: PATH}`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MatchBy, E> {
                match s {
                    "nhs_number" => Ok(MatchBy::NhsNumber),
                    "local_id" => Ok(MatchBy::LocalId),
                    "field" => Err(E::custom(
                        "`match: field` needs the path: write `match: {field: PATH}`, e.g. `match: {field: Encounter.identifier.value}`",
                    )),
                    other => {
                        let names = ["nhs_number", "local_id", "field"];
                        Err(E::custom(match crate::scenario::diagnostic::closest(other, names) {
                            Some(best) => format!("unknown way to match letters `{other}`; did you mean `{best}`?"),
                            None => format!("unknown way to match letters `{other}`; known ways: nhs_number, local_id, {{field: PATH}}"),
                        }))
                    }
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<MatchBy, A::Error> {
                let key: String = map.next_key()?.ok_or_else(|| {
                    serde::de::Error::custom("`match:` is empty: write `match: {field: PATH}`")
                })?;
                if key != "field" {
                    return Err(serde::de::Error::custom(format!(
                        "unknown key `{key}` under `match:`; did you mean `field`?"
                    )));
                }
                let paths: FieldPaths = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(serde::de::Error::custom(
                        "`match:` takes one key, `field:` (give several paths as a list)",
                    ));
                }
                Ok(MatchBy::Field(paths.0))
            }
        }
        d.deserialize_any(V)
    }
}

/// The clinical time a target's events carry (`clock:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TargetClock {
    /// Each event at the moment it is driven.
    #[default]
    Now,
    /// Each event at its time in the scenario, the scenario moved as a whole onto the most
    /// recent days that keep its calendar ([`crate::protocol::calendar::scenario_shift`]), its
    /// last event not after the end of `not_after` (a day in England), else not after now.
    Scenario { not_after: Option<time::Date> },
}

impl TargetClock {
    pub fn name(&self) -> &'static str {
        match self {
            TargetClock::Now => "now",
            TargetClock::Scenario { .. } => "scenario",
        }
    }
}

impl<'de> Deserialize<'de> for TargetClock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct ScenarioClock {
            not_after: String,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TargetClock;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`now`, `scenario` or `{scenario: {not_after: YYYY-MM-DD}}`")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TargetClock, E> {
                match s {
                    "now" => Ok(TargetClock::Now),
                    "scenario" => Ok(TargetClock::Scenario { not_after: None }),
                    other => Err(E::custom(
                        match crate::scenario::diagnostic::closest(other, ["now", "scenario"]) {
                            Some(best) => {
                                format!("unknown clock `{other}`; did you mean `{best}`?")
                            }
                            None => format!("unknown clock `{other}`; write `now` or `scenario`"),
                        },
                    )),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TargetClock, A::Error> {
                use serde::de::Error;
                let key: String = map.next_key()?.ok_or_else(|| {
                    A::Error::custom("`clock:` is empty: write `clock: scenario` or `clock: {scenario: {not_after: YYYY-MM-DD}}`")
                })?;
                if key != "scenario" {
                    return Err(A::Error::custom(format!(
                        "unknown key `{key}` under `clock:`; did you mean `scenario`?"
                    )));
                }
                let c: ScenarioClock = map.next_value()?;
                let format = time::macros::format_description!("[year]-[month]-[day]");
                let day = time::Date::parse(&c.not_after, &format).map_err(|_| {
                    A::Error::custom(format!(
                        "`not_after: {}` is not a date: write it as YYYY-MM-DD, such as 2026-11-28",
                        c.not_after
                    ))
                })?;
                Ok(TargetClock::Scenario {
                    not_after: Some(day),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One path, or a list of them.
struct FieldPaths(Vec<FieldPath>);

impl<'de> Deserialize<'de> for FieldPaths {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldPaths;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field path or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<FieldPaths, E> {
                FieldPath::parse(s)
                    .map(|p| FieldPaths(vec![p]))
                    .map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FieldPaths, A::Error> {
                let mut paths = Vec::new();
                while let Some(p) = seq.next_element::<FieldPath>()? {
                    paths.push(p);
                }
                if paths.is_empty() {
                    return Err(serde::de::Error::custom("the list of field paths is empty"));
                }
                Ok(FieldPaths(paths))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a text is not a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPathError {
    #[error("`{0}` is not a JSON pointer: `~` must be followed by 0 (for `~`) or 1 (for `/`)")]
    BadEscape(String),
    #[error("`{0}`: HL7 fields and components are numbered from 1")]
    NumberedFromOne(String),
    #[error("`{0}` is not a field path; write a JSON pointer (`/entry/0/resource/id`), an HL7 field (`PV1-19`, `PID-3.1`) or a FHIR element path (`Encounter.identifier.value`)")]
    NotAPath(String),
}

/// A place in a letter that holds what matches it to its scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    /// A JSON pointer (RFC 6901) into a JSON body: `/entry/0/resource/identifier/0/value`.
    Json(String),
    /// An HL7 v2 field of the first such segment, first repetition: `PV1-19`, `PID-3.1`,
    /// `OBX-5.1.2` (segment, field, component, subcomponent).
    Hl7 {
        segment: String,
        field: usize,
        component: usize,
        subcomponent: usize,
    },
    /// A FHIR element path, in every resource of that type anywhere in a JSON body (nested
    /// bundles too), lists flattened: `Encounter.identifier.value`.
    Fhir {
        resource: String,
        elements: Vec<String>,
    },
}

impl FieldPath {
    pub fn parse(s: &str) -> Result<FieldPath, FieldPathError> {
        static HL7: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(
                r"^([A-Z][A-Z0-9]{2})-([0-9]{1,3})(?:\.([0-9]{1,2}))?(?:\.([0-9]{1,2}))?$",
            )
            .expect("valid regex")
        });
        static FHIR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
            regex::Regex::new(r"^[A-Z][A-Za-z]+(\.[a-z][A-Za-z0-9]*)+$").expect("valid regex")
        });
        if let Some(rest) = s.strip_prefix('/') {
            let bad_escape = rest
                .split('~')
                .skip(1)
                .any(|part| !part.starts_with(['0', '1']));
            return match bad_escape {
                true => Err(FieldPathError::BadEscape(s.to_string())),
                false => Ok(FieldPath::Json(s.to_string())),
            };
        }
        if let Some(c) = HL7.captures(s) {
            let n = |i: usize| c.get(i).map_or(Ok(1), |m| m.as_str().parse::<usize>());
            let (field, component, subcomponent) = match (n(2), n(3), n(4)) {
                (Ok(f), Ok(c), Ok(sc)) if f > 0 && c > 0 && sc > 0 => (f, c, sc),
                _ => return Err(FieldPathError::NumberedFromOne(s.to_string())),
            };
            return Ok(FieldPath::Hl7 {
                segment: c[1].to_string(),
                field,
                component,
                subcomponent,
            });
        }
        if FHIR.is_match(s) {
            let mut parts = s.split('.').map(str::to_string);
            let resource = parts.next().unwrap_or_default();
            return Ok(FieldPath::Fhir {
                resource,
                elements: parts.collect(),
            });
        }
        Err(FieldPathError::NotAPath(s.to_string()))
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            FieldPath::Json(p) => f.write_str(p),
            FieldPath::Hl7 {
                segment,
                field,
                component,
                subcomponent,
            } => {
                write!(f, "{segment}-{field}")?;
                match (component, subcomponent) {
                    (1, 1) => Ok(()),
                    (c, 1) => write!(f, ".{c}"),
                    (c, sc) => write!(f, ".{c}.{sc}"),
                }
            }
            FieldPath::Fhir { resource, elements } => {
                write!(f, "{resource}.{}", elements.join("."))
            }
        }
    }
}

impl<'de> Deserialize<'de> for FieldPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        parse_scalar(d, "a field path", |s| {
            FieldPath::parse(s).map_err(|e| e.to_string())
        })
    }
}

/// How a run drives scenarios at once against this target: at most `max` (whatever `-j`
/// asks), and scenarios about the same patient one after another unless `shared_patients`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawParallel {
    /// At most this many scenarios at once against this target, whatever `-j` asks
    /// (1 to 256; 1 runs them one after another).
    #[serde(default)]
    pub max: Option<u32>,
    /// `true` (only with `match: local_id` or a field path): scenarios about the same patient
    /// may run at once, unless one of them changes the patient (a GP change, a named GP
    /// leaving, a death) or they register the patient differently. For an EHR that keeps
    /// every visit's letters apart by its visit; the default keeps them apart.
    #[serde(default)]
    pub shared_patients: bool,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWait {
    /// The longest to wait for letters after the last event was driven.
    #[serde(default = "ten_minutes")]
    pub max: SpanValue,
    #[serde(default = "ten_seconds")]
    pub poll_interval: SpanValue,
    /// Stop early once every expected letter has arrived and nothing new came for this long.
    #[serde(default = "thirty_seconds")]
    pub settle: SpanValue,
}

impl Default for RawWait {
    fn default() -> Self {
        RawWait {
            max: ten_minutes(),
            poll_interval: ten_seconds(),
            settle: thirty_seconds(),
        }
    }
}

fn ten_minutes() -> SpanValue {
    SpanValue(Span(600))
}

fn ten_seconds() -> SpanValue {
    SpanValue(Span(10))
}
