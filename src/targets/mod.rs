//! Targets: a staging EHR (or the simulator standing in for one) that lettergate drives, and
//! the places its letters come out. A target file says how to drive it, where to capture, how
//! to match letters to scenarios and how long to wait; see README, "Testing your staging EHR".
//!
//! [`load`] reads a file into a checked [`Target`] (nothing is contacted); [`check::run`]
//! contacts everything the file names, before any scenario runs. A [`Driver`] tells a system
//! under test a scenario's events: the built-in simulator ([`sim`]) or a target's FHIR, HTTP
//! or HL7 v2 driver. [`captures`] says what a target run captures, [`clinical`] gives the
//! clinical time each event is told with (the target's `clock:`), [`rebase`] puts a scenario
//! on the times its events were driven, [`matching`] ties letters to scenarios, [`parallel`]
//! says which scenarios may be driven at once, and [`ledger`] keeps a two-phase run. The run
//! pipeline uses all of these; this module never uses it.

pub mod captures;
pub mod check;
pub mod clinical;
pub mod driver;
pub mod file;
pub mod ledger;
pub mod matching;
pub mod model;
pub mod parallel;
pub mod readers;
pub mod rebase;
pub mod sim;

pub use driver::{DriveError, Driver};
pub use model::{load, Target};

/// Why lettergate could not use what a target file names.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("the environment variable {name} ({what}) is not set")]
    MissingSecret { name: String, what: String },
    #[error("capture.mesh_endpoint.mailboxes is empty")]
    NoMailboxes,
    #[error(transparent)]
    Tls(#[from] crate::protocol::mesh::client::TlsError),
    #[error("could not build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("the OAuth2 token endpoint {url} did not answer")]
    TokenUnanswered {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the OAuth2 token endpoint answered {status} without an access_token")]
    NoAccessToken { status: reqwest::StatusCode },
    #[error("the answer of the OAuth2 token endpoint {url} could not be read")]
    TokenUnread {
        url: String,
        #[source]
        source: crate::protocol::limits::ResponseError,
    },
}

/// A secret named by the target file, read from the environment.
pub fn secret(name: &file::EnvName, what: &str) -> Result<String, TargetError> {
    match std::env::var(&name.0) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(TargetError::MissingSecret {
            name: name.0.clone(),
            what: what.to_string(),
        }),
    }
}
