//! Two-phase runs, for EHRs that send in overnight batches: `lettergate drive` tells the
//! target about each scenario's events and writes a run ledger (which scenarios, which
//! patients, when each event was driven, which letters are due by when); `lettergate collect`
//! later gathers the letters where they wait (MESH mailboxes, a folder) and checks them.
//!
//! The ledger folder holds `ledger.json` (rewritten whole, atomically, after every event
//! driven) and `captured/`, the store every collect adds to. So a crash loses nothing: a
//! driven event is in the ledger before the next is sent, a collected letter is on disk before
//! it is acknowledged, and collecting again checks everything collected so far: the same
//! verdict.

use super::matching::{attribute, Driven};
use super::run::{poll_config, rebase, Driver};
use super::Target;
use crate::capture::poll::MeshPoller;
use crate::capture::{CaptureLog, CapturedLetter, FolderCapture, LogSink};
use crate::expect::unmatched_letter;
use crate::protocol::chain;
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::ids::NhsNumber;
use crate::run::{check_with, errored, Outcome, RunConfig};
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub const FORMAT: &str = "lettergate.ledger/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ledger {
    pub format: String,
    /// The target file, as given to `drive`.
    pub target: PathBuf,
    pub target_name: String,
    pub scenarios: Vec<LedgerScenario>,
    /// What was already waiting when the ledger was made, before anything was driven: not
    /// this run's, and left out of every collect.
    #[serde(default)]
    pub waiting_before: WaitingBefore,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WaitingBefore {
    /// MESH messages, by recipient (or sending) mailbox and message id.
    pub mesh: Vec<(String, String)>,
    /// Files of the watched folder, by name.
    pub files: Vec<String>,
}

impl WaitingBefore {
    /// Lists the target's MESH mailboxes and folder (nothing is downloaded or moved).
    async fn now(t: &Target) -> Result<WaitingBefore, String> {
        let c = &t.raw.capture;
        let mut w = WaitingBefore::default();
        if let Some(p) = &c.mesh_poll {
            let mut poller = MeshPoller::new(poll_config(p)?)
                .map_err(|e| format!("could not list MESH: {}", chain(&e)))?;
            w.mesh = poller
                .skip_waiting()
                .await
                .map_err(|e| format!("could not list MESH: {}", chain(&e)))?;
        }
        if let Some(f) = &c.folder {
            w.files = crate::capture::folder::KnownFiles::in_folder(&f.path)
                .map_err(|e| format!("could not read the folder {}: {e}", f.path.display()))?
                .names();
        }
        if !w.mesh.is_empty() || !w.files.is_empty() {
            eprintln!(
                "note: {} MESH message(s) and {} file(s) were waiting before anything was driven; they are left where they are, and out of every collect of this ledger",
                w.mesh.len(),
                w.files.len()
            );
        }
        Ok(w)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerScenario {
    pub id: String,
    pub path: PathBuf,
    /// When each event of the timeline was driven, in order; shorter than the timeline while
    /// (or if) driving stopped part way.
    pub driven_at: Vec<Timestamp>,
    pub complete: bool,
    /// Why driving stopped, if it did.
    pub error: Option<String>,
    /// The patients its events are about, by key and NHS number.
    pub patients: BTreeMap<String, String>,
    /// The local id each event of its timeline is driven with (see
    /// [`super::matching`]); written before the first event is sent.
    #[serde(default)]
    pub local_ids: Vec<String>,
    /// Every expected letter is due by then.
    pub due_by: Option<Timestamp>,
}

impl Ledger {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("ledger.json")
    }

    pub fn load(dir: &Path) -> Result<Option<Ledger>, String> {
        let p = Ledger::path(dir);
        if !p.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&p)
            .map_err(|e| format!("could not read the ledger {}: {e}", p.display()))?;
        let l: Ledger = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a lettergate ledger: {e}", p.display()))?;
        if l.format != FORMAT {
            return Err(format!(
                "{} is a ledger of format {}, not {FORMAT}",
                p.display(),
                l.format
            ));
        }
        Ok(Some(l))
    }

    /// Writes the ledger whole, to a temporary file renamed into place.
    pub fn save(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
        let p = Ledger::path(dir);
        let tmp = dir.join("ledger.json.tmp");
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, &p))
            .map_err(|e| format!("could not write the ledger {}: {e}", p.display()))
    }
}

/// Targets whose letters wait until collected: MESH mailboxes or a folder.
pub fn check_two_phase(t: &Target) -> Result<(), String> {
    let c = &t.raw.capture;
    if c.mesh_poll.is_none() && c.folder.is_none() {
        return Err(format!(
            "target {} captures only on endpoints lettergate must be running when the EHR sends; a two-phase run needs `capture.mesh_poll` or `capture.folder`, where letters wait",
            t.name()
        ));
    }
    Ok(())
}

/// The latest time any expected letter of `s` (re-based) is due.
fn due_by(s: &Scenario) -> Option<Timestamp> {
    s.expect
        .iter()
        .filter(|x| x.count > 0)
        .filter_map(|x| {
            s.events_of(&x.patient, x.of)
                .into_iter()
                .map(|e| e.at)
                .max()
                .map(|at| at.plus(x.within))
        })
        .max()
}

/// `lettergate drive`: drives every scenario not already in the ledger, writing the ledger
/// after each event. Returns the ledger.
pub async fn drive(
    t: &Target,
    target_path: &Path,
    scenarios: &[Arc<Scenario>],
    dir: &Path,
    mut progress: impl FnMut(&LedgerScenario),
) -> Result<Ledger, String> {
    check_two_phase(t)?;
    let mut ledger = match Ledger::load(dir)? {
        Some(l) if l.target_name != t.name() => {
            return Err(format!(
                "the ledger in {} belongs to target {}, not {}",
                dir.display(),
                l.target_name,
                t.name()
            ))
        }
        Some(l) => l,
        None => Ledger {
            format: FORMAT.into(),
            target: target_path.to_path_buf(),
            target_name: t.name().to_string(),
            scenarios: Vec::new(),
            waiting_before: WaitingBefore::now(t).await?,
        },
    };
    for s in scenarios.iter().filter(|s| !s.generated) {
        if ledger.scenarios.iter().any(|l| l.id == s.id) {
            // Driven by an earlier `drive`: never again, or the EHR would see every event twice.
            continue;
        }
        ledger.scenarios.push(LedgerScenario {
            id: s.id.clone(),
            path: s.path.clone(),
            driven_at: Vec::new(),
            complete: false,
            error: None,
            // The patients the scenario's events are about (fixtures bring many more).
            patients: s
                .timeline
                .iter()
                .map(|e| &s.patients[&e.patient])
                .map(|p| (p.key.clone(), p.nhs_number.to_string()))
                .collect(),
            local_ids: super::matching::local_ids(s.timeline.len()),
            due_by: None,
        });
        ledger.save(dir)?;
        let i = ledger.scenarios.len() - 1;
        let mut driver = Driver::new(t, s, ledger.scenarios[i].local_ids.clone()).await;
        for e in 0..s.timeline.len() {
            let at = Timestamp::now();
            let result = match &mut driver {
                Ok(d) => d.event(e, at).await,
                Err(err) => Err(err.clone()),
            };
            match result {
                Ok(()) => {
                    ledger.scenarios[i].driven_at.push(at);
                    ledger.save(dir)?;
                }
                Err(err) => {
                    ledger.scenarios[i].error = Some(err);
                    break;
                }
            }
        }
        let l = &mut ledger.scenarios[i];
        l.complete = l.error.is_none();
        if l.complete {
            l.due_by = due_by(&rebase(t, s, &l.driven_at));
        }
        ledger.save(dir)?;
        progress(&ledger.scenarios[i]);
    }
    Ok(ledger)
}

/// `lettergate collect`: gathers what has arrived into the ledger's store, then checks every
/// scenario of the ledger against what the store holds.
pub async fn collect(
    t: &Target,
    ledger: &Ledger,
    scenarios: &[Arc<Scenario>],
    dir: &Path,
    config: RunConfig,
) -> Result<(Vec<Outcome>, usize), String> {
    check_two_phase(t)?;
    let store_dir = dir.join("captured");
    let failed = |e: &dyn std::error::Error| format!("could not collect: {}", chain(e));
    let mut log = CaptureLog::open(&store_dir).map_err(|e| failed(&e))?;
    let c = &t.raw.capture;
    if let Some(p) = &c.mesh_poll {
        let mut poller = MeshPoller::new(poll_config(p)?).map_err(|e| failed(&e))?;
        poller.already_recorded(
            log.letters
                .iter()
                .filter_map(|l| Some((l.to_mailbox.clone()?, l.message_id.clone())))
                .chain(ledger.waiting_before.mesh.iter().cloned()),
        );
        poller
            .poll_once(&mut log, &Clock::System)
            .await
            .map_err(|e| format!("could not collect from MESH: {}", chain(&e)))?;
    }
    log.flush().map_err(|e| failed(&e))?;
    if let Some(f) = &c.folder {
        // The folder watcher records every complete file it finds; files recorded by an
        // earlier collect are dropped below by their name.
        let sink = Arc::new(LogSink::new(log));
        let w = FolderCapture::start(
            f.path.clone(),
            Duration::from_millis(50),
            sink.clone(),
            Clock::System,
        )
        .map_err(|e| failed(&e))?;
        w.finish().await.map_err(|e| failed(&e))?;
        log = sink
            .close()
            .map_err(|e| format!("could not collect: {e}"))?;
    }
    log.letters = dedupe(std::mem::take(&mut log.letters));
    // Files that were in the folder before anything was driven are not this run's.
    log.letters.retain(|l| {
        !(l.transport == crate::protocol::letter::Transport::Folder
            && ledger.waiting_before.files.contains(&l.message_id))
    });
    log.renumber();
    let collected = log.letters.len();
    // Each letter goes to the scenario the target's `match:` finds for it (by NHS number: the
    // one about its patient whose events came last before it arrived).
    let driven: Vec<Driven> = ledger
        .scenarios
        .iter()
        .map(|s| Driven {
            id: s.id.clone(),
            local_ids: s.local_ids.clone(),
            patients: s
                .patients
                .values()
                .filter_map(|n| NhsNumber::parse(n).ok())
                .collect(),
            driven_at: s.driven_at.clone(),
        })
        .collect();
    let mut by_scenario: BTreeMap<String, Vec<(CapturedLetter, Option<String>)>> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for l in std::mem::take(&mut log.letters) {
        let m = attribute(&t.raw.match_by, &l, &driven);
        match m.owner {
            Some(i) => by_scenario
                .entry(ledger.scenarios[i].id.clone())
                .or_default()
                .push((l, m.unmatched)),
            None => unattributed.push(l),
        }
    }
    if !unattributed.is_empty() {
        eprintln!(
            "note: {} collected letter(s) belong to no scenario of the ledger (not about its patients, or unreadable):",
            unattributed.len()
        );
        for l in &unattributed {
            // A file's name may be the patient's NHS number.
            let line = format!("  message {} via {}", l.message_id, l.route);
            eprintln!("{}", crate::protocol::ids::mask_in_text(&line));
        }
    }
    let now = Timestamp::now();
    let mut outcomes = Vec::new();
    for ls in &ledger.scenarios {
        let Some(s) = scenarios.iter().find(|s| s.id == ls.id) else {
            continue;
        };
        if let Some(e) = &ls.error {
            outcomes.push(errored(
                s,
                &config,
                format!("driving stopped part way: {e}"),
                0,
            ));
            continue;
        }
        if !ls.complete {
            outcomes.push(errored(
                s,
                &config,
                "driving was interrupted part way through this scenario; it cannot be checked (drive it again under a new ledger)".into(),
                0,
            ));
            continue;
        }
        let rebased = rebase(t, s, &ls.driven_at);
        let (mut mine, why): (Vec<CapturedLetter>, Vec<Option<String>>) = by_scenario
            .remove(&ls.id)
            .unwrap_or_default()
            .into_iter()
            .unzip();
        for (i, l) in mine.iter_mut().enumerate() {
            l.seq = i as u32 + 1;
        }
        let unmatched = mine
            .iter()
            .zip(why)
            .filter_map(|(l, why)| {
                Some(unmatched_letter(
                    &rebased,
                    l,
                    Some(l.seq),
                    format!(
                        "match: {} could not tie it to a scenario: {}; it is counted by its NHS number",
                        t.raw.match_by.name(),
                        why?
                    ),
                ))
            })
            .collect();
        let o = check_with(&rebased, &config, &mine, unmatched);
        let missing = o
            .findings
            .iter()
            .any(|f| f.kind() == crate::expect::FindingKind::MissingLetter);
        match ls.due_by {
            Some(due) if missing && now < due => outcomes.push(errored(
                s,
                &config,
                format!(
                    "not all letters have arrived, and they are not due until {}: collect again after that",
                    due.rfc3339()
                ),
                0,
            )),
            _ => outcomes.push(o),
        }
    }
    Ok((outcomes, collected - unattributed.len()))
}

/// Drops a message recorded twice by collects that found it still waiting (same transport and
/// message id, or the same file); keeps the first.
fn dedupe(letters: Vec<CapturedLetter>) -> Vec<CapturedLetter> {
    let mut seen = std::collections::HashSet::new();
    letters
        .into_iter()
        .filter(|l| {
            l.message_id.is_empty()
                || seen.insert((l.transport, l.route.clone(), l.message_id.clone()))
        })
        .collect()
}
