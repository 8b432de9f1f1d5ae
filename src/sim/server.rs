//! `lettergate sim serve`: the simulator as a standalone HTTP server, so other tools can drive
//! it with the same events a scenario uses. The API is documented in README.md.

use super::ehr::{PatientRecord, PracticeRecord, SimError, SimEvent, Simulator};
use crate::clock::Timestamp;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Mutex;

type Shared = Arc<Mutex<Simulator>>;
type Reply = (StatusCode, Json<Value>);

/// The routes of the simulator's HTTP API.
pub fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/practices", post(add_practice))
        .route("/patients", post(add_patient))
        .route("/events", post(add_event))
        .route("/clock", get(get_clock).post(set_clock))
        .route("/sent", get(sent))
        .with_state(Arc::new(Mutex::new(sim)))
}

fn fail(e: SimError) -> Reply {
    let status = match e {
        SimError::Transport(_) | SimError::Handshake(_) => StatusCode::BAD_GATEWAY,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (status, Json(json!({"error": e.to_string()})))
}

async fn health(State(sim): State<Shared>) -> Json<Value> {
    let sim = sim.lock().await;
    Json(json!({"status": "ok", "profile": sim.config().profile, "now": sim.now()}))
}

async fn add_practice(State(sim): State<Shared>, Json(p): Json<PracticeRecord>) -> Reply {
    sim.lock().await.register_practice(p);
    (StatusCode::CREATED, Json(json!({"ok": true})))
}

async fn add_patient(State(sim): State<Shared>, Json(p): Json<PatientRecord>) -> Reply {
    if !p.nhs_number.is_synthetic() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"error": "only synthetic NHS numbers (999 range) are accepted"})),
        );
    }
    sim.lock().await.register_patient(p);
    (StatusCode::CREATED, Json(json!({"ok": true})))
}

async fn add_event(State(sim): State<Shared>, Json(e): Json<SimEvent>) -> Reply {
    match sim.lock().await.apply(e).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"ok": true}))),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize)]
struct ClockBody {
    advance_to: Timestamp,
}

async fn get_clock(State(sim): State<Shared>) -> Json<Value> {
    Json(json!({"now": sim.lock().await.now()}))
}

async fn set_clock(State(sim): State<Shared>, Json(b): Json<ClockBody>) -> Reply {
    let mut sim = sim.lock().await;
    match sim.advance_to(b.advance_to).await {
        Ok(()) => (StatusCode::OK, Json(json!({"now": sim.now()}))),
        Err(e) => fail(e),
    }
}

async fn sent(State(sim): State<Shared>) -> Json<Value> {
    Json(json!({"sent": sim.lock().await.sent()}))
}
