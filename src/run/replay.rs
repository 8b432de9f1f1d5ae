//! [`Seen`]: the ids of every letter captured, so that a letter replayed into a capture
//! without authentication of its own is a finding, not a pass (issue 13).
//!
//! lettergate's MESH endpoint signs every request in (`NHSMESH`, a nonce used once), and a
//! polled MESH is the real one. The HTTP, MLLP and folder captures take whatever reaches them:
//! anything on the host could post a copy of a letter from an earlier run's `bodies.bin`, and
//! it would count for the expectation while the EHR sent nothing. A real EHR, and the
//! simulator, give every letter new ids (its local id, its document's id, its message's id),
//! so a letter on those captures carrying an id already seen is a copy:
//!
//! - seen in an earlier run kept in the work folder (`runs/<run>/letter-ids.ndjson`, one line
//!   per id, written as each scenario is checked), or
//! - seen in another scenario of this run checked before it.
//!
//! A letter sent twice within one scenario is a duplicate, not a replay, and is left to the
//! duplicate check. A replay of a letter from a run no longer kept (the ten newest are) or of
//! one that carries no id is not recognised: README "Security and limits" says so.

use crate::capture::CapturedLetter;
use crate::expect::Replay;
use crate::protocol::letter::Transport;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The file in each run's folder that holds the ids of its letters.
pub const IDS_FILE: &str = "letter-ids.ndjson";

/// An earlier run's file larger than this is not read (a run of 53,000 letters writes about
/// 15 MB): a file planted in the work folder must not exhaust memory.
pub const MAX_IDS_FILE: u64 = 64 * 1024 * 1024;

/// One line of [`IDS_FILE`].
#[derive(Serialize, Deserialize)]
struct IdLine {
    id: String,
    scenario: String,
    letter: u32,
}

/// Where an id was first seen. Shared names: a run holds an id per letter, three or four per
/// letter, and a volume run hundreds of thousands.
#[derive(Clone, Debug)]
struct Place {
    /// The earlier run's folder name; `None` for this run.
    run: Option<Arc<str>>,
    scenario: Arc<str>,
    letter: u32,
}

impl Place {
    fn words(&self) -> String {
        match &self.run {
            Some(run) => format!(
                "letter #{} of scenario {} in the earlier run {run}",
                self.letter, self.scenario
            ),
            None => format!(
                "letter #{} of scenario {} earlier in this run",
                self.letter, self.scenario
            ),
        }
    }
}

/// The ids seen so far: in earlier runs, and in this run's scenarios checked so far. Shared by
/// the scenarios of a run, which may be checked at once.
#[derive(Debug, Default)]
pub struct Seen {
    earlier: HashMap<Box<str>, Place>,
    this_run: Mutex<HashMap<Box<str>, Place>>,
    /// This run's [`IDS_FILE`], when the run keeps one.
    file: Option<Mutex<std::fs::File>>,
}

impl Seen {
    /// Ids of this run only (a collect, a matrix, a benchmark): nothing read, nothing written.
    pub fn this_run_only() -> Seen {
        Seen::default()
    }

    /// The ids of the earlier runs beside `run_dir` (its siblings under `runs/`), and a file in
    /// `run_dir` that this run's ids are written to. An earlier run whose file cannot be read
    /// is skipped; the run's own file not opening is an error, since later runs would miss
    /// this one's letters.
    pub fn with_history(run_dir: &Path) -> std::io::Result<Seen> {
        let mut earlier = HashMap::new();
        if let Some(runs) = run_dir.parent() {
            for dir in earlier_runs(runs, run_dir) {
                read_ids(&dir, &mut earlier);
            }
        }
        let file = crate::files::open_private(&run_dir.join(IDS_FILE), true)?;
        Ok(Seen {
            earlier,
            this_run: Mutex::new(HashMap::new()),
            file: Some(Mutex::new(file)),
        })
    }

    /// The letters of scenario `scenario` that are replays (by number), then every letter's
    /// ids recorded as seen in it. Only letters accepted on a capture without authentication
    /// of its own can be replays; the ids of every letter are recorded, since a body sent over
    /// MESH can be copied to the HTTP capture.
    pub fn check_and_record(
        &self,
        scenario: &str,
        letters: &[CapturedLetter],
    ) -> BTreeMap<u32, Replay> {
        let mut replays = BTreeMap::new();
        let mut this_run = self.this_run.lock().unwrap_or_else(|e| e.into_inner());
        for l in letters
            .iter()
            .filter(|l| unauthenticated(l) && l.accepted())
        {
            let found = ids(l).into_iter().find_map(|(which, id)| {
                let place = self
                    .earlier
                    .get(id)
                    .or_else(|| this_run.get(id).filter(|p| &*p.scenario != scenario))?;
                Some(Replay {
                    which,
                    id: id.to_string(),
                    seen_in: place.words(),
                })
            });
            if let Some(r) = found {
                replays.insert(l.seq, r);
            }
        }
        let name: Arc<str> = scenario.into();
        // The lines for this run's file, when it keeps one, written at once.
        let mut lines: Option<Vec<u8>> = self.file.as_ref().map(|_| Vec::new());
        for l in letters.iter().filter(|l| l.accepted()) {
            for (_, id) in ids(l) {
                if this_run.contains_key(id) {
                    continue;
                }
                let place = Place {
                    run: None,
                    scenario: name.clone(),
                    letter: l.seq,
                };
                this_run.insert(id.into(), place);
                if let Some(out) = &mut lines {
                    let line = IdLine {
                        id: id.to_string(),
                        scenario: scenario.to_string(),
                        letter: l.seq,
                    };
                    if serde_json::to_writer(&mut *out, &line).is_ok() {
                        out.push(b'\n');
                    }
                }
            }
        }
        drop(this_run);
        if let (Some(file), Some(lines)) = (&self.file, lines.filter(|l| !l.is_empty())) {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            // A failed write loses only what later runs could compare with; this run's
            // checks use the ids in memory.
            let _ = f.write_all(&lines);
        }
        replays
    }
}

/// Whether a letter came over a capture that does not authenticate its sender.
fn unauthenticated(l: &CapturedLetter) -> bool {
    matches!(
        l.transport,
        Transport::Http | Transport::Mllp | Transport::Folder
    )
}

/// A letter's ids, each with what it is, none empty and each once.
fn ids(l: &CapturedLetter) -> Vec<(&'static str, &str)> {
    let f = l.facts.as_ref().ok();
    let candidates = [
        ("local id", l.local_id.as_deref()),
        ("local id", f.and_then(|f| f.reference.as_deref())),
        ("document id", f.and_then(|f| f.document_id.as_deref())),
        ("message id", f.and_then(|f| f.message_id.as_deref())),
    ];
    let mut out: Vec<(&'static str, &str)> = Vec::new();
    for (which, id) in candidates {
        if let Some(id) = id.map(str::trim).filter(|id| !id.is_empty()) {
            if !out.iter().any(|(_, seen)| *seen == id) {
                out.push((which, id));
            }
        }
    }
    out
}

/// The run folders under `runs` other than `this`, as real folders (not symlinks).
fn earlier_runs(runs: &Path, this: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| p != this)
        .collect()
}

/// Adds the ids of the run in `dir` to `into`, first seen first; a file that is missing, not
/// a regular file, too large or unreadable adds nothing, and a line that does not parse is
/// skipped.
fn read_ids(dir: &Path, into: &mut HashMap<Box<str>, Place>) {
    let path = dir.join(IDS_FILE);
    let Ok(file) = crate::files::open_regular(&path, crate::files::Links::Refuse) else {
        return;
    };
    if file
        .metadata()
        .map_or(true, |m| !m.is_file() || m.len() > MAX_IDS_FILE)
    {
        return;
    }
    let run: Arc<str> = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .into();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { return };
        let Ok(l) = serde_json::from_str::<IdLine>(&line) else {
            continue;
        };
        into.entry(l.id.into()).or_insert(Place {
            run: Some(run.clone()),
            scenario: l.scenario.into(),
            letter: l.letter,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CapturedLetter;
    use crate::protocol::clock::Timestamp;

    fn letter(seq: u32, transport: Transport, local_id: &str) -> CapturedLetter {
        let mut l = CapturedLetter::received(
            transport,
            Timestamp::parse("2025-01-06T09:00:00Z").unwrap(),
            "POST /print/v1/letters".into(),
            String::new(),
            0,
            Err(crate::protocol::read::ReadError::Pdf),
        );
        l.seq = seq;
        l.local_id = Some(local_id.into());
        l
    }

    #[test]
    fn a_letter_with_an_id_of_another_scenario_of_the_run_is_a_replay_on_http_only() {
        let seen = Seen::this_run_only();
        let first = [
            letter(1, Transport::Mesh, "SIM-A-1"),
            letter(2, Transport::Http, "SIM-A-2"),
        ];
        assert!(seen.check_and_record("a", &first).is_empty());
        let later = [
            letter(1, Transport::Http, "SIM-A-1"),
            letter(2, Transport::Mesh, "SIM-A-2"),
            letter(3, Transport::Folder, "SIM-B-3"),
        ];
        let replays = seen.check_and_record("b", &later);
        assert_eq!(replays.keys().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(replays[&1].which, "local id");
        assert_eq!(
            replays[&1].seen_in,
            "letter #1 of scenario a earlier in this run"
        );
    }

    #[test]
    fn a_letter_sent_twice_in_one_scenario_is_left_to_the_duplicate_check() {
        let seen = Seen::this_run_only();
        let twice = [
            letter(1, Transport::Http, "X-1"),
            letter(2, Transport::Http, "X-1"),
        ];
        assert!(seen.check_and_record("a", &twice).is_empty());
    }

    #[test]
    fn ids_of_earlier_runs_are_read_from_their_folders_and_this_runs_written_to_its_own() {
        let runs = tempfile::tempdir().unwrap();
        let (one, two) = (runs.path().join("run-1"), runs.path().join("run-2"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::create_dir_all(&two).unwrap();
        let seen = Seen::with_history(&one).unwrap();
        assert!(seen
            .check_and_record("a", &[letter(1, Transport::Http, "EHR-1")])
            .is_empty());
        drop(seen);
        let seen = Seen::with_history(&two).unwrap();
        let replays = seen.check_and_record(
            "a",
            &[
                letter(1, Transport::Mllp, "EHR-1"),
                letter(2, Transport::Mllp, "EHR-2"),
            ],
        );
        assert_eq!(replays.len(), 1);
        assert_eq!(
            replays[&1].seen_in,
            "letter #1 of scenario a in the earlier run run-1"
        );
        // A line that is not an id line is skipped, not fatal.
        std::fs::write(
            one.join(IDS_FILE),
            "garbage\n{\"id\":\"EHR-9\",\"scenario\":\"b\",\"letter\":4}\n",
        )
        .unwrap();
        let mut earlier = HashMap::new();
        read_ids(&one, &mut earlier);
        assert_eq!(earlier.keys().map(|k| &**k).collect::<Vec<_>>(), ["EHR-9"]);
    }
}
