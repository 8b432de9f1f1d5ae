//! [`Assemblies`]: chunked MESH messages being put back together by lettergate's endpoint.
//!
//! A large message arrives as a first `POST /{mailbox}/outbox` with `mex-Chunk-Range: 1:N`
//! and then `POST /{mailbox}/outbox/{message_id}/{n}` for n = 2..N, each chunk gzipped on its
//! own when it says `Content-Encoding: gzip` (NHS Digital's mesh-client does exactly this).
//! Chunks must come in order, from the mailbox that started the message; the letter is
//! recorded once, when the last chunk arrives. A message whose chunks never all arrive is
//! handed back by [`Assemblies::drain_incomplete`] so that it too is recorded, as refused.

use crate::protocol::limits::{gunzip_capped, show_size, Limits};
use std::collections::HashMap;

/// Why a chunk, or a message's chunking, is refused. The text is the refusal recorded with
/// the message and answered to the sender.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("mex-Chunk-Range `{0}` is not `n:N` with 1 <= n <= N")]
    Range(String),
    // The cause is part of the text a sender and a report read, so it is not also a source.
    #[error("the gzip body cannot be decompressed: {0}")]
    Gzip(std::io::Error),
    /// Too large once decompressed, or put together: the reason says which cap.
    #[error("the message is {0}")]
    TooLarge(String),
    #[error("Content-Encoding `{0}` is not supported (only gzip)")]
    Encoding(String),
    #[error("no chunked message `{message_id}` is under way from mailbox {mailbox}")]
    NotUnderWay { message_id: String, mailbox: String },
    #[error("chunk number `{0}` is not a number")]
    ChunkNumber(String),
    #[error("a chunk needs mex-Chunk-Range")]
    NoRange,
    #[error("mex-Chunk-Range {}:{} does not match chunk {n} of the {announced} announced", .range.n, .range.total)]
    Mismatch {
        range: ChunkRange,
        n: usize,
        announced: usize,
    },
    #[error("chunk {n} of {total} of message {message_id} arrived out of order: chunk {expected} is next")]
    OutOfOrder {
        n: usize,
        total: usize,
        message_id: String,
        expected: usize,
    },
}

/// `mex-Chunk-Range: n:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRange {
    pub n: usize,
    pub total: usize,
}

/// Reads `mex-Chunk-Range`; a message without one is a single chunk (`1:1`).
pub fn parse_range(header: Option<&str>) -> Result<ChunkRange, ChunkError> {
    let Some(text) = header else {
        return Ok(ChunkRange { n: 1, total: 1 });
    };
    let bad = || ChunkError::Range(text.to_string());
    let (n, total) = text.trim().split_once(':').ok_or_else(bad)?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    let total: usize = total.trim().parse().map_err(|_| bad())?;
    if n == 0 || n > total {
        return Err(bad());
    }
    Ok(ChunkRange { n, total })
}

/// A chunk's body as sent: un-gzipped for `Content-Encoding: gzip`, unchanged without one.
/// The inflater stops at the message cap and the compression ratio of `limits`.
pub fn decode(
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<u8>, ChunkError> {
    use crate::protocol::limits::CapError;
    match content_encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => Ok(body.to_vec()),
        Some(e) if e.is_empty() || e == "identity" => Ok(body.to_vec()),
        Some(e) if e == "gzip" => gunzip_capped(body, limits).map_err(|e| match e.error {
            CapError::Io(io) => ChunkError::Gzip(io),
            other => ChunkError::TooLarge(format!("refused as a gzip bomb: {other}")),
        }),
        Some(e) => Err(ChunkError::Encoding(e)),
    }
}

/// What the first chunk said about the message.
#[derive(Clone, Debug)]
pub struct FirstChunk {
    pub mailbox: String,
    pub to: Option<String>,
    pub workflow: Option<String>,
    pub local_id: Option<String>,
    pub mex_headers: Vec<(String, String)>,
}

/// A message whose chunks are arriving.
#[derive(Clone, Debug)]
pub struct Assembly {
    pub message_id: String,
    pub first: FirstChunk,
    pub total: usize,
    /// Chunks received so far, the first `received` of `total`.
    pub received: usize,
    /// The decoded chunks so far, one after another.
    pub body: Vec<u8>,
}

/// The chunked messages under way, by message id.
#[derive(Debug, Default)]
pub struct Assemblies {
    open: HashMap<String, Assembly>,
}

impl Assemblies {
    /// Starts a message whose (decoded) first chunk arrived.
    pub fn start(&mut self, message_id: &str, first: FirstChunk, total: usize, chunk: Vec<u8>) {
        self.open.insert(
            message_id.to_string(),
            Assembly {
                message_id: message_id.to_string(),
                first,
                total,
                received: 1,
                body: chunk,
            },
        );
    }

    /// The first chunk's metadata of an open message of `mailbox`.
    pub fn first(&self, mailbox: &str, message_id: &str) -> Option<&FirstChunk> {
        self.open
            .get(message_id)
            .filter(|a| a.first.mailbox == mailbox)
            .map(|a| &a.first)
    }

    /// Adds chunk `path_n` (the `{n}` of the path) with its `mex-Chunk-Range` and decoded
    /// body. Returns the whole message when this was its last chunk, `None` while more are
    /// to come, or why the chunk is refused (the message stays open, so the right chunk
    /// can still be sent). A chunk that would make the message longer than `max_message` is
    /// refused.
    pub fn add(
        &mut self,
        mailbox: &str,
        message_id: &str,
        path_n: &str,
        range: Option<&str>,
        chunk: Vec<u8>,
        max_message: u64,
    ) -> Result<Option<Assembly>, ChunkError> {
        let Some(open) = self
            .open
            .get_mut(message_id)
            .filter(|a| a.first.mailbox == mailbox)
        else {
            return Err(ChunkError::NotUnderWay {
                message_id: message_id.to_string(),
                mailbox: mailbox.to_string(),
            });
        };
        let n: usize = path_n
            .parse()
            .map_err(|_| ChunkError::ChunkNumber(path_n.to_string()))?;
        let range = parse_range(Some(range.ok_or(ChunkError::NoRange)?))?;
        if range.n != n || range.total != open.total {
            return Err(ChunkError::Mismatch {
                range,
                n,
                announced: open.total,
            });
        }
        let expected = open.received + 1;
        if n != expected {
            return Err(ChunkError::OutOfOrder {
                n,
                total: open.total,
                message_id: message_id.to_string(),
                expected,
            });
        }
        if (open.body.len() + chunk.len()) as u64 > max_message {
            return Err(ChunkError::TooLarge(format!(
                "larger than {} with chunk {n} of {} (LETTERGATE_MAX_MESSAGE)",
                show_size(max_message),
                open.total
            )));
        }
        open.received = n;
        open.body.extend(chunk);
        if n < open.total {
            return Ok(None);
        }
        Ok(self.open.remove(message_id))
    }

    /// The messages still waiting for chunks, oldest id first; they are forgotten here.
    pub fn drain_incomplete(&mut self) -> Vec<Assembly> {
        let mut left: Vec<Assembly> = self.open.drain().map(|(_, a)| a).collect();
        left.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::mesh::client::gzip;

    fn first() -> FirstChunk {
        FirstChunk {
            mailbox: "RXXHC001".into(),
            to: Some("A81001HC001".into()),
            workflow: Some("TOC_FHIR_OP_ATTEN".into()),
            local_id: Some("L1".into()),
            mex_headers: vec![],
        }
    }

    #[test]
    fn chunk_ranges_default_to_one_of_one_and_refuse_nonsense() {
        assert_eq!(parse_range(None).unwrap(), ChunkRange { n: 1, total: 1 });
        assert_eq!(
            parse_range(Some("2:3")).unwrap(),
            ChunkRange { n: 2, total: 3 }
        );
        for bad in ["", "1", "0:2", "3:2", "a:b", "1:-1"] {
            assert!(parse_range(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn gzip_chunks_are_decoded_and_unknown_encodings_refused() {
        let l = Limits::default();
        assert_eq!(decode(Some("gzip"), &gzip(b"abc"), &l).unwrap(), b"abc");
        assert_eq!(decode(Some("GZIP"), &gzip(b"abc"), &l).unwrap(), b"abc");
        assert_eq!(decode(None, b"abc", &l).unwrap(), b"abc");
        assert!(decode(Some("gzip"), b"abc", &l).is_err());
        assert!(decode(Some("br"), b"abc", &l).is_err());
    }

    #[test]
    fn a_gzip_bomb_is_refused_as_too_large_and_a_message_may_not_grow_past_the_cap() {
        let bomb = gzip(&vec![0u8; 1024 * 1024]).repeat(64);
        let e = decode(Some("gzip"), &bomb, &Limits::default()).unwrap_err();
        assert!(matches!(e, ChunkError::TooLarge(_)), "{e}");
        assert!(e.to_string().contains("gzip bomb"), "{e}");
        let mut a = Assemblies::default();
        a.start("M3", first(), 3, vec![0; 600]);
        let e = a
            .add("RXXHC001", "M3", "2", Some("2:3"), vec![0; 600], 1000)
            .unwrap_err();
        assert!(e.to_string().contains("LETTERGATE_MAX_MESSAGE"), "{e}");
    }

    #[test]
    fn a_message_is_whole_only_when_its_last_chunk_arrives_in_order() {
        let mut a = Assemblies::default();
        a.start("M1", first(), 3, b"one ".to_vec());
        let add = |a: &mut Assemblies, n: &str, range: &str, body: &[u8]| {
            a.add("RXXHC001", "M1", n, Some(range), body.to_vec(), u64::MAX)
        };
        let early = add(&mut a, "3", "3:3", b"three").unwrap_err().to_string();
        assert!(early.contains("out of order"), "{early}");
        assert!(add(&mut a, "2", "2:4", b"two ").is_err());
        assert!(a
            .add(
                "X26HC005",
                "M1",
                "2",
                Some("2:3"),
                b"two ".to_vec(),
                u64::MAX
            )
            .is_err());
        assert!(add(&mut a, "2", "2:3", b"two ").unwrap().is_none());
        let whole = add(&mut a, "3", "3:3", b"three").unwrap().unwrap();
        assert_eq!(whole.body, b"one two three");
        assert_eq!(whole.received, 3);
        assert!(add(&mut a, "3", "3:3", b"three").is_err());
        assert!(a.drain_incomplete().is_empty());
    }

    #[test]
    fn a_message_missing_chunks_is_handed_back_as_incomplete() {
        let mut a = Assemblies::default();
        a.start("M2", first(), 2, b"half".to_vec());
        let left = a.drain_incomplete();
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].received, left[0].total), (1, 2));
    }
}
