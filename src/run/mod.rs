//! Runs scenarios: each [`Scenario`](crate::scenario::Scenario) becomes an [`Outcome`] through
//! one [`pipeline`] for every system under test (the built-in simulator, or a target's FHIR,
//! HTTP or HL7 v2 driver): drive, capture, [`check`], outcome. [`collect()`] checks the letters of
//! a two-phase run with the same checker.

pub mod check;
pub mod collect;
pub mod outcome;
pub mod pipeline;
pub mod replay;
mod wave;

pub use collect::collect;
pub use outcome::{LetterLine, Outcome, SnapshotStatus, Verdict};
pub use pipeline::{run_all, run_target, RunConfig};
pub use replay::Seen;
// The simulator's run-time pieces, where callers have always found them.
pub use crate::targets::sim::{drive_simulator, practice_records, SENDER_MAILBOX};
