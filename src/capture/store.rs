//! [`CapturedLetter`]: one received message, owned and converted at the edge; and the on-disk
//! store that keeps every body out of memory so large runs stay bounded.

use super::inbox::{AckRecord, ReportRecord};
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::{LetterKind, Transport};
use crate::protocol::mesh::CANARY_WORKFLOW;
use crate::protocol::read::{LetterFacts, ReadError};
use serde::{Deserialize, Serialize};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

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
    /// The status the endpoint answered, and why when it refused. MLLP and folder captures have
    /// no HTTP status; they record 200 for a message accepted (ACK `AA`, a file picked up) and
    /// 400 for one refused (ACK `AE`), so reports count every transport alike.
    pub status: u16,
    pub refusal: Option<String>,
    /// True when the `NHSMESH` signature was checked and valid.
    pub auth_valid: bool,
    pub body_bytes: usize,
    /// The sender's own id for the letter (`mex-LocalID`, or a print request's `reference`).
    #[serde(default)]
    pub local_id: Option<String>,
    /// The file holding the body (`bodies.bin` of the scenario's capture folder) and where in
    /// it the body starts; [`CapturedLetter::read_body`] reads it back.
    /// One shared path for all the letters of a scenario.
    pub body_file: Arc<Path>,
    #[serde(default)]
    pub body_offset: u64,
    /// The letter inside, or why it could not be read.
    pub facts: Result<LetterFacts, ReadError>,
    /// ITK3 acknowledgements the synthetic GP receiver sent back for it.
    #[serde(default)]
    pub acks: Vec<AckRecord>,
    /// MESH REPORTs made about it.
    #[serde(default)]
    pub reports: Vec<ReportRecord>,
}

impl CapturedLetter {
    /// A message just received and accepted (status 202), before the log numbers it and
    /// places its body: the sender's own id is the letter's `reference` when it has one. Each
    /// capture sets what it knows besides (mailboxes, workflow, its own status or refusal).
    pub fn received(
        transport: Transport,
        received_at: Timestamp,
        route: String,
        message_id: String,
        body_bytes: usize,
        facts: Result<LetterFacts, ReadError>,
    ) -> CapturedLetter {
        CapturedLetter {
            seq: 0,
            transport,
            received_at,
            message_id,
            from_mailbox: None,
            to_mailbox: None,
            workflow_id: None,
            route,
            status: 202,
            refusal: None,
            auth_valid: false,
            body_bytes,
            local_id: facts.as_ref().ok().and_then(|f| f.reference.clone()),
            body_file: Path::new("").into(),
            body_offset: 0,
            facts,
            acks: vec![],
            reports: vec![],
        }
    }

    pub fn accepted(&self) -> bool {
        self.refusal.is_none()
    }

    /// The body of the message, read back from disk.
    pub fn read_body(&self) -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.body_file)?;
        f.seek(SeekFrom::Start(self.body_offset))?;
        let mut body = vec![0; self.body_bytes];
        f.read_exact(&mut body)?;
        Ok(body)
    }
}

/// How the letters of a scenario are numbered, for snapshots and reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Numbering {
    /// By arrival on the simulator's virtual clock, then by the simulator's own counter: there
    /// both are part of what the scenario's timeline made happen, identical every run.
    Arrival,
    /// By content (issue 11): a readable letter's clinical time, patient, kind, recipient and
    /// digest, then its arrival; unreadable letters after the readable ones. On the system
    /// clock the arrival second and the ids an EHR makes up differ from run to run, so they
    /// decide only between letters alike in everything else.
    Content,
}

impl Numbering {
    /// The numbering for letters stamped by `clock`.
    pub fn for_clock(clock: &Clock) -> Numbering {
        match clock {
            Clock::Virtual(_) => Numbering::Arrival,
            Clock::System => Numbering::Content,
        }
    }
}

/// What [`Numbering::Content`] orders letters by.
#[allow(clippy::type_complexity)]
fn content_key(
    l: &CapturedLetter,
) -> (
    bool,
    Option<Timestamp>,
    Option<NhsNumber>,
    Option<LetterKind>,
    Option<&str>,
    &str,
    Timestamp,
    &str,
    u32,
) {
    let f = l.facts.as_ref().ok();
    let recipient = f
        .and_then(|f| {
            f.recipient_ods
                .as_deref()
                .or(f.recipient_mailbox.as_deref())
        })
        .or(l.to_mailbox.as_deref());
    (
        f.is_none(),
        f.and_then(|f| f.clinical_at),
        f.and_then(|f| f.nhs_number),
        f.and_then(|f| f.kind),
        recipient,
        f.map_or("", |f| f.digest.as_str()),
        l.received_at,
        &l.route,
        l.seq,
    )
}

/// One line of `messages.ndjson`: the letter's metadata and the message's `mex-` headers
/// (with the content type for HTTP), which stay on disk and out of the index.
#[derive(Serialize)]
struct MetadataLine<'a> {
    #[serde(flatten)]
    letter: &'a CapturedLetter,
    headers: &'a [(String, String)],
}

/// How much of `bodies.bin` and of `messages.ndjson` is buffered before a write: a dozen
/// letters' bodies, so a volume run writes its tens of megabytes in thousands of writes, not
/// tens of thousands, while a small scenario's log stays small.
const WRITE_BUFFER: usize = 64 * 1024;

/// The letters of one scenario run: their index in memory, their bodies on disk.
///
/// Every message is appended to two files of the scenario's capture folder, `bodies.bin`
/// (bodies, one after another) and `messages.ndjson` (one line of metadata per message, with
/// the body's offset), so that a run of tens of thousands of letters makes two files, not tens
/// of thousands, and memory holds only the index.
#[derive(Debug)]
pub struct CaptureLog {
    body_file: Arc<Path>,
    pub letters: Vec<CapturedLetter>,
    pub canaries: u32,
    pub handshakes: u32,
    bodies: BufWriter<std::fs::File>,
    meta: BufWriter<std::fs::File>,
    written: u64,
}

impl CaptureLog {
    /// A new log in `dir`, its folder and files private to their owner (0700, 0600): the
    /// bodies are letters about patients.
    pub fn create(dir: &Path) -> std::io::Result<CaptureLog> {
        crate::files::create_private_dir(dir, false)?;
        Ok(CaptureLog {
            body_file: dir.join("bodies.bin").into(),
            letters: Vec::new(),
            canaries: 0,
            handshakes: 0,
            bodies: BufWriter::with_capacity(
                WRITE_BUFFER,
                crate::files::open_private(&dir.join("bodies.bin"), false)?,
            ),
            meta: BufWriter::with_capacity(
                WRITE_BUFFER,
                crate::files::open_private(&dir.join("messages.ndjson"), false)?,
            ),
            written: 0,
        })
    }

    /// Opens a folder's log to add to it, with the letters already in it (a two-phase run's
    /// store, which `lettergate collect` adds to each time); creates it when it is new.
    pub fn open(dir: &Path) -> std::io::Result<CaptureLog> {
        crate::files::create_private_dir(dir, false)?;
        let body_file: Arc<Path> = dir.join("bodies.bin").into();
        let meta_path = dir.join("messages.ndjson");
        let mut letters = Vec::new();
        if meta_path.exists() {
            let text =
                crate::files::read_regular_to_string(&meta_path, crate::files::Links::Refuse)?;
            for (i, line) in text.lines().enumerate() {
                // A line cut short by a crash is the last one; what it describes is lost and
                // will be collected again, so it is skipped.
                let Ok(mut l) = serde_json::from_str::<CapturedLetter>(line) else {
                    if i + 1 == text.lines().count() {
                        break;
                    }
                    return Err(std::io::Error::other(format!(
                        "{} line {} is not a captured message",
                        meta_path.display(),
                        i + 1
                    )));
                };
                l.body_file = body_file.clone();
                letters.push(l);
            }
        }
        let append = |p: &Path| crate::files::open_private(p, true);
        let bodies = append(&body_file)?;
        let written = bodies.metadata()?.len();
        Ok(CaptureLog {
            letters,
            canaries: 0,
            handshakes: 0,
            bodies: BufWriter::with_capacity(WRITE_BUFFER, bodies),
            meta: BufWriter::with_capacity(WRITE_BUFFER, append(&meta_path)?),
            written,
            body_file,
        })
    }

    /// Appends the body and the metadata (with the headers) to disk, then keeps the metadata
    /// in the index.
    pub fn record(
        &mut self,
        mut letter: CapturedLetter,
        headers: &[(String, String)],
        body: &[u8],
    ) -> std::io::Result<u32> {
        letter.seq = self.letters.len() as u32 + 1;
        letter.body_file = self.body_file.clone();
        letter.body_offset = self.written;
        self.bodies.write_all(body)?;
        self.written += body.len() as u64;
        let line = MetadataLine {
            letter: &letter,
            headers,
        };
        serde_json::to_writer(&mut self.meta, &line).map_err(std::io::Error::other)?;
        self.meta.write_all(b"\n")?;
        let seq = letter.seq;
        self.letters.push(letter);
        Ok(seq)
    }

    /// Records a received message as endpoint and poller both do: a canary (an accepted
    /// message on [`CANARY_WORKFLOW`]) is only counted, as proof that the capture path is
    /// alive; anything else is [`CaptureLog::record`]ed. Returns the letter's number, or
    /// `None` for a canary.
    pub fn record_message(
        &mut self,
        letter: CapturedLetter,
        headers: &[(String, String)],
        body: &[u8],
    ) -> std::io::Result<Option<u32>> {
        if letter.workflow_id.as_deref() == Some(CANARY_WORKFLOW) && letter.accepted() {
            self.canaries += 1;
            return Ok(None);
        }
        self.record(letter, headers, body).map(Some)
    }

    /// Numbers the letters as `numbering` says (see [`Numbering`]): the same every run of the
    /// same EHR, however its sends interleave. (`messages.ndjson` keeps the order of arrival.)
    pub fn renumber(&mut self, numbering: Numbering) {
        // `seq` is unique, so an unstable sort gives the same order, without a buffer the size
        // of the index.
        match numbering {
            Numbering::Arrival => self.letters.sort_unstable_by(|a, b| {
                (a.received_at, &a.local_id, &a.route, a.seq).cmp(&(
                    b.received_at,
                    &b.local_id,
                    &b.route,
                    b.seq,
                ))
            }),
            Numbering::Content => self
                .letters
                .sort_unstable_by(|a, b| content_key(a).cmp(&content_key(b))),
        }
        for (i, l) in self.letters.iter_mut().enumerate() {
            l.seq = i as u32 + 1;
        }
    }

    /// Writes out what is buffered; the capture calls it when it finishes.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.bodies.flush()?;
        self.meta.flush()
    }
}

#[cfg(test)]
mod numbering_tests {
    use super::*;
    use crate::protocol::read::LetterFacts;

    /// A letter for `nhs` about an event at `clinical`, arriving at `arrived` with the
    /// sender's made-up `local_id`.
    fn letter(nhs: &str, clinical: i64, arrived: i64, local_id: &str) -> CapturedLetter {
        let facts = LetterFacts {
            kind: Some(LetterKind::ClinicLetter),
            nhs_number: NhsNumber::parse(nhs).ok(),
            recipient_ods: Some("A81001".into()),
            clinical_at: Some(Timestamp(clinical)),
            digest: format!("d{nhs}"),
            ..LetterFacts::default()
        };
        let mut l = CapturedLetter::received(
            Transport::Mesh,
            Timestamp(arrived),
            "RXXHC001 -> A81001HC001".into(),
            local_id.into(),
            0,
            Ok(facts),
        );
        l.local_id = Some(local_id.into());
        l
    }

    fn numbered(letters: Vec<CapturedLetter>, numbering: Numbering) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CaptureLog::create(dir.path()).unwrap();
        for l in letters {
            log.record(l, &[], b"").unwrap();
        }
        log.renumber(numbering);
        log.letters
            .iter()
            .map(|l| format!("{} {}", l.seq, l.facts.as_ref().unwrap().digest))
            .collect()
    }

    #[test]
    fn two_runs_whose_letters_arrive_in_another_order_with_other_ids_number_them_alike() {
        // Issue 11: three letters sent within one second, numbered by arrival then by the
        // EHR's random ids, came out in another order on a second healthy run.
        let first = vec![
            letter("9990000018", 100, 1000, "7f3a"),
            letter("9990000026", 100, 1000, "01bc"),
            letter("9990000034", 50, 1001, "c9d2"),
        ];
        let second = vec![
            letter("9990000034", 50, 2000, "aa01"),
            letter("9990000026", 100, 2000, "ff00"),
            letter("9990000018", 100, 2001, "0b0b"),
        ];
        let a = numbered(first, Numbering::Content);
        assert_eq!(a, numbered(second, Numbering::Content));
        assert_eq!(a, ["1 d9990000034", "2 d9990000018", "3 d9990000026"]);
    }

    #[test]
    fn on_the_virtual_clock_letters_keep_their_order_of_arrival() {
        let letters = vec![
            letter("9990000018", 100, 1000, "SIM-000002"),
            letter("9990000034", 50, 1001, "SIM-000003"),
        ];
        assert_eq!(
            numbered(letters, Numbering::Arrival),
            ["1 d9990000018", "2 d9990000034"]
        );
        assert_eq!(
            Numbering::for_clock(&Clock::virtual_at(Timestamp(0))),
            Numbering::Arrival
        );
        assert_eq!(Numbering::for_clock(&Clock::System), Numbering::Content);
    }
}
