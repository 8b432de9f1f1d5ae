//! Property tests of every reader of outside input (issue 13, point 7): the scenario and
//! target loaders, the snapshot reader, the ITK3 / FHIR JSON / FHIR XML letter readers, the
//! HL7 v2 and MLLP readers, and the MESH endpoint's request handling. Each starts from real
//! inputs (the shipped scenarios, target files, accepted `.snap` files, letters built by the
//! simulator's builders and by the stand-in EHR of `tests/standin/`, HL7 messages), mutates
//! them, and checks that the reader never panics, that its errors carry the position it
//! promises, and that what it writes it reads back.
//!
//! `cargo test` runs a few dozen cases per property (a few seconds each); run longer with
//! `PROPTEST_CASES=5000 cargo test --test it props::`. The coverage-guided fuzz targets of
//! `fuzz/` (`scripts/fuzz`) take the same seeds, from `fuzz/seeds/`.

mod hl7;
mod letters;
mod loaders;
mod mesh;
pub mod mutate;
mod snapshot;

use proptest::test_runner::Config;
use std::path::PathBuf;

/// The configuration of every property here: `PROPTEST_CASES` cases (default `default`,
/// chosen so that each property takes a few seconds in a debug build), no files of failures
/// written into the tree (a failure prints its shrunk input; it becomes a named test).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `f` on a thread of its own and waits at most `limit` for it: a reader that spins on
/// an input fails the property with that input instead of hanging the test run. (The
/// thread is left behind; the test binary ends with the run.)
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, proptest::test_runner::TestCaseError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(proptest::test_runner::TestCaseError::fail(format!(
            "no answer within {limit:?}: the reader spins or allocates without bound"
        ))),
    }
}

/// `fuzz/seeds/<kind>/`: the committed seed inputs the fuzz targets start from.
pub fn seed_dir(kind: &str) -> PathBuf {
    crate::support::root().join("fuzz/seeds").join(kind)
}

/// Every file of `fuzz/seeds/<kind>/`, sorted by name, with its name.
pub fn seeds(kind: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(seed_dir(kind))
        .unwrap_or_else(|e| panic!("fuzz/seeds/{kind}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}
