//! The MESH endpoint's parsing of a request: the input's first line is an `Authorization`
//! header, its second a `mex-Chunk-Range`, its third a `Content-Encoding`, the rest a body;
//! then the body's bytes drive chunks into an assembly. Never a panic; only a token signed
//! with the password verifies.

#![no_main]

use lettergate::fuzzing::{decode, parse_range, Assemblies, FirstChunk};
use lettergate::protocol::limits::Limits;
use lettergate::protocol::mesh::auth::{self, Token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let (auth_line, range, encoding, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let auth_line = String::from_utf8_lossy(auth_line);
    if let Ok(t) = Token::parse(Some(&auth_line)) {
        let expected = auth::signature(
            "TestKey",
            &t.mailbox,
            &t.nonce,
            &t.nonce_count,
            "pw",
            &t.timestamp,
        );
        assert_eq!(
            t.verify("TestKey", "pw").is_ok(),
            t.hash == expected,
            "{auth_line}"
        );
    }
    let range = String::from_utf8_lossy(range);
    if let Ok(r) = parse_range(Some(&range)) {
        assert!(1 <= r.n && r.n <= r.total);
    }
    let encoding = String::from_utf8_lossy(encoding);
    let decoded = decode(Some(&encoding), body, &Limits::default());
    let body = decoded.unwrap_or_else(|_| body.to_vec());
    // The body as a run of chunks: (path n, range) pairs from its bytes.
    let mut a = Assemblies::default();
    let first = FirstChunk {
        mailbox: "RXXHC001".into(),
        to: None,
        workflow: None,
        local_id: None,
        mex_headers: vec![],
    };
    let total = usize::from(body.first().copied().unwrap_or(1)).max(1);
    a.start("m", first, total, vec![]);
    for pair in body.chunks(2).skip(1) {
        let n = pair[0].to_string();
        let range = format!("{}:{}", pair[0], pair.get(1).copied().unwrap_or(0));
        if let Ok(Some(whole)) = a.add("RXXHC001", "m", &n, Some(&range), pair.to_vec(), 1 << 20) {
            assert_eq!(whole.received, whole.total);
        }
    }
    let _ = a.drain_incomplete();
});
