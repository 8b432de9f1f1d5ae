//! lettergate proves an EHR upgrade still sends every letter before it goes live.
//!
//! The pipeline, one module per stage: `scenario` files are loaded into a model; a target
//! (the built-in `sim`ulator) is driven through their timelines; every outbound letter is
//! received by `capture`; letters are normalised, checked against expectations (`expect`)
//! and accepted snapshots (`snapshot`) by `run`; and a finished result is `report`ed.
//! `ARCHITECTURE.md` at the top of the repository gives the layers (kept by
//! `tests/it/layers.rs`), the pipeline from scenario to verdict, and where each kind of
//! change goes.
//!
//! Of the modules only [`protocol`] is public whole; the others are private behind a chosen
//! surface of re-exports (what the binary and the tests use: items, and the small modules
//! `html`, `junit`, `markdown`, `ledger` and `sim_server` whose functions are called by module
//! name), so code nothing uses is a dead-code warning.

// The protocols (MESH, ITK3, FHIR, HL7 v2, identifiers, letters, the clock) stay public as
// a whole: the lowest layer, depending on nothing else here, reusable by any tool that speaks
// to NHS messaging, and what the interop tests exercise piece by piece.
pub mod protocol;

// Writing through exclusive temporary files, private run folders, reads of regular files
// only: the lowest layer with `protocol`, used by every layer that touches the file system.
pub mod files;

// Every other module is private: what the binary and the tests use is re-exported below, so
// anything else that nothing uses is a dead-code warning.
mod bench;
mod capture;
mod expect;
mod matrix;
mod report;
mod run;
mod scenario;
mod schema;
mod sim;
mod snapshot;
mod targets;

pub use bench::peers::{
    find_venv as bench_peers_venv, run as run_bench_peer, summary as bench_peers_summary,
    NAMES as BENCH_PEER_NAMES,
};
pub use bench::stats::{field as bench_field, Rounds as BenchRounds};
pub use bench::{run_one as run_bench, target as bench_target, Sizes as BenchSizes};
pub use capture::poll::{MailboxCredentials, MeshPoller, PollConfig, PollError};
pub use capture::{
    CaptureConfig, CaptureLog, CaptureServer, CapturedLetter, Endpoint, FolderCapture, GpReceiver,
    LogSink, MllpCapture, Numbering,
};
pub use expect::Finding;
pub use matrix::{build as build_matrix, Matrix};
pub use report::model::{Decision, SCHEMA};
pub use report::{
    html, junit, markdown, MergeError, ReportError, ReportFiles, ReportPathError, RunParameters,
    RunReport, Terminal,
};
pub use run::replay::IDS_FILE as LETTER_IDS_FILE;
pub use run::{
    collect, drive_simulator, practice_records, run_all, run_target, LetterLine, Outcome,
    RunConfig, Seen, SnapshotStatus, Verdict, SENDER_MAILBOX,
};
pub use scenario::load::scenario_id;
pub use scenario::suite::plural;
pub use scenario::{load_all, Diagnostic, LoadError, Loader, Scenario, Shard};
pub use schema::{SchemaKind, UnknownSchemaKind};
pub use sim::ehr::{all_workflows, Outbound};
pub use sim::profile::PROFILES;
pub use sim::server as sim_server;
pub use sim::{PatientRecord, PracticeRecord, SimConfig, SimEvent, Simulator};
pub use snapshot::store::new_path;
pub use snapshot::{SnapshotMode, SnapshotStore};
pub use targets::check::{run as check_target, CheckLine};
pub use targets::ledger;
pub use targets::{load as load_target, Target};

/// The inner readers that the property tests (`tests/it/props/`) and the fuzz targets
/// (`fuzz/`) exercise directly, below the surface above: not part of lettergate's interface.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::capture::chunks::{decode, parse_range, Assemblies, ChunkRange, FirstChunk};
    pub use crate::scenario::diagnostic::{lines as yaml_lines, SOURCE_LINE_MAX};
    pub use crate::snapshot::store::{body_of, compare_bodies, Comparison};
}
