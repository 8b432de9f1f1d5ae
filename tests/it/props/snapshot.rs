//! The snapshot reader on the accepted `.snap` files of `snapshots/` and `tests/snapshots/`:
//! what the store writes it reads back as the same body; any file, however mangled, is read
//! and compared without a panic; a file compared with its own body matches.

use super::mutate::mutated;
use crate::support::root;
use lettergate::fuzzing::{body_of, compare_bodies, Comparison};
use lettergate::protocol::normalize::normalize;
use lettergate::SnapshotStore;
use proptest::prelude::*;
use std::path::Path;

/// Every accepted `.snap` file of the tree, by its path.
pub fn snap_seeds() -> Vec<(String, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "snap") {
                let rel = p
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("snapshots"), &mut out);
    walk(&root().join("tests/snapshots"), &mut out);
    out.sort();
    out
}

/// The body of an accepted snapshot, mutated, as a rendering would be: normalised (line
/// endings LF, ids and times replaced), since that is what a run compares and accepts.
fn bodies() -> impl Strategy<Value = String> {
    mutated(snap_seeds()).prop_map(|c| normalize(body_of(&c.text())))
}

proptest! {
    #![proptest_config(super::config(48))]

    /// What `run --accept` writes is read back as the same body, and compares as matching.
    #[test]
    fn an_accepted_body_reads_back_and_matches(body in bodies(), id in "[a-z]{1,8}(/[a-z_]{1,8}){0,2}") {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), "simulator");
        store.write_accepted(&id, Path::new("scenarios/x.yaml"), "a description", &body).unwrap();
        let back = store.accepted_body(&id).unwrap().unwrap();
        prop_assert_eq!(back.trim_end(), body.trim_end());
        prop_assert_eq!(store.compare(&id, &body).unwrap(), Comparison::Matches);
    }

    /// Any `.snap` file, mangled, is read and compared with any rendering without a panic;
    /// compared with its own body it matches, and a change is named.
    #[test]
    fn a_mangled_snap_file_is_read_and_compared(case in mutated(snap_seeds()), other in bodies()) {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), "t");
        let path = store.path("s");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &case.bytes).unwrap();
        match std::str::from_utf8(&case.bytes) {
            Ok(text) => {
                // Its own body, read the same with LF or CRLF line endings.
                let lf = text.replace("\r\n", "\n");
                let body = body_of(&lf);
                prop_assert_eq!(store.compare("s", body).unwrap(), Comparison::Matches);
                match store.compare("s", &other).unwrap() {
                    Comparison::Matches => prop_assert_eq!(body.trim_end(), other.trim_end()),
                    Comparison::Changed { letters, .. } => prop_assert!(!letters.is_empty()),
                    Comparison::New => prop_assert!(false, "an existing snapshot compared as new"),
                }
            }
            // Not UTF-8: an error to report, not a panic.
            Err(_) => prop_assert!(store.compare("s", &other).is_err()),
        }
    }

    /// Two bodies compare as `Matches` exactly when they are equal but for trailing space,
    /// and otherwise name what changed.
    #[test]
    fn comparing_two_bodies_names_the_change(a in bodies(), b in bodies()) {
        match compare_bodies(Some(&a), &b) {
            Comparison::Matches => prop_assert_eq!(a.trim_end(), b.trim_end()),
            Comparison::Changed { diff, letters } => {
                prop_assert!(a.trim_end() != b.trim_end());
                prop_assert!(!letters.is_empty());
                prop_assert!(diff.contains("accepted"), "{}", diff);
            }
            Comparison::New => prop_assert!(false, "a body compared as new"),
        }
    }
}

proptest! {
    #![proptest_config(super::config(16))]

    /// Issue 13: "CRLF line endings in a `.snap` gave REVIEW \"newly sent\" for every
    /// letter". An accepted snapshot saved with CRLF line endings (an editor on Windows, a
    /// git checkout with `autocrlf`) reads as the same body (issue 13 point 6; this property
    /// failed before it).
    #[test]
    fn an_accepted_snap_file_with_crlf_line_endings_matches_its_body(seed in 0..snap_seeds().len()) {
        let (_, bytes) = &snap_seeds()[seed];
        let text = String::from_utf8(bytes.clone()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), "t");
        let path = store.path("s");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text.replace('\n', "\r\n")).unwrap();
        prop_assert_eq!(store.compare("s", body_of(&text)).unwrap(), Comparison::Matches);
    }
}
