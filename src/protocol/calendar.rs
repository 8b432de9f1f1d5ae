//! The calendar of England and Wales, as clinical time lives in it: UK civil time (GMT, or BST
//! in summer), the bank holidays of England and Wales ([`bank_holidays`], from GOV.UK's list in
//! `data/`), and [`Shift`]: a scenario moved as a whole to other days that keep its calendar
//! (weekday, time of day, bank holidays, the nights the clocks change, month and year ends).
//!
//! Why the shift keeps all of these: EHR upgrades break on calendar edges (batch jobs that skip
//! weekends and bank holidays, the hour that does not exist in March, month-end runs), so a
//! scenario about a Saturday discharge must reach a staging EHR as a Saturday discharge.

use super::clock::Timestamp;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use time::{Date, Duration, Month, PrimitiveDateTime, Weekday};

/// GOV.UK's list of bank holidays, the `england-and-wales` division (see `data/README.md`).
const BANK_HOLIDAYS_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/bank-holidays-england-and-wales.json"
));

/// The bank holidays of England and Wales for the years the list covers.
#[derive(Debug)]
pub struct BankHolidays {
    days: BTreeMap<Date, String>,
    first_year: i32,
    last_year: i32,
}

impl BankHolidays {
    /// The holiday's name on `d`, if it is one.
    pub fn name(&self, d: Date) -> Option<&str> {
        self.days.get(&d).map(String::as_str)
    }

    pub fn contains(&self, d: Date) -> bool {
        self.days.contains_key(&d)
    }

    /// Whether the list says anything about `d`'s year.
    pub fn covers(&self, d: Date) -> bool {
        (self.first_year..=self.last_year).contains(&d.year())
    }

    /// The first and last year of the list.
    pub fn years(&self) -> (i32, i32) {
        (self.first_year, self.last_year)
    }
}

/// The list, read once from the file compiled in.
pub fn bank_holidays() -> &'static BankHolidays {
    static LIST: OnceLock<BankHolidays> = OnceLock::new();
    LIST.get_or_init(|| {
        let v: serde_json::Value =
            serde_json::from_str(BANK_HOLIDAYS_JSON).expect("the bank holiday list is JSON");
        let format = time::macros::format_description!("[year]-[month]-[day]");
        let days: BTreeMap<Date, String> = v["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let d = Date::parse(e["date"].as_str()?, &format).ok()?;
                Some((d, e["title"].as_str().unwrap_or_default().to_string()))
            })
            .collect();
        let year = |d: Option<(&Date, &String)>| d.map_or(0, |(d, _)| d.year());
        BankHolidays {
            first_year: year(days.first_key_value()),
            last_year: year(days.last_key_value()),
            days,
        }
    })
}

/// The last Sunday of `month` in `year`: the clocks change then (The Summer Time Order 2002).
fn last_sunday(year: i32, month: Month) -> Date {
    let mut d = Date::from_calendar_date(year, month, month.length(year)).unwrap_or(Date::MIN);
    while d.weekday() != Weekday::Sunday {
        d = d.previous_day().unwrap_or(Date::MIN);
    }
    d
}

/// UK civil time's offset from UTC at `t`, in seconds: 3600 in British Summer Time, from 01:00
/// UTC on the last Sunday of March to 01:00 UTC on the last Sunday of October, else 0.
pub fn uk_offset(t: Timestamp) -> i64 {
    let utc = t.to_datetime();
    let year = utc.year();
    let at_one = |d: Date| {
        d.with_hms(1, 0, 0)
            .map_or(0, |x| x.assume_utc().unix_timestamp())
    };
    let (from, to) = (
        at_one(last_sunday(year, Month::March)),
        at_one(last_sunday(year, Month::October)),
    );
    if (from..to).contains(&t.0) {
        3600
    } else {
        0
    }
}

/// `t` as a clock in England shows it.
pub fn uk_local(t: Timestamp) -> PrimitiveDateTime {
    let local = t.to_datetime() + Duration::seconds(uk_offset(t));
    PrimitiveDateTime::new(local.date(), local.time())
}

/// The day `t` falls on in England.
pub fn uk_day(t: Timestamp) -> Date {
    uk_local(t).date()
}

/// The instant a clock in England shows `local`. A time in the hour that does not exist (the
/// March night the clocks go forward) is read as GMT, so it lands an hour later on the clock; a
/// time in the hour that happens twice (October) is the first, in BST.
pub fn from_uk_local(local: PrimitiveDateTime) -> Timestamp {
    let as_utc = local.assume_utc().unix_timestamp();
    for offset in [3600, 0] {
        let t = Timestamp(as_utc - offset);
        if uk_offset(t) == offset {
            return t;
        }
    }
    Timestamp(as_utc)
}

/// Whether the clocks change on the night of `d` (the last Sunday of March or of October).
pub fn clocks_change_on(d: Date) -> bool {
    d == last_sunday(d.year(), Month::March) || d == last_sunday(d.year(), Month::October)
}

fn last_of_month(d: Date) -> bool {
    d.next_day().is_none_or(|n| n.month() != d.month())
}

/// What of a day a scenario's shift keeps: a bank holiday, the clocks changing, the last day
/// of a month and of a year (the weekday is kept by shifting whole weeks).
fn day_kind(d: Date) -> (bool, bool, bool, bool) {
    let last = last_of_month(d);
    (
        bank_holidays().contains(d),
        clocks_change_on(d),
        last,
        last && d.month() == Month::December,
    )
}

/// How many days either side of a scenario's events keep their calendar: a week, so a letter
/// due within 7 days meets the same weekends and holidays.
const MARGIN_DAYS: i64 = 7;

/// A scenario moved as a whole by whole weeks of the calendar in England, each event keeping
/// its clock time: a Saturday 23:30 stays a Saturday 23:30.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shift {
    /// Calendar days, a multiple of 7; negative moves into the past.
    pub days: i64,
}

impl Shift {
    pub const NONE: Shift = Shift { days: 0 };

    /// `t` moved by the shift, at the same time on a clock in England.
    pub fn apply(self, t: Timestamp) -> Timestamp {
        from_uk_local(uk_local(t) + Duration::days(self.days))
    }
}

impl fmt::Display for Shift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let weeks = self.days / 7;
        match weeks {
            0 => f.write_str("not moved"),
            w if w < 0 => write!(f, "moved {} weeks back", -w),
            w => write!(f, "moved {w} weeks on"),
        }
    }
}

/// Why no [`Shift`] could be found for a scenario.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShiftError {
    #[error("the scenario has no events to move")]
    NoEvents,
    #[error("the scenario's days ({from} to {to}, with a week either side) are outside the bank holiday list, which covers {first} to {last} (data/bank-holidays-england-and-wales.json): move the scenario, or refresh the list")]
    OutsideList {
        from: Date,
        to: Date,
        first: i32,
        last: i32,
    },
    #[error("no days on or before {not_after} keep the scenario's calendar (weekday, time of day, bank holidays, clock changes, month and year ends from {from} to {to}) within the bank holiday list ({first} to {last}): name a later date, or refresh the list")]
    NoMatch {
        not_after: Date,
        from: Date,
        to: Date,
        first: i32,
        last: i32,
    },
}

/// The shift that puts `times` (a scenario's events) on the most recent days, its last event
/// not after `not_after`, that keep their calendar: the weekday and clock time of every event,
/// and, from a week before the first event to a week after the last, which days are bank
/// holidays of England and Wales, on which nights the clocks change, and which days end a
/// month or a year.
///
/// ```
/// use lettergate::protocol::calendar::{scenario_shift, uk_local};
/// use lettergate::protocol::clock::Timestamp;
/// // A Saturday 23:30 discharge, moved to the latest such Saturday before Wednesday 8 January 2025.
/// let sat = Timestamp::parse("2025-03-08T23:30:00Z").unwrap();
/// let now = Timestamp::parse("2025-01-08T12:00:00Z").unwrap();
/// let moved = scenario_shift(&[sat], now).unwrap().apply(sat);
/// assert_eq!(moved.rfc3339(), "2024-12-14T23:30:00Z");
/// ```
pub fn scenario_shift(times: &[Timestamp], not_after: Timestamp) -> Result<Shift, ShiftError> {
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return Err(ShiftError::NoEvents);
    };
    let list = bank_holidays();
    let (first_year, last_year) = list.years();
    let from = uk_day(*first) - Duration::days(MARGIN_DAYS);
    let to = uk_day(*last) + Duration::days(MARGIN_DAYS);
    if !list.covers(from) || !list.covers(to) {
        return Err(ShiftError::OutsideList {
            from,
            to,
            first: first_year,
            last: last_year,
        });
    }
    let days: Vec<Date> = std::iter::successors(Some(from), |d| d.next_day())
        .take_while(|d| *d <= to)
        .collect();
    let kinds: Vec<_> = days.iter().map(|d| day_kind(*d)).collect();
    let weeks_to = (uk_day(not_after) - uk_day(*last))
        .whole_days()
        .div_euclid(7);
    let mut n = weeks_to * 7;
    loop {
        let shift = Shift { days: n };
        let moved_from = from + Duration::days(n);
        if !list.covers(moved_from) {
            return Err(ShiftError::NoMatch {
                not_after: uk_day(not_after),
                from: uk_day(*first),
                to: uk_day(*last),
                first: first_year,
                last: last_year,
            });
        }
        let fits = list.covers(to + Duration::days(n))
            && shift.apply(*last) <= not_after
            && days
                .iter()
                .zip(&kinds)
                .all(|(d, k)| day_kind(*d + Duration::days(n)) == *k);
        if fits {
            return Ok(shift);
        }
        n -= 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn date(y: i32, m: Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).unwrap()
    }

    #[test]
    fn the_list_is_england_and_waless_from_gov_uk_and_covers_2012_to_2028() {
        let list = bank_holidays();
        assert_eq!(list.years(), (2012, 2028));
        assert_eq!(
            list.name(date(2025, Month::August, 25)),
            Some("Summer bank holiday")
        );
        // England and Wales, not Scotland: 2 January and St Andrew's Day are not in it.
        assert!(!list.contains(date(2025, Month::January, 2)));
        assert!(!list.contains(date(2025, Month::December, 1)));
        // A one-off: the State Funeral of Queen Elizabeth II.
        assert!(list.contains(date(2022, Month::September, 19)));
    }

    #[test]
    fn uk_time_is_bst_from_the_last_sunday_of_march_to_the_last_sunday_of_october() {
        for (t, offset) in [
            ("2025-03-30T00:59:59Z", 0),
            ("2025-03-30T01:00:00Z", 3600),
            ("2025-10-26T00:59:59Z", 3600),
            ("2025-10-26T01:00:00Z", 0),
            ("2025-07-01T12:00:00Z", 3600),
            ("2025-12-31T23:30:00Z", 0),
        ] {
            assert_eq!(uk_offset(ts(t)), offset, "{t}");
        }
        assert_eq!(
            uk_day(ts("2025-06-30T23:30:00Z")),
            date(2025, Month::July, 1)
        );
        assert!(clocks_change_on(date(2025, Month::March, 30)));
        assert!(clocks_change_on(date(2025, Month::October, 26)));
        assert!(!clocks_change_on(date(2025, Month::October, 19)));
    }

    #[test]
    fn a_clock_time_that_does_not_exist_lands_an_hour_later_and_one_that_happens_twice_is_the_first(
    ) {
        let local =
            |d: Date, h, m| PrimitiveDateTime::new(d, time::Time::from_hms(h, m, 0).unwrap());
        let march = date(2025, Month::March, 30);
        assert_eq!(
            from_uk_local(local(march, 1, 30)).rfc3339(),
            "2025-03-30T01:30:00Z"
        );
        assert_eq!(uk_local(from_uk_local(local(march, 1, 30))).hour(), 2);
        let october = date(2025, Month::October, 26);
        assert_eq!(
            from_uk_local(local(october, 1, 30)).rfc3339(),
            "2025-10-26T00:30:00Z"
        );
    }

    #[test]
    fn a_shift_keeps_weekday_clock_time_and_bank_holidays() {
        // Easter Monday 2025, 10:00 BST, not after 1 April 2025: not to Easter Monday 2024
        // (1 April: its week before holds the end of March), but to 10 April 2023, 10:00 BST.
        let easter = ts("2025-04-21T09:00:00Z");
        let s = scenario_shift(&[easter], ts("2025-04-01T00:00:00Z")).unwrap();
        assert_eq!(s.days % 7, 0);
        assert_eq!(s.apply(easter).rfc3339(), "2023-04-10T09:00:00Z");
        assert_eq!(
            bank_holidays().name(uk_day(s.apply(easter))),
            Some("Easter Monday")
        );
        // A Wednesday in winter, 10:00 GMT, kept at 10:00 on a clock in summer.
        let wed = ts("2025-01-08T10:00:00Z");
        let moved = Shift { days: 7 * 26 }.apply(wed);
        assert_eq!(uk_local(moved).hour(), 10);
        assert_eq!(uk_local(moved).weekday(), Weekday::Wednesday);
    }

    #[test]
    fn a_shift_keeps_the_night_the_clocks_change_and_the_end_of_a_year() {
        let now = ts("2026-12-03T12:00:00Z");
        let march = ts("2025-03-30T00:30:00Z");
        let m = scenario_shift(&[march], now).unwrap().apply(march);
        assert!(clocks_change_on(uk_day(m)), "{m}");
        assert_eq!(uk_day(m).month(), Month::March);
        let nye = ts("2025-12-31T23:30:00Z");
        let y = scenario_shift(&[nye], now).unwrap().apply(nye);
        assert_eq!(
            (uk_day(y).month(), uk_day(y).day()),
            (Month::December, 31),
            "{y}"
        );
        assert_eq!(uk_day(y).weekday(), Weekday::Wednesday);
        assert!(y <= now);
    }

    #[test]
    fn a_shift_is_never_into_the_future_and_says_why_none_fits() {
        let now = ts("2025-01-08T12:00:00Z");
        let sat = ts("2025-03-08T23:30:00Z");
        let moved = scenario_shift(&[sat], now).unwrap().apply(sat);
        assert!(moved <= now);
        let e = scenario_shift(&[ts("2011-06-01T10:00:00Z")], now).unwrap_err();
        assert!(e.to_string().contains("2012 to 2028"), "{e}");
        let e = scenario_shift(&[ts("2025-12-31T23:30:00Z")], ts("2013-01-01T00:00:00Z"));
        assert!(matches!(e, Err(ShiftError::NoMatch { .. })), "{e:?}");
    }
}
