//! [`MllpCapture`]: an MLLP receiver that records every HL7 message it is sent as a
//! [`CapturedLetter`] (transport `mllp`, route `MLLP <address>`), into a [`LogSink`] it may share
//! with the run's other captures.
//!
//! It answers as a document receiver would: `AA` for an MDM^T02 it could read and store, `AE`
//! with the reason for anything else. A refused message is still recorded, with the reason,
//! because nothing received is discarded.

use super::server::CaptureError;
use super::sink::LogSink;
use super::store::CapturedLetter;
use crate::protocol::clock::Clock;
use crate::protocol::hl7::message::Message;
use crate::protocol::hl7::mllp::{Handler, Listener};
use crate::protocol::letter::Transport;
use crate::protocol::read::{parse_letter, ReadError};
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
            Ok(record(&sink, &clock, route, text)?)
        });
        let listener = Listener::bind_with_clock(listen, handler, move || ack_clock.now())
            .await
            .map_err(|e| match e {
                crate::protocol::hl7::Hl7Error::Bind { addr, source } => {
                    CaptureError::Bind { addr, source }
                }
                other => CaptureError::Mllp(other),
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

/// The message lettergate sends its own MLLP capture to prove it alive: MSH-9 `ZLG^Z01`, a
/// Z message no EHR sends. The capture counts it as a canary and answers `AA`.
pub fn canary_message() -> String {
    "MSH|^~\\&|LETTERGATE|CANARY|LETTERGATE|CANARY|||ZLG^Z01^ZLG_Z01|CANARY|P|2.4\r".into()
}

fn is_canary(m: &Message) -> bool {
    m.get("MSH", 3, 1) == Some("LETTERGATE") && m.get("MSH", 9, 1) == Some("ZLG")
}

/// Why the MLLP capture answered `AE`.
#[derive(Debug, thiserror::Error)]
enum Refused {
    /// Not a letter; recorded with the reason all the same.
    #[error(transparent)]
    Unreadable(ReadError),
    #[error("the receiver could not store the message")]
    NotStored,
}

/// Records one message; `Err` (answered `AE`) when it is not a letter or could not be stored.
fn record(sink: &LogSink, clock: &Clock, route: String, text: &str) -> Result<(), Refused> {
    let parsed = Message::parse(text).ok();
    if parsed.as_ref().is_some_and(is_canary) {
        let canary = CapturedLetter {
            workflow_id: Some(crate::protocol::mesh::CANARY_WORKFLOW.into()),
            status: 200,
            ..CapturedLetter::received(
                Transport::Mllp,
                clock.now(),
                route,
                "CANARY".into(),
                text.len(),
                Err(ReadError::Canary),
            )
        };
        // Counted, not recorded: `record` gives `None` for it.
        sink.record(canary, &[], text.as_bytes());
        return Ok(());
    }
    let facts = parse_letter(Transport::Mllp, text.as_bytes());
    let field = |f: usize| parsed.as_ref().and_then(|m| m.text("MSH", f, 1));
    let unreadable = facts.as_ref().err().cloned();
    let refusal = unreadable.as_ref().map(ReadError::to_string);
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
        return Err(Refused::NotStored);
    }
    match unreadable {
        None => Ok(()),
        Some(why) => Err(Refused::Unreadable(why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureLog;
    use crate::protocol::clock::Timestamp;
    use std::time::Duration;

    #[tokio::test]
    async fn the_canary_is_acked_and_counted_not_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let sink = Arc::new(LogSink::new(CaptureLog::create(tmp.path()).unwrap()));
        let clock = Clock::virtual_at(Timestamp(0));
        let capture = MllpCapture::start("127.0.0.1:0".parse().unwrap(), sink.clone(), clock)
            .await
            .unwrap();
        let ack = crate::protocol::hl7::mllp::send(
            capture.addr(),
            &canary_message(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(ack.contains("MSA|AA|CANARY"), "{ack}");
        // Anything else that is not a letter is still refused and recorded.
        let other = "MSH|^~\\&|EHR|RXX|GP|A81001|||ZLG^Z01^ZLG_Z01|X1|P|2.4\r";
        assert!(
            crate::protocol::hl7::mllp::send(capture.addr(), other, Duration::from_secs(5))
                .await
                .is_err()
        );
        capture.finish().await;
        let log = sink.close().unwrap();
        assert_eq!((log.canaries, log.letters.len()), (1, 1));
    }
}
