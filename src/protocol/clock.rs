//! Time for scenarios: [`Span`] (a duration written like `2d 3h`), [`Timestamp`] and the
//! shared [`VirtualClock`] that lets the simulator and the capture endpoint agree on "now"
//! so that "seven days later" costs nothing and deadlines are checked exactly.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A length of time in whole seconds, written as `7d`, `24h`, `90m`, `30s` or `1d 2h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    /// The longest duration a file or option may give: ten years (3660d). Longer ones would
    /// only make the simulator's clock tick for ever, and near `i64::MAX` seconds they
    /// overflowed the arithmetic of deadlines ("late by -106751991167298d", issue 13).
    pub const MAX: Span = Span::days(3660);

    pub const fn days(d: i64) -> Span {
        Span(d * 86_400)
    }
    pub const fn hours(h: i64) -> Span {
        Span(h * 3_600)
    }
    pub const fn minutes(m: i64) -> Span {
        Span(m * 60)
    }

    /// Parses `2d`, `1d 2h`, `45m`, `0s`.
    ///
    /// ```
    /// use lettergate::protocol::clock::Span;
    /// assert_eq!(Span::parse("1d 2h").unwrap(), Span::hours(26));
    /// ```
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let bad = || SpanError::Invalid(text.to_string());
        let mut total = 0i64;
        let mut any = false;
        for part in text.split_whitespace() {
            let (num, unit) =
                part.split_at(part.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
            let n: i64 = num.parse().map_err(|_| bad())?;
            let mult = match unit {
                "d" => 86_400,
                "h" => 3_600,
                "m" => 60,
                "s" => 1,
                _ => return Err(bad()),
            };
            total = n
                .checked_mul(mult)
                .and_then(|v| v.checked_add(total))
                .filter(|v| *v <= Span::MAX.0)
                .ok_or_else(|| SpanError::TooLong(text.to_string()))?;
            any = true;
        }
        if any {
            Ok(Span(total))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.abs();
        if self.0 < 0 {
            f.write_str("-")?;
        }
        if rest == 0 {
            return f.write_str("0s");
        }
        let mut parts = Vec::new();
        for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= secs {
                parts.push(format!("{}{unit}", rest / secs));
                rest %= secs;
            }
        }
        f.write_str(&parts.join(" "))
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::protocol::de::parse_scalar(d, "a duration such as `7d`", Span::parse)
    }
}

/// A text that is not a duration, or one longer than [`Span::MAX`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error("invalid duration `{0}`: expected a number and a unit (d, h, m, s), such as `7d`, `24h` or `1d 2h`")]
    Invalid(String),
    #[error("duration `{0}` is longer than 3660d (ten years), the longest lettergate accepts: give a shorter one")]
    TooLong(String),
}

/// A text that is not an RFC 3339 time, or one outside the years 1970 to 9999.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("invalid time `{0}`: expected RFC 3339 such as `2025-03-03T09:30:00Z`")]
    Invalid(String),
    #[error("time `{0}` is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z, the times lettergate keeps: give a time in that range")]
    OutOfRange(String),
}

/// A point in (possibly virtual) time, in whole seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses RFC 3339 (`2025-03-03T09:30:00Z`); a missing `:SS` or zone is refused.
    pub fn parse(text: &str) -> Result<Timestamp, TimestampError> {
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Timestamp(t.unix_timestamp()))
            .map_err(|_| TimestampError::Invalid(text.to_string()))
    }

    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.0).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn rfc3339(self) -> String {
        self.to_datetime()
            .format(&Rfc3339)
            .unwrap_or_else(|_| self.0.to_string())
    }

    /// The earliest time a file may give: lettergate keeps times as seconds since 1970.
    pub const MIN: Timestamp = Timestamp(0);
    /// The latest: `9999-12-31T23:59:59Z`, the last time RFC 3339 can write.
    pub const MAX: Timestamp = Timestamp(253_402_300_799);

    /// Parses RFC 3339 as [`Timestamp::parse`] does, and refuses a time outside
    /// [`Timestamp::MIN`] to [`Timestamp::MAX`]: what files and requests give is read so.
    pub fn parse_in_range(text: &str) -> Result<Timestamp, TimestampError> {
        let t = Timestamp::parse(text)?;
        if (Timestamp::MIN..=Timestamp::MAX).contains(&t) {
            Ok(t)
        } else {
            Err(TimestampError::OutOfRange(text.to_string()))
        }
    }

    /// Saturating, so that no duration can wrap a time round (the loaders keep both in range).
    pub fn plus(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }

    pub fn since(self, earlier: Timestamp) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::protocol::de::parse_scalar(d, "an RFC 3339 time", Timestamp::parse_in_range)
    }
}

/// The wall-clock time in UTC as digits only, `yyyyMMddHHmmss` followed by microseconds:
/// `20250303093000123456`. Callers take the prefix they need (MESH tokens use the minute).
pub fn compact_utc_now() -> String {
    let t = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{:06}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// A clock shared by the simulator and the capture endpoint of one scenario run.
///
/// Virtual clocks move only when told to; the system clock follows the wall. Cloning shares
/// the same clock.
#[derive(Clone, Debug)]
pub enum Clock {
    Virtual(Arc<AtomicI64>),
    System,
}

impl Clock {
    pub fn virtual_at(start: Timestamp) -> Clock {
        Clock::Virtual(Arc::new(AtomicI64::new(start.0)))
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::Virtual(t) => Timestamp(t.load(Ordering::SeqCst)),
            Clock::System => Timestamp::now(),
        }
    }

    /// Moves a virtual clock forward to `t`; never backwards. No effect on the system clock.
    pub fn advance_to(&self, t: Timestamp) {
        if let Clock::Virtual(cur) = self {
            cur.fetch_max(t.0, Ordering::SeqCst);
        }
    }
}

/// Which kind of [`Clock`] a simulator runs on, as `sim serve --clock` names it: `virtual`
/// (time moves only when told) or `system` (the wall clock, as a staging EHR runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockKind {
    Virtual,
    System,
}

impl ClockKind {
    /// The names, in the order `--help` lists them.
    pub const NAMES: [&'static str; 2] = ["virtual", "system"];

    pub fn name(self) -> &'static str {
        match self {
            ClockKind::Virtual => "virtual",
            ClockKind::System => "system",
        }
    }

    /// A clock of this kind; a virtual one starts at `start`, the system clock ignores it.
    pub fn start(self, start: Timestamp) -> Clock {
        match self {
            ClockKind::Virtual => Clock::virtual_at(start),
            ClockKind::System => Clock::System,
        }
    }
}

impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A clock name that is neither `virtual` nor `system`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown clock `{0}`: write `virtual` or `system`")]
pub struct UnknownClock(pub String);

impl std::str::FromStr for ClockKind {
    type Err = UnknownClock;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "virtual" => Ok(ClockKind::Virtual),
            "system" => Ok(ClockKind::System),
            other => Err(UnknownClock(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_durations_in_days_hours_minutes() {
        for (text, secs, shown) in [
            ("7d", 604_800, "7d"),
            ("24h", 86_400, "1d"),
            ("1d 2h", 93_600, "1d 2h"),
            ("90m", 5_400, "1h 30m"),
            ("0s", 0, "0s"),
        ] {
            let s = Span::parse(text).unwrap();
            assert_eq!(s.0, secs, "{text}");
            assert_eq!(s.to_string(), shown, "{text}");
        }
        assert_eq!(Span(-3600).to_string(), "-1h");
    }

    #[test]
    fn durations_longer_than_ten_years_are_refused_not_overflowed() {
        assert_eq!(Span::parse("3660d"), Ok(Span::MAX));
        for long in [
            "3661d",
            "3660d 1s",
            "106751991167298d",
            "99999999999999999999d",
        ] {
            assert!(Span::parse(long).is_err(), "{long}");
        }
        assert_eq!(
            Span::parse("106751991167298d").unwrap_err().to_string(),
            "duration `106751991167298d` is longer than 3660d (ten years), the longest lettergate accepts: give a shorter one"
        );
        // Arithmetic saturates rather than wrapping round.
        assert_eq!(Timestamp(i64::MAX).plus(Span(1)), Timestamp(i64::MAX));
        assert_eq!(Timestamp(i64::MIN).since(Timestamp(1)), Span(i64::MIN));
    }

    #[test]
    fn times_files_give_are_between_1970_and_9999() {
        for ok in ["1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z"] {
            assert!(Timestamp::parse_in_range(ok).is_ok(), "{ok}");
        }
        for out in [
            "1969-12-31T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
        ] {
            assert!(
                matches!(
                    Timestamp::parse_in_range(out),
                    Err(TimestampError::OutOfRange(_))
                ),
                "{out}"
            );
        }
        assert!(Timestamp::parse("1969-12-31T23:59:59Z").is_ok());
    }

    #[test]
    fn refuses_durations_without_a_known_unit() {
        for bad in ["", "7", "7 days", "d", "7w", "1.5h"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_rfc3339_and_refuses_local_times() {
        let t = Timestamp::parse("2025-03-03T09:30:00Z").unwrap();
        assert_eq!(t.rfc3339(), "2025-03-03T09:30:00Z");
        assert!(Timestamp::parse("2025-03-03 09:30").is_err());
    }

    #[test]
    fn clock_kinds_read_and_print_as_their_names() {
        for name in ClockKind::NAMES {
            assert_eq!(name.parse::<ClockKind>().unwrap().to_string(), name);
        }
        assert!("wall".parse::<ClockKind>().is_err());
    }

    #[test]
    fn virtual_clock_moves_only_forward_and_is_shared_by_clones() {
        let c = Clock::virtual_at(Timestamp(100));
        let c2 = c.clone();
        c.advance_to(Timestamp(200));
        c.advance_to(Timestamp(150));
        assert_eq!(c2.now(), Timestamp(200));
    }
}
