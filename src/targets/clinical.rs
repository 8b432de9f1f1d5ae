//! The clinical time a target run tells the EHR of each event: [`ClinicalClock`], from the
//! target file's `clock:` ([`TargetClock`]).
//!
//! A target run drives a scenario's events one after another, now. With `clock: now` each
//! event also happened now, as far as the EHR is told. With `clock: scenario` each carries its
//! time from the scenario, the scenario moved as a whole onto the most recent days that keep
//! its calendar ([`scenario_shift`]), for EHRs that take back-dated events. Either way the
//! deadlines count from when the EHR was told (the scenario's `at`); the dates a letter
//! states are checked against the clinical times (the scenario's `clinical_at`).
//!
//! `LETTERGATE_NOW` (an RFC 3339 time) moves "now" for clinical times only, so that tests do
//! not depend on the day they run: `clock: now` then tells times that start there, and
//! `clock: scenario` looks back from there.

use super::file::TargetClock;
use crate::protocol::calendar::{scenario_shift, uk_local, Shift, ShiftError};
use crate::protocol::clock::Timestamp;
use crate::scenario::Scenario;
use std::sync::OnceLock;

/// The environment variable that moves "now" for clinical times (tests set it).
pub const NOW_ENV: &str = "LETTERGATE_NOW";

/// Why a scenario has no clinical times.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClinicalError {
    #[error("{NOW_ENV}=`{0}` is not an RFC 3339 time such as 2025-01-08T10:00:00Z")]
    BadNow(String),
    #[error("clock: scenario cannot place this scenario")]
    Shift(#[source] ShiftError),
}

/// How far `LETTERGATE_NOW` moves now, fixed when first asked, so that clinical times move
/// on with the wall clock from there.
fn now_offset() -> Result<i64, ClinicalError> {
    static OFFSET: OnceLock<Result<i64, ClinicalError>> = OnceLock::new();
    OFFSET
        .get_or_init(|| match std::env::var(NOW_ENV) {
            Err(_) => Ok(0),
            Ok(text) => Timestamp::parse(&text)
                .map(|t| t.0 - Timestamp::now().0)
                .map_err(|_| ClinicalError::BadNow(text)),
        })
        .clone()
}

/// The clinical time of each event of one scenario run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClinicalClock {
    /// The moment each event is driven, moved by `offset` seconds (`LETTERGATE_NOW`).
    Now { offset: i64 },
    /// The scenario's own times, moved by `shift`.
    Scenario { shift: Shift, times: Vec<Timestamp> },
}

impl ClinicalClock {
    /// The clock of `clock: now` without `LETTERGATE_NOW`.
    #[cfg(test)]
    pub const DRIVEN: ClinicalClock = ClinicalClock::Now { offset: 0 };

    /// The clinical clock `clock` gives scenario `s`, run now.
    pub fn for_scenario(clock: &TargetClock, s: &Scenario) -> Result<ClinicalClock, ClinicalError> {
        let offset = now_offset()?;
        match clock {
            TargetClock::Now => Ok(ClinicalClock::Now { offset }),
            TargetClock::Scenario { not_after } => {
                let now = Timestamp(Timestamp::now().0 + offset);
                let limit = match not_after {
                    // The end of that day in England.
                    Some(day) => {
                        let end = day.with_hms(23, 59, 59).unwrap_or(day.midnight());
                        crate::protocol::calendar::from_uk_local(end)
                    }
                    None => now,
                };
                let times: Vec<Timestamp> = s.timeline.iter().map(|e| e.clinical_at).collect();
                let shift = scenario_shift(&times, limit).map_err(ClinicalError::Shift)?;
                let times = times.into_iter().map(|t| shift.apply(t)).collect();
                Ok(ClinicalClock::Scenario { shift, times })
            }
        }
    }

    /// The clinical time of event `i`, driven at `driven`.
    pub fn at(&self, i: usize, driven: Timestamp) -> Timestamp {
        match self {
            ClinicalClock::Now { offset } => Timestamp(driven.0 + offset),
            ClinicalClock::Scenario { times, .. } => times.get(i).copied().unwrap_or(driven),
        }
    }

    /// The clinical times of the events driven at `driven`.
    pub fn times(&self, driven: &[Timestamp]) -> Vec<Timestamp> {
        driven
            .iter()
            .enumerate()
            .map(|(i, d)| self.at(i, *d))
            .collect()
    }

    /// What a report says of it: `scenario (moved 96 weeks back: first event Sat 2026-11-28
    /// 23:30 in England)`, `now (each event when it was driven)`.
    pub fn describe(&self) -> String {
        match self {
            ClinicalClock::Now { offset: 0 } => "now (each event when it was driven)".into(),
            ClinicalClock::Now { offset } => format!(
                "now (each event when it was driven, moved {}s by {NOW_ENV})",
                offset
            ),
            ClinicalClock::Scenario { shift, times } => {
                let first = times.iter().min().map(|t| {
                    let l = uk_local(*t);
                    format!(
                        ": first event {} {} {:02}:{:02} in England",
                        &l.weekday().to_string()[..3],
                        l.date(),
                        l.hour(),
                        l.minute()
                    )
                });
                format!("scenario ({shift}{})", first.unwrap_or_default())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Loader;
    use std::path::Path;

    #[test]
    fn clock_scenario_keeps_a_saturday_night_on_a_saturday_night_not_after_the_day_named() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/inpatient/discharge_summary.yaml");
        let s = Loader::new().load_scenario(&path).unwrap();
        let day = time::Date::from_calendar_date(2026, time::Month::November, 28).unwrap();
        let c = ClinicalClock::for_scenario(
            &TargetClock::Scenario {
                not_after: Some(day),
            },
            &s,
        )
        .unwrap();
        let times = c.times(&vec![Timestamp::now(); s.timeline.len()]);
        for (e, t) in s.timeline.iter().zip(&times) {
            let (a, b) = (uk_local(e.clinical_at), uk_local(*t));
            assert_eq!((a.weekday(), a.time()), (b.weekday(), b.time()));
            assert!(b.date() <= day);
        }
        assert!(
            c.describe().starts_with("scenario (moved "),
            "{}",
            c.describe()
        );
    }

    /// The bank holiday list covers every shipped scenario's days (with the week either side
    /// that `clock: scenario` keeps), and `clock: scenario` can place each of them today.
    #[test]
    fn the_bank_holiday_list_covers_the_days_of_every_shipped_scenario() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files = vec![];
        let mut dirs = vec![root];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && !p.ends_with("fixtures") && !p.ends_with("volume") {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    files.push(p);
                }
            }
        }
        assert!(files.len() > 10, "{files:?}");
        for f in files {
            let s = Loader::new().load_scenario(&f).unwrap();
            let clock = TargetClock::Scenario { not_after: None };
            let c = ClinicalClock::for_scenario(&clock, &s);
            assert!(c.is_ok(), "{}: {c:?}", f.display());
        }
    }

    #[test]
    fn clock_now_tells_the_moment_each_event_is_driven() {
        let c = ClinicalClock::DRIVEN;
        assert_eq!(c.at(3, Timestamp(1_000)), Timestamp(1_000));
        assert!(c.describe().starts_with("now"));
    }
}
