//! The built-in EHR simulator: a stand-in for a staging EHR, kept apart from the harness core.
//!
//! It keeps a patient index (like PDS), a directory from practice and workflow to MESH mailbox
//! (like MESH endpoint lookup), letter [`profile::LetterRule`]s per clinical event, an outbound
//! queue and a dispatcher that sends in batches on a schedule of its [`crate::protocol::clock::Clock`].
//! GP letters go out as real MESH requests carrying ITK3 FHIR STU3 bundles ([`itk3`]); the
//! patient's copy goes to a print service over HTTP. Behaviour comes from a named
//! [`profile::SimConfig`]; [`server`] serves the same driver API over HTTP.

pub mod ehr;
pub mod profile;
pub mod server;

pub use ehr::{PatientRecord, PracticeRecord, SimEvent, Simulator};
pub use profile::SimConfig;
