//! The loopback reference: what this machine does, at this moment, with the HTTP work a volume
//! run's letters need and nothing of lettergate's. The same client as the simulator's
//! ([`sending_client`]), the same body (an ITK3 message bundle of a clinic letter) with the
//! headers of a MESH send, the same number of requests in flight ([`IN_FLIGHT`], so as many
//! connections), to a minimal axum server on 127.0.0.1 that answers as MESH does (202 with a
//! message id), which the client reads.
//!
//! What the reference leaves out is what a volume run adds: building and signing each bundle
//! (a fresh NHSMESH token per request), authenticating it, reading the letter, storing it, the
//! checks, the snapshot and the report. `ratio` is the share of the reference a letter costs
//! end to end.

use super::{line, BenchError};
use crate::protocol::mesh::ACCEPT_V2;
use crate::sim::ehr::{sending_client, IN_FLIGHT};
use futures::StreamExt;
use std::time::Instant;

/// Requests sent before the timed ones, so every connection of the pool is open and warm.
const WARM_UP: u64 = 500;

/// A letter-sized body: an ITK3 bundle as the simulator sends it.
pub(super) fn letter_body() -> Vec<u8> {
    use crate::protocol::itk3;
    let doc = itk3::LetterDoc {
        kind: crate::protocol::letter::LetterKind::ClinicLetter,
        local_id: "SIM-000001".into(),
        visit_id: None,
        nhs_number: crate::protocol::ids::NhsNumber::parse("9990000018")
            .unwrap_or_else(|_| unreachable!()),
        patient_name: "Generated Patient 000001".into(),
        born: "1950-01-01".into(),
        practice: Some(("A81001".into(), "Riverside Surgery".into())),
        trust_ods: "RXX".into(),
        trust_name: "Lettergate Simulated NHS Trust".into(),
        sender_mailbox: "RXXHC001".into(),
        event_at: crate::protocol::clock::Timestamp(1_736_154_000),
        written_at: crate::protocol::clock::Timestamp(1_736_154_000),
        sent_at: crate::protocol::clock::Timestamp(1_736_154_000),
        sections: itk3::default_sections(crate::protocol::letter::LetterKind::ClinicLetter),
    };
    itk3::message_json(&doc).0
}

/// `requests` POSTs of a letter, [`IN_FLIGHT`] at a time, after a warm-up: one `loopback` line.
pub async fn loopback(requests: u64) -> Result<String, BenchError> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/messageexchange/{mailbox}/outbox",
        post(|body: axum::body::Bytes| async move {
            (
                axum::http::StatusCode::ACCEPTED,
                [("content-type", "application/json")],
                format!(
                    "{{\"message_id\":\"20250106090000000000_{:06X}\"}}",
                    body.len()
                ),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/messageexchange/RXXHC001/outbox",
        listener.local_addr()?
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = sending_client()?;
    let body = axum::body::Bytes::from(letter_body());
    // One token for every request: making a fresh one is lettergate's work, not the wire's.
    let token = crate::protocol::mesh::auth::header("BenchKey", "RXXHC001", "password");
    let post = |_| {
        let req = client
            .post(&url)
            .header("Authorization", &token)
            .header("Accept", ACCEPT_V2)
            .header("Content-Type", "application/octet-stream")
            .header("mex-To", "A81001HC001")
            .header("mex-WorkflowID", "TOC_FHIR_OP_ATTEN")
            .header("mex-Content-Type", "application/fhir+json")
            .header("mex-Subject", "clinic letter SIM-ABCDEFGH-000001")
            .header("mex-LocalID", "SIM-ABCDEFGH-000001")
            .header("mex-FileName", "SIM-ABCDEFGH-000001.json")
            .body(body.clone());
        async move { req.send().await?.bytes().await.map(|b| b.len()) }
    };
    let run = |n: u64| {
        futures::stream::iter(0..n)
            .map(post)
            .buffer_unordered(IN_FLIGHT)
            .fold(Ok(()), |acc: Result<(), reqwest::Error>, r| async move {
                acc.and(r.map(|_| ()))
            })
    };
    run(WARM_UP).await?;
    let started = Instant::now();
    run(requests).await?;
    let wall = started.elapsed().as_secs_f64();
    server.abort();
    Ok(line(
        "loopback",
        requests,
        wall,
        None,
        &format!(" body_bytes={} in_flight={IN_FLIGHT}", body.len()),
    ))
}
