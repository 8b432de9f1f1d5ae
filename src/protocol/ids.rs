//! Identifiers of the domain, checked at construction: [`NhsNumber`] and [`OdsCode`]; and
//! [`Identifiers`], whether they are shown in full or masked where people read them.
//!
//! Both refuse malformed values when they are built, so a value that reaches the rest of the
//! harness is known to be well formed, and both deserialize through that check so a scenario
//! file with a bad value fails with its line and column.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A 10-digit NHS number with a valid Modulus 11 check digit.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber([u8; 10]);

/// Why a string is not an NHS number; the text reads after "invalid NHS number: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("expected 10 digits, found `{0}`")]
    Shape(String),
    #[error("`{0}` fails the Modulus 11 check (its check digit should be {1})")]
    CheckDigit(String, u8),
    #[error("`{0}` can never be valid: its first nine digits give a check digit of 10")]
    NoCheckDigit(String),
}

impl NhsNumber {
    /// Parses a 10-digit NHS number; spaces are allowed as in `999 000 0018`.
    ///
    /// ```
    /// use lettergate::protocol::ids::NhsNumber;
    /// assert!(NhsNumber::parse("999 000 0018").is_ok());
    /// assert!(NhsNumber::parse("9990000000").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, NhsNumberError> {
        let digits: Vec<u8> = text
            .chars()
            .filter(|c| *c != ' ')
            .map(|c| c.to_digit(10).map(|d| d as u8))
            .collect::<Option<_>>()
            .ok_or_else(|| NhsNumberError::Shape(text.to_string()))?;
        let digits: [u8; 10] = digits
            .try_into()
            .map_err(|_| NhsNumberError::Shape(text.to_string()))?;
        match check_digit(&digits) {
            Some(d) if d == digits[9] => Ok(NhsNumber(digits)),
            Some(d) => Err(NhsNumberError::CheckDigit(text.to_string(), d)),
            None => Err(NhsNumberError::NoCheckDigit(text.to_string())),
        }
    }

    /// True for the 999 000 0000 to 999 999 9999 range that test tools use.
    pub fn is_synthetic(&self) -> bool {
        self.0[..3] == [9, 9, 9]
    }

    /// The number with all but its last three digits hidden, for reports and logs.
    pub fn masked(&self) -> String {
        format!("*******{}", &self.to_string()[7..])
    }

    /// Builds a valid synthetic number from a 6-digit serial, skipping serials whose check
    /// digit would be 10. Used by generators and tests.
    pub fn synthetic(serial: u32) -> Option<Self> {
        let mut digits = [9, 9, 9, 0, 0, 0, 0, 0, 0, 0];
        let s = format!("{:06}", serial % 1_000_000);
        for (i, c) in s.chars().enumerate() {
            digits[3 + i] = c.to_digit(10)? as u8;
        }
        digits[9] = check_digit(&digits)?;
        Some(NhsNumber(digits))
    }
}

fn check_digit(digits: &[u8; 10]) -> Option<u8> {
    let sum: u32 = digits[..9]
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| *d as u32 * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        d => Some(d as u8),
    }
}

impl fmt::Display for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.0 {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NhsNumber({})", self.masked())
    }
}

impl Serialize for NhsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for NhsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::protocol::de::parse_scalar(d, "a 10-digit NHS number", |text| {
            NhsNumber::parse(text).map_err(|e| format!("invalid NHS number: {e}"))
        })
    }
}

/// An ODS organisation code of a GP practice: one letter (not I, O, X or Z) and five digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct OdsCode(String);

/// A text that is not a GP practice ODS code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GP practice ODS code `{0}`: expected one letter (A-H, J-N, P-W, Y) and five digits, such as `A81001`")]
pub struct OdsCodeError(pub String);

/// `V81997`: the pseudo practice code for a patient with no registered GP.
pub const NO_REGISTERED_GP: &str = "V81997";

impl OdsCode {
    /// Parses a GP practice code such as `A81001`.
    pub fn parse(text: &str) -> Result<Self, OdsCodeError> {
        let b = text.as_bytes();
        let letter_ok =
            b.len() == 6 && b[0].is_ascii_uppercase() && !matches!(b[0], b'I' | b'O' | b'X' | b'Z');
        if letter_ok && b[1..].iter().all(u8::is_ascii_digit) {
            Ok(OdsCode(text.to_string()))
        } else {
            Err(OdsCodeError(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the `V819xx` pseudo codes (not known, not applicable, no registered GP).
    pub fn is_pseudo(&self) -> bool {
        matches!(self.0.as_str(), "V81999" | "V81998" | "V81997")
    }
}

impl fmt::Display for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for OdsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OdsCode({})", self.0)
    }
}

impl<'de> Deserialize<'de> for OdsCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::protocol::de::parse_scalar(d, "a GP practice ODS code", OdsCode::parse)
    }
}

/// Whether reports, findings and the console show patient identifiers (NHS numbers, names,
/// dates of birth) in full or masked. Masked unless the user asks (`--show-identifiers`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Identifiers {
    #[default]
    Masked,
    Shown,
}

impl Identifiers {
    /// `Shown` when `show` is true: the form a `--show-identifiers` flag gives.
    pub fn shown_if(show: bool) -> Identifiers {
        match show {
            true => Identifiers::Shown,
            false => Identifiers::Masked,
        }
    }

    pub fn are_shown(self) -> bool {
        self == Identifiers::Shown
    }
}

/// Free text as reports and logs show it: every run of exactly ten digits, which may be an NHS
/// number (in a file name, an id, a reason a system gave), masked as [`NhsNumber::masked`]
/// does. Longer runs (MESH message ids, timestamps) are left as they are, and so is a run
/// that is part of a hexadecimal token (next to `a`–`f`, as in a UUID's last group).
///
/// ```
/// use lettergate::protocol::ids::mask_in_text;
/// assert_eq!(mask_in_text("FOLDER 9990000018_letter.json"), "FOLDER *******018_letter.json");
/// assert_eq!(mask_in_text("20250303093000123456_ABC123"), "20250303093000123456_ABC123");
/// assert_eq!(mask_in_text("f396d5b6-e6c5-4e35-b695-1234567890dc"), "f396d5b6-e6c5-4e35-b695-1234567890dc");
/// ```
pub fn mask_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let hex_letter = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|c| c.is_ascii_hexdigit() && !c.is_ascii_digit())
    };
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let run: String = chars[start..i].iter().collect();
        let in_hex = hex_letter(start.checked_sub(1)) || hex_letter(Some(i));
        if run.len() == 10 && !in_hex {
            out.push_str("*******");
            out.push_str(&run[7..]);
        } else {
            out.push_str(&run);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_domain_examples_of_valid_nhs_numbers() {
        assert!(NhsNumber::parse("9434765919").is_ok());
        assert!(NhsNumber::parse("9990000018").is_ok());
        assert!(NhsNumber::parse("999 000 0018").is_ok());
    }

    #[test]
    fn refuses_a_number_whose_check_digit_is_wrong() {
        let err = NhsNumber::parse("9990000019").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`9990000019` fails the Modulus 11 check (its check digit should be 8)"
        );
        let err = NhsNumber::parse("9990000000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`9990000000` can never be valid: its first nine digits give a check digit of 10"
        );
    }

    #[test]
    fn refuses_numbers_of_the_wrong_shape() {
        assert!(NhsNumber::parse("99900000").is_err());
        assert!(NhsNumber::parse("99900000A8").is_err());
        assert!(NhsNumber::parse("").is_err());
    }

    #[test]
    fn tells_synthetic_numbers_from_others() {
        assert!(NhsNumber::parse("9990000018").unwrap().is_synthetic());
        assert!(!NhsNumber::parse("9434765919").unwrap().is_synthetic());
    }

    #[test]
    fn masks_all_but_the_last_three_digits() {
        assert_eq!(
            NhsNumber::parse("9990000018").unwrap().masked(),
            "*******018"
        );
        assert!(!format!("{:?}", NhsNumber::parse("9990000018").unwrap()).contains("99900"));
    }

    #[test]
    fn generates_valid_synthetic_numbers() {
        let made: Vec<_> = (0..200).filter_map(NhsNumber::synthetic).collect();
        assert!(made.len() > 150);
        for n in made {
            assert!(n.is_synthetic());
            assert_eq!(NhsNumber::parse(&n.to_string()), Ok(n));
        }
    }

    #[test]
    fn accepts_practice_codes_and_refuses_other_shapes() {
        assert!(OdsCode::parse("A81001").is_ok());
        assert!(OdsCode::parse("Y01234").is_ok());
        assert!(OdsCode::parse("V81997").unwrap().is_pseudo());
        for bad in ["a81001", "I81001", "A8100", "AB1001", "A810011", "X26HC0"] {
            assert!(OdsCode::parse(bad).is_err(), "{bad}");
        }
    }
}
