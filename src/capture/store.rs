//! [`CapturedLetter`]: one received message, owned and converted at the edge; and the on-disk
//! store that keeps every body out of memory so large runs stay bounded.

use super::inbox::{AckRecord, ReportRecord};
use super::parse::LetterFacts;
use crate::clock::Timestamp;
use crate::letter::Transport;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One message received on a capture endpoint, whether accepted or refused.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapturedLetter {
    /// Order of arrival within the scenario, from 1.
    pub seq: u32,
    pub transport: Transport,
    /// The capture clock's time at arrival (virtual for the simulator).
    pub received_at: Timestamp,
    /// The id the endpoint answered with; empty when refused.
    pub message_id: String,
    pub from_mailbox: Option<String>,
    pub to_mailbox: Option<String>,
    pub workflow_id: Option<String>,
    /// `X26HC005 -> A81001HC001` for MESH, `POST /print/v1/letters` for HTTP.
    pub route: String,
    /// The status the endpoint answered, and why when it refused.
    pub status: u16,
    pub refusal: Option<String>,
    /// True when the `NHSMESH` signature was checked and valid.
    pub auth_valid: bool,
    pub mex_headers: Vec<(String, String)>,
    pub body_bytes: usize,
    pub body_file: PathBuf,
    /// The letter inside, or why it could not be read.
    pub facts: Result<LetterFacts, String>,
    /// ITK3 acknowledgements the synthetic GP receiver sent back for it.
    #[serde(default)]
    pub acks: Vec<AckRecord>,
    /// MESH REPORTs made about it.
    #[serde(default)]
    pub reports: Vec<ReportRecord>,
}

impl CapturedLetter {
    pub fn accepted(&self) -> bool {
        self.refusal.is_none()
    }
}

/// The letters of one scenario run: their index in memory, their bodies on disk.
#[derive(Debug)]
pub struct CaptureLog {
    dir: PathBuf,
    pub letters: Vec<CapturedLetter>,
    pub canaries: u32,
    pub handshakes: u32,
}

impl CaptureLog {
    pub fn create(dir: &Path) -> std::io::Result<CaptureLog> {
        std::fs::create_dir_all(dir)?;
        Ok(CaptureLog {
            dir: dir.to_path_buf(),
            letters: Vec::new(),
            canaries: 0,
            handshakes: 0,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the body and the metadata to disk, then keeps the metadata in the index.
    pub fn record(&mut self, mut letter: CapturedLetter, body: &[u8]) -> std::io::Result<u32> {
        letter.seq = self.letters.len() as u32 + 1;
        let stem = format!("{:05}", letter.seq);
        letter.body_file = self.dir.join(format!("{stem}.body"));
        std::fs::write(&letter.body_file, body)?;
        let meta = serde_json::to_vec_pretty(&letter).map_err(std::io::Error::other)?;
        let mut f = std::fs::File::create(self.dir.join(format!("{stem}.json")))?;
        f.write_all(&meta)?;
        let seq = letter.seq;
        self.letters.push(letter);
        Ok(seq)
    }
}
