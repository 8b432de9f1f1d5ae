//! The binary's error, [`Error`], and its exit codes, [`ExitStatus`]. Problems of the system
//! under test are findings and map to 1; the harness's own failures keep apart all the way to
//! 2 (bad input) and 3 (could not drive or capture).
//!
//! This lives in the binary, not the library: each layer of the library returns an error of its
//! own (a load error, a report error, a MESH error), and deciding that one of them is exit 2 and
//! another exit 3 is the command line's business, as is printing it. A library error that knew
//! exit codes would tie every layer to this one command line. Each variant wraps the layer's
//! error as its `source`, and [`DisplayErrorChain`] prints the whole chain on one line.

use lettergate::plural;
use lettergate::{Diagnostic, LoadError};
use lettergate::{MergeError, ReportError};
use std::fmt;
use std::path::PathBuf;

/// Any layer's error, kept whole so its causes reach the console.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Files that are wrong; each diagnostic points at its file, line and column (exit 2).
    #[error("{} in the input", plural(.0.len()))]
    Input(Vec<Diagnostic>),
    /// A suite that cannot be run as given: no scenario, two with one id (exit 2).
    #[error(transparent)]
    Suite(LoadError),
    /// The command line asks for something that cannot be done (exit 2).
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// A layer refused the configuration it was given: an unknown profile, a time that does
    /// not parse, a target unfit for a two-phase run, an unreadable ledger (exit 2).
    #[error(transparent)]
    Config(BoxError),
    /// Reports that are not the shards of one run (exit 2).
    #[error(transparent)]
    Merge(#[from] MergeError),
    /// A report could not be rendered or written (exit 3).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The console or a report stream could not be written (exit 3).
    #[error("failed to write the report")]
    WriteReport(#[source] std::io::Error),
    /// A layer failed while driving or capturing; its error says what (exit 3).
    #[error(transparent)]
    Layer(BoxError),
    /// The harness could not do its job; `context` says what it was doing (exit 3).
    #[error("{context}")]
    Harness {
        context: String,
        #[source]
        source: BoxError,
    },
    /// What a target names did not all work when checked before anything was driven; the
    /// failed checks were printed (exit 3).
    #[error("{failed} of {total} checks of target {target} failed before anything was driven: lettergate could not drive or capture with it (`lettergate targets check` shows every check)")]
    Preflight {
        target: String,
        failed: usize,
        total: usize,
    },
    /// A benchmark's child process failed or printed no figures (exit 3).
    #[error("benchmark {name} failed: {output}")]
    Benchmark { name: String, output: String },
}

/// Mistakes in how lettergate was called, found by the command itself.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--child needs --only NAME")]
    ChildWithoutOnly,
    #[error("no scenario selected: the matrix needs hand-written scenarios")]
    NoHandWrittenScenario,
    /// A filter (a shard, the volume scenarios a target skips, a ledger) left no scenario;
    /// the text says which and what to do.
    #[error("no scenario selected: {0}")]
    NothingSelected(String),
    #[error("no ledger in {dir}: run `lettergate drive --ledger {dir}` first", dir = .0.display())]
    NoLedger(PathBuf),
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{} is not empty: `lettergate init` writes a new suite only into a new or empty folder", .0.display())]
    NotEmpty(PathBuf),
    #[error("failed to read {}", .path.display())]
    ReadFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        match e {
            LoadError::Input(d) => Error::Input(d),
            other => Error::Suite(other),
        }
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Error {
        Error::Input(vec![d])
    }
}

impl Error {
    /// A layer's refusal of its configuration (exit 2), whatever its error type.
    pub fn config(e: impl Into<BoxError>) -> Error {
        Error::Config(e.into())
    }

    /// A layer's failure to drive or capture (exit 3), whatever its error type.
    pub fn layer(e: impl Into<BoxError>) -> Error {
        Error::Layer(e.into())
    }

    /// A failure of the harness while it was doing `context` ("failed to listen on …").
    pub fn harness(context: impl Into<String>, source: impl Into<BoxError>) -> Error {
        Error::Harness {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Error::Input(_)
            | Error::Suite(_)
            | Error::Usage(_)
            | Error::Config(_)
            | Error::Merge(_) => ExitStatus::BadInput,
            Error::Report(_)
            | Error::WriteReport(_)
            | Error::Layer(_)
            | Error::Harness { .. }
            | Error::Preflight { .. }
            | Error::Benchmark { .. } => ExitStatus::HarnessFailure,
        }
    }
}

/// An error and its causes on one line, "a: b: c", as the console prints it (after nextest's
/// `DisplayErrorChain`). Each layer's message reads after the one that wraps it.
pub struct DisplayErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_shows_each_cause_after_the_one_it_explains() {
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let e = Error::harness("failed to listen on 127.0.0.1:8800", io);
        assert_eq!(
            DisplayErrorChain(&e).to_string(),
            "failed to listen on 127.0.0.1:8800: address in use"
        );
        assert_eq!(e.exit_status(), ExitStatus::HarnessFailure);
    }

    #[test]
    fn a_layer_message_is_shown_once_however_it_is_wrapped() {
        let e = Error::config("unknown profile `fast`");
        assert_eq!(DisplayErrorChain(&e).to_string(), "unknown profile `fast`");
        assert_eq!(e.exit_status(), ExitStatus::BadInput);
        let e = Error::WriteReport(std::io::Error::other("disk full"));
        assert_eq!(
            DisplayErrorChain(&e).to_string(),
            "failed to write the report: disk full"
        );
    }

    #[test]
    fn usage_messages_name_the_folder_to_use() {
        let e = Error::from(UsageError::NoLedger(PathBuf::from("runs/a")));
        assert_eq!(
            DisplayErrorChain(&e).to_string(),
            "no ledger in runs/a: run `lettergate drive --ledger runs/a` first"
        );
        assert_eq!(e.exit_status(), ExitStatus::BadInput);
    }
}
