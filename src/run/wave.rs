//! A wave of a target run: scenarios driven at once against the target (see
//! [`crate::targets::parallel`] for which may be), each waited for and checked on its own.
//!
//! Design constraints:
//! - Never a false pass. The target's captures listen on fixed addresses, so a wave has one
//!   [`CaptureGroup`]: it starts before any member is driven and is proved alive with its
//!   canaries once, when every member has waited. A wave whose captures fail to start, poll
//!   or prove themselves makes every member an error outcome (exit 3), never a pass.
//! - A letter counts for one member at most: every letter is placed by the target's
//!   `match:` ([`crate::targets::matching::place`]), while the wave waits and when it is
//!   sorted out, so a letter of one member can never satisfy another's expectation.
//! - Each member is waited for on its own: the wave waits until every member has its
//!   expected letters and nothing new came for `settle` (or `max` passes), so no member waits
//!   less than it would alone.
//! - Each member's letters are copied into its own capture folder, numbered as its findings
//!   number them, so `explain` reads them as after a sequential run; the wave's captures stay
//!   in `.waves/N` of the run folder.

use super::check::check;
use super::outcome::Outcome;
use super::pipeline::{drive, RunConfig, RunError};
use crate::capture::group::{wave_gp_receiver, ScenarioCell};
use crate::capture::{CaptureGroup, CaptureGroupError, CaptureLog, CapturedLetter, Carried};
use crate::protocol::clock::Timestamp;
use crate::scenario::Scenario;
use crate::targets::captures;
use crate::targets::clinical::ClinicalClock;
use crate::targets::matching::{local_ids, place, sort_out_wave, Driven, Placed};
use crate::targets::rebase::{event_patients, rebase};
use crate::targets::{Driver, Target};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// One scenario of a wave, once its driver is made.
struct Member<'a> {
    /// Its position in the wave.
    k: usize,
    s: &'a Arc<Scenario>,
    driver: Driver<'a>,
    clinical: ClinicalClock,
    /// The scenario as driven so far, which the GP receiver answers from.
    known: ScenarioCell,
    /// When each event was driven, once all were; why not, when driving failed.
    driven: Option<Result<Vec<Timestamp>, RunError>>,
}

/// Runs the scenarios of one wave (`number` from 1) at once against `t`; their outcomes in
/// the wave's order. Each is added to `history`, in that order, before any is driven.
pub(super) async fn run_wave(
    t: &Target,
    wave: &[&Arc<Scenario>],
    number: usize,
    config: &RunConfig,
    http: &reqwest::Client,
    carried: &mut Carried,
    history: &mut Vec<Driven>,
) -> Vec<Outcome> {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; wave.len()];
    let mut members = Vec::new();
    // Every driver first, so a scenario a driver refuses holds no capture.
    for (k, s) in wave.iter().enumerate() {
        let ids = local_ids(s.timeline.len());
        history.push(Driven {
            id: s.id.clone(),
            local_ids: ids.clone(),
            patients: event_patients(s),
            driven_at: vec![],
        });
        let made = async {
            let clinical = ClinicalClock::for_scenario(&t.clock, s)?;
            let driver = Driver::for_target(t, s, ids, clinical.clone()).await?;
            Ok::<_, RunError>((driver, clinical))
        };
        match made.await {
            Ok((driver, clinical)) => members.push(Member {
                k,
                s,
                driver,
                known: Arc::new(RwLock::new(Arc::new(rebase(t, s, &[], &[])))),
                clinical,
                driven: None,
            }),
            Err(e) => outcomes[k] = Some(config.errored(s, &e, ms())),
        }
    }
    if members.is_empty() {
        return outcomes.into_iter().flatten().collect();
    }
    let dir = config.work_dir.join(".waves").join(number.to_string());
    let size = wave.len();
    let captured = drive_and_capture(t, &mut members, size, &dir, http, carried, history).await;
    let history: &[Driven] = history;
    match captured {
        Ok(letters) => {
            let sorted = sort_out(t, &members, letters, history, wave.len());
            for (m, sorted) in members.iter().zip(sorted) {
                outcomes[m.k] = Some(match (&m.driven, sorted) {
                    (Some(Err(e)), _) => config.errored(m.s, e, ms()),
                    (_, Some((rebased, mine, before))) => {
                        match keep_in_own_folder(&config.capture_dir(m.s), mine) {
                            Ok(mine) => {
                                let mut o = check(&rebased, config, &mine, before);
                                o.clock = Some(m.clinical.describe());
                                o.elapsed_ms = ms();
                                o
                            }
                            Err(e) => config.errored(m.s, &RunError::Keep(e), ms()),
                        }
                    }
                    (_, None) => config.errored(m.s, &RunError::NotDriven, ms()),
                });
            }
        }
        // The wave's captures failed: every member is an error, its own drive's if that
        // failed first.
        Err(e) => {
            for m in &members {
                let e = match &m.driven {
                    Some(Err(own)) => own,
                    _ => &e,
                };
                outcomes[m.k] = Some(config.errored(m.s, e, ms()));
            }
        }
    }
    outcomes
        .into_iter()
        .zip(wave)
        .map(|(o, s)| o.unwrap_or_else(|| config.errored(s, &RunError::NotDriven, ms())))
        .collect()
}

/// Starts the wave's captures, drives every member at once (each member's `driven` says
/// how it went), waits for them all, then proves the captures alive and stops them: every
/// letter they captured. A failure of the captures is the whole wave's.
async fn drive_and_capture(
    t: &Target,
    members: &mut [Member<'_>],
    size: usize,
    dir: &Path,
    http: &reqwest::Client,
    carried: &mut Carried,
    history: &mut [Driven],
) -> Result<Vec<CapturedLetter>, RunError> {
    let first = history.len() - size;
    let acks: Vec<ScenarioCell> = members
        .iter()
        .filter(|m| m.s.acknowledgements)
        .map(|m| m.known.clone())
        .collect();
    let gp = (!acks.is_empty()).then(|| wave_gp_receiver(acks));
    let plan = captures::capture_plan(t, dir, gp)?;
    let mut group = CaptureGroup::start(plan, carried).await?;
    let drives = members.iter_mut().map(|m| async move {
        let (s, known, clinical) = (m.s, m.known.clone(), m.clinical.clone());
        let drove = drive(&mut m.driver, s, |driven| {
            if let Ok(mut k) = known.write() {
                *k = Arc::new(rebase(t, s, driven, &clinical.times(driven)));
            }
        })
        .await;
        m.driven = Some(drove.map_err(RunError::from));
    });
    futures::future::join_all(drives).await;
    let mut expected: Vec<Option<usize>> = vec![None; size];
    for m in members.iter() {
        if let Some(Ok(times)) = &m.driven {
            history[first + m.k].driven_at = times.clone();
            expected[m.k] = Some(m.s.expect.iter().map(|x| x.count as usize).sum());
        }
    }
    match wait_for_wave(t, &mut group, &expected, history).await {
        Ok(()) => Ok(group.finish(http).await?),
        Err(e) => {
            group.release().await;
            Err(e.into())
        }
    }
}

/// Polls the captures until every member driven has its expected letters (each letter
/// counted where [`place`] puts it) and nothing new came for `settle`, or `max` runs out.
async fn wait_for_wave(
    t: &Target,
    group: &mut CaptureGroup<'_>,
    expected: &[Option<usize>],
    history: &[Driven],
) -> Result<(), CaptureGroupError> {
    let wait = &t.wait;
    let started = Instant::now();
    let live: Vec<bool> = expected.iter().map(Option::is_some).collect();
    let (mut last_count, mut last_change) = (group.captured(), Instant::now());
    while started.elapsed() < wait.max {
        let nap = wait
            .poll_interval
            .min(wait.settle)
            .max(Duration::from_millis(100));
        tokio::time::sleep(nap).await;
        group.poll().await?;
        let n = group.captured();
        if n != last_count {
            (last_count, last_change) = (n, Instant::now());
        }
        if last_change.elapsed() < wait.settle {
            continue;
        }
        let mut letters = group.letters_so_far();
        crate::targets::readers::read_again(t, &mut letters);
        let mut counted = vec![0; expected.len()];
        for l in &letters {
            if let Placed::Counted(k, _) = place(&t.match_by, l, history, &live) {
                counted[k] += 1;
            }
        }
        let every = expected.iter().zip(&counted);
        if every.clone().all(|(x, n)| x.is_none_or(|x| *n >= x)) {
            break;
        }
    }
    Ok(())
}

/// What a member is checked with: its scenario re-based, its own letters and the findings
/// made before it was checked; `None` for a member whose drive failed.
type Sorted = Option<(Scenario, Vec<CapturedLetter>, Vec<crate::expect::Finding>)>;

/// Each member's [`Sorted`], in the order of `members`; `history` ends with the wave.
fn sort_out(
    t: &Target,
    members: &[Member<'_>],
    mut letters: Vec<CapturedLetter>,
    history: &[Driven],
    size: usize,
) -> Vec<Sorted> {
    crate::targets::readers::read_again(t, &mut letters);
    let mut rebased: Vec<Option<Scenario>> = (0..size).map(|_| None).collect();
    for m in members {
        if let Some(Ok(driven)) = &m.driven {
            rebased[m.k] = Some(rebase(t, m.s, driven, &m.clinical.times(driven)));
        }
    }
    let wave: Vec<Option<&Scenario>> = rebased.iter().map(Option::as_ref).collect();
    let mut sorted = sort_out_wave(&t.match_by, &wave, letters, history);
    members
        .iter()
        .map(|m| {
            let (mine, before) = std::mem::take(&mut sorted[m.k]);
            rebased[m.k].take().map(|r| (r, mine, before))
        })
        .collect()
}

/// Copies `letters` (their bodies read back) into a new capture log in `dir`, numbered as
/// they are: the member's own capture folder, as a scenario run alone has.
fn keep_in_own_folder(
    dir: &Path,
    letters: Vec<CapturedLetter>,
) -> std::io::Result<Vec<CapturedLetter>> {
    let mut log = CaptureLog::create(dir)?;
    for l in letters {
        let body = l.read_body()?;
        log.record(l, &[], &body)?;
    }
    log.flush()?;
    Ok(log.letters)
}
