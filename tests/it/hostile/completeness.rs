//! No GO without every part (issue 13, point 1): `report merge` needs every shard of one run
//! exactly once; selecting no scenario is exit 2 in every command; a letter replayed into a
//! capture without authentication of its own is a finding, not a pass.

use crate::support::project::{Project, Ran};

/// The scenarios the shard tests run: few, so that the runs are quick, and spread over the
/// three shards (each of which the tests check is not empty).
const PATHS: [&str; 2] = ["scenarios/death", "scenarios/outpatient"];

fn shard_report(p: &Project, shard: &str, out: &str, paths: &[&str]) -> Ran {
    let r = p.run(
        &[
            &["run", "--check", "--shard", shard, "--report-json", out][..],
            paths,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r
}

fn three_shards(p: &Project) {
    for k in 1..=3 {
        shard_report(p, &format!("{k}/3"), &format!("shard-{k}.json"), &PATHS);
    }
}

fn merge(p: &Project, files: &[&str]) -> Ran {
    p.run(&[&["report", "merge"][..], files].concat())
}

/// Issue 13: a merge of shard 1/3 alone, or of 1/3 and 3/3, said GO (exit 0).
#[test]
fn a_merge_without_every_shard_is_bad_input_naming_the_missing_shards() {
    let p = Project::copy();
    three_shards(&p);
    let r = merge(&p, &["shard-1.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "shards 2/3, 3/3 of the run are missing: merge the reports of every shard 1/3 to 3/3"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("GO"), "{}", r.stdout);
    let r = merge(&p, &["shard-1.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("shard 2/3 of the run is missing"),
        "{}",
        r.stderr
    );
    // Every shard once is what a merge is for.
    let r = merge(&p, &["shard-1.json", "shard-2.json", "shard-3.json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("\nGO: "), "{}", r.stdout);
}

#[test]
fn a_merge_with_a_shard_given_twice_is_bad_input_naming_both_files() {
    let p = Project::copy();
    three_shards(&p);
    std::fs::copy(p.path("shard-1.json"), p.path("again.json")).unwrap();
    let r = merge(
        &p,
        &["shard-1.json", "shard-2.json", "shard-3.json", "again.json"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("shard 1/3 is given more than once (shard-1.json, again.json)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_merge_of_shards_of_runs_with_other_parameters_is_bad_input_naming_what_differs() {
    let p = Project::copy();
    three_shards(&p);
    // Shard 2 of another selection of scenarios: every shard number is there once, but the
    // run is not one run.
    shard_report(
        &p,
        "2/3",
        "other-2.json",
        &["scenarios/death", "scenarios/inpatient"],
    );
    let r = merge(&p, &["shard-1.json", "other-2.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "cannot merge reports of different runs: the scenario paths: `scenarios/death scenarios/outpatient` in shard-1.json, `scenarios/death scenarios/inpatient` in other-2.json"
        ),
        "{}",
        r.stderr
    );
    // The same paths in another snapshot mode are another run too.
    let r = p.run(
        &[
            &["run", "--shard", "2/3", "--report-json", "new-2.json"][..],
            &PATHS,
        ]
        .concat(),
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = merge(&p, &["shard-1.json", "new-2.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("the snapshot mode: check in shard-1.json, new in new-2.json"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_shard_report_holding_another_shards_scenario_is_refused() {
    let p = Project::copy();
    three_shards(&p);
    // Shard 1's report relabelled as shard 2's: each number once, but not what they hold.
    let text = p.read("shard-1.json").replace("\"1/3\"", "\"2/3\"");
    p.write("relabelled.json", &text);
    let r = merge(&p, &["relabelled.json", "shard-3.json", "shard-2.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("which belongs to another shard")
            || r.stderr.contains("is given more than once"),
        "{}",
        r.stderr
    );
    let r = merge(&p, &["relabelled.json", "shard-3.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("says it is shard 2/3 but holds scenario"),
        "{}",
        r.stderr
    );
}

/// Issue 13: `--shard 3/1000` selected no scenario and said GO.
#[test]
fn a_shard_selecting_no_scenario_is_bad_input_and_writes_no_report() {
    let p = Project::copy();
    let r = p.run(&[
        "run",
        "--check",
        "--shard",
        "3/1000",
        "--report-json",
        "s.json",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no scenario selected: shard 3/1000 holds none of the"),
        "{}",
        r.stderr
    );
    assert!(!p.path("s.json").exists());
    assert!(!p.path(".lettergate").exists(), "nothing was run");
}

/// Issue 13: a report selecting no scenario said GO.
#[test]
fn a_merge_of_reports_holding_no_scenario_is_bad_input() {
    let p = Project::copy();
    let empty = serde_json::json!({
        "schema": "lettergate.report/1", "lettergate_version": env!("CARGO_PKG_VERSION"),
        "target": "simulator", "profile": "baseline", "shards": [],
        "identifiers_shown": false, "scenarios": []
    });
    p.write("empty.json", &empty.to_string());
    let r = merge(&p, &["empty.json"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no scenario selected: the reports hold no scenario"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("GO"), "{}", r.stdout);
}

/// A suite of one small population scenario, which a target does not run.
fn volume_only(p: &Project) {
    let fixtures = p.read("scenarios/fixtures/common.yaml");
    p.write("vol/fixtures/common.yaml", &fixtures);
    let root = crate::support::root();
    let text = std::fs::read_to_string(root.join("scenarios/volume/week_mid_sized_trust.yaml"))
        .unwrap()
        .replace("patients: 40000", "patients: 50")
        .replace("days: 7", "days: 1");
    p.write("vol/volume/week.yaml", &text);
    p.write(
        "target.yaml",
        "name: staging\nnon_production: true\ndrive:\n  fhir: {base_url: \"http://127.0.0.1:9/fhir\"}\ncapture:\n  folder: {path: drop}\n",
    );
    std::fs::create_dir_all(p.path("drop")).unwrap();
}

/// Issue 13: against a target a suite of volume scenarios only ran nothing and said GO.
#[test]
fn a_target_run_or_drive_whose_filters_leave_no_scenario_is_bad_input() {
    let p = Project::copy();
    volume_only(&p);
    let r = p.run(&[
        "run",
        "--target",
        "target.yaml",
        "vol",
        "--report-json",
        "r.json",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("no scenario selected: the 1 scenarios found are volume (population) scenarios, which a target does not run"),
        "{}",
        r.stderr
    );
    assert!(!p.path("r.json").exists());
    let r = p.run(&[
        "drive",
        "--target",
        "target.yaml",
        "--ledger",
        "ledger",
        "vol",
    ]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no scenario selected"), "{}", r.stderr);
    assert!(!p.path("ledger").exists());
}

#[test]
fn collecting_a_ledger_of_no_scenario_is_bad_input() {
    let p = Project::copy();
    volume_only(&p);
    p.write(
        "ledger/ledger.json",
        r#"{"format": "lettergate.ledger/1", "target": "target.yaml", "target_name": "staging", "scenarios": []}"#,
    );
    let r = p.run(&["collect", "--ledger", "ledger"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("no scenario selected: the ledger in ledger holds no scenario"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_matrix_or_benchmark_of_no_scenario_is_bad_input() {
    let p = Project::copy();
    volume_only(&p);
    let r = p.run(&["sim", "matrix", "vol"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("no scenario selected"), "{}", r.stderr);
    let r = p.run(&["bench", "--only", "suite", "--scenarios", "0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    let r = p.run(&["bench", "--only", "volume", "--letters", "0"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
}

/// Two healthy runs of the simulator in one work folder, the second one compared with the
/// first: its letters carry new ids, so nothing is taken for a replay (the MLLP, folder and
/// HTTP captures included).
#[test]
fn two_healthy_simulator_runs_in_one_work_folder_find_no_replayed_letter() {
    let p = Project::copy();
    let paths = [
        "scenarios/routing/mllp_and_folder_practices.yaml",
        "scenarios/outpatient",
    ];
    for _ in 0..2 {
        let r = p.run(&[&["run", "--check"][..], &paths].concat());
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("replayed"), "{}", r.stdout);
    }
    let runs: Vec<_> = std::fs::read_dir(p.path(".lettergate/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let ids = std::fs::read_to_string(run.join("letter-ids.ndjson")).unwrap();
        assert!(
            ids.contains("\"scenario\":\"routing/mllp_and_folder_practices\""),
            "{ids}"
        );
    }
}

mod replay {
    use crate::support::loopback::{free_port, Server};
    use crate::support::{bin, root};
    use std::io::{Read, Write};
    use std::path::Path;
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    const SCENARIO: &str = "scenarios/outpatient/clinic_letter.yaml";

    /// `lettergate sim serve` as a staging EHR in real time, sending MESH to `mesh` and the
    /// patient's copy to `print`.
    fn sim_serve(mesh: u16, print: u16) -> Server {
        let port = free_port();
        let child = Command::new(bin())
            .args([
                "sim",
                "serve",
                "--clock",
                "system",
                "--dispatch-interval",
                "1s",
            ])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--directory")
            .arg(root().join("scenarios/fixtures/common.yaml"))
            .args(["--mesh-url", &format!("http://127.0.0.1:{mesh}")])
            .args(["--print-url", &format!("http://127.0.0.1:{print}")])
            .args(["--docman-url", &format!("http://127.0.0.1:{print}")])
            .env("LETTERGATE_MESH_PASSWORD", "sender-secret")
            .env("LETTERGATE_MESH_SHARED_KEY", "TestKey")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lettergate sim serve");
        Server { child, port }.wait_listening(Duration::from_secs(20))
    }

    fn target(dir: &Path, sim: u16, capture: u16) -> std::path::PathBuf {
        let mut mailboxes = String::from("      RXXHC001: LG_SENDER\n");
        for m in [
            "A81001HC001",
            "B82002HC001",
            "C83003HC001",
            "D84004HC001",
            "E85005HC001",
        ] {
            mailboxes.push_str(&format!("      {m}: LG_PRACTICE\n"));
        }
        let text = format!(
            "name: sim-fhir\nnon_production: true\ndrive:\n  fhir: {{base_url: \"http://127.0.0.1:{sim}/fhir\"}}\ncapture:\n  mesh_endpoint:\n    listen: 127.0.0.1:{capture}\n    shared_key_env: LG_KEY\n    mailboxes:\n{mailboxes}wait: {{max: 8s, poll_interval: 1s, settle: 2s}}\n"
        );
        let p = dir.join("target.yaml");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn run(dir: &Path, target: &Path, mode: &str) -> Output {
        Command::new(bin())
            .current_dir(root())
            .args(["run", mode, "--target"])
            .arg(target)
            .arg("--snapshots")
            .arg(dir.join("snapshots"))
            .arg("--work-dir")
            .arg(dir.join("work"))
            .arg(SCENARIO)
            .env("LG_KEY", "TestKey")
            .env("LG_SENDER", "sender-secret")
            .env("LG_PRACTICE", "practice-secret")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    fn said(o: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// The body of the first HTTP letter the run in `work` captured, from its `bodies.bin`.
    fn earlier_http_body(work: &Path) -> (String, Vec<u8>) {
        let runs = work.join("runs");
        let run = std::fs::read_dir(&runs)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let dir = run.join("outpatient/clinic_letter");
        let meta = std::fs::read_to_string(dir.join("messages.ndjson")).unwrap();
        let line = meta
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|l| l["transport"] == "http")
            .expect("an HTTP letter in the earlier run");
        let bodies = std::fs::read(dir.join("bodies.bin")).unwrap();
        let at = line["body_offset"].as_u64().unwrap() as usize;
        let n = line["body_bytes"].as_u64().unwrap() as usize;
        let route = line["route"].as_str().unwrap();
        let path = route.split_once(' ').unwrap().1.to_string();
        (path, bodies[at..at + n].to_vec())
    }

    /// Posts `body` to `path` on 127.0.0.1:`port` as soon as something there answers 202,
    /// trying for up to `within`: what a process on the same host can do to a capture that
    /// does not authenticate.
    fn post_when_listening(port: u16, path: String, body: Vec<u8>, within: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let head = format!(
                    "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.1 202") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Issue 13: a local process posting a body copied from an earlier run's `bodies.bin` to
    /// the unauthenticated HTTP capture, while the EHR sent no patient's copy, was PASS, GO,
    /// also with `--check`.
    #[test]
    fn a_letter_copied_from_an_earlier_run_into_the_http_capture_is_a_replayed_letter() {
        let dir = tempfile::tempdir().unwrap();
        let capture = free_port();
        let sim = sim_serve(capture, capture);
        let t = target(dir.path(), sim.port, capture);
        let first = run(dir.path(), &t, "--accept");
        assert_eq!(first.status.code(), Some(0), "{}", said(&first));
        drop(sim);
        let (path, body) = earlier_http_body(&dir.path().join("work"));

        // The EHR now posts its patient copies nowhere; a process on the host posts the copy
        // it took from the earlier run instead.
        let nowhere = free_port();
        let sim = sim_serve(capture, nowhere);
        let t = target(dir.path(), sim.port, capture);
        let attacker = std::thread::spawn(move || {
            post_when_listening(capture, path, body, Duration::from_secs(30))
        });
        let second = run(dir.path(), &t, "--check");
        assert!(attacker.join().unwrap(), "the copy was never accepted");
        let out = said(&second);
        assert_eq!(second.status.code(), Some(1), "{out}");
        assert!(
            regex::Regex::new(r"replayed letter: patient copy #\d for alice \(NHS \*{7}018\) via POST /print/v1/letters carries local id `SIM-[0-9A-Z]{8}-000002`").unwrap().is_match(&out),
            "{out}"
        );
        assert!(
            out.contains("already seen in letter #2 of scenario outpatient/clinic_letter in the earlier run "),
            "{out}"
        );
        assert!(
            out.contains("missing letter: patient copy for alice"),
            "{out}"
        );
        assert!(out.contains("NO-GO"), "{out}");
    }
}
