//! Segments that ADT and MDM messages share: the patient's NHS number in PID-3, a name split
//! into PID-5's components, and PV1 with the visit number.

use super::message::{escape, Message};
use super::Hl7ReadError;
use crate::protocol::ids::NhsNumber;

/// The NHS number among PID-3's repetitions (the one whose assigning authority is `NHS`).
pub fn nhs_number(m: &Message) -> Result<NhsNumber, Hl7ReadError> {
    let pid = m.segment("PID").ok_or(Hl7ReadError::NoSegment("PID"))?;
    let ids = pid.get(3).map(String::as_str).unwrap_or("");
    let number = ids
        .split('~')
        .find(|rep| rep.split('^').nth(3) == Some("NHS"))
        .and_then(|rep| rep.split('^').next())
        .ok_or(Hl7ReadError::NoNhsNumber)?;
    NhsNumber::parse(number).map_err(Hl7ReadError::NhsNumber)
}

/// `Alice Example` as (`Alice`, `Example`): the last word is the family name.
pub fn split_name(name: &str) -> (String, String) {
    match name.trim().rsplit_once(' ') {
        Some((given, family)) => (given.to_string(), family.to_string()),
        None => (String::new(), name.trim().to_string()),
    }
}

/// PV1 with PV1-2 the patient class and, when there is one, PV1-19 the visit number.
pub fn pv1(class: &str, visit: Option<&str>) -> String {
    match visit {
        Some(v) => format!("PV1|1|{class}{}{}", "|".repeat(17), escape(v)),
        None => format!("PV1|1|{class}"),
    }
}
