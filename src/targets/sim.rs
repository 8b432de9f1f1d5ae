//! The built-in simulator as a system under test: the captures a scenario needs when the
//! simulator stands in for the EHR ([`capture_plan`]), where it sends ([`outbound`]), and how
//! a scenario drives it ([`prepare`], [`apply`], [`finish`]; [`drive_simulator`] all at once).

use crate::capture::group::{FolderPlan, MeshPlan, ScenarioCell};
use crate::capture::{CaptureGroup, CapturePlan, Endpoint};
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::letter::Transport;
use crate::protocol::mesh::client::{MeshConfig, SendOutcome};
use crate::protocol::mesh::DEFAULT_SHARED_KEY;
use crate::scenario::model::PracticeStatus;
use crate::scenario::{Practice, Scenario};
use crate::sim::ehr::{all_workflows, Outbound, SimError};
use crate::sim::{PatientRecord, PracticeRecord, SimEvent, Simulator};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// The mailbox the simulated trust sends from.
pub const SENDER_MAILBOX: &str = "RXXHC001";

/// How often a scenario's drop folder is polled (real time).
const FOLDER_POLL: Duration = Duration::from_millis(50);

/// The captures of one scenario run against the simulator, on `listen_ip` (free ports),
/// recording under `dir`: the MESH endpoint with a mailbox for every practice and the
/// sender (whose password is `sender_password`), and MLLP and the drop folder when the
/// scenario has practices on those routes.
pub fn capture_plan(
    s: &Scenario,
    known: ScenarioCell,
    listen_ip: IpAddr,
    dir: &Path,
    clock: Clock,
    sender_password: &str,
) -> CapturePlan {
    let mut mailboxes: BTreeMap<String, String> = s
        .practices
        .values()
        .map(|p| (p.mailbox.clone(), uuid::Uuid::new_v4().to_string()))
        .collect();
    mailboxes.insert(SENDER_MAILBOX.to_string(), sender_password.to_string());
    // Practice systems collect only from the mailboxes of open practices.
    let monitored = s
        .practices
        .values()
        .filter(|p| p.status == PracticeStatus::Active)
        .map(|p| p.mailbox.clone())
        .collect();
    let wants = |t: Transport| s.practices.values().any(|p| p.route == t);
    CapturePlan {
        dir: dir.to_path_buf(),
        clock,
        mesh: Some(MeshPlan {
            listen: SocketAddr::new(listen_ip, 0),
            shared_key: DEFAULT_SHARED_KEY.to_string(),
            mailboxes,
            monitored,
            gp: s
                .acknowledgements
                .then(|| crate::capture::group::gp_receiver(known)),
            directory: directory(s),
            canary_mailbox: SENDER_MAILBOX.to_string(),
        }),
        http: None,
        mllp: wants(Transport::Mllp).then_some(SocketAddr::new(listen_ip, 0)),
        folder: wants(Transport::Folder).then(|| FolderPlan {
            path: dir.join("folder"),
            interval: FOLDER_POLL,
        }),
    }
}

/// Endpoint lookup finds a practice's mailbox by its ODS code, as an EHR that looks up before
/// it sends would; a merged practice's code finds the practice it merged into, a closed one's
/// nothing.
fn directory(s: &Scenario) -> Vec<Endpoint> {
    s.practices
        .values()
        .filter(|p| p.route == Transport::Mesh)
        .filter_map(|p| {
            let receiver = match &p.status {
                PracticeStatus::Active => p,
                PracticeStatus::MergedInto(k) => s.practices.get(k)?,
                PracticeStatus::Closed => return None,
            };
            Some(Endpoint {
                ods: p.ods.to_string(),
                mailbox_id: receiver.mailbox.clone(),
                mailbox_name: receiver.name.clone(),
                workflows: all_workflows(),
            })
        })
        .collect()
}

/// Where the simulator sends: every transport to the group's captures.
pub fn outbound(group: &CaptureGroup<'_>, sender_password: String) -> Outbound {
    let url = group.mesh_url().unwrap_or_default();
    Outbound {
        mllp: group.mllp_addr(),
        folder: group.folder_path().map(Path::to_path_buf),
        mesh: MeshConfig {
            base_url: url.clone(),
            mailbox: SENDER_MAILBOX.to_string(),
            password: sender_password,
            shared_key: DEFAULT_SHARED_KEY.to_string(),
        },
        print_url: url.clone(),
        docman_url: url,
    }
}

/// The simulator's directory entries for a scenario's (or fixture file's) practices.
pub fn practice_records(practices: &BTreeMap<String, Practice>) -> Vec<PracticeRecord> {
    practices
        .values()
        .map(|p| PracticeRecord {
            ods: p.ods.clone(),
            name: p.name.clone(),
            mailbox: p.mailbox.clone(),
            workflows: all_workflows(),
            closed: p.status == PracticeStatus::Closed,
            merged_into: match &p.status {
                PracticeStatus::MergedInto(k) => practices.get(k).map(|m| m.ods.clone()),
                _ => None,
            },
            route: p.route,
        })
        .collect()
}

/// Drives the simulator through a scenario: the handshake, the practices and patients, every
/// event of the timeline, then the observation period. Whatever MESH `sim` sends to (lettergate's
/// endpoint, or a real MESH a [`crate::capture::poll::MeshPoller`] reads) sees its letters.
pub async fn drive_simulator(sim: &mut Simulator, s: &Scenario) -> Result<(), SimError> {
    prepare(sim, s).await?;
    for (i, e) in s.timeline.iter().enumerate() {
        apply(sim, s, i, e.at).await?;
    }
    sim.advance_to(s.end().plus(s.observe_for)).await
}

/// The handshake, then the scenario's practices and patients.
pub async fn prepare(sim: &mut Simulator, s: &Scenario) -> Result<(), SimError> {
    sim.handshake().await?;
    for p in practice_records(&s.practices) {
        sim.register_practice(p);
    }
    sim.register_patients(s.patients.values().map(|p| PatientRecord {
        nhs_number: p.nhs_number,
        name: p.name.clone(),
        born: p.born.clone(),
        practice: s.registered_ods(p),
        named_gp: p.named_gp.clone(),
    }));
    Ok(())
}

/// Event `i` of the timeline, at `at`.
pub async fn apply(
    sim: &mut Simulator,
    s: &Scenario,
    i: usize,
    at: Timestamp,
) -> Result<(), SimError> {
    let e = &s.timeline[i];
    let to = e
        .to_practice
        .as_ref()
        .and_then(|k| s.practices.get(k))
        .map(|p| p.ods.clone());
    sim.apply(SimEvent {
        at,
        clinical_at: None,
        event: e.kind,
        nhs_number: s.patients[&e.patient].nhs_number,
        to,
        second_signer: e.second_signer,
        local_id: None,
        signs: e.signs,
        held_for_signature: e.held_for_signature,
    })
    .await
}

/// The observation period, then the simulator's canary: what its MESH answered.
pub async fn finish(sim: &mut Simulator, s: &Scenario) -> Result<SendOutcome, SimError> {
    sim.advance_to(s.end().plus(s.observe_for)).await?;
    sim.send_canary().await
}
