//! [`CapturedLetter`]: one received message, owned and converted at the edge; and the on-disk
//! store that keeps every body out of memory so large runs stay bounded.

use super::inbox::{AckRecord, ReportRecord};
use super::parse::LetterFacts;
use crate::clock::Timestamp;
use crate::letter::Transport;
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};
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
    /// The sender's own id for the letter (`mex-LocalID`, or a print request's `reference`).
    #[serde(default)]
    pub local_id: Option<String>,
    /// The file holding the body (`bodies.bin` of the scenario's capture folder) and where in
    /// it the body starts; [`CaptureLog::read_body`] reads it back.
    pub body_file: PathBuf,
    #[serde(default)]
    pub body_offset: u64,
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
///
/// Every message is appended to two files of the scenario's capture folder, `bodies.bin`
/// (bodies, one after another) and `messages.ndjson` (one line of metadata per message, with
/// the body's offset), so that a run of tens of thousands of letters makes two files, not tens
/// of thousands, and memory holds only the index.
#[derive(Debug)]
pub struct CaptureLog {
    dir: PathBuf,
    pub letters: Vec<CapturedLetter>,
    pub canaries: u32,
    pub handshakes: u32,
    bodies: BufWriter<std::fs::File>,
    meta: BufWriter<std::fs::File>,
    written: u64,
}

impl CaptureLog {
    pub fn create(dir: &Path) -> std::io::Result<CaptureLog> {
        std::fs::create_dir_all(dir)?;
        Ok(CaptureLog {
            dir: dir.to_path_buf(),
            letters: Vec::new(),
            canaries: 0,
            handshakes: 0,
            bodies: BufWriter::new(std::fs::File::create(dir.join("bodies.bin"))?),
            meta: BufWriter::new(std::fs::File::create(dir.join("messages.ndjson"))?),
            written: 0,
        })
    }

    /// Appends the body and the metadata to disk, then keeps the metadata in the index.
    pub fn record(&mut self, mut letter: CapturedLetter, body: &[u8]) -> std::io::Result<u32> {
        letter.seq = self.letters.len() as u32 + 1;
        letter.body_file = self.dir.join("bodies.bin");
        letter.body_offset = self.written;
        self.bodies.write_all(body)?;
        self.written += body.len() as u64;
        serde_json::to_writer(&mut self.meta, &letter).map_err(std::io::Error::other)?;
        self.meta.write_all(b"\n")?;
        let seq = letter.seq;
        self.letters.push(letter);
        Ok(seq)
    }

    /// Numbers the letters in the order the sender sent them: by arrival on the clock, then
    /// by the sender's own id. Letters of one dispatch batch arrive in any order when several
    /// are in flight; this makes the numbering, and so snapshots and reports, the same every
    /// run. (`messages.ndjson` keeps the order of arrival.)
    pub fn renumber(&mut self) {
        self.letters.sort_by(|a, b| {
            (a.received_at, &a.local_id, &a.route, a.seq).cmp(&(
                b.received_at,
                &b.local_id,
                &b.route,
                b.seq,
            ))
        });
        for (i, l) in self.letters.iter_mut().enumerate() {
            l.seq = i as u32 + 1;
        }
    }

    /// Writes out what is buffered; the capture calls it when it finishes.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.bodies.flush()?;
        self.meta.flush()
    }

    /// The body of a captured message, read back from disk.
    pub fn read_body(&self, letter: &CapturedLetter) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&letter.body_file)?;
        f.seek(SeekFrom::Start(letter.body_offset))?;
        let mut body = vec![0; letter.body_bytes];
        f.read_exact(&mut body)?;
        Ok(body)
    }
}
