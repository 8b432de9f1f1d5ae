//! The README's test command, `scripts/test`, does its own set-up: its set-up step
//! (`scripts/install-test-deps.sh`) can run again and again, is fast once done, and leaves
//! every interop peer the tests need importable.

use crate::support::{peers, root};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the set-up step as `scripts/test` does; returns (how long it took, its stdout).
fn set_up() -> (Duration, String) {
    let started = Instant::now();
    let out = Command::new("bash")
        .arg(root().join("scripts/install-test-deps.sh"))
        .current_dir(root())
        .output()
        .expect("run scripts/install-test-deps.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "scripts/install-test-deps.sh failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (started.elapsed(), stdout)
}

#[test]
fn the_test_commands_set_up_runs_twice_the_second_time_fast_and_leaves_the_peers_importable() {
    // The first run installs whatever is missing (nothing, after `scripts/test`); the second
    // must find everything in place and take the stamp file's fast path.
    set_up();
    let (took, stdout) = set_up();
    assert!(
        stdout.contains("interop peers already installed"),
        "the second set-up reinstalled the peers:\n{stdout}"
    );
    assert!(
        stdout.contains("chromium:"),
        "no Chromium after set-up:\n{stdout}"
    );
    assert!(
        took < Duration::from_secs(20),
        "the second set-up took {took:?}"
    );
    let imports = "import mesh_sandbox.api, mesh_client, hl7, hl7.client, hl7apy, \
                   fhir.resources.STU3.bundle, lxml, check_jsonschema";
    let (code, _, stderr) = peers::python(imports, &[]);
    assert_eq!(code, 0, "a peer is not importable after set-up:\n{stderr}");
}

#[test]
fn the_test_command_is_the_one_the_readme_and_ci_name() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first_screen: String = readme.lines().take(40).collect::<Vec<_>>().join("\n");
    assert!(
        first_screen.contains("scripts/test "),
        "README's first screen does not name scripts/test"
    );
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test"),
        ".ci/run does not run scripts/test"
    );
    assert!(
        !ci.lines().any(|l| l.trim() == "cargo test"),
        ".ci/run runs cargo test beside scripts/test"
    );
}
