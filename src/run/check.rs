//! The checker: one scenario's captured letters against its expectations and its accepted
//! snapshot, into an [`Outcome`]. Every kind of run (the simulator, a target, a collect of a
//! two-phase run) ends here, so a scenario is judged the same way whatever drove it.

use super::outcome::{LetterLine, Outcome, ScopedFinding, SnapshotStatus, Verdict};
use super::RunConfig;
use crate::capture::CapturedLetter;
use crate::expect::{self, Finding, Scope};
use crate::scenario::Scenario;
use crate::snapshot::{self, Comparison, SnapshotMode, SnapshotStore};
use std::path::PathBuf;

/// Checks expectations and the snapshot; writes `.snap.new` or `.snap` as the mode says.
/// `before` are findings about the scenario made before it (a target run's letters that could
/// not be matched to it), which also keep it from becoming a baseline.
pub fn check(
    s: &Scenario,
    config: &RunConfig,
    letters: &[CapturedLetter],
    before: Vec<Finding>,
) -> Outcome {
    let mut found: Vec<(Scope, Finding)> = expect::check_scoped(s, letters);
    found.extend(before.into_iter().map(|f| (Scope::Scenario, f)));
    let body = snapshot::render(s, letters);
    // Only a clean scenario may become the accepted baseline.
    let snap = compare(s, &config.store, config.mode, &body, found.is_empty());
    found.extend(snap.finding.map(|f| (Scope::Snapshot, f)));
    let verdict = match (&snap.error, found.is_empty()) {
        (Some(_), _) => Verdict::Error,
        (None, true) => Verdict::Pass,
        (None, false) => Verdict::Fail,
    };
    Outcome {
        scenario_id: s.id.clone(),
        name: s.name.clone(),
        path: s.path.clone(),
        verdict,
        findings: found
            .into_iter()
            .map(|(scope, finding)| ScopedFinding {
                severity: s.severity_of(finding.kind()),
                finding,
                scope,
            })
            .collect(),
        captured: letters.iter().map(|l| LetterLine::of(s, l)).collect(),
        baseline: snap.baseline,
        error: snap.error,
        letters: letters.len(),
        snapshot: snap.status,
        pending_snapshot: snap.pending,
        capture_dir: config.work_dir.join(&s.id),
        elapsed_ms: 0,
    }
}

/// What comparing with the accepted snapshot gave.
struct Compared {
    status: SnapshotStatus,
    /// The difference, or that there is no baseline, unless it was accepted.
    finding: Option<Finding>,
    /// The letters of the accepted snapshot, when there is one.
    baseline: Option<Vec<LetterLine>>,
    pending: Option<PathBuf>,
    /// A snapshot that could not be read or written.
    error: Option<String>,
}

/// Compares `body` with the accepted snapshot of `s`, and writes what `mode` says: nothing
/// (check), a pending `.snap.new` (new), or the accepted `.snap` when `clean` (accept).
fn compare(
    s: &Scenario,
    store: &SnapshotStore,
    mode: SnapshotMode,
    body: &str,
    clean: bool,
) -> Compared {
    let fail = |e: std::io::Error| Some(format!("could not write the snapshot: {e}"));
    let mut c = Compared {
        status: SnapshotStatus::NotCompared,
        finding: None,
        baseline: None,
        pending: None,
        error: None,
    };
    // Read the accepted snapshot once: for the comparison and for the baseline letters.
    let accepted = match store.accepted_body(&s.id) {
        Ok(a) => a,
        Err(e) => {
            c.error = fail(e);
            return c;
        }
    };
    c.baseline = accepted.as_deref().map(LetterLine::from_snapshot);
    let (status, finding) = match snapshot::store::compare_bodies(accepted.as_deref(), body) {
        Comparison::Matches => {
            if mode != SnapshotMode::Check {
                c.error = store.clear_pending(&s.id).err().and_then(fail);
            }
            c.status = SnapshotStatus::Matched;
            return c;
        }
        Comparison::Changed { diff, letters } => (
            SnapshotStatus::Changed,
            Finding::ContentChanged { letters, diff },
        ),
        _ => (
            SnapshotStatus::New,
            Finding::NewSnapshot {
                path: store.path(&s.id).to_string_lossy().into_owned(),
                written: mode != SnapshotMode::Check,
            },
        ),
    };
    c.status = status;
    if mode == SnapshotMode::Accept && clean {
        match store.write_accepted(&s.id, &s.path, &s.name, body) {
            Ok(_) => c.status = SnapshotStatus::Accepted,
            Err(e) => c.error = fail(e),
        }
        return c;
    }
    if mode != SnapshotMode::Check {
        match store.write_pending(&s.id, &s.path, &s.name, body) {
            Ok(p) => c.pending = Some(p),
            Err(e) => c.error = fail(e),
        }
    }
    c.finding = Some(finding);
    c
}
