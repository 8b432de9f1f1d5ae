//! [`MllpCapture`]: an MLLP receiver that records every HL7 message it is sent as a
//! [`CapturedLetter`] (transport `mllp`, route `MLLP <address>`), into a [`LogSink`] it may share
//! with the run's other captures.
//!
//! It answers as a document receiver would: `AA` for an MDM^T02 it could read and store, `AE`
//! with the reason for anything else. A refused message is still recorded, with the reason,
//! because nothing received is discarded.

use super::parse::parse_letter;
use super::server::CaptureError;
use super::sink::LogSink;
use super::store::CapturedLetter;
use crate::clock::Clock;
use crate::hl7::message::Message;
use crate::hl7::mllp::{Handler, Listener};
use crate::letter::Transport;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// A running MLLP capture; [`MllpCapture::finish`] stops it.
pub struct MllpCapture {
    listener: Listener,
}

impl MllpCapture {
    /// Listens on `listen` (port 0 for a free one), stamping arrivals with `clock`.
    pub async fn start(
        listen: SocketAddr,
        sink: Arc<LogSink>,
        clock: Clock,
    ) -> Result<MllpCapture, CaptureError> {
        // The route names the bound address, which is known only once bound.
        let route: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        let r = route.clone();
        let ack_clock = clock.clone();
        let handler: Arc<Handler> = Arc::new(move |text: &str| {
            let route = r.get().cloned().unwrap_or_else(|| "MLLP".into());
            record(&sink, &clock, route, text)
        });
        let listener = Listener::bind_with_clock(listen, handler, move || ack_clock.now())
            .await
            .map_err(|e| match e {
                crate::hl7::Hl7Error::Bind { addr, source } => CaptureError::Bind { addr, source },
                other => CaptureError::Write(other.to_string()),
            })?;
        let _ = route.set(format!("MLLP {}", listener.local_addr()));
        Ok(MllpCapture { listener })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr()
    }

    /// Stops listening and waits for the connections under way.
    pub async fn finish(self) {
        self.listener.shutdown().await;
    }
}

/// Records one message; `Err` (answered `AE`) when it is not a letter or could not be stored.
fn record(sink: &LogSink, clock: &Clock, route: String, text: &str) -> Result<(), String> {
    let facts = parse_letter(Transport::Mllp, text.as_bytes());
    let parsed = Message::parse(text).ok();
    let field = |f: usize| parsed.as_ref().and_then(|m| m.text("MSH", f, 1));
    let refusal = facts.as_ref().err().cloned();
    let letter = CapturedLetter {
        status: if refusal.is_none() { 200 } else { 400 },
        refusal: refusal.clone(),
        ..CapturedLetter::received(
            Transport::Mllp,
            clock.now(),
            route,
            field(10).unwrap_or_default(),
            text.len(),
            facts,
        )
    };
    let headers: Vec<(String, String)> = [("msh-3", 3), ("msh-4", 4), ("msh-5", 5), ("msh-6", 6)]
        .into_iter()
        .filter_map(|(k, f)| field(f).map(|v| (k.to_string(), v)))
        .collect();
    if sink.record(letter, &headers, text.as_bytes()).is_none() {
        return Err("the receiver could not store the message".into());
    }
    match refusal {
        None => Ok(()),
        Some(why) => Err(why),
    }
}
