//! HL7 v2, as trusts move patient and document events inside the hospital: [`message`] reads
//! and escapes messages, [`mllp`] frames them on TCP, [`adt`] builds and reads the patient
//! events (ADT) a driver sends an EHR, and [`mdm`] builds and reads the document messages
//! (MDM^T02) that carry a letter.

pub mod adt;
pub mod mdm;
pub mod message;
pub mod mllp;
pub mod segments;

use crate::protocol::clock::Timestamp;
use std::net::SocketAddr;
use std::time::Duration;

/// Why an HL7 exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum Hl7Error {
    #[error("failed to connect to the MLLP receiver at {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to listen for MLLP on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to read or write MLLP")]
    Io(#[source] std::io::Error),
    #[error("broken MLLP frame: {0}")]
    Frame(String),
    #[error("no ACK: the receiver closed the connection without answering")]
    NoAck,
    #[error("no ACK within {0:?}")]
    Timeout(Duration),
    #[error("unreadable ACK: {0}")]
    BadAck(Hl7ReadError),
    #[error("the receiver answered {code}: {text}")]
    Rejected { code: String, text: String },
}

/// Why a text is not the HL7 v2 message lettergate expected; each message says which field is
/// missing or wrong, as a receiver's ACK or an unreadable-letter finding shows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hl7ReadError {
    #[error("the message is empty")]
    Empty,
    #[error("the message does not start with an MSH segment but with `{0}`")]
    NoMsh(String),
    #[error("the MSH segment does not declare the delimiters `|^~\\&`")]
    Delimiters,
    #[error("invalid HL7 date/time `{0}`: expected YYYYMMDD[HHMM[SS]]")]
    Time(String),
    #[error("the message has no {0} segment")]
    NoSegment(&'static str),
    #[error("the MDM message has no TXA segment")]
    NoTxa,
    /// A field that must have a value is empty; the text names it, e.g. `TXA-2 (document
    /// type)`.
    #[error("{0} is empty")]
    EmptyField(&'static str),
    #[error("PID-3 has no NHS number (an identifier with assigning authority `NHS`)")]
    NoNhsNumber,
    #[error("PID-3: invalid NHS number: {0}")]
    NhsNumber(#[source] crate::protocol::ids::NhsNumberError),
    #[error("MSH-9 is `{0}`, not a document message MDM^T02")]
    NotMdm(String),
    #[error("MSH-9 is `{0}`, not an ADT message")]
    NotAdt(String),
    #[error("the message has no {0}")]
    Missing(&'static str),
    #[error("the ACK has no MSA-1")]
    NoAckCode,
    /// A field that holds something wrong: `PD1-3`, `PID-29`, and why.
    #[error("{field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("an A08 with neither a death (PID-30 `Y`) nor a practice (PD1-3) changes nothing lettergate tracks")]
    A08ChangesNothing,
    #[error("ADT^{0} is not one of A01, A03, A04, A08")]
    UnknownTrigger(String),
}

/// An HL7 TS in UTC to the second: `YYYYMMDDHHMMSS`.
pub fn ts(t: Timestamp) -> String {
    let d = t.to_datetime();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        d.year(),
        d.month() as u8,
        d.day(),
        d.hour(),
        d.minute(),
        d.second()
    )
}

/// Reads an HL7 TS (`YYYYMMDD`, `YYYYMMDDHHMM` or `YYYYMMDDHHMMSS`, fractions and an offset
/// `+hhmm`/`-hhmm` allowed); without an offset it is taken as UTC.
pub fn parse_ts(text: &str) -> Result<Timestamp, Hl7ReadError> {
    let bad = || Hl7ReadError::Time(text.to_string());
    let (body, offset) = match text.find(['+', '-']) {
        Some(i) => (&text[..i], Some(&text[i..])),
        None => (text, None),
    };
    let body = body.split('.').next().unwrap_or("");
    if !(body.len() == 8 || body.len() == 12 || body.len() == 14)
        || !body.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| body.get(r).map_or(Ok(0), |s| s.parse::<u32>());
    let (y, mo, d) = (
        n(0..4).map_err(|_| bad())?,
        n(4..6).map_err(|_| bad())?,
        n(6..8).map_err(|_| bad())?,
    );
    let (h, mi, s) = (
        n(8..10).map_err(|_| bad())?,
        n(10..12).map_err(|_| bad())?,
        n(12..14).map_err(|_| bad())?,
    );
    let month = time::Month::try_from(mo as u8).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(y as i32, month, d as u8).map_err(|_| bad())?;
    let t = time::Time::from_hms(h as u8, mi as u8, s as u8).map_err(|_| bad())?;
    let mut secs = date.with_time(t).assume_utc().unix_timestamp();
    if let Some(o) = offset {
        let digits = &o[1..];
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mins = digits[..2].parse::<i64>().map_err(|_| bad())? * 60
            + digits[2..].parse::<i64>().map_err(|_| bad())?;
        let east = if o.starts_with('-') { -mins } else { mins };
        secs -= east * 60;
    }
    Ok(Timestamp(secs))
}

/// An ISO date (`1950-01-01`) as an HL7 date (`19500101`); other text is kept as it is.
pub fn date(iso: &str) -> String {
    iso.replace('-', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hl7_times_round_trip_and_offsets_are_applied() {
        let t = Timestamp::parse("2025-03-03T09:30:05Z").unwrap();
        assert_eq!(ts(t), "20250303093005");
        assert_eq!(parse_ts("20250303093005").unwrap(), t);
        assert_eq!(parse_ts("20250303103005+0100").unwrap(), t);
        assert_eq!(
            parse_ts("20250303").unwrap(),
            Timestamp::parse("2025-03-03T00:00:00Z").unwrap()
        );
        assert!(parse_ts("2025-03-03").is_err());
        assert!(parse_ts("20251303").is_err());
    }
}
