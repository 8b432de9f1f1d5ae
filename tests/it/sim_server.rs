//! `lettergate sim serve`'s HTTP API drives the simulator with the same events a scenario uses.

use crate::support::fixtures::{alice, capture_config, riverside, trust_outbound};
use crate::support::http;
use lettergate::protocol::clock::{Clock, Timestamp};
use lettergate::protocol::letter::LetterKind;
use lettergate::{CaptureConfig, CaptureServer};
use lettergate::{SimConfig, Simulator};
use serde_json::{json, Value};

/// A capture endpoint on loopback (mailboxes RXXHC001 and A81001HC001, the latter collected;
/// `gp` acknowledges) and a simulator sending to it on a virtual clock from 2025-01-06 09:00.
async fn capture_and_simulator(
    config: SimConfig,
    gp: Option<lettergate::GpReceiver>,
) -> (tempfile::TempDir, CaptureServer, Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let start = Timestamp::parse("2025-01-06T09:00:00Z").unwrap();
    let clock = Clock::virtual_at(start);
    let capture = CaptureServer::start(
        CaptureConfig {
            monitored: ["A81001HC001".to_string()].into(),
            gp,
            ..capture_config(dir.path(), &[("RXXHC001", "pw"), ("A81001HC001", "x")])
        },
        clock.clone(),
    )
    .await
    .unwrap();
    let out = trust_outbound(capture.url(), "pw", "TestKey", capture.url());
    let sim = Simulator::new(config, clock, out, http());
    (dir, capture, sim)
}

#[tokio::test]
async fn the_http_api_registers_patients_takes_events_and_sends_letters() {
    let (_dir, capture, sim) = capture_and_simulator(
        SimConfig::baseline(),
        Some(lettergate::GpReceiver(std::sync::Arc::new(|_, _, _| {
            lettergate::protocol::itk3::Itk3Response::PatientKnown
        }))),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server =
        tokio::spawn(
            async move { axum::serve(listener, lettergate::sim_server::router(sim)).await },
        );
    let http = http();
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();

    assert_eq!(
        post(
            "/practices",
            json!({"ods": "A81001", "name": "Riverside", "mailbox": "A81001HC001"})
        )
        .await
        .unwrap()
        .status(),
        201
    );
    let patient = json!({"nhs_number": "9990000018", "name": "Alice", "born": "1950-01-01", "practice": "A81001"});
    assert_eq!(post("/patients", patient).await.unwrap().status(), 201);
    let real = json!({"nhs_number": "9434765919", "name": "Real", "born": "1950-01-01", "practice": "A81001"});
    assert_eq!(
        post("/patients", real).await.unwrap().status(),
        422,
        "only synthetic patients"
    );
    let unknown = json!({"at": "2025-01-06T10:00:00Z", "event": "outpatient_attendance", "nhs_number": "9990000026"});
    assert_eq!(post("/events", unknown).await.unwrap().status(), 422);
    for (at, event) in [
        ("2025-01-06T10:00:00Z", "outpatient_attendance"),
        ("2025-01-07T10:00:00Z", "letter_signed"),
    ] {
        let r = post(
            "/events",
            json!({"at": at, "event": event, "nhs_number": "9990000018"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = post("/clock", json!({"advance_to": "2025-01-08T00:00:00Z"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent: Value = http
        .get(format!("{base}/sent"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let outcomes: Vec<(&str, &str)> = sent["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        vec![("clinic_letter", "sent"), ("patient_copy", "sent")]
    );
    // The synthetic GP acknowledged the MESH letter twice, and the simulator collected both.
    assert_eq!(sent["sent"][0]["acks"], json!([20013, 30001]));
    let health: Value = http
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["profile"], "baseline");
    server.abort();

    let log = capture.finish().await.unwrap();
    let kinds: Vec<_> = log
        .letters
        .iter()
        .map(|l| l.facts.as_ref().unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            Some(LetterKind::ClinicLetter),
            Some(LetterKind::PatientCopy)
        ]
    );
    assert_eq!(
        log.letters[0].received_at,
        Timestamp::parse("2025-01-07T10:00:00Z").unwrap()
    );
    let acks: Vec<(u32, bool)> = log.letters[0]
        .acks
        .iter()
        .map(|a| (a.code.code(), a.collected))
        .collect();
    assert_eq!(acks, vec![(20013, true), (30001, true)]);
}

/// Issue 3, profile 1 (Royal Free): the EHR's own record says "sent" while nothing left it.
#[tokio::test]
async fn the_royal_free_profile_records_clinic_letters_as_sent_that_never_leave() {
    let (_dir, capture, mut sim) = capture_and_simulator(
        SimConfig::named("op-letters-silently-dropped").unwrap(),
        None,
    )
    .await;
    let start = sim.now();
    sim.register_practice(riverside());
    let nhs = alice().nhs_number;
    sim.register_patient(alice());
    for (h, event) in [
        (
            1,
            lettergate::protocol::letter::EventKind::OutpatientAttendance,
        ),
        (30, lettergate::protocol::letter::EventKind::LetterSigned),
    ] {
        let at = start.plus(lettergate::protocol::clock::Span::hours(h));
        sim.apply(lettergate::SimEvent {
            at,
            clinical_at: None,
            event,
            nhs_number: nhs,
            to: None,
            second_signer: false,
            local_id: None,
            signs: Default::default(),
            held_for_signature: false,
        })
        .await
        .unwrap();
    }
    sim.advance_to(start.plus(lettergate::protocol::clock::Span::days(3)))
        .await
        .unwrap();
    let clinic: Vec<_> = sim
        .sent()
        .iter()
        .filter(|r| r.kind == LetterKind::ClinicLetter)
        .collect();
    assert_eq!(clinic.len(), 1);
    assert_eq!(
        clinic[0].outcome, "sent",
        "the EHR believes it sent the letter"
    );
    let log = capture.finish().await.unwrap();
    let kinds: Vec<_> = log
        .letters
        .iter()
        .map(|l| l.facts.as_ref().unwrap().kind)
        .collect();
    assert_eq!(
        kinds,
        vec![Some(LetterKind::PatientCopy)],
        "only the patient's copy left the EHR"
    );
}

/// Issue 11 (point 8): a discharge whose summary a later signature signs holds the summary
/// until then, whether the scenario says so (`held_for_signature`, the built-in simulator) or
/// the EHR was told of a draft first (the FHIR mapping's preliminary Composition).
#[tokio::test]
async fn a_discharge_summary_waiting_for_its_signature_leaves_when_signed() {
    use lettergate::protocol::clock::Span;
    use lettergate::protocol::letter::{EventKind, Signs};
    for drafted_first in [false, true] {
        let (_dir, capture, mut sim) =
            capture_and_simulator(SimConfig::named("baseline").unwrap(), None).await;
        let start = sim.now();
        sim.register_practice(riverside());
        let nhs = alice().nhs_number;
        sim.register_patient(alice());
        let event = |h: i64, event, signs, held| lettergate::SimEvent {
            at: start.plus(Span::hours(h)),
            clinical_at: None,
            event,
            nhs_number: nhs,
            to: None,
            second_signer: false,
            local_id: None,
            signs,
            held_for_signature: held,
        };
        let mut timeline = vec![event(1, EventKind::Admission, Signs::ClinicLetter, false)];
        if drafted_first {
            timeline.push(event(
                2,
                EventKind::LetterDrafted,
                Signs::DischargeSummary,
                false,
            ));
        }
        timeline.push(event(
            3,
            EventKind::Discharge,
            Signs::ClinicLetter,
            !drafted_first,
        ));
        for e in timeline {
            sim.apply(e).await.unwrap();
        }
        sim.advance_to(start.plus(Span::hours(20))).await.unwrap();
        let summaries = |sim: &lettergate::Simulator| {
            sim.sent()
                .iter()
                .filter(|r| r.kind == LetterKind::DischargeSummary)
                .count()
        };
        assert_eq!(
            summaries(&sim),
            0,
            "sent before it was signed (drafted first: {drafted_first})"
        );
        sim.apply(event(
            21,
            EventKind::LetterSigned,
            Signs::DischargeSummary,
            false,
        ))
        .await
        .unwrap();
        sim.advance_to(start.plus(Span::days(2))).await.unwrap();
        assert_eq!(summaries(&sim), 1, "drafted first: {drafted_first}");
        let log = capture.finish().await.unwrap();
        let summary = log
            .letters
            .iter()
            .find(|l| l.facts.as_ref().unwrap().kind == Some(LetterKind::DischargeSummary))
            .expect("the summary reached the practice");
        assert!(summary.received_at >= start.plus(Span::hours(21)));
    }
}
