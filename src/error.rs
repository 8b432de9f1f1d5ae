//! The top-level error and exit codes: [`ExitStatus`]. Problems of the system under test are
//! findings and map to 1; the harness's own failures keep apart all the way to 2 and 3.

use crate::scenario::suite::plural;
use crate::scenario::{Diagnostic, LoadError};

/// Process exit codes, as documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Every letter as expected.
    Pass = 0,
    /// A regression: a letter missing, misrouted, late, duplicated, changed or unexpected.
    Regression = 1,
    /// Bad input or configuration, including no scenario selected.
    BadInput = 2,
    /// The harness could not drive the target or capture; never a pass.
    HarnessFailure = 3,
}

/// Why lettergate could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} in the input", plural(.0.len()))]
    Input(Vec<Diagnostic>),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Harness(String),
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        match e {
            LoadError::Input(d) => Error::Input(d),
            other => Error::Usage(other.to_string()),
        }
    }
}

impl Error {
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Input(_) | Error::Usage(_) => ExitStatus::BadInput,
            Error::Harness(_) => ExitStatus::HarnessFailure,
        }
    }
}
