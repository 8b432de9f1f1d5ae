//! The run pipeline: every scenario goes drive → capture → check → [`Outcome`] the same way,
//! whatever the system under test.
//!
//! 1. A [`CaptureGroup`] starts every capture the scenario needs (from the simulator's or the
//!    target's [`CapturePlan`](crate::capture::CapturePlan)).
//! 2. A [`Driver`] tells the system the scenario's events: `begin`, each event at its time,
//!    `end` (`drive`). A target run then waits for letters to settle.
//! 3. The group proves every capture alive with its canary and hands back the letters
//!    (`close`); a failed drive releases the group instead, so nothing it held (a listener,
//!    a port, a task) outlives the scenario, and the scenario is an error outcome with the
//!    cause chain.
//! 4. [`check`] judges the letters against the expectations and the snapshot.
//!
//! Simulator scenarios run concurrently (`jobs` at once, each on its own virtual clock);
//! target scenarios run in waves of at most `jobs` ([`crate::targets::parallel`]), a wave of
//! one as below and a larger one over one set of captures ([`super::wave`]), because a
//! staging EHR is one shared system.

use super::check::check;
use super::outcome::Outcome;
use super::replay::Seen;
use crate::capture::group::{gp_receiver, ScenarioCell};
use crate::capture::{CaptureGroup, CaptureGroupError, CapturedLetter, Carried};
use crate::protocol::chain;
use crate::protocol::clock::{Clock, Timestamp};
use crate::scenario::Scenario;
use crate::sim::{SimConfig, Simulator};
use crate::snapshot::{SnapshotMode, SnapshotStore};
use crate::targets::captures::BeforeRunError;
use crate::targets::clinical::ClinicalClock;
use crate::targets::matching::{local_ids, sort_out, Driven};
use crate::targets::model::Wait;
use crate::targets::rebase::{event_patients, rebase};
use crate::targets::{captures, DriveError, Driver, Target, TargetError};
use futures::StreamExt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Everything a run needs besides the scenarios.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub sim: SimConfig,
    pub store: SnapshotStore,
    pub mode: SnapshotMode,
    /// This run's folder; each scenario writes its captured messages below it.
    pub work_dir: PathBuf,
    pub jobs: usize,
    /// The address capture endpoints listen on; loopback unless configured.
    pub listen_ip: IpAddr,
    /// The ids of the letters seen so far, shared by the run's scenarios: a letter replayed
    /// into a capture without authentication is a finding ([`super::replay`]).
    pub seen: Arc<Seen>,
}

impl RunConfig {
    pub fn new(sim: SimConfig, store: SnapshotStore, work_dir: PathBuf) -> RunConfig {
        RunConfig {
            sim,
            store,
            mode: SnapshotMode::New,
            work_dir,
            jobs: 8,
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            seen: Arc::new(Seen::this_run_only()),
        }
    }

    /// The folder a scenario's captured messages go to.
    pub(super) fn capture_dir(&self, s: &Scenario) -> PathBuf {
        self.work_dir.join(&s.id)
    }

    /// The outcome of a scenario the harness could not run.
    pub(crate) fn errored(&self, s: &Scenario, e: &dyn std::error::Error, ms: u64) -> Outcome {
        Outcome::errored(s, self.capture_dir(s), chain(e), ms)
    }
}

/// Why the harness could not run a scenario: it is then an error outcome, never a pass.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Capture(#[from] CaptureGroupError),
    #[error(transparent)]
    Drive(#[from] DriveError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    BeforeRun(#[from] BeforeRunError),
    #[error(transparent)]
    Clinical(#[from] crate::targets::clinical::ClinicalError),
    #[error("failed to build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("the scenario task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("could not copy the scenario's letters into its capture folder")]
    Keep(#[source] std::io::Error),
    #[error("the scenario was not driven")]
    NotDriven,
}

/// Runs every scenario against the built-in simulator, at most `config.jobs` at once, calling
/// `on_outcome` in scenario order as soon as each outcome (and all before it) is known.
///
/// Scenarios are shared, not copied: a generated one holds tens of thousands of patients.
pub async fn run_all(
    scenarios: &[Arc<Scenario>],
    config: RunConfig,
    mut on_outcome: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    let config = Arc::new(config);
    let http = match crate::sim::ehr::sending_client() {
        Ok(h) => h,
        Err(e) => {
            let e = RunError::HttpClient(e);
            return scenarios.iter().map(|s| config.errored(s, &e, 0)).collect();
        }
    };
    let mut outcomes = Vec::with_capacity(scenarios.len());
    let mut stream = futures::stream::iter(scenarios.iter().map(|s| {
        let (s, config, http) = (s.clone(), config.clone(), http.clone());
        async move {
            let (s2, c2) = (s.clone(), config.clone());
            tokio::spawn(async move { run_scenario(&s, &config, &http).await })
                .await
                .unwrap_or_else(|e| c2.errored(&s2, &RunError::Task(e), 0))
        }
    }))
    .buffered(config.jobs.max(1));
    while let Some(o) = stream.next().await {
        on_outcome(&o);
        outcomes.push(o);
    }
    outcomes
}

/// Runs one scenario against the built-in simulator.
pub async fn run_scenario(
    s: &Arc<Scenario>,
    config: &RunConfig,
    http: &reqwest::Client,
) -> Outcome {
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    match simulate(s, config, http).await {
        Ok(letters) => {
            let mut outcome = check(s, config, &letters, Vec::new());
            outcome.elapsed_ms = ms();
            outcome
        }
        Err(e) => config.errored(s, &e, ms()),
    }
}

/// The simulator's part of a run: captures on free ports, the timeline on a virtual clock.
async fn simulate(
    s: &Arc<Scenario>,
    config: &RunConfig,
    http: &reqwest::Client,
) -> Result<Vec<CapturedLetter>, RunError> {
    use crate::targets::sim;
    let clock = Clock::virtual_at(s.start);
    let password = uuid::Uuid::new_v4().to_string();
    let known: ScenarioCell = Arc::new(RwLock::new(s.clone()));
    let dir = config.capture_dir(s);
    let plan = sim::capture_plan(s, known, config.listen_ip, &dir, clock.clone(), &password);
    let mut carried = Carried::default();
    let group = CaptureGroup::start(plan, &mut carried).await?;
    let out = sim::outbound(&group, password);
    let simulator = Simulator::new(config.sim.clone(), clock, out, http.clone());
    let mut driver = Driver::simulator(simulator, s);
    let drove = drive(&mut driver, s, |_| {}).await.map_err(RunError::from);
    Ok(close(group, drove, http).await?.1)
}

/// Runs every scenario against the target in the waves [`crate::targets::parallel::plan`]
/// makes of them (one at a time with `config.jobs` 1), calling `on_outcome` in scenario order
/// as soon as each outcome (and all before it) is known.
pub async fn run_target(
    t: &Target,
    scenarios: &[Arc<Scenario>],
    config: RunConfig,
    mut on_outcome: impl FnMut(&Outcome),
) -> Vec<Outcome> {
    if let crate::targets::model::Drive::Http(_) = t.drive {
        eprintln!(
            "note: patients are {} (target {})",
            crate::targets::check::registration(&t.drive),
            t.name()
        );
    }
    if !t.acknowledgements {
        eprintln!(
            "note: ITK3 acknowledgements are not checked against target {}: its target file says its EHR does not collect them (acknowledgements: false)",
            t.name()
        );
    } else if t.capture.mesh_endpoint.is_none() {
        eprintln!(
            "note: ITK3 acknowledgements are not checked against target {}: they are seen only when lettergate runs the MESH endpoint (capture.mesh_endpoint)",
            t.name()
        );
    }
    eprintln!(
        "note: {} (target {}); deadlines count from when the EHR was told",
        match t.clock {
            crate::targets::file::TargetClock::Now => "clinical time: clock now, each event as having happened when it is driven",
            crate::targets::file::TargetClock::Scenario { .. } => "clinical time: clock scenario, each scenario's events at their own times, moved as a whole onto the most recent days that keep its calendar",
        },
        t.name()
    );
    let refs: Vec<&Scenario> = scenarios.iter().map(|s| s.as_ref()).collect();
    let plan = crate::targets::parallel::plan(t, &refs, config.jobs);
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    let started = async {
        let http = crate::targets::check::http_client(None, Duration::from_secs(30))?;
        Ok::<_, RunError>((http, captures::before_run(t).await?))
    };
    let (http, mut carried) = match started.await {
        Ok(r) => r,
        Err(e) => {
            let outcomes: Vec<Outcome> =
                scenarios.iter().map(|s| config.errored(s, &e, 0)).collect();
            outcomes.iter().for_each(&mut on_outcome);
            return outcomes;
        }
    };
    // Every scenario run so far, so a letter that comes late is known for whose it is.
    let mut history: Vec<Driven> = Vec::new();
    let mut done: Vec<Option<Outcome>> = vec![None; scenarios.len()];
    let mut reported = 0;
    for (n, wave) in plan.waves.iter().enumerate() {
        let outcomes = match wave.as_slice() {
            [i] => {
                let s = &scenarios[*i];
                vec![run_target_scenario(t, s, &config, &http, &mut carried, &mut history).await]
            }
            _ => {
                let members: Vec<&Arc<Scenario>> = wave.iter().map(|i| &scenarios[*i]).collect();
                let (c, h) = (&mut carried, &mut history);
                super::wave::run_wave(t, &members, n + 1, &config, &http, c, h).await
            }
        };
        for (i, o) in wave.iter().zip(outcomes) {
            done[*i] = Some(o);
        }
        while let Some(Some(o)) = done.get(reported) {
            on_outcome(o);
            reported += 1;
        }
    }
    done.into_iter().flatten().collect()
}

/// One scenario of a target run: driven with new local ids, its letters sorted out from
/// those of the scenarios before it, then checked.
async fn run_target_scenario(
    t: &Target,
    s: &Arc<Scenario>,
    config: &RunConfig,
    http: &reqwest::Client,
    carried: &mut Carried,
    history: &mut Vec<Driven>,
) -> Outcome {
    let started = Instant::now();
    let local_ids = local_ids(s.timeline.len());
    let result = drive_target(t, s, config, http, local_ids.clone(), carried).await;
    history.push(Driven {
        id: s.id.clone(),
        local_ids,
        patients: event_patients(s),
        driven_at: result
            .as_ref()
            .map_or(vec![], |r| r.0.timeline.iter().map(|e| e.at).collect()),
    });
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok((rebased, clock, mut letters)) => {
            crate::targets::readers::read_again(t, &mut letters);
            let (mine, before) = sort_out(&t.match_by, &rebased, letters, history);
            let mut o = check(&rebased, config, &mine, before);
            o.clock = Some(clock);
            o.elapsed_ms = started.elapsed().as_millis() as u64;
            o
        }
        Err(e) => config.errored(s, &e, ms),
    }
}

/// Drives `s` against `t` with `local_ids` and captures its letters: the scenario re-based
/// onto the times its events were driven (and told as having happened), the clinical clock
/// in words, and the letters. The driver is made first, so a scenario it refuses holds no
/// capture.
async fn drive_target(
    t: &Target,
    s: &Arc<Scenario>,
    config: &RunConfig,
    http: &reqwest::Client,
    local_ids: Vec<String>,
    carried: &mut Carried,
) -> Result<(Scenario, String, Vec<CapturedLetter>), RunError> {
    let clinical = ClinicalClock::for_scenario(&t.clock, s)?;
    let mut driver = Driver::for_target(t, s, local_ids, clinical.clone()).await?;
    // The GP receiver answers from the scenario as driven so far.
    let known: ScenarioCell = Arc::new(RwLock::new(Arc::new(rebase(t, s, &[], &[]))));
    let gp = s.acknowledgements.then(|| gp_receiver(known.clone()));
    let plan = captures::capture_plan(t, &config.capture_dir(s), gp)?;
    let mut group = CaptureGroup::start(plan, carried).await?;
    let drove = async {
        let driven = drive(&mut driver, s, |driven| {
            if let Ok(mut k) = known.write() {
                *k = Arc::new(rebase(t, s, driven, &clinical.times(driven)));
            }
        })
        .await?;
        let expected: usize = s.expect.iter().map(|x| x.count as usize).sum();
        wait_for_letters(&mut group, &t.wait, expected).await?;
        Ok(driven)
    }
    .await;
    let (driven, letters) = close(group, drove, http).await?;
    let rebased = rebase(t, s, &driven, &clinical.times(&driven));
    Ok((rebased, clinical.describe(), letters))
}

/// Tells `driver` every event of `s`, each at the time the driver gives, calling `driven`
/// with the times so far just before each event is sent. Returns those times.
pub(super) async fn drive(
    driver: &mut Driver<'_>,
    s: &Scenario,
    mut driven: impl FnMut(&[Timestamp]),
) -> Result<Vec<Timestamp>, DriveError> {
    driver.begin().await?;
    let mut at_times = Vec::with_capacity(s.timeline.len());
    for i in 0..s.timeline.len() {
        let at = driver.when(i);
        at_times.push(at);
        driven(&at_times);
        driver.event(i, at).await?;
    }
    driver.end().await?;
    Ok(at_times)
}

/// Polls the captures until every expected letter has arrived and nothing new came for
/// `wait.settle`, or `wait.max` runs out (a letter not there by then is missing).
async fn wait_for_letters(
    group: &mut CaptureGroup<'_>,
    wait: &Wait,
    expected: usize,
) -> Result<(), CaptureGroupError> {
    let started = Instant::now();
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
        if n >= expected && last_change.elapsed() >= wait.settle {
            break;
        }
    }
    Ok(())
}

/// Ends a scenario's captures: proved alive and finished after a drive that succeeded,
/// released after one that failed (whose error is the scenario's).
async fn close<T>(
    group: CaptureGroup<'_>,
    drove: Result<T, RunError>,
    http: &reqwest::Client,
) -> Result<(T, Vec<CapturedLetter>), RunError> {
    match drove {
        Ok(v) => Ok((v, group.finish(http).await?)),
        Err(e) => {
            group.release().await;
            Err(e)
        }
    }
}
