//! [`LogSink`]: one scenario's [`CaptureLog`] shared by every capture that records into it
//! (the MESH/HTTP server, the MLLP listener, the folder watcher), so all letters of a run land
//! in one index and one `bodies.bin`, and [`CaptureLog::renumber`] orders them together.
//!
//! Captures run on their own tasks and cannot return an error to whoever sent the letter, so a
//! failure to write is kept here and surfaces when the log is closed: a run that lost a
//! letter to the disk cannot be trusted.

use super::store::{CaptureLog, CapturedLetter};
use std::path::PathBuf;
use std::sync::Mutex;

/// Why a capture could not keep what it received.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A capture task panicked while it held the log; the text is the lock's.
    #[error("{0}")]
    Poisoned(String),
    #[error("a capture task panicked")]
    Panicked,
    #[error("a message arrived after the capture was closed")]
    ArrivedAfterClose,
    #[error("the capture log was already closed")]
    AlreadyClosed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("failed to read the folder: {0}")]
    ReadFolder(std::io::Error),
    #[error("failed to read the watched folder {}: {error}", .dir.display())]
    Watch { dir: PathBuf, error: std::io::Error },
}

#[derive(Debug)]
pub struct LogSink {
    /// Taken by [`LogSink::close`]; a letter after that is a write error.
    log: Mutex<Option<CaptureLog>>,
    /// The first failure to write.
    write_error: Mutex<Option<SinkError>>,
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
            .map_err(|e| SinkError::Poisoned(e.to_string()))
            .and_then(|mut guard| {
                let log = guard.as_mut().ok_or(SinkError::ArrivedAfterClose)?;
                Ok(f(log)?)
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
    pub fn fail(&self, e: SinkError) {
        if let Ok(mut w) = self.write_error.lock() {
            w.get_or_insert(e);
        }
    }

    /// Closes the log and hands it back, flushed, unless a write failed.
    pub fn close(&self) -> Result<CaptureLog, SinkError> {
        if let Some(e) = self
            .write_error
            .lock()
            .map_err(|_| SinkError::Panicked)?
            .take()
        {
            return Err(e);
        }
        let mut log = self
            .log
            .lock()
            .map_err(|_| SinkError::Panicked)?
            .take()
            .ok_or(SinkError::AlreadyClosed)?;
        log.flush()?;
        Ok(log)
    }
}
