//! What several integration tests share: the project's folders and binary, an HTTP client
//! for loopback, free loopback ports and server processes ([`loopback`]), the interop peers
//! ([`peers`]), a project copied into a temporary folder ([`project`]), and the synthetic
//! patient, letter and scenario runs the tests start from ([`fixtures`]).
//!
//! Modelled on ripgrep's `tests/util.rs`: one place for setup, so each test reads as what it
//! checks.

pub mod fixtures;
pub mod loopback;
pub mod peers;
pub mod project;

use std::path::PathBuf;
use std::process::Command;

/// The package root, where `scenarios/` and `snapshots/` live.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `lettergate` binary cargo built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lettergate")
}

/// The `lettergate` binary as a command, to be given arguments, a folder and environment.
pub fn lettergate() -> Command {
    Command::new(bin())
}

/// An HTTP client for loopback servers: no proxy, because a proxy set in the environment
/// would otherwise be asked for 127.0.0.1.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `insta::assert_snapshot!` keeping the names the snapshots had when every file of this
/// binary was a test binary of its own: `tests/snapshots/MODULE__NAME.snap`, where MODULE is
/// the calling file's module (`cli`, not `it::cli`). insta would otherwise look for
/// `tests/it/snapshots/it__cli__NAME.snap`.
macro_rules! assert_snapshot {
    ($name:expr, $value:expr) => {{
        let module = module_path!().rsplit("::").next().unwrap();
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.bind(|| insta::assert_snapshot!(format!("{module}__{}", $name), $value));
    }};
}
pub(crate) use assert_snapshot;

/// Runs `command` to its end, or kills it and fails the test after `limit`: a hung child
/// must not hang the test binary (`Command::output` waits for ever). Its output goes through
/// temporary files, not pipes, so a chatty child cannot block on a full pipe while we poll.
pub fn output_within(command: &mut Command, limit: std::time::Duration) -> project::Ran {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = command
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {command:?}: {e}"));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not finish within {limit:?}; it printed:\n{}{}",
                read_all(out),
                read_all(err)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    project::Ran {
        code: status.code().unwrap_or(-1),
        stdout: read_all(out),
        stderr: read_all(err),
    }
}

fn read_all(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}
