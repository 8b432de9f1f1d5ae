//! [`Limits`]: every cap and timeout lettergate holds to when it reads from the outside world
//! (issue 13, "bounded everything"), and the capped readers that enforce the byte caps: the
//! gzip inflater ([`gunzip_capped`]), a reader for files ([`read_file_capped`]) and one for
//! HTTP responses ([`read_response_capped`]).
//!
//! Design constraints:
//! - Every cap has a default that real traffic stays well under, and every one can be raised
//!   by an environment variable (README "Security and limits" lists them), read once when the
//!   command starts ([`Limits::from_env`], exit 2 for a value that is not a size or a
//!   duration) and installed for the whole process ([`Limits::install`]).
//! - A reader stops at its cap: it never buffers more than the cap (and one piece of at most
//!   [`PIECE`] bytes) to find out that the cap was passed.

use crate::protocol::clock::Span;
use std::io::Read;
use std::sync::OnceLock;
use std::time::Duration;

/// How much a capped reader takes at a time.
pub const PIECE: usize = 64 * 1024;

/// The inflated size below which the compression ratio is not checked: small bodies of
/// repeated text compress far better than any letter, and cost nothing.
pub const RATIO_FLOOR: u64 = 1024 * 1024;

/// The caps and timeouts. See the module documentation and README "Security and limits".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request body as received (before decompression), on every HTTP listener.
    pub max_body: u64,
    /// A message once decompressed and put together from its chunks; also a MESH message
    /// downloaded, a file in a watched folder and an MLLP frame.
    pub max_message: u64,
    /// Inflated bytes per compressed byte, above [`RATIO_FLOOR`].
    pub max_ratio: u64,
    /// Any other answer lettergate reads: FHIR, OAuth2 token, MESH listings and replies.
    pub max_response: u64,
    /// To send the request line and headers (also the wait for the next request on a kept-alive
    /// connection).
    pub header_timeout: Duration,
    /// To send a whole request body, or an MLLP frame once its start block arrived.
    pub body_timeout: Duration,
    /// A connection on which nothing moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections per listener; more are answered 503 (HTTP) or closed (MLLP).
    pub max_connections: usize,
    /// How long a stopping listener waits for the connections under way before it closes them.
    pub shutdown_deadline: Duration,
    /// How far an `NHSMESH` token's timestamp may be from this machine's clock.
    pub mesh_clock_skew: Duration,
    /// How long `mesh_poll` waits for each answer of MESH, from request to last byte.
    pub answer_timeout: Duration,
}

const MIB: u64 = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 100 * MIB,
            max_message: 100 * MIB,
            max_ratio: 100,
            max_response: 16 * MIB,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: 64,
            shutdown_deadline: Duration::from_secs(5),
            // MESH refuses a token whose timestamp is not within 2 hours of its clock.
            mesh_clock_skew: Duration::from_secs(2 * 3600),
            answer_timeout: Duration::from_secs(60),
        }
    }
}

/// What an environment variable sets.
#[derive(Clone, Copy)]
enum Kind {
    Size,
    Count,
    Time,
}

/// Each limit's environment variable, what it holds, and where it goes.
type Setter = fn(&mut Limits, u64);

const VARIABLES: &[(&str, Kind, Setter)] = &[
    ("LETTERGATE_MAX_BODY", Kind::Size, |l, v| l.max_body = v),
    ("LETTERGATE_MAX_MESSAGE", Kind::Size, |l, v| {
        l.max_message = v
    }),
    ("LETTERGATE_MAX_RATIO", Kind::Count, |l, v| l.max_ratio = v),
    ("LETTERGATE_MAX_RESPONSE", Kind::Size, |l, v| {
        l.max_response = v
    }),
    ("LETTERGATE_HEADER_TIMEOUT", Kind::Time, |l, v| {
        l.header_timeout = Duration::from_secs(v)
    }),
    ("LETTERGATE_BODY_TIMEOUT", Kind::Time, |l, v| {
        l.body_timeout = Duration::from_secs(v)
    }),
    ("LETTERGATE_IDLE_TIMEOUT", Kind::Time, |l, v| {
        l.idle_timeout = Duration::from_secs(v)
    }),
    ("LETTERGATE_MAX_CONNECTIONS", Kind::Count, |l, v| {
        l.max_connections = usize::try_from(v).unwrap_or(usize::MAX)
    }),
    ("LETTERGATE_SHUTDOWN_DEADLINE", Kind::Time, |l, v| {
        l.shutdown_deadline = Duration::from_secs(v)
    }),
    ("LETTERGATE_MESH_CLOCK_SKEW", Kind::Time, |l, v| {
        l.mesh_clock_skew = Duration::from_secs(v)
    }),
    ("LETTERGATE_ANSWER_TIMEOUT", Kind::Time, |l, v| {
        l.answer_timeout = Duration::from_secs(v)
    }),
];

/// A limit's environment variable holds something that is not a size, count or duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}=`{value}` is not {expected}: {example}")]
pub struct LimitError {
    pub variable: String,
    pub value: String,
    expected: &'static str,
    example: &'static str,
}

static INSTALLED: OnceLock<Limits> = OnceLock::new();

impl Limits {
    /// The defaults with every `LETTERGATE_*` limit variable that is set applied.
    pub fn from_env() -> Result<Limits, LimitError> {
        Limits::from_vars(|name| std::env::var(name).ok())
    }

    /// The defaults with the variables `get` knows applied.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Limits, LimitError> {
        let mut limits = Limits::default();
        for (name, kind, set) in VARIABLES {
            let Some(value) = get(name) else { continue };
            let parsed = match kind {
                Kind::Size => parse_size(&value),
                Kind::Count => value.trim().parse::<u64>().ok(),
                Kind::Time => Span::parse(value.trim())
                    .ok()
                    .and_then(|s| u64::try_from(s.0).ok()),
            };
            let error = |expected, example| LimitError {
                variable: name.to_string(),
                value: value.clone(),
                expected,
                example,
            };
            match (parsed, kind) {
                (Some(v), _) if v > 0 => set(&mut limits, v),
                (_, Kind::Size) => {
                    return Err(error(
                        "a size above 0",
                        "give bytes, or a number with KiB, MiB or GiB, such as 200MiB",
                    ))
                }
                (_, Kind::Count) => return Err(error("a whole number above 0", "such as 128")),
                (_, Kind::Time) => {
                    return Err(error(
                        "a duration above 0",
                        "give seconds, minutes or hours, such as 30s, 5m or 2h",
                    ))
                }
            }
        }
        Ok(limits)
    }

    /// Makes these the limits of the whole process ([`Limits::current`]); the first call wins.
    pub fn install(self) {
        let _ = INSTALLED.set(self);
    }

    /// The installed limits, or the defaults when none were installed.
    pub fn current() -> Limits {
        INSTALLED.get().cloned().unwrap_or_default()
    }

    /// The inflated size allowed for `compressed` bytes of gzip.
    fn inflate_cap(&self, compressed: usize) -> u64 {
        let by_ratio = (compressed as u64)
            .saturating_mul(self.max_ratio)
            .max(RATIO_FLOOR);
        self.max_message.min(by_ratio)
    }
}

/// `1048576`, `64KiB`, `100MiB`, `2GiB` (also `KB`, `MB`, `GB`, in powers of 1000).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(at);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => MIB,
        "GiB" => 1024 * MIB,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A size as people read it: `100 MiB`, `1500 bytes`.
pub fn show_size(n: u64) -> String {
    match n {
        n if n >= 1024 * MIB && n % (1024 * MIB) == 0 => format!("{} GiB", n / (1024 * MIB)),
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

/// Why a capped reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    #[error("larger than {} ({variable})", show_size(*cap))]
    TooLarge { cap: u64, variable: &'static str },
    #[error("it inflates more than {ratio} times ({} from {} compressed; LETTERGATE_MAX_RATIO)", show_size(*inflated), show_size(*compressed))]
    Ratio {
        ratio: u64,
        inflated: u64,
        compressed: u64,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What [`gunzip_capped`] stopped on, with how much it had inflated when it stopped.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct InflateError {
    /// Bytes inflated before it stopped: never more than the cap and one [`PIECE`].
    pub inflated: u64,
    pub error: CapError,
}

/// Un-gzips `data`, all of its members, stopping as soon as the output passes
/// `limits.max_message` or `limits.max_ratio` times the size of `data` (above
/// [`RATIO_FLOOR`]).
pub fn gunzip_capped(data: &[u8], limits: &Limits) -> Result<Vec<u8>, InflateError> {
    let cap = limits.inflate_cap(data.len());
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let mut out = Vec::new();
    let mut piece = vec![0u8; PIECE];
    loop {
        let n = match decoder.read(&mut piece) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(InflateError {
                    inflated: out.len() as u64,
                    error: CapError::Io(e),
                })
            }
        };
        out.extend_from_slice(&piece[..n]);
        let inflated = out.len() as u64;
        if inflated > cap {
            let error = if inflated > limits.max_message {
                CapError::TooLarge {
                    cap: limits.max_message,
                    variable: "LETTERGATE_MAX_MESSAGE",
                }
            } else {
                CapError::Ratio {
                    ratio: limits.max_ratio,
                    inflated,
                    compressed: data.len() as u64,
                }
            };
            return Err(InflateError { inflated, error });
        }
    }
}

/// Reads at most `cap` bytes of `reader`; more is [`CapError::TooLarge`] naming `variable`.
pub fn read_capped(
    reader: impl Read,
    cap: u64,
    variable: &'static str,
) -> Result<Vec<u8>, CapError> {
    let mut out = Vec::new();
    reader.take(cap.saturating_add(1)).read_to_end(&mut out)?;
    if out.len() as u64 > cap {
        return Err(CapError::TooLarge { cap, variable });
    }
    Ok(out)
}

/// Reads a file of at most `limits.max_message` bytes, without reading more of it than that.
pub fn read_file_capped(path: &std::path::Path, limits: &Limits) -> Result<Vec<u8>, CapError> {
    read_open_file_capped(std::fs::File::open(path)?, limits)
}

/// [`read_file_capped`] of a file already open (as the caller chose to open it).
pub fn read_open_file_capped(file: std::fs::File, limits: &Limits) -> Result<Vec<u8>, CapError> {
    if file.metadata()?.len() > limits.max_message {
        return Err(CapError::TooLarge {
            cap: limits.max_message,
            variable: "LETTERGATE_MAX_MESSAGE",
        });
    }
    read_capped(file, limits.max_message, "LETTERGATE_MAX_MESSAGE")
}

/// Why a capped HTTP response could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer is {0}")]
    Cap(CapError),
    #[error("the answer could not be read")]
    Read(#[source] reqwest::Error),
}

/// Reads a response's body, at most `cap` bytes: a `Content-Length` above it is refused before
/// anything is read, and a body that passes it is dropped there.
pub async fn read_response_capped(
    mut resp: reqwest::Response,
    cap: u64,
    variable: &'static str,
) -> Result<Vec<u8>, ResponseError> {
    let too_large = || ResponseError::Cap(CapError::TooLarge { cap, variable });
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ResponseError::Read)? {
        if (out.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mesh::client::gzip;

    /// A gzip bomb without the cost of compressing it: `members` gzip members of 1 MiB of
    /// zeros each (about 1 KiB apiece), which the multi-member inflater reads one after another.
    fn bomb(members: usize) -> Vec<u8> {
        let one = gzip(&vec![0u8; 1024 * 1024]);
        one.repeat(members)
    }

    #[test]
    fn the_inflater_stops_at_the_message_cap_not_at_the_end_of_a_1_gib_bomb() {
        let data = bomb(1024);
        assert!(data.len() < 2 * 1024 * 1024, "{}", data.len());
        let limits = Limits {
            max_ratio: u64::MAX,
            ..Limits::default()
        };
        let e = gunzip_capped(&data, &limits).unwrap_err();
        assert!(matches!(e.error, CapError::TooLarge { .. }), "{e}");
        assert!(e.inflated > limits.max_message, "{}", e.inflated);
        assert!(
            e.inflated <= limits.max_message + PIECE as u64,
            "{}",
            e.inflated
        );
        assert!(e.to_string().contains("LETTERGATE_MAX_MESSAGE"), "{e}");
    }

    #[test]
    fn the_inflater_stops_at_the_ratio_long_before_the_message_cap() {
        // 64 MiB from about 64 KiB: under the message cap, a thousand times over the ratio.
        let data = bomb(64);
        let e = gunzip_capped(&data, &Limits::default()).unwrap_err();
        assert!(matches!(e.error, CapError::Ratio { .. }), "{e}");
        let cap = 100 * data.len() as u64;
        assert!(e.inflated <= cap + PIECE as u64, "{} > {cap}", e.inflated);
        assert!(e.to_string().contains("LETTERGATE_MAX_RATIO"), "{e}");
    }

    #[test]
    fn ordinary_gzip_inflates_whole_and_small_repetitive_text_is_not_a_bomb() {
        let text = b"letter ".repeat(100_000);
        assert_eq!(
            gunzip_capped(&gzip(&text), &Limits::default()).unwrap(),
            text
        );
        let mut two = gzip(b"hello ");
        two.extend(gzip(b"world"));
        assert_eq!(
            gunzip_capped(&two, &Limits::default()).unwrap(),
            b"hello world"
        );
        assert!(gunzip_capped(b"not gzip", &Limits::default()).is_err());
    }

    #[test]
    fn sizes_counts_and_durations_come_from_the_environment_and_nonsense_is_refused() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let l = Limits::from_vars(vars(&[
            ("LETTERGATE_MAX_BODY", "200MiB"),
            ("LETTERGATE_MAX_RESPONSE", "1500"),
            ("LETTERGATE_MAX_CONNECTIONS", "8"),
            ("LETTERGATE_HEADER_TIMEOUT", "1m"),
            ("LETTERGATE_MESH_CLOCK_SKEW", "5m"),
        ]))
        .unwrap();
        assert_eq!(l.max_body, 200 * MIB);
        assert_eq!(l.max_response, 1500);
        assert_eq!(l.max_connections, 8);
        assert_eq!(l.header_timeout, Duration::from_secs(60));
        assert_eq!(l.mesh_clock_skew, Duration::from_secs(300));
        assert_eq!(l.max_message, Limits::default().max_message);
        for (name, value) in [
            ("LETTERGATE_MAX_BODY", "lots"),
            ("LETTERGATE_MAX_BODY", "0"),
            ("LETTERGATE_MAX_BODY", "99999999999999GiB"),
            ("LETTERGATE_IDLE_TIMEOUT", "10"),
            ("LETTERGATE_MAX_RATIO", "-1"),
        ] {
            let e = Limits::from_vars(|n| (n == name).then(|| value.to_string())).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("{name}=`{value}`")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_file_over_the_cap_is_refused_without_reading_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("big.json");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(3 * 1024 * 1024 * 1024)
            .unwrap();
        let e = read_file_capped(&path, &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("100 MiB"), "{e}");
        std::fs::write(&path, b"small").unwrap();
        assert_eq!(
            read_file_capped(&path, &Limits::default()).unwrap(),
            b"small"
        );
    }
}
