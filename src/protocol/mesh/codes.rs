//! [`MeshErrorCode`]: the codes MESH gives in an error answer (`errorCode`) and in a `REPORT`
//! (`mex-StatusCode`), such as `12` for an unregistered recipient.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A MESH error or report status code.
///
/// Design constraint: codes are strings on the wire (`"12"`, `"EPL-150"`), and a real MESH
/// may send one this list does not name; it is kept as [`MeshErrorCode::Other`], text and
/// all, so a report shows exactly what MESH said. It is written and read as that text.
#[derive(Clone, Debug)]
pub enum MeshErrorCode {
    /// `02`: lettergate's endpoint refused the `NHSMESH` authorisation (its meaning in MESH's
    /// own table: unverified).
    AuthorisationRefused,
    /// `06`: lettergate's endpoint could not take the request as sent (missing headers, a bad
    /// chunk range or body; its meaning in MESH's own table: unverified).
    BadRequest,
    /// `12`: the recipient mailbox is not registered.
    UnregisteredRecipient,
    /// `14`: the recipient did not collect the message within 5 days (a `REPORT`).
    NotCollected,
    /// `17`: the workflow id is not registered for the recipient mailbox.
    WorkflowNotRegistered,
    /// Any other code, as MESH wrote it; [`MeshErrorCode::parse`] never puts a named code here.
    Other(String),
}

impl MeshErrorCode {
    pub fn parse(code: &str) -> MeshErrorCode {
        use MeshErrorCode as C;
        match code {
            "02" => C::AuthorisationRefused,
            "06" => C::BadRequest,
            "12" => C::UnregisteredRecipient,
            "14" => C::NotCollected,
            "17" => C::WorkflowNotRegistered,
            other => C::Other(other.to_string()),
        }
    }

    /// The code as MESH writes it.
    pub fn as_str(&self) -> &str {
        use MeshErrorCode as C;
        match self {
            C::AuthorisationRefused => "02",
            C::BadRequest => "06",
            C::UnregisteredRecipient => "12",
            C::NotCollected => "14",
            C::WorkflowNotRegistered => "17",
            C::Other(code) => code,
        }
    }
}

// Equality goes by the text, so `Other("12")` built by hand still equals
// `UnregisteredRecipient`.
impl PartialEq for MeshErrorCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MeshErrorCode {}

impl PartialEq<str> for MeshErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MeshErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for MeshErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MeshErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MeshErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| MeshErrorCode::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_unknown_codes_keep_their_text() {
        for code in ["02", "06", "12", "14", "17", "EPL-150", ""] {
            assert_eq!(MeshErrorCode::parse(code).to_string(), code);
        }
        assert_eq!(
            MeshErrorCode::parse("12"),
            MeshErrorCode::UnregisteredRecipient
        );
        assert_eq!(
            MeshErrorCode::Other("17".into()),
            MeshErrorCode::WorkflowNotRegistered
        );
    }

    #[test]
    fn codes_are_json_strings() {
        let code = MeshErrorCode::NotCollected;
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"14\"");
        let back: MeshErrorCode = serde_json::from_str("\"EPL-151\"").unwrap();
        assert_eq!(back, MeshErrorCode::Other("EPL-151".into()));
    }
}
