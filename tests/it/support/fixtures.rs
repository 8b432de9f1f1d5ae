//! The synthetic data the tests start from: alice (NHS number 9990000018) registered at
//! Riverside Surgery (A81001), the letter a trust writes about her, the shipped scenarios,
//! a capture endpoint's settings, where the trust's EHR sends, and a run of scenarios on the
//! built-in simulator.

use super::root;
use lettergate::protocol::clock::Timestamp;
use lettergate::protocol::ids::{NhsNumber, OdsCode};
use lettergate::protocol::itk3::{self, LetterDoc};
use lettergate::protocol::letter::{LetterKind, Transport};
use lettergate::protocol::mesh::client::MeshConfig;
use lettergate::CaptureConfig;
use lettergate::Scenario;
use lettergate::{all_workflows, Outbound};
use lettergate::{run_all, Outcome, RunConfig};
use lettergate::{PatientRecord, PracticeRecord, SimConfig};
use lettergate::{SnapshotMode, SnapshotStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// alice as an EHR records her: registered at Riverside Surgery, no named GP.
pub fn alice() -> PatientRecord {
    PatientRecord {
        nhs_number: NhsNumber::parse("9990000018").unwrap(),
        name: "Alice Example".into(),
        born: "1950-01-01".into(),
        practice: Some(OdsCode::parse("A81001").unwrap()),
        named_gp: None,
    }
}

/// Riverside Surgery (A81001) in the simulator's directory: mailbox A81001HC001, on every
/// Transfer of Care workflow, reached over MESH.
pub fn riverside() -> PracticeRecord {
    PracticeRecord {
        ods: OdsCode::parse("A81001").unwrap(),
        name: "Riverside".into(),
        mailbox: "A81001HC001".into(),
        workflows: all_workflows(),
        closed: false,
        merged_into: None,
        route: Transport::Mesh,
    }
}

/// The letter of `kind` about alice, as the trust RXX writes it: to Riverside Surgery when the
/// kind goes to a practice, local id `SIM-00000N` (N is the kind's place in
/// [`LetterKind::ALL`] plus one), for an event on 2025-01-06 at 09:00, written and sent the
/// next morning, with the kind's default sections and no visit id.
pub fn alice_letter(kind: LetterKind) -> LetterDoc {
    LetterDoc {
        kind,
        local_id: format!("SIM-{:06}", kind as u32 + 1),
        visit_id: None,
        nhs_number: NhsNumber::parse("9990000018").unwrap(),
        patient_name: "Alice Example".into(),
        born: "1950-01-01".into(),
        practice: kind
            .goes_to_practice()
            .then(|| ("A81001".into(), "Riverside Surgery".into())),
        trust_ods: "RXX".into(),
        trust_name: "Example Hospitals NHS Trust".into(),
        sender_mailbox: "RXXHC001".into(),
        event_at: Timestamp::parse("2025-01-06T09:00:00Z").unwrap(),
        written_at: Timestamp::parse("2025-01-07T10:00:00Z").unwrap(),
        sent_at: Timestamp::parse("2025-01-07T10:15:00Z").unwrap(),
        sections: itk3::default_sections(kind),
    }
}

/// The scenarios at `paths` (files or folders), as the CLI loads them.
pub fn load(paths: &[PathBuf]) -> Vec<Arc<Scenario>> {
    lettergate::load_all(paths).expect("the scenarios load").0
}

/// The shipped hand-written scenarios; the generated volume scenario is exercised by the
/// benchmarks.
pub fn shipped() -> Vec<Arc<Scenario>> {
    load(&[root().join("scenarios")])
        .into_iter()
        .filter(|s| !s.generated)
        .collect()
}

/// Runs `scenarios` on the built-in simulator configured as `sim`, comparing with the
/// accepted snapshots in `snapshots/` but writing nothing into the repository. Returns the
/// run's work folder (the captures are in it) with the outcomes.
pub async fn run_on_simulator(
    sim: SimConfig,
    scenarios: &[Arc<Scenario>],
) -> (tempfile::TempDir, Vec<Outcome>) {
    let work = tempfile::tempdir().unwrap();
    let mut config = RunConfig::new(
        sim,
        SnapshotStore::new(root().join("snapshots"), "simulator"),
        work.path().to_path_buf(),
    );
    config.mode = SnapshotMode::Check;
    let outcomes = run_all(scenarios, config, |_| {}).await;
    (work, outcomes)
}

/// A capture endpoint on a free loopback port with shared key `TestKey`, recording into
/// `dir`, where `mailboxes` (id, password) may send or receive; none is collected and no GP
/// acknowledges.
pub fn capture_config(dir: &Path, mailboxes: &[(&str, &str)]) -> CaptureConfig {
    CaptureConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        shared_key: "TestKey".into(),
        mailboxes: mailboxes
            .iter()
            .map(|(id, pw)| (id.to_string(), pw.to_string()))
            .collect(),
        dir: dir.to_path_buf(),
        monitored: Default::default(),
        gp: None,
        limits: lettergate::protocol::limits::Limits::default(),
    }
}

/// Where the trust's EHR sends: MESH from its mailbox RXXHC001 (with `password` and
/// `shared_key`) to `mesh_url`, print and document-route letters to `http_url`, no MLLP and
/// no folder.
pub fn trust_outbound(
    mesh_url: String,
    password: &str,
    shared_key: &str,
    http_url: String,
) -> Outbound {
    Outbound {
        mesh: MeshConfig {
            base_url: mesh_url,
            mailbox: "RXXHC001".into(),
            password: password.into(),
            shared_key: shared_key.into(),
        },
        print_url: http_url.clone(),
        docman_url: http_url,
        mllp: None,
        folder: None,
    }
}
