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

use super::captures::poll_config;
use super::driver::Driver;
use super::matching::{attribute, Driven};
use super::rebase::rebase;
use super::{Target, TargetError};
use crate::capture::poll::{MeshPoller, PollError};
use crate::capture::server::CaptureError;
use crate::capture::{CaptureLog, CapturedLetter, FolderCapture, LogSink};
use crate::protocol::clock::{Clock, Timestamp};
use crate::protocol::ids::NhsNumber;
use crate::scenario::Scenario;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a ledger could not be read, written, driven or collected.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("could not read the ledger {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a lettergate ledger", .path.display())]
    NotALedger {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{} is a ledger of format {found}, not {FORMAT}", .path.display())]
    Format { path: PathBuf, found: String },
    #[error("could not create {}", .dir.display())]
    Create {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not write the ledger {}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Serialise(#[source] serde_json::Error),
    #[error("the ledger in {} belongs to target {found}, not {target}", .dir.display())]
    OtherTarget {
        dir: PathBuf,
        found: String,
        target: String,
    },
    #[error("target {0} captures only on endpoints lettergate must be running when the EHR sends; a two-phase run needs `capture.mesh_poll` or `capture.folder`, where letters wait")]
    NotTwoPhase(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("could not list MESH")]
    List(#[source] PollError),
    #[error("could not read the folder {}", .path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not collect")]
    Collect(#[source] CaptureError),
    #[error("could not collect")]
    Store(#[source] std::io::Error),
    #[error("could not collect: {0}")]
    Closed(crate::capture::sink::SinkError),
    #[error("could not collect")]
    Poller(#[source] PollError),
    #[error("could not collect from MESH")]
    CollectMesh(#[source] PollError),
}

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
    async fn now(t: &Target) -> Result<WaitingBefore, LedgerError> {
        let c = &t.capture;
        let mut w = WaitingBefore::default();
        if let Some(p) = &c.mesh_poll {
            let mut poller = MeshPoller::new(poll_config(p)?).map_err(LedgerError::List)?;
            w.mesh = poller.skip_waiting().await.map_err(LedgerError::List)?;
        }
        if let Some(f) = &c.folder {
            w.files = crate::capture::folder::KnownFiles::in_folder(&f.path)
                .map_err(|source| LedgerError::Folder {
                    path: f.path.clone(),
                    source,
                })?
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
    /// The clinical time each driven event was told with (the target's `clock:`), in order;
    /// empty in a ledger from before clinical times were kept (each then happened when it
    /// was driven).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clinical_at: Vec<Timestamp>,
    /// The clock they were told with: `now` or `scenario`, and how it moved the scenario.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
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

    pub fn load(dir: &Path) -> Result<Option<Ledger>, LedgerError> {
        let path = Ledger::path(dir);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::files::read_regular_to_string(&path, crate::files::Links::Refuse)
            .map_err(|source| LedgerError::Read {
                path: path.clone(),
                source,
            })?;
        let l: Ledger = serde_json::from_str(&text).map_err(|source| LedgerError::NotALedger {
            path: path.clone(),
            source,
        })?;
        if l.format != FORMAT {
            return Err(LedgerError::Format {
                path,
                found: l.format,
            });
        }
        Ok(Some(l))
    }

    /// Writes the ledger whole, private to its owner, through a random temporary file renamed
    /// into place ([`crate::files::write_private`]).
    pub fn save(&self, dir: &Path) -> Result<(), LedgerError> {
        crate::files::create_private_dir(dir, false).map_err(|source| LedgerError::Create {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = Ledger::path(dir);
        let text = serde_json::to_string_pretty(self).map_err(LedgerError::Serialise)?;
        crate::files::write_private(&path, text.as_bytes())
            .map_err(|source| LedgerError::Write { path, source })
    }

    /// The ledger in `dir` for `t`, or a new one noting what is waiting now.
    async fn open_or_start(
        t: &Target,
        target_path: &Path,
        dir: &Path,
    ) -> Result<Ledger, LedgerError> {
        match Ledger::load(dir)? {
            Some(l) if l.target_name != t.name() => Err(LedgerError::OtherTarget {
                dir: dir.to_path_buf(),
                found: l.target_name,
                target: t.name().to_string(),
            }),
            Some(l) => Ok(l),
            None => Ok(Ledger {
                format: FORMAT.into(),
                target: target_path.to_path_buf(),
                target_name: t.name().to_string(),
                scenarios: Vec::new(),
                waiting_before: WaitingBefore::now(t).await?,
            }),
        }
    }
}

/// Targets whose letters wait until collected: MESH mailboxes or a folder.
pub fn check_two_phase(t: &Target) -> Result<(), LedgerError> {
    let c = &t.capture;
    if c.mesh_poll.is_none() && c.folder.is_none() {
        return Err(LedgerError::NotTwoPhase(t.name().to_string()));
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

/// `lettergate drive`: drives every scenario not already in the ledger, `jobs` at once at
/// most in the waves [`super::parallel::plan`] makes (one at a time with `jobs` 1), writing
/// the ledger after each event. `progress` hears of each scenario, in the order given, once
/// it and those before it are driven. Returns the ledger.
pub async fn drive(
    t: &Target,
    target_path: &Path,
    scenarios: &[Arc<Scenario>],
    dir: &Path,
    jobs: usize,
    mut progress: impl FnMut(&LedgerScenario),
) -> Result<Ledger, LedgerError> {
    check_two_phase(t)?;
    let ledger = Ledger::open_or_start(t, target_path, dir).await?;
    let mut todo: Vec<&Scenario> = Vec::new();
    for s in scenarios.iter().filter(|s| !s.generated) {
        // Driven by an earlier `drive`: never again, or the EHR would see every event twice.
        let known = |id: &str| ledger.scenarios.iter().any(|l| l.id == id);
        if !known(&s.id) && !todo.iter().any(|d| d.id == s.id) {
            todo.push(s);
        }
    }
    let plan = super::parallel::plan(t, &todo, jobs);
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    let ledger = RefCell::new(ledger);
    // Where each scenario of `todo` is in the ledger, once it is.
    let mut at: Vec<Option<usize>> = vec![None; todo.len()];
    let mut reported = 0;
    for wave in &plan.waves {
        let first = ledger.borrow().scenarios.len();
        for (k, &i) in wave.iter().enumerate() {
            ledger.borrow_mut().scenarios.push(entry(todo[i]));
            at[i] = Some(first + k);
        }
        ledger.borrow().save(dir)?;
        let drives = wave
            .iter()
            .enumerate()
            .map(|(k, &i)| drive_one(t, todo[i], &ledger, first + k, dir));
        for driven in futures::future::join_all(drives).await {
            driven?;
        }
        while let Some(Some(i)) = at.get(reported) {
            progress(&ledger.borrow().scenarios[*i]);
            reported += 1;
        }
    }
    Ok(ledger.into_inner())
}

/// A scenario's entry in the ledger before anything of it is driven, with its local ids.
fn entry(s: &Scenario) -> LedgerScenario {
    LedgerScenario {
        id: s.id.clone(),
        path: s.path.clone(),
        driven_at: Vec::new(),
        clinical_at: Vec::new(),
        clock: None,
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
    }
}

/// Drives `s`, entry `i` of the ledger, saving the ledger after every event; an event the
/// target refuses stops it, with why. Scenarios of one wave drive at once on one task, each
/// borrowing the ledger only between its events.
async fn drive_one(
    t: &Target,
    s: &Scenario,
    ledger: &RefCell<Ledger>,
    i: usize,
    dir: &Path,
) -> Result<(), LedgerError> {
    let local_ids = ledger.borrow().scenarios[i].local_ids.clone();
    let clinical = match super::clinical::ClinicalClock::for_scenario(&t.clock, s) {
        Ok(c) => c,
        Err(err) => {
            ledger.borrow_mut().scenarios[i].error = Some(crate::protocol::chain(&err));
            return ledger.borrow().save(dir);
        }
    };
    ledger.borrow_mut().scenarios[i].clock = Some(clinical.describe());
    match Driver::for_target(t, s, local_ids, clinical.clone()).await {
        Ok(mut driver) => {
            for e in 0..s.timeline.len() {
                let at = Timestamp::now();
                if let Err(err) = driver.event(e, at).await {
                    ledger.borrow_mut().scenarios[i].error = Some(crate::protocol::chain(&err));
                    break;
                }
                let mut l = ledger.borrow_mut();
                l.scenarios[i].driven_at.push(at);
                l.scenarios[i].clinical_at.push(clinical.at(e, at));
                l.save(dir)?;
            }
        }
        Err(err) => ledger.borrow_mut().scenarios[i].error = Some(crate::protocol::chain(&err)),
    }
    let mut ledger = ledger.borrow_mut();
    let l = &mut ledger.scenarios[i];
    l.complete = l.error.is_none();
    if l.complete {
        l.due_by = due_by(&rebase(t, s, &l.driven_at, &l.clinical_at));
    }
    ledger.save(dir)
}

/// What `lettergate collect` found, sorted by scenario: each ledger scenario's letters (with
/// why the target's `match:` could not tie a letter to it, when it could not), and how many
/// belong to none.
#[derive(Debug, Default)]
pub struct Collected {
    pub by_scenario: BTreeMap<String, Vec<(CapturedLetter, Option<String>)>>,
    /// Letters that belong to the ledger's scenarios.
    pub attributed: usize,
}

/// `lettergate collect`, its first half: gathers what has arrived into the ledger's store, and
/// sorts everything the store holds by the scenario it belongs to.
pub async fn gather(t: &Target, ledger: &Ledger, dir: &Path) -> Result<Collected, LedgerError> {
    check_two_phase(t)?;
    let mut log = collect_into_store(t, ledger, &dir.join("captured")).await?;
    log.letters = dedupe(std::mem::take(&mut log.letters));
    // Files that were in the folder before anything was driven are not this run's.
    log.letters.retain(|l| {
        !(l.transport == crate::protocol::letter::Transport::Folder
            && ledger.waiting_before.files.contains(&l.message_id))
    });
    // Collected on the system clock: numbered by content.
    log.renumber(crate::capture::Numbering::Content);
    let collected = log.letters.len();
    let (by_scenario, unattributed) = attribute_all(t, ledger, log.letters);
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
    Ok(Collected {
        by_scenario,
        attributed: collected - unattributed.len(),
    })
}

/// Adds what waits in the MESH mailboxes and the folder to the store in `store_dir`, and
/// returns everything the store holds.
async fn collect_into_store(
    t: &Target,
    ledger: &Ledger,
    store_dir: &Path,
) -> Result<CaptureLog, LedgerError> {
    let mut log = CaptureLog::open(store_dir).map_err(LedgerError::Store)?;
    let c = &t.capture;
    if let Some(p) = &c.mesh_poll {
        let mut poller = MeshPoller::new(poll_config(p)?).map_err(LedgerError::Poller)?;
        poller.already_recorded(
            log.letters
                .iter()
                .filter_map(|l| Some((l.to_mailbox.clone()?, l.message_id.clone())))
                .chain(ledger.waiting_before.mesh.iter().cloned()),
        );
        poller
            .poll_once(&mut log, &Clock::System)
            .await
            .map_err(LedgerError::CollectMesh)?;
    }
    log.flush().map_err(LedgerError::Store)?;
    if let Some(f) = &c.folder {
        // The folder watcher records every complete file it finds; files recorded by an
        // earlier collect are dropped later by their name.
        let sink = Arc::new(LogSink::new(log));
        let w = FolderCapture::start(
            f.path.clone(),
            Duration::from_millis(50),
            sink.clone(),
            Clock::System,
        )
        .map_err(LedgerError::Collect)?;
        w.finish().await.map_err(LedgerError::Collect)?;
        log = sink.close().map_err(LedgerError::Closed)?;
    }
    Ok(log)
}

/// Each letter goes to the scenario the target's `match:` finds for it (by NHS number: the
/// one about its patient whose events came last before it arrived); the rest belong to none.
#[allow(clippy::type_complexity)]
fn attribute_all(
    t: &Target,
    ledger: &Ledger,
    mut letters: Vec<CapturedLetter>,
) -> (
    BTreeMap<String, Vec<(CapturedLetter, Option<String>)>>,
    Vec<CapturedLetter>,
) {
    super::readers::read_again(t, &mut letters);
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
    let mut by_scenario: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for l in letters {
        let m = attribute(&t.match_by, &l, &driven);
        match m.owner {
            Some(i) => by_scenario
                .entry(ledger.scenarios[i].id.clone())
                .or_default()
                .push((l, m.unmatched)),
            None => unattributed.push(l),
        }
    }
    (by_scenario, unattributed)
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
