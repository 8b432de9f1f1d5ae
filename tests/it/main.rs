//! lettergate's integration tests, in one test binary so that a change to the library links
//! one binary instead of a dozen (ripgrep's `tests/tests.rs` does the same). Run one group
//! with `cargo test --test it target::`, one test with its full name.
//!
//! Shared setup lives in [`support`]; each other module is one group of tests and keeps the
//! name its file had as a binary of its own, so the snapshots in `tests/snapshots/` keep
//! theirs (`cli__changed_recipient_report.snap`, see [`support::assert_snapshot`]).

mod support;

mod bench_peers;
mod capture_endpoint;
mod cli;
mod completions;
mod detection;
mod explain;
mod fhir_stu3;
mod hl7_interop;
mod hostile;
mod init;
mod layers;
mod mesh_client_peer;
mod mesh_sandbox;
mod mesh_wire;
mod props;
mod reports;
mod schemas;
mod sim_server;
mod standin;
mod target;
mod target_parallel;
mod test_command;
