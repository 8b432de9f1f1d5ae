//! `lettergate collect`, through the same checker as every run: what
//! [`crate::targets::ledger::gather`] sorted by scenario is checked against
//! each scenario of the ledger, re-based onto the times its events were driven.

use super::check::check;
use super::outcome::Outcome;
use super::RunConfig;
use crate::capture::CapturedLetter;
use crate::expect::{unmatched_letter, FindingKind};
use crate::protocol::clock::Timestamp;
use crate::scenario::Scenario;
use crate::targets::ledger::{self, Ledger, LedgerError, LedgerScenario};
use crate::targets::rebase::rebase;
use crate::targets::Target;
use std::path::Path;
use std::sync::Arc;

/// `lettergate collect`: gathers what has arrived into the ledger's store, then checks every
/// scenario of the ledger against what the store holds. Returns the outcomes and how many
/// letters belong to the ledger's scenarios.
pub async fn collect(
    t: &Target,
    ledger: &Ledger,
    scenarios: &[Arc<Scenario>],
    dir: &Path,
    config: RunConfig,
) -> Result<(Vec<Outcome>, usize), LedgerError> {
    let mut collected = ledger::gather(t, ledger, dir).await?;
    let now = Timestamp::now();
    let outcomes = ledger
        .scenarios
        .iter()
        .filter_map(|ls| {
            let s = scenarios.iter().find(|s| s.id == ls.id)?;
            let letters = collected.by_scenario.remove(&ls.id).unwrap_or_default();
            Some(check_collected(t, ls, s, letters, &config, now))
        })
        .collect();
    Ok((outcomes, collected.attributed))
}

/// One scenario of the ledger: an error if driving it did not complete or its letters are
/// not all due yet; else its letters checked, numbered from 1, with a finding for each that
/// the target's `match:` could not tie to it.
fn check_collected(
    t: &Target,
    ls: &LedgerScenario,
    s: &Scenario,
    letters: Vec<(CapturedLetter, Option<String>)>,
    config: &RunConfig,
    now: Timestamp,
) -> Outcome {
    let errored = |why: String| Outcome::errored(s, config.work_dir.join(&s.id), why, 0);
    if let Some(e) = &ls.error {
        return errored(format!("driving stopped part way: {e}"));
    }
    if !ls.complete {
        return errored("driving was interrupted part way through this scenario; it cannot be checked (drive it again under a new ledger)".into());
    }
    // The clinical times the ledger recorded, whatever the target file says now.
    let mut rebased = rebase(t, s, &ls.driven_at, &ls.clinical_at);
    rebased.clinical_clock = Some(match ls.clock.as_deref() {
        Some(c) if c.starts_with("scenario") => "scenario",
        _ => "now",
    });
    let (mut mine, why): (Vec<CapturedLetter>, Vec<Option<String>>) = letters.into_iter().unzip();
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
                    t.match_by.name(),
                    why?
                ),
            ))
        })
        .collect();
    let mut o = check(&rebased, config, &mine, unmatched);
    o.clock = ls.clock.clone();
    let missing = o
        .findings
        .iter()
        .any(|f| f.kind() == FindingKind::MissingLetter);
    match ls.due_by {
        Some(due) if missing && now < due => errored(format!(
            "not all letters have arrived, and they are not due until {}: collect again after that",
            due.rfc3339()
        )),
        _ => o,
    }
}
