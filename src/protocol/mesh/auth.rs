//! `NHSMESH` authorisation tokens: one per request,
//! `NHSMESH {mailbox}:{nonce}:{nonce_count}:{yyyyMMddHHmm}:{hex HMAC-SHA256}`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The parts of a token, as parsed from an `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub mailbox: String,
    pub nonce: String,
    pub nonce_count: String,
    pub timestamp: String,
    pub hash: String,
}

/// Why a token was refused; the text reads after "refused authorisation: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no Authorization header")]
    Missing,
    #[error("the header is not `NHSMESH mailbox:nonce:count:timestamp:hash`")]
    Malformed,
    #[error("mailbox `{0}` is not known here")]
    UnknownMailbox(String),
    #[error("the signature does not match")]
    BadSignature,
    #[error("nonce `{0}` was used before")]
    ReusedNonce(String),
    #[error("the timestamp `{timestamp}` is more than {} from this server's clock (LETTERGATE_MESH_CLOCK_SKEW)", crate::protocol::clock::Span(*skew_secs as i64))]
    Stale { timestamp: String, skew_secs: u64 },
}

/// The HMAC-SHA256, in lower-case hex, of `mailbox:nonce:count:password:timestamp`.
///
/// ```
/// use lettergate::protocol::mesh::auth::signature;
/// let sig = signature("TestKey", "X26ABC1", "00000000-0000-0000-0000-000000000000", "0", "password", "202401011200");
/// assert_eq!(sig, "91ba257cdd502881606b73670bc18a5c2342e44e9b9dd707aa2241ac2869aa52");
/// ```
pub fn signature(
    shared_key: &str,
    mailbox: &str,
    nonce: &str,
    nonce_count: &str,
    password: &str,
    timestamp: &str,
) -> String {
    let mut mac = mac(shared_key);
    mac.update(format!("{mailbox}:{nonce}:{nonce_count}:{password}:{timestamp}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn mac(shared_key: &str) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    HmacSha256::new_from_slice(shared_key.as_bytes()).expect("HMAC accepts any key length")
}

/// A complete `Authorization` header value with a fresh nonce and the current UTC minute.
pub fn header(shared_key: &str, mailbox: &str, password: &str) -> String {
    let nonce = uuid::Uuid::new_v4().to_string();
    let ts = &crate::protocol::clock::compact_utc_now()[..12];
    let hash = signature(shared_key, mailbox, &nonce, "0", password, ts);
    format!("NHSMESH {mailbox}:{nonce}:0:{ts}:{hash}")
}

impl Token {
    pub fn parse(header: Option<&str>) -> Result<Token, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let rest = header
            .strip_prefix("NHSMESH ")
            .ok_or(AuthError::Malformed)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let [mailbox, nonce, count, ts, hash] = parts[..] else {
            return Err(AuthError::Malformed);
        };
        let ts_ok = ts.len() == 12 && ts.bytes().all(|b| b.is_ascii_digit());
        if mailbox.is_empty() || nonce.is_empty() || !ts_ok || hash.len() != 64 {
            return Err(AuthError::Malformed);
        }
        Ok(Token {
            mailbox: mailbox.to_string(),
            nonce: nonce.to_string(),
            nonce_count: count.to_string(),
            timestamp: ts.to_string(),
            hash: hash.to_ascii_lowercase(),
        })
    }

    /// Checks that the token's `yyyyMMddHHmm` (UTC) is within `skew` of `now`, as MESH does (it
    /// refuses a timestamp more than 2 hours from its clock): a token copied from an old
    /// request, or made with a clock far off, is refused even when its nonce was never seen.
    pub fn check_time(
        &self,
        now: time::OffsetDateTime,
        skew: std::time::Duration,
    ) -> Result<(), AuthError> {
        let stale = || AuthError::Stale {
            timestamp: self.timestamp.clone(),
            skew_secs: skew.as_secs(),
        };
        let format = time::macros::format_description!("[year][month][day][hour][minute]");
        let at = time::PrimitiveDateTime::parse(&self.timestamp, &format)
            .map_err(|_| stale())?
            .assume_utc();
        let apart = (now - at).unsigned_abs();
        if apart > skew {
            return Err(stale());
        }
        Ok(())
    }

    /// Checks the signature in constant time against the mailbox's password.
    pub fn verify(&self, shared_key: &str, password: &str) -> Result<(), AuthError> {
        let mut mac = mac(shared_key);
        mac.update(
            format!(
                "{}:{}:{}:{}:{}",
                self.mailbox, self.nonce, self.nonce_count, password, self.timestamp
            )
            .as_bytes(),
        );
        let expected = hex::decode(&self.hash).map_err(|_| AuthError::Malformed)?;
        mac.verify_slice(&expected)
            .map_err(|_| AuthError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_test_vector_of_domain_md() {
        assert_eq!(
            signature(
                "TestKey",
                "X26ABC1",
                "00000000-0000-0000-0000-000000000000",
                "0",
                "password",
                "202401011200"
            ),
            "91ba257cdd502881606b73670bc18a5c2342e44e9b9dd707aa2241ac2869aa52"
        );
    }

    #[test]
    fn a_fresh_header_verifies_with_the_right_password_only() {
        let h = header("TestKey", "X26HC005", "secret");
        let token = Token::parse(Some(&h)).unwrap();
        assert_eq!(token.mailbox, "X26HC005");
        assert_eq!(token.verify("TestKey", "secret"), Ok(()));
        assert_eq!(
            token.verify("TestKey", "other"),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            token.verify("Banana", "secret"),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_skew_are_refused_as_mesh_does() {
        let now = time::macros::datetime!(2026-03-01 12:00 UTC);
        let two_hours = std::time::Duration::from_secs(7200);
        let at = |ts: &str| {
            let h = format!("NHSMESH X26HC005:n:0:{ts}:{}", "0".repeat(64));
            Token::parse(Some(&h)).unwrap().check_time(now, two_hours)
        };
        assert_eq!(at("202603011200"), Ok(()));
        assert_eq!(at("202603011000"), Ok(()));
        assert_eq!(at("202603011400"), Ok(()));
        for bad in [
            "202603010959",
            "202603011401",
            "199901011200",
            "209901011200",
            "202613451299",
        ] {
            let e = at(bad).unwrap_err();
            assert!(matches!(e, AuthError::Stale { .. }), "{bad}");
            assert!(e.to_string().contains("2h"), "{e}");
        }
        // The tokens lettergate makes are always fresh.
        let h = header("TestKey", "X26HC005", "secret");
        let token = Token::parse(Some(&h)).unwrap();
        assert_eq!(
            token.check_time(time::OffsetDateTime::now_utc(), two_hours),
            Ok(())
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        assert_eq!(Token::parse(None), Err(AuthError::Missing));
        for bad in [
            "Basic abc",
            "NHSMESH X26:n:0:202401011200",
            "NHSMESH X26:n:0:2024:abcd",
            "NHSMESH :n:0:202401011200:91ba257cdd502881606b73670bc18a5c2342e44e9b9dd707aa2241ac2869aa52",
        ] {
            assert_eq!(Token::parse(Some(bad)), Err(AuthError::Malformed), "{bad}");
        }
    }
}
