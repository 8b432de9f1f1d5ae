//! `lettergate sim serve`: the simulator as a standalone HTTP server, so other tools can drive
//! it with the same events a scenario uses, or as a staging EHR would be driven: FHIR R4
//! (`/fhir/...`, the mapping of [`crate::protocol::fhir::r4`]). The API is documented in README.md.

use super::ehr::{PatientRecord, PracticeRecord, SimError, SimEvent, Simulator};
use crate::protocol::clock::Timestamp;
use crate::protocol::fhir::r4::Read;
use crate::protocol::fhir::r4::{self, PatientState};
use crate::protocol::hl7::mllp::Refusal;
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::EventKind;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// The simulator, and the patients as its FHIR API last saw them (to tell a change of practice,
/// a named GP leaving or a death from a plain update).
pub struct SimState {
    sim: Simulator,
    fhir_patients: HashMap<NhsNumber, PatientState>,
}

impl SimState {
    /// A patient as the FHIR API was told it: registered when first seen, else the events its
    /// change means (a new practice, the named GP gone, a death), each acted on at `acted`
    /// and having happened at `at`.
    fn patient_update(
        &mut self,
        p: PatientState,
        (acted, at): (Timestamp, Timestamp),
    ) -> Vec<SimEvent> {
        let Some(b) = self.fhir_patients.insert(p.nhs_number, p.clone()) else {
            self.sim.register_patient(PatientRecord {
                nhs_number: p.nhs_number,
                name: p.name.clone(),
                born: p.born.clone(),
                practice: p.practice.clone(),
                named_gp: p.named_gp.clone(),
            });
            return vec![];
        };
        let event = |kind: EventKind, to| SimEvent {
            at: acted,
            clinical_at: Some(at),
            event: kind,
            nhs_number: p.nhs_number,
            to,
            second_signer: false,
            local_id: None,
            signs: Default::default(),
            held_for_signature: false,
        };
        let mut ev = Vec::new();
        if b.practice != p.practice {
            ev.push(event(EventKind::GpChange, p.practice.clone()));
        }
        if b.named_gp.is_some() && p.named_gp.is_none() {
            ev.push(event(EventKind::NamedGpLeft, None));
        }
        if b.died_at.is_none() && p.died_at.is_some() {
            ev.push(event(EventKind::Death, None));
        }
        ev
    }
}

type Shared = Arc<Mutex<SimState>>;

/// Why the simulator refuses a patient; it takes only test patients.
const SYNTHETIC_ONLY: &str = "only synthetic NHS numbers (999 range) are accepted";
type Reply = (StatusCode, Json<Value>);

/// The routes of the simulator's HTTP API.
pub fn router(sim: Simulator) -> Router {
    router_with_state(shared(sim))
}

/// The simulator, shared between the API and [`run_clock`].
pub fn shared(sim: Simulator) -> Shared {
    Arc::new(Mutex::new(SimState {
        sim,
        fhir_patients: HashMap::new(),
    }))
}

/// Keeps a simulator on the system clock dispatching: every `tick` it sends what is due.
pub async fn run_clock(state: Shared, tick: Duration) {
    let mut last_error = None;
    loop {
        tokio::time::sleep(tick).await;
        let mut s = state.lock().await;
        let now = s.sim.now();
        // Say each new failure once; a MESH server that is down fails every tick.
        match s.sim.advance_to(now).await {
            Err(e) if last_error.as_ref() != Some(&e.to_string()) => {
                eprintln!("warning: the simulator's dispatcher failed: {e}");
                last_error = Some(e.to_string());
            }
            Err(_) => {}
            Ok(()) => last_error = None,
        }
    }
}

/// The routes of the simulator's HTTP API, on a shared simulator.
pub fn router_with_state(state: Shared) -> Router {
    Router::new()
        .route("/fhir/metadata", get(fhir_metadata))
        .route("/fhir/{resource}", post(fhir_write).put(fhir_write))
        .route("/health", get(health))
        .route("/practices", post(add_practice))
        .route("/patients", post(add_patient))
        .route("/events", post(add_event))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/sent", get(sent))
        .with_state(state)
}

fn fail(e: SimError) -> Reply {
    let status = match e {
        SimError::Transport(_) | SimError::Handshake(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, Json(json!({"error": e.to_string()})))
}

async fn health(State(sim): State<Shared>) -> Json<Value> {
    let s = sim.lock().await;
    Json(json!({"status": "ok", "profile": s.sim.config().profile, "now": s.sim.now()}))
}

async fn add_practice(State(sim): State<Shared>, Json(p): Json<PracticeRecord>) -> Reply {
    sim.lock().await.sim.register_practice(p);
    (StatusCode::CREATED, Json(json!({"ok": true})))
}

async fn add_patient(State(sim): State<Shared>, Json(p): Json<PatientRecord>) -> Reply {
    if !p.nhs_number.is_synthetic() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": SYNTHETIC_ONLY})),
        );
    }
    sim.lock().await.sim.register_patient(p);
    (StatusCode::CREATED, Json(json!({"ok": true})))
}

async fn add_event(State(sim): State<Shared>, Json(e): Json<SimEvent>) -> Reply {
    match sim.lock().await.sim.apply(e).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"ok": true}))),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct ClockBody {
    advance_to: Timestamp,
}

async fn get_clock(State(sim): State<Shared>) -> Json<Value> {
    Json(json!({"now": sim.lock().await.sim.now()}))
}

async fn set_clock(State(sim): State<Shared>, Json(b): Json<ClockBody>) -> Reply {
    let mut s = sim.lock().await;
    match s.sim.advance_to(b.advance_to).await {
        Ok(()) => (StatusCode::OK, Json(json!({"now": s.sim.now()}))),
        Err(e) => fail(e),
    }
}

async fn sent(State(sim): State<Shared>) -> Json<Value> {
    Json(json!({"sent": sim.lock().await.sim.sent()}))
}

async fn fhir_metadata() -> Json<Value> {
    Json(json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "software": {"name": "lettergate simulator"},
        "rest": [{"mode": "server", "resource": [
            {"type": "Patient", "interaction": [{"code": "update"}, {"code": "create"}]},
            {"type": "Encounter", "interaction": [{"code": "create"}]},
            {"type": "Composition", "interaction": [{"code": "create"}]}
        ]}]
    }))
}

fn outcome(status: StatusCode, text: &str) -> Reply {
    (
        status,
        Json(json!({"resourceType": "OperationOutcome", "issue": [{
            "severity": "error", "code": "processing", "diagnostics": text}]})),
    )
}

/// A FHIR R4 create or update, turned into what the simulator knows: a patient registered,
/// or an event. The EHR acts when it is told: an event with a time in the past is acted on
/// now, and keeps its own time as when it happened, which its letters state.
async fn fhir_write(
    State(state): State<Shared>,
    axum::extract::Path(resource): axum::extract::Path<String>,
    Json(body): Json<Value>,
) -> Reply {
    if body["resourceType"].as_str() != Some(resource.as_str()) {
        return outcome(
            StatusCode::BAD_REQUEST,
            &format!("the body is not a {resource} resource"),
        );
    }
    let read = match r4::read(&body) {
        Ok(r) => r,
        Err(e) => return outcome(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
    };
    let mut s = state.lock().await;
    let now = s.sim.now();
    let when = |at: Option<Timestamp>| at.filter(|t| *t >= now).unwrap_or(now);
    let events: Vec<SimEvent> = match read {
        Read::Event {
            kind,
            nhs_number,
            at,
            second_signer,
            local_id,
            signs,
        } => vec![SimEvent {
            at: when(at),
            clinical_at: at,
            event: kind,
            nhs_number,
            to: None,
            second_signer,
            local_id,
            signs,
            held_for_signature: false,
        }],
        Read::Patient(p) if !p.nhs_number.is_synthetic() => {
            return outcome(StatusCode::UNPROCESSABLE_ENTITY, SYNTHETIC_ONLY);
        }
        Read::Patient(p) => {
            let acted = when(p.died_at);
            let died = p.died_at.unwrap_or(acted);
            s.patient_update(p, (acted, died))
        }
    };
    for e in events {
        if let Err(e) = s.sim.apply(e).await {
            let (status, Json(v)) = fail(e);
            return outcome(status, v["error"].as_str().unwrap_or("failed"));
        }
    }
    (StatusCode::OK, Json(body))
}

/// Listens for HL7 v2 ADT over MLLP (see [`crate::protocol::hl7::adt`]) and applies each message to the
/// simulator, as a staging EHR takes its patient administration feed: a patient not yet known
/// is registered from PID and PD1, then the event happens. The ACK is AA once applied, AE with
/// the reason otherwise.
pub async fn adt_listener(
    state: Shared,
    addr: std::net::SocketAddr,
) -> Result<crate::protocol::hl7::mllp::Listener, crate::protocol::hl7::Hl7Error> {
    let handler: Arc<crate::protocol::hl7::mllp::Handler> = Arc::new(move |text: &str| {
        let event = crate::protocol::hl7::adt::read(text)?;
        let msg = crate::protocol::hl7::message::Message::parse(text)?;
        let family = msg.text("PID", 5, 1).unwrap_or_default();
        let given = msg.text("PID", 5, 2).unwrap_or_default();
        let born = msg.text("PID", 7, 1).unwrap_or_default();
        let born = match born.len() {
            8 => format!("{}-{}-{}", &born[..4], &born[4..6], &born[6..]),
            _ => born,
        };
        let state = state.clone();
        // The handler is synchronous; the simulator is behind an async lock.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async move {
                let mut guard = state.lock().await;
                let s = &mut *guard;
                if !event.nhs_number.is_synthetic() {
                    return Err(Refusal::from(SYNTHETIC_ONLY));
                }
                if let std::collections::hash_map::Entry::Vacant(v) =
                    s.fhir_patients.entry(event.nhs_number)
                {
                    let name = format!("{given} {family}").trim().to_string();
                    v.insert(PatientState {
                        nhs_number: event.nhs_number,
                        name: name.clone(),
                        born: born.clone(),
                        practice: event.practice_ods.clone(),
                        named_gp: None,
                        died_at: None,
                    });
                    s.sim.register_patient(PatientRecord {
                        nhs_number: event.nhs_number,
                        name,
                        born,
                        practice: event.practice_ods.clone(),
                        named_gp: None,
                    });
                }
                let mut e = event.to_sim_event();
                e.clinical_at = Some(e.at);
                e.at = e.at.max(s.sim.now());
                s.sim.apply(e).await.map_err(Refusal::from)
            })
        })
    });
    crate::protocol::hl7::mllp::Listener::bind(addr, handler).await
}
