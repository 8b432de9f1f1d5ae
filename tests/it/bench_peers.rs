//! `lettergate bench --peers`: the same letters through lettergate's own MESH endpoint and
//! through NHS Digital's mesh-sandbox, in one run; and a clear exit 3 where the peers are not
//! installed.

use crate::support::{output_within, peers};
use lettergate::bench_field;
use std::time::Duration;

/// Within this a debug build sends 2 x 66 letters and starts mesh-sandbox on a loaded machine.
const LIMIT: Duration = Duration::from_secs(240);

/// The `letters_per_s` of the line that starts with `bench NAME `.
fn rate(stdout: &str, name: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("bench {name} ")))
        .unwrap_or_else(|| panic!("no `bench {name}` line in:\n{stdout}"));
    assert!(line.contains(" letters=50 "), "{line}");
    let key = if name == "peers" {
        "mesh_sandbox_per_s"
    } else {
        "letters_per_s"
    };
    bench_field(line, key).unwrap_or_else(|| panic!("no {key} in {line}"))
}

#[test]
fn bench_peers_sends_the_same_letters_to_lettergate_and_mesh_sandbox_side_by_side() {
    let venv = peers::venv();
    let cwd = tempfile::tempdir().unwrap();
    // `--peers` adds the pair to what `--only` selects (here the loopback reference, which
    // has no target, so the exit code is the pair's alone).
    let r = output_within(
        crate::support::lettergate()
            .args(["bench", "--peers", "--only", "loopback", "--letters", "400"])
            .args(["--peer-letters", "50"])
            .env("LETTERGATE_PEERS", &venv)
            .current_dir(cwd.path()),
        LIMIT,
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("bench loopback "), "{}", r.stdout);
    for name in ["peer-lettergate", "peer-mesh-sandbox", "peers"] {
        assert!(rate(&r.stdout, name) > 0.0, "{name}: {}", r.stdout);
    }
    let summary = r
        .stdout
        .lines()
        .find(|l| l.starts_with("bench peers "))
        .unwrap();
    let ours = bench_field(summary, "lettergate_per_s").unwrap();
    assert_eq!(ours, rate(&r.stdout, "peer-lettergate"), "{summary}");
    assert!(summary.contains(" lettergate_over_sandbox="), "{summary}");
    assert!(summary.ends_with('x'), "{summary}");
}

#[test]
fn bench_peers_without_the_peers_installed_says_how_to_install_them_and_exits_3() {
    let empty = tempfile::tempdir().unwrap();
    for args in [&["bench", "--peers"][..], &["bench", "--only", "peers"]] {
        let r = output_within(
            crate::support::lettergate()
                .args(args)
                .env("LETTERGATE_PEERS", empty.path())
                .current_dir(empty.path()),
            LIMIT,
        );
        assert_eq!(r.code, 3, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains("the interop peers are not installed")
                && r.stderr.contains("scripts/install-interop-peers.sh")
                && r.stderr.contains("LETTERGATE_PEERS")
                && r.stderr.contains(&empty.path().display().to_string()),
            "{args:?}: {}",
            r.stderr
        );
        // Nothing ran: no benchmark was started before the peers were looked for.
        assert!(!r.stdout.contains("bench "), "{args:?}: {}", r.stdout);
        assert!(!r.stderr.contains("running "), "{args:?}: {}", r.stderr);
    }
}
