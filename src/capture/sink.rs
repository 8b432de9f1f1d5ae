//! [`LogSink`]: one scenario's [`CaptureLog`] shared by every capture that records into it
//! (the MESH/HTTP server, the MLLP listener, the folder watcher), so all letters of a run land
//! in one index and one `bodies.bin`, and [`CaptureLog::renumber`] orders them together.
//!
//! Captures run on their own tasks and cannot return an error to whoever sent the letter, so a
//! failure to write is kept here and surfaces when the log is closed: a run that lost a
//! letter to the disk cannot be trusted.

use super::store::{CaptureLog, CapturedLetter};
use std::sync::Mutex;

#[derive(Debug)]
pub struct LogSink {
    /// Taken by [`LogSink::close`]; a letter after that is a write error.
    log: Mutex<Option<CaptureLog>>,
    /// The first failure to write.
    write_error: Mutex<Option<String>>,
}

impl LogSink {
    pub fn new(log: CaptureLog) -> LogSink {
        LogSink {
            log: Mutex::new(Some(log)),
            write_error: Mutex::new(None),
        }
    }

    /// Runs `f` on the open log. A closed log or an error from `f` is kept as the sink's
    /// write error and gives `None`.
    pub fn apply<R>(&self, f: impl FnOnce(&mut CaptureLog) -> std::io::Result<R>) -> Option<R> {
        let result = self
            .log
            .lock()
            .map_err(|e| e.to_string())
            .and_then(|mut guard| {
                let log = guard
                    .as_mut()
                    .ok_or("a message arrived after the capture was closed")?;
                f(log).map_err(|e| e.to_string())
            });
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    /// Records a letter; its sequence number, or `None` for a canary or when it could not be
    /// written.
    pub fn record(
        &self,
        letter: CapturedLetter,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Option<u32> {
        // A canary is counted, not recorded (see `CaptureLog::record_message`).
        self.apply(|log| log.record_message(letter, headers, body))
            .flatten()
    }

    /// Runs `f` on the open log, if it is open; nothing is kept when it is not (for updates
    /// to letters already recorded, which a late request may find closed).
    pub fn with_log<R>(&self, f: impl FnOnce(&mut CaptureLog) -> R) -> Option<R> {
        self.log.lock().ok()?.as_mut().map(f)
    }

    /// Keeps the first failure.
    pub fn fail(&self, e: String) {
        if let Ok(mut w) = self.write_error.lock() {
            w.get_or_insert(e);
        }
    }

    /// Closes the log and hands it back, flushed, unless a write failed.
    pub fn close(&self) -> Result<CaptureLog, String> {
        if let Some(e) = self
            .write_error
            .lock()
            .map_err(|_| "a capture task panicked".to_string())?
            .take()
        {
            return Err(e);
        }
        let mut log = self
            .log
            .lock()
            .map_err(|_| "a capture task panicked".to_string())?
            .take()
            .ok_or("the capture log was already closed")?;
        log.flush().map_err(|e| e.to_string())?;
        Ok(log)
    }
}
