//! The snapshot reader: the input is an accepted `.snap` file, then (after a NUL byte, if
//! there is one) a rendering to compare it with. Read and compared without a panic; compared
//! with its own body it matches; what is accepted reads back as itself.

#![no_main]

#[path = "common.rs"]
mod common;

use lettergate::fuzzing::{body_of, compare_bodies, Comparison};
use lettergate::protocol::normalize::normalize;
use lettergate::SnapshotStore;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let (file, other) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // A rendering is normalised (LF line endings, ids and times replaced).
    let other = normalize(&String::from_utf8_lossy(other));
    let store = SnapshotStore::new(common::dir().join("snapshots"), "t");
    let path = store.path("s");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, file).unwrap();
    match std::str::from_utf8(file) {
        Ok(text) => {
            // Its own body, read the same with LF or CRLF line endings.
            let lf = text.replace("\r\n", "\n");
            let body = body_of(&lf);
            assert_eq!(store.compare("s", body).unwrap(), Comparison::Matches);
            if let Comparison::Changed { letters, .. } = store.compare("s", &other).unwrap() {
                assert!(!letters.is_empty());
            }
            let _ = compare_bodies(Some(&other), body);
        }
        Err(_) => assert!(store.compare("s", &other).is_err()),
    }
    store
        .write_accepted("r", Path::new("scenarios/x.yaml"), "d", &other)
        .unwrap();
    let back = store.accepted_body("r").unwrap().unwrap();
    assert_eq!(back.trim_end(), other.trim_end());
});
