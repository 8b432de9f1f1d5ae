//! Targets end to end: `lettergate sim serve` stands in for a staging EHR (FHIR R4 in, MESH
//! and HTTP out, real time), and `lettergate run --target` drives it, captures, checks and
//! snapshots per target. Processes talk over loopback only.

use crate::support::loopback::{free_port, Server};
use crate::support::{bin, http, peers, root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const SCENARIOS: [&str; 3] = [
    "scenarios/outpatient/clinic_letter.yaml",
    "scenarios/death/in_hospital.yaml",
    "scenarios/routing/merged_practice.yaml",
];

/// The simulator as a staging EHR: system clock, dispatching every second, the fixture
/// practices as its directory, sending MESH and HTTP to `capture_port`. Killed when dropped.
pub(crate) fn sim_serve(profile: &str, capture_port: u16) -> Server {
    let capture = format!("http://127.0.0.1:{capture_port}");
    SimServe {
        profile,
        mesh_url: &capture,
        http_url: &capture,
        password: "sender-secret",
        extra: &[],
    }
    .start()
}

/// `lettergate sim serve` as a staging EHR, sending MESH to `mesh_url` and HTTP letters to
/// `http_url`, with `extra` arguments. Killed when dropped.
pub(crate) struct SimServe<'a> {
    pub(crate) profile: &'a str,
    pub(crate) mesh_url: &'a str,
    pub(crate) http_url: &'a str,
    /// Its MESH mailbox's password.
    pub(crate) password: &'a str,
    pub(crate) extra: &'a [&'a str],
}

impl SimServe<'_> {
    pub(crate) fn start(&self) -> Server {
        let port = free_port();
        let child = Command::new(bin())
            .args(["sim", "serve", "--clock", "system"])
            .args(["--dispatch-interval", "1s"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--sim-profile", self.profile])
            .arg("--directory")
            .arg(root().join("scenarios/fixtures/common.yaml"))
            .args(["--mesh-url", self.mesh_url, "--print-url", self.http_url])
            .args(["--docman-url", self.http_url])
            .args(self.extra)
            .env("LETTERGATE_MESH_PASSWORD", self.password)
            .env("LETTERGATE_MESH_SHARED_KEY", "TestKey")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lettergate sim serve");
        Server { child, port }.wait_listening(Duration::from_secs(20))
    }
}

pub(crate) fn target_file(dir: &Path, sim_port: u16, capture_port: u16) -> PathBuf {
    let text = format!(
        "name: sim-fhir\nnon_production: true\ndrive:\n  fhir:\n    base_url: http://127.0.0.1:{sim_port}/fhir\ncapture:\n  mesh_endpoint:\n    listen: 127.0.0.1:{capture_port}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n      RXXHC001: LG_TEST_SENDER_PASSWORD\n      A81001HC001: LG_TEST_PRACTICE_PASSWORD\n      B82002HC001: LG_TEST_PRACTICE_PASSWORD\n      C83003HC001: LG_TEST_PRACTICE_PASSWORD\n      D84004HC001: LG_TEST_PRACTICE_PASSWORD\n      E85005HC001: LG_TEST_PRACTICE_PASSWORD\nwait: {{max: 8s, poll_interval: 1s, settle: 2s}}\n"
    );
    let p = dir.join("sim-fhir.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn lettergate(args: &[&str], target: &Path, dir: &Path) -> Output {
    lettergate_on(args, target, dir, &SCENARIOS)
}

/// `lettergate ARGS --target TARGET SCENARIOS`, with snapshots and work under `dir` and the
/// secrets of [`target_file`] in the environment.
pub(crate) fn lettergate_on(
    args: &[&str],
    target: &Path,
    dir: &Path,
    scenarios: &[&str],
) -> Output {
    Command::new(bin())
        .current_dir(root())
        .args(args)
        .arg("--target")
        .arg(target)
        .arg("--snapshots")
        .arg(dir.join("snapshots"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .args(scenarios)
        .env("LG_TEST_MESH_KEY", "TestKey")
        .env("LG_TEST_SENDER_PASSWORD", "sender-secret")
        .env("LG_TEST_PRACTICE_PASSWORD", "practice-secret")
        .env("NO_COLOR", "1")
        .output()
        .expect("run lettergate")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Registers synthetic patients (NHS number, name, born, practice) with the simulator's own API,
/// as a staging EHR already knows them: the HTTP driver's events name them by NHS number only.
async fn register(sim_port: u16, patients: &[(&str, &str, &str, &str)]) {
    let client = http();
    for (nhs, name, born, ods) in patients {
        let r = client
            .post(format!("http://127.0.0.1:{sim_port}/patients"))
            .json(&serde_json::json!({"nhs_number": nhs, "name": name, "born": born, "practice": ods}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
}

const BOB: (&str, &str, &str, &str) = ("9990000026", "Bob Example", "1942-06-15", "B82002");

/// The HTTP driver's request for `event`: the simulator's event API with the event's time, kind
/// and patient, and `extra` JSON members.
fn event_template(event: &str, extra: &str) -> String {
    format!(
        "      {event}:\n        path: /events\n        headers: {{content-type: application/json}}\n        body: '{{\"at\": \"{{{{at}}}}\", \"event\": \"{{{{event}}}}\", \"nhs_number\": \"{{{{nhs_number}}}}\"{extra}}}'\n"
    )
}

/// [`target_file`] driven by HTTP templates for admissions and discharges instead of FHIR,
/// named `sim-http`, with `more` appended.
fn http_target_file(
    dir: &Path,
    sim_port: u16,
    capture_port: u16,
    extra: &str,
    more: &str,
) -> PathBuf {
    let fhir = std::fs::read_to_string(target_file(dir, sim_port, capture_port)).unwrap();
    let http = fhir.replace("name: sim-fhir", "name: sim-http").replace(
        &format!("  fhir:\n    base_url: http://127.0.0.1:{sim_port}/fhir\n"),
        &format!(
            "  http:\n    base_url: http://127.0.0.1:{sim_port}\n    requests:\n{}{}",
            event_template("admission", extra),
            event_template("discharge", extra)
        ),
    ) + more;
    assert!(http.contains("  http:"), "{http}");
    let target = dir.join("sim-http.yaml");
    std::fs::write(&target, http).unwrap();
    target
}

#[test]
fn a_target_is_driven_over_fhir_recorded_then_compared_and_a_dropped_letter_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);

    // Baseline on the current version: every expected letter, recorded as the target's
    // accepted snapshots.
    let first = lettergate(&["run", "--accept"], &target, dir.path());
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(out.contains("against target sim-fhir"), "{out}");
    assert!(out.contains("3 scenarios: 3 passed"), "{out}");
    for s in [
        "outpatient/clinic_letter",
        "death/in_hospital",
        "routing/merged_practice",
    ] {
        let snap = dir.path().join(format!("snapshots/sim-fhir/{s}.snap"));
        let body = std::fs::read_to_string(&snap).unwrap_or_else(|e| panic!("{snap:?}: {e}"));
        // Real-time runs leave out how long after its event a letter came.
        assert!(!body.contains("\n  sent: "), "{body}");
    }

    // The same version again: the same letters, so every snapshot matches.
    let again = lettergate(&["run", "--check"], &target, dir.path());
    let out = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}");
    assert!(out.contains("GO"), "{out}");
    drop(sim);

    // "Upgrade": the same target now drops clinic letters without a word.
    let sim = sim_serve("op-letters-silently-dropped", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let upgraded = lettergate(&["run", "--check"], &target, dir.path());
    let out = text(&upgraded);
    assert_eq!(upgraded.status.code(), Some(1), "{out}");
    assert!(
        out.contains("missing letter: clinic letter for alice"),
        "{out}"
    );
    assert!(out.contains("NO-GO"), "{out}");
    assert!(out.contains("BLOCKER"), "{out}");

    // A target can lower a kind of finding for every scenario run against it.
    let lowered =
        std::fs::read_to_string(&target).unwrap() + "severity:\n  missing_letter: review\n";
    std::fs::write(&target, lowered).unwrap();
    let reviewed = lettergate(&["run", "--check"], &target, dir.path());
    let out = text(&reviewed);
    assert_eq!(reviewed.status.code(), Some(1), "{out}");
    assert!(!out.contains("BLOCKER"), "{out}");
    assert!(out.contains("REVIEW ("), "{out}");
    assert!(
        out.contains("missing letter: clinic letter for alice"),
        "{out}"
    );
}

/// Issue 11 (point 7) and issue 14: a scenario whose events the EHR refuses ends as an error
/// outcome with the cause, and releases what it held, so the next scenario listens on the
/// same fixed capture port and passes.
#[test]
fn a_refused_scenario_is_incomplete_with_its_cause_and_the_next_one_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    // In this order: the first one's attendance is what the EHR will refuse.
    let scenarios = [
        "scenarios/death/in_hospital.yaml",
        "scenarios/inpatient/discharge_summary.yaml",
    ];

    // Nothing refused: both pass, recorded as the target's accepted snapshots.
    let ok = lettergate_on(&["run", "--accept"], &target, dir.path(), &scenarios);
    let out = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.contains("2 scenarios: 2 passed"), "{out}");

    // The EHR now answers 400 to an outpatient attendance (a body that is not an Encounter),
    // which only the first scenario has.
    let fhir = format!("    base_url: http://127.0.0.1:{}/fhir\n", sim.port);
    let refusing = std::fs::read_to_string(&target).unwrap().replace(
        &fhir,
        &format!("{fhir}    requests:\n      outpatient_attendance:\n        path: /Encounter\n        headers: {{content-type: application/fhir+json}}\n        body: '{{\"resourceType\": \"Patient\"}}'\n"),
    );
    assert!(refusing.contains("outpatient_attendance"), "{refusing}");
    std::fs::write(&target, refusing).unwrap();
    let refused = lettergate_on(&["run", "--check"], &target, dir.path(), &scenarios);
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{out}");
    assert!(out.contains("INCOMPLETE"), "{out}");
    let error = out
        .split("--- death/in_hospital")
        .nth(1)
        .and_then(|section| {
            section
                .lines()
                .find(|l| l.trim_start().starts_with("error:"))
        })
        .unwrap_or_else(|| panic!("no error for death/in_hospital: {out}"));
    // The whole cause: the request, the status and what the EHR said.
    assert!(
        error.contains("/fhir/Encounter (outpatient_attendance) answered 400 Bad Request"),
        "{error}"
    );
    assert!(
        error.contains("the body is not a Encounter resource"),
        "{error}"
    );
    assert!(!out.contains("Address already in use"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("PASS") && l.contains("inpatient/discharge_summary")),
        "{out}"
    );
    assert!(
        out.contains("2 scenarios: 1 passed, 0 failed, 1 could not run"),
        "{out}"
    );
}

#[test]
fn targets_check_says_what_works_and_what_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let check = |envs: &[(&str, &str)]| {
        let mut c = Command::new(bin());
        c.args(["targets", "check"]).arg(&target);
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let all = [
        ("LG_TEST_MESH_KEY", "TestKey"),
        ("LG_TEST_SENDER_PASSWORD", "a"),
        ("LG_TEST_PRACTICE_PASSWORD", "b"),
    ];
    let ok = check(&all);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(
        text(&ok).contains("CapabilityStatement, FHIR 4.0.1"),
        "{}",
        text(&ok)
    );

    // A missing secret, then a driver nobody answers: exit 3, and the line says which.
    let missing = check(&all[..2]);
    assert_eq!(missing.status.code(), Some(3), "{}", text(&missing));
    assert!(
        text(&missing).contains("LG_TEST_PRACTICE_PASSWORD"),
        "{}",
        text(&missing)
    );
    drop(sim);
    let down = check(&all);
    assert_eq!(down.status.code(), Some(3), "{}", text(&down));
    assert!(text(&down).contains("FAILED drive.fhir"), "{}", text(&down));

    // A target that says it is production is refused before anything is contacted.
    let prod = std::fs::read_to_string(&target)
        .unwrap()
        .replace("non_production: true", "non_production: false");
    std::fs::write(&target, prod).unwrap();
    let refused = check(&all);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("says it is production"),
        "{}",
        text(&refused)
    );
}

/// Per scenario: its verdict and the kinds of its findings, from a JSON report (a first run
/// has no accepted snapshot; that finding is left out).
pub(crate) fn verdicts(report: &Path) -> Vec<(String, String, Vec<String>)> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut kinds: Vec<String> = s["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["kind"].as_str().unwrap().to_string())
                .filter(|k| k != "new_snapshot")
                .collect();
            kinds.sort();
            (
                s["id"].as_str().unwrap().to_string(),
                s["verdict"].as_str().unwrap().to_string(),
                kinds,
            )
        })
        .collect()
}

const PRACTICE_MAILBOXES: [&str; 5] = [
    "A81001HC001",
    "B82002HC001",
    "C83003HC001",
    "D84004HC001",
    "E85005HC001",
];

/// The simulator sends to NHS Digital's mesh-sandbox, and lettergate polls the practices'
/// mailboxes there; the verdicts equal those of the same scenarios captured on lettergate's
/// own MESH endpoint, on baseline and with a fault.
#[test]
fn verdicts_through_mesh_sandbox_match_lettergates_own_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("mesh-store");
    let mut boxes = PRACTICE_MAILBOXES.to_vec();
    boxes.push("RXXHC001");
    let sandbox = peers::mesh_sandbox(&store, "TestKey", &boxes);
    let sandbox_url = format!("http://127.0.0.1:{}", sandbox.port);

    let mailboxes = |env: &str| -> String {
        PRACTICE_MAILBOXES
            .iter()
            .map(|m| format!("      - {{id: {m}, password_env: {env}}}\n"))
            .collect()
    };
    for profile in ["baseline", "op-letters-silently-dropped"] {
        // lettergate's own MESH endpoint, as in the other tests.
        let capture_port = free_port();
        let sim = sim_serve(profile, capture_port);
        let own = target_file(dir.path(), sim.port, capture_port);
        let own_report = dir.path().join(format!("own-{profile}.json"));
        let o = lettergate(
            &[
                "run",
                "--check",
                "--report-json",
                own_report.to_str().unwrap(),
            ],
            &own,
            dir.path(),
        );
        assert!(matches!(o.status.code(), Some(0 | 1)), "{}", text(&o));
        drop(sim);

        // mesh-sandbox in between: the simulator sends there; lettergate polls it and takes
        // the paper and document-route letters on its HTTP endpoint.
        let http_port = free_port();
        let http_url = format!("http://127.0.0.1:{http_port}");
        let sim = SimServe {
            profile,
            mesh_url: &sandbox_url,
            http_url: &http_url,
            password: peers::SANDBOX_PASSWORD,
            extra: &[],
        }
        .start();
        let sim_port = sim.port;
        let polled = dir.path().join("sandbox.yaml");
        std::fs::write(
            &polled,
            format!(
                "name: sim-via-mesh-sandbox\nnon_production: true\ndrive:\n  fhir:\n    base_url: http://127.0.0.1:{sim_port}/fhir\ncapture:\n  mesh_poll:\n    url: {sandbox_url}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n{}    sending_mailbox: {{id: RXXHC001, password_env: LG_TEST_SANDBOX_PASSWORD}}\n  http_endpoint:\n    listen: 127.0.0.1:{http_port}\nwait: {{max: 8s, poll_interval: 1s, settle: 2s}}\n",
                mailboxes("LG_TEST_SANDBOX_PASSWORD")
            ),
        )
        .unwrap();
        let sandbox_report = dir.path().join(format!("sandbox-{profile}.json"));
        let p = Command::new(bin())
            .current_dir(root())
            .args(["run", "--check", "--target"])
            .arg(&polled)
            .arg("--report-json")
            .arg(&sandbox_report)
            .arg("--snapshots")
            .arg(dir.path().join("snapshots"))
            .arg("--work-dir")
            .arg(dir.path().join("work"))
            .args(SCENARIOS)
            .env("LG_TEST_MESH_KEY", "TestKey")
            .env("LG_TEST_SANDBOX_PASSWORD", peers::SANDBOX_PASSWORD)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let out = text(&p);
        assert!(matches!(p.status.code(), Some(0 | 1)), "{out}");
        assert!(
            out.contains("ITK3 acknowledgements are not checked"),
            "{out}"
        );
        drop(sim);

        let own_v = verdicts(&own_report);
        let sandbox_v = verdicts(&sandbox_report);
        // Acknowledgements are checked only on lettergate's own endpoint.
        let no_acks =
            |v: Vec<(String, String, Vec<String>)>| -> Vec<(String, String, Vec<String>)> {
                v.into_iter()
                    .map(|(id, verdict, kinds)| {
                        let kinds = kinds.into_iter().filter(|k| !k.contains("ack")).collect();
                        (id, verdict, kinds)
                    })
                    .collect()
            };
        assert_eq!(
            no_acks(sandbox_v.clone()),
            no_acks(own_v.clone()),
            "{profile}: {out}"
        );
        match profile {
            "baseline" => assert!(
                sandbox_v
                    .iter()
                    .all(|(_, v, k)| v == "pass" || k.is_empty()),
                "{sandbox_v:?}"
            ),
            _ => assert!(
                sandbox_v
                    .iter()
                    .any(|(_, _, k)| k.iter().any(|k| k == "missing_letter")),
                "{sandbox_v:?}"
            ),
        }
    }
}

/// The HL7 v2 driver: ADT over MLLP into the simulator's ADT listener, letters out over MESH
/// to lettergate's endpoint; a scenario needing document workflow is refused before anything
/// is sent.
#[test]
fn a_target_is_driven_over_hl7_v2_adt() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let adt_port = free_port();
    let capture = format!("http://127.0.0.1:{capture_port}");
    let adt = format!("127.0.0.1:{adt_port}");
    let sim = SimServe {
        profile: "baseline",
        mesh_url: &capture,
        http_url: &capture,
        password: "sender-secret",
        extra: &["--adt-listen", &adt],
    }
    .start();
    let sim_port = sim.port;
    // The FHIR target's capture, with the HL7 v2 driver instead.
    let fhir = std::fs::read_to_string(target_file(dir.path(), sim_port, capture_port)).unwrap();
    let hl7 = fhir.replace("name: sim-fhir", "name: sim-hl7").replace(
        &format!("  fhir:\n    base_url: http://127.0.0.1:{sim_port}/fhir\n"),
        &format!("  hl7v2:\n    address: 127.0.0.1:{adt_port}\n    sending_facility: RXX\n"),
    );
    assert!(hl7.contains("hl7v2:"), "{hl7}");
    let target = dir.path().join("sim-hl7.yaml");
    std::fs::write(&target, hl7).unwrap();
    let run =
        |scenarios: &[&str]| lettergate_on(&["run", "--accept"], &target, dir.path(), scenarios);
    let ok = run(&[
        "scenarios/inpatient/discharge_summary.yaml",
        "scenarios/emergency/ed_discharge.yaml",
    ]);
    let out = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.contains("2 scenarios: 2 passed"), "{out}");
    // The header names the target by its `name:` and its driver, not a "profile".
    assert!(
        out.contains("scenarios against target sim-hl7 (hl7v2 driver)\n"),
        "{out}"
    );

    // The local id goes as the visit number (PV1-19); the simulator's letters carry it, so the
    // same letters match by it, and the snapshots just accepted.
    let by_id = std::fs::read_to_string(&target).unwrap() + "match: local_id\n";
    std::fs::write(&target, by_id).unwrap();
    let matched = lettergate_on(
        &["run", "--check"],
        &target,
        dir.path(),
        &[
            "scenarios/inpatient/discharge_summary.yaml",
            "scenarios/emergency/ed_discharge.yaml",
        ],
    );
    let out = text(&matched);
    assert_eq!(matched.status.code(), Some(0), "{out}");
    assert!(!out.contains("unmatched letter"), "{out}");

    let refused = run(&["scenarios/outpatient/clinic_letter.yaml"]);
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{out}");
    assert!(
        out.contains("cannot tell the EHR `letter_drafted`"),
        "{out}"
    );
}

/// mesh-sandbox (its store in `dir`) with the practices' and the trust's mailboxes, and
/// `sim serve` sending MESH there, its HTTP letters nowhere: the sandbox, its URL, the simulator.
fn sandbox_and_sim(dir: &Path) -> (Server, String, Server) {
    sandbox_and_sim_with(dir, "baseline")
}

/// [`sandbox_and_sim`] with the simulator on fault profile `profile`.
fn sandbox_and_sim_with(dir: &Path, profile: &str) -> (Server, String, Server) {
    let mut boxes = PRACTICE_MAILBOXES.to_vec();
    boxes.push("RXXHC001");
    let sandbox = peers::mesh_sandbox(&dir.join("mesh-store"), "TestKey", &boxes);
    let sandbox_url = format!("http://127.0.0.1:{}", sandbox.port);
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let sim = SimServe {
        profile,
        mesh_url: &sandbox_url,
        http_url: &nowhere,
        password: peers::SANDBOX_PASSWORD,
        extra: &[],
    }
    .start();
    (sandbox, sandbox_url, sim)
}

/// A two-phase setup: mesh-sandbox with the practices' and the trust's mailboxes, `sim serve`
/// sending MESH there (its HTTP letters nowhere), and the target `sim-batch`, which drives it
/// over FHIR and polls the practices' mailboxes, with a ledger folder.
pub(crate) struct Batch {
    dir: tempfile::TempDir,
    sandbox_url: String,
    sim: Server,
    _sandbox: Server,
    pub(crate) target: PathBuf,
    pub(crate) ledger: PathBuf,
    /// `LETTERGATE_NOW` for every command, if set.
    now: Option<&'static str>,
}

impl Batch {
    pub(crate) fn start() -> Batch {
        Batch::start_with("baseline", None)
    }

    /// The set-up with the simulator on fault profile `profile`, and "now" for clinical
    /// times at `now` (`LETTERGATE_NOW`).
    fn start_with(profile: &str, now: Option<&'static str>) -> Batch {
        let dir = tempfile::tempdir().unwrap();
        let (sandbox, sandbox_url, sim) = sandbox_and_sim_with(dir.path(), profile);
        let b = Batch {
            target: dir.path().join("batch.yaml"),
            ledger: dir.path().join("ledger"),
            dir,
            sandbox_url,
            sim,
            _sandbox: sandbox,
            now,
        };
        b.write_target("");
        b
    }

    /// Writes the target file, with `more` (a `match:`) at its end.
    pub(crate) fn write_target(&self, more: &str) {
        let mailboxes: String = PRACTICE_MAILBOXES
            .iter()
            .map(|m| format!("      - {{id: {m}, password_env: LG_TEST_SANDBOX_PASSWORD}}\n"))
            .collect();
        std::fs::write(
            &self.target,
            format!("name: sim-batch\nnon_production: true\ndrive:\n  fhir:\n    base_url: http://127.0.0.1:{}/fhir\ncapture:\n  mesh_poll:\n    url: {}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n{mailboxes}{more}", self.sim.port, self.sandbox_url),
        )
        .unwrap();
    }

    pub(crate) fn lg(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin());
        c.current_dir(root())
            .args(args)
            .env("LG_TEST_MESH_KEY", "TestKey")
            .env("LG_TEST_SANDBOX_PASSWORD", peers::SANDBOX_PASSWORD)
            .env("NO_COLOR", "1");
        if let Some(now) = self.now {
            c.env("LETTERGATE_NOW", now);
        }
        c.output().unwrap()
    }

    pub(crate) fn drive(&self, scenarios: &[&str]) -> Output {
        let mut args = vec![
            "drive",
            "--target",
            self.target.to_str().unwrap(),
            "--ledger",
            self.ledger.to_str().unwrap(),
        ];
        args.extend(scenarios);
        self.lg(&args)
    }

    /// `collect` with `mode` (`--accept`, `--check`), snapshots in the setup's folder.
    pub(crate) fn collect(&self, mode: &str) -> Output {
        let snaps = self.dir.path().join("snapshots");
        self.lg(&[
            "collect",
            "--ledger",
            self.ledger.to_str().unwrap(),
            mode,
            "--snapshots",
            snaps.to_str().unwrap(),
        ])
    }

    pub(crate) fn ledger_json(&self) -> String {
        std::fs::read_to_string(self.ledger.join("ledger.json")).unwrap()
    }
}

/// Two-phase runs through mesh-sandbox: `drive` now writes the ledger (and driving again adds
/// nothing), `collect` later gathers the letters from the mailboxes and checks them, and
/// collecting again, in a new process, gives the same verdict from what was kept.
#[test]
fn drive_now_collect_later_and_collect_again() {
    let b = Batch::start();
    // These scenarios' letters all go over MESH, where they wait to be collected.
    let scenarios = [
        "scenarios/inpatient/discharge_summary.yaml",
        "scenarios/emergency/ed_discharge.yaml",
        "scenarios/routing/merged_practice.yaml",
    ];
    let driven = b.drive(&scenarios);
    assert_eq!(driven.status.code(), Some(0), "{}", text(&driven));
    let first_ledger = b.ledger_json();
    let v: serde_json::Value = serde_json::from_str(&first_ledger).unwrap();
    assert_eq!(
        v["scenarios"].as_array().unwrap().len(),
        3,
        "{first_ledger}"
    );
    assert!(v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["complete"] == true));

    // Driving again drives nothing twice.
    let again = b.drive(&scenarios);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(b.ledger_json(), first_ledger);

    std::thread::sleep(Duration::from_secs(3));
    let first = b.collect("--accept");
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(out.contains("3 scenarios: 3 passed"), "{out}");
    assert!(out.contains("discharge_summary      B82002"), "{out}");

    // The letters have left the mailboxes (acknowledged); the verdict comes from the store.
    let second = b.collect("--check");
    let out2 = text(&second);
    assert_eq!(second.status.code(), Some(0), "{out2}");
    assert!(out2.contains("3 scenarios: 3 passed"), "{out2}");
    let summary = |o: &str| -> Vec<String> {
        o.lines()
            .filter(|l| l.starts_with("PASS") || l.starts_with("FAIL"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(summary(&out), summary(&out2));
}

/// The HTTP driver: one request template per event, here the simulator's own event API, with
/// placeholders filled from the scenario. The staging EHR already knows its synthetic patient.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_is_driven_with_http_request_templates() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    register(sim.port, &[BOB]).await;
    let target = http_target_file(dir.path(), sim.port, capture_port, "", "");
    let run = |scenario: &str| lettergate_on(&["run", "--check"], &target, dir.path(), &[scenario]);
    let ok = tokio::task::block_in_place(|| run("scenarios/inpatient/discharge_summary.yaml"));
    let out = text(&ok);
    // No accepted snapshot for this target: a review, but every letter arrived.
    assert!(
        out.contains("discharge_summary      B82002                1        1"),
        "{out}"
    );
    assert!(!out.contains("missing letter"), "{out}");
    assert!(
        out.contains("against target sim-http (http driver)\n"),
        "{out}"
    );

    // A scenario with an event the file has no request for is refused before anything is sent.
    let refused = tokio::task::block_in_place(|| run("scenarios/emergency/ed_discharge.yaml"));
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(3), "{out}");
    assert!(
        out.contains("no request for `emergency_attendance`"),
        "{out}"
    );
}

/// A target whose practices are reached over HL7 v2 MLLP and a drop folder: lettergate's MLLP
/// listener and folder watcher capture them, next to the MESH endpoint's HTTP catch-all for
/// the patient's copy.
#[test]
fn a_target_is_captured_over_mllp_and_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("scenarios");
    std::fs::create_dir_all(scenarios.join("fixtures")).unwrap();
    std::fs::create_dir_all(scenarios.join("local")).unwrap();
    let fixture = scenarios.join("fixtures/local.yaml");
    std::fs::write(
        &fixture,
        "practices:\n  willowbank: {ods: G87007, name: Willow Bank Surgery, route: mllp}\n  ashgrove: {ods: H88008, name: Ashgrove Medical Practice, route: folder}\npatients:\n  lena: {nhs_number: \"9990000123\", name: Lena Example, born: 1972-10-10, practice: willowbank}\n  omar: {nhs_number: \"9990000131\", name: Omar Example, born: 1958-03-21, practice: ashgrove}\n",
    )
    .unwrap();
    let scenario = scenarios.join("local/routes.yaml");
    std::fs::write(
        &scenario,
        "name: Letters over MLLP and a folder\ninclude: [../fixtures/local.yaml]\ntimeline:\n  - at: 2025-06-02T09:00:00Z\n    event: outpatient_attendance\n    patient: lena\n  - after: 1h\n    event: admission\n    patient: omar\n  - after: 1d\n    event: letter_signed\n    patient: lena\n  - after: 1d\n    event: discharge\n    patient: omar\nexpect:\n  - letter: clinic_letter\n    patient: lena\n  - letter: patient_copy\n    patient: lena\n  - letter: discharge_summary\n    patient: omar\n",
    )
    .unwrap();
    let (capture_port, mllp_port) = (free_port(), free_port());
    let drop = dir.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let capture = format!("http://127.0.0.1:{capture_port}");
    let mllp = format!("127.0.0.1:{mllp_port}");
    let sim = SimServe {
        profile: "baseline",
        mesh_url: &capture,
        http_url: &capture,
        password: "sender-secret",
        extra: &[
            "--directory",
            fixture.to_str().unwrap(),
            "--mllp-addr",
            &mllp,
            "--drop-folder",
            drop.to_str().unwrap(),
        ],
    }
    .start();
    let target = dir.path().join("local.yaml");
    std::fs::write(
        &target,
        format!(
            "name: sim-local-routes\nnon_production: true\ndrive:\n  fhir:\n    base_url: http://127.0.0.1:{}/fhir\ncapture:\n  mesh_endpoint:\n    listen: 127.0.0.1:{capture_port}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n      RXXHC001: LG_TEST_SENDER_PASSWORD\n  mllp:\n    listen: {mllp}\n  folder:\n    path: {}\n    poll_interval: 1s\nwait: {{max: 8s, poll_interval: 1s, settle: 2s}}\n",
            sim.port,
            drop.display()
        ),
    )
    .unwrap();
    let o = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", "--accept", "--target"])
        .arg(&target)
        .arg(&scenario)
        .env("LG_TEST_MESH_KEY", "TestKey")
        .env("LG_TEST_SENDER_PASSWORD", "sender-secret")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("1 scenario: 1 passed"), "{out}");
    let snap = std::fs::read_to_string(
        dir.path()
            .join("snapshots/sim-local-routes/local/routes.snap"),
    )
    .unwrap();
    assert!(snap.contains("transport: mllp"), "{snap}");
    assert!(snap.contains("transport: folder"), "{snap}");
    assert!(snap.contains("transport: http"), "{snap}");
}

/// A REPORT that NHS Digital's mesh-sandbox makes (injected through its admin API) about a
/// letter the EHR sent is read from the sending mailbox, attached to that letter and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_report_from_mesh_sandbox_is_reported() {
    use lettergate::protocol::mesh::client::{MeshClient, MeshConfig};
    let dir = tempfile::tempdir().unwrap();
    let (_sandbox, sandbox_url, sim) = sandbox_and_sim(dir.path());
    let target = dir.path().join("batch.yaml");
    std::fs::write(
        &target,
        format!("name: sim-batch\nnon_production: true\ndrive:\n  fhir:\n    base_url: http://127.0.0.1:{}/fhir\ncapture:\n  mesh_poll:\n    url: {sandbox_url}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n      - {{id: B82002HC001, password_env: LG_TEST_SANDBOX_PASSWORD}}\n    sending_mailbox: {{id: RXXHC001, password_env: LG_TEST_SANDBOX_PASSWORD}}\n", sim.port),
    )
    .unwrap();
    let ledger = dir.path().join("ledger");
    let lg = |args: &[&str]| {
        let mut c = Command::new(bin());
        c.current_dir(root())
            .args(args)
            .env("LG_TEST_MESH_KEY", "TestKey")
            .env("LG_TEST_SANDBOX_PASSWORD", peers::SANDBOX_PASSWORD)
            .env("NO_COLOR", "1");
        tokio::task::block_in_place(|| c.output().unwrap())
    };
    let (t, l) = (target.to_str().unwrap(), ledger.to_str().unwrap());
    let scenario = "scenarios/inpatient/discharge_summary.yaml";
    let driven = lg(&["drive", "--target", t, "--ledger", l, scenario]);
    assert_eq!(driven.status.code(), Some(0), "{}", text(&driven));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The EHR stops before the report comes, so it does not collect the report itself.
    drop(sim);

    // The discharge summary waits in the practice's mailbox: the sandbox reports on it.
    let practice = MeshClient::new(
        http(),
        MeshConfig {
            base_url: sandbox_url.clone(),
            mailbox: "B82002HC001".into(),
            password: peers::SANDBOX_PASSWORD.into(),
            shared_key: "TestKey".into(),
        },
    );
    let ids = practice.list_inbox().await.unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let injected = http()
        .post(format!("{sandbox_url}/messageexchange/admin/report"))
        .json(&serde_json::json!({
            "mailbox_id": "RXXHC001", "code": "14", "description": "not collected",
            "workflow_id": "TOC_FHIR_IP_DISCH", "linked_message_id": ids[0],
            "status": "undeliverable"}))
        .send()
        .await
        .unwrap();
    assert!(injected.status().is_success(), "{injected:?}");

    let collected = lg(&["collect", "--ledger", l, "--check"]);
    let out = text(&collected);
    assert_eq!(collected.status.code(), Some(1), "{out}");
    assert!(out.contains("MESH report received"), "{out}");
    assert!(out.contains("status 14"), "{out}");
}

/// MESH over mutual TLS: mesh-sandbox behind uvicorn asking for a client certificate signed by
/// the test CA. `targets check` signs in with the target's certificate; a certificate from
/// another CA, or none, is refused.
#[test]
fn mesh_over_mutual_tls_signs_in_only_with_the_right_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    peers::test_pki(&pki);
    let p = |name: &str| pki.join(name).to_str().unwrap().to_string();
    let sandbox = peers::mesh_sandbox_with(
        &dir.path().join("mesh-store"),
        "TestKey",
        &["A81001HC001"],
        &[
            "--ssl-certfile",
            &p("server.pem"),
            "--ssl-keyfile",
            &p("server.key"),
            "--ssl-ca-certs",
            &p("ca.pem"),
            "--ssl-cert-reqs",
            "2",
        ],
    );
    let check = |tls: &str| {
        let target = dir.path().join("tls.yaml");
        std::fs::write(
            &target,
            format!(
                "name: tls\nnon_production: true\ndrive:\n  hl7v2: {{address: 127.0.0.1:{}}}\ncapture:\n  mesh_poll:\n    url: https://127.0.0.1:{}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n      - {{id: A81001HC001, password_env: LG_TEST_SANDBOX_PASSWORD}}\n{tls}",
                sandbox.port, sandbox.port
            ),
        )
        .unwrap();
        let o = Command::new(bin())
            .args(["targets", "check"])
            .arg(&target)
            .env("LG_TEST_MESH_KEY", "TestKey")
            .env("LG_TEST_SANDBOX_PASSWORD", peers::SANDBOX_PASSWORD)
            .output()
            .unwrap();
        let line = text(&o)
            .lines()
            .find(|l| l.contains("capture.mesh_poll A81001HC001"))
            .unwrap_or_default()
            .to_string();
        (o.status.code(), line)
    };
    let tls = |cert: &str| {
        format!(
            "    tls: {{client_cert: {}, client_key: {}, ca_cert: {}}}\n",
            p(&format!("{cert}.pem")),
            p(&format!("{cert}.key")),
            p("ca.pem")
        )
    };
    // The driver is the sandbox's own port, so it connects: everything hangs on MESH.
    let (code, line) = check(&tls("client"));
    assert_eq!(code, Some(0), "{line}");
    assert!(line.trim_start().starts_with("ok"), "{line}");
    for (what, section) in [
        ("a stranger's certificate", tls("stranger")),
        ("no TLS settings", String::new()),
    ] {
        let (code, line) = check(&section);
        assert_eq!(code, Some(3), "{what}: {line}");
        assert!(line.contains("FAILED"), "{what}: {line}");
    }
}

/// `match: local_id` through the FHIR driver: every event goes with a local id of its own
/// (an Encounter's or Composition's identifier), the simulator keeps it as the visit's and
/// its letters carry it (the ITK3 Encounter's identifier), and lettergate ties each letter to
/// the scenario that drove it. Two scenarios about alice, one after the other.
#[test]
fn letters_are_matched_to_their_scenarios_by_local_id() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    let target = target_file(dir.path(), sim.port, capture_port);
    let by_id = std::fs::read_to_string(&target).unwrap() + "match: local_id\n";
    std::fs::write(&target, by_id).unwrap();
    let scenarios = [
        "scenarios/outpatient/clinic_letter.yaml",
        "scenarios/emergency/several_attendances.yaml",
    ];
    let report = dir.path().join("report.json");
    let o = lettergate_on(
        &["run", "--accept", "--report-json", report.to_str().unwrap()],
        &target,
        dir.path(),
        &scenarios,
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("2 scenarios: 2 passed"), "{out}");
    assert!(!out.contains("unmatched letter"), "{out}");
    // The snapshot holds no run's own local ids, so the next run can match it.
    let snap = std::fs::read_to_string(
        dir.path()
            .join("snapshots/sim-fhir/outpatient/clinic_letter.snap"),
    )
    .unwrap();
    assert!(!snap.contains("LG-"), "{snap}");
    let again = lettergate_on(&["run", "--check"], &target, dir.path(), &scenarios);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

/// The HTTP driver's `{{local_id}}`: an EHR that is not given the local id (or drops it)
/// sends letters lettergate cannot match by it, and says so; given it, every letter matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_without_the_local_id_is_an_unmatched_letter() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("baseline", capture_port);
    register(sim.port, &[BOB]).await;
    let write_target = |extra: &str| {
        http_target_file(
            dir.path(),
            sim.port,
            capture_port,
            extra,
            "match: local_id\n",
        )
    };
    let run = |target: &Path| {
        lettergate_on(
            &["run", "--accept"],
            target,
            dir.path(),
            &["scenarios/inpatient/discharge_summary.yaml"],
        )
    };
    let without = write_target("");
    let o = tokio::task::block_in_place(|| run(&without));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("unmatched letter #1: discharge summary for bob"),
        "{out}"
    );
    assert!(
        out.contains("is a local id lettergate drove in this run"),
        "{out}"
    );
    // Counted all the same: the letter is there, only not matched by its local id.
    assert!(!out.contains("missing letter"), "{out}");
    assert!(
        !dir.path()
            .join("snapshots/sim-http/inpatient/discharge_summary.snap")
            .exists(),
        "a scenario with findings must not become the baseline"
    );

    let with = write_target(", \"local_id\": \"{{local_id}}\"");
    let o = tokio::task::block_in_place(|| run(&with));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(!out.contains("unmatched letter"), "{out}");
}

/// Two-phase through mesh-sandbox with a patient in two scenarios: bob attends the emergency
/// department in one and is discharged from a ward in the next (scenarios run in the order
/// of their ids), and every letter is collected after both were driven. By NHS number both
/// of bob's letters go to the scenario driven last (the other then still waits for bob's
/// letter, due tomorrow); by local id, or by the field that holds it, each goes to the
/// scenario that drove it.
#[test]
fn collect_matches_a_shared_patients_letters_by_local_id() {
    let b = Batch::start();
    // A discharge summary for bob from an earlier run, still waiting in his practice's
    // mailbox: not this run's, whichever way letters are matched.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use lettergate::protocol::mesh::client::{
            MeshClient, MeshConfig, OutboundMessage, SendOutcome,
        };
        let doc = lettergate::protocol::itk3::LetterDoc {
            kind: lettergate::protocol::letter::LetterKind::DischargeSummary,
            local_id: "EARLIER-1".into(),
            visit_id: Some("LG-EARL1ER0-2".into()),
            nhs_number: lettergate::protocol::ids::NhsNumber::parse("9990000026").unwrap(),
            patient_name: "Bob Example".into(),
            born: "1942-06-15".into(),
            practice: Some(("B82002".into(), "Hillside Medical Centre".into())),
            trust_ods: "RXX".into(),
            trust_name: "Trust".into(),
            sender_mailbox: "RXXHC001".into(),
            event_at: lettergate::protocol::clock::Timestamp(1_736_154_000),
            written_at: lettergate::protocol::clock::Timestamp(1_736_155_000),
            sent_at: lettergate::protocol::clock::Timestamp(1_736_155_000),
            sections: lettergate::protocol::itk3::default_sections(
                lettergate::protocol::letter::LetterKind::DischargeSummary,
            ),
        };
        let sender = MeshClient::new(
            http(),
            MeshConfig {
                base_url: b.sandbox_url.clone(),
                mailbox: "RXXHC001".into(),
                password: peers::SANDBOX_PASSWORD.into(),
                shared_key: "TestKey".into(),
            },
        );
        let sent = sender
            .send(&OutboundMessage {
                to: "B82002HC001".into(),
                workflow_id: "TOC_FHIR_IP_DISCH".into(),
                subject: None,
                local_id: Some("EARLIER-1".into()),
                file_name: None,
                content_type: "application/fhir+json".into(),
                body: serde_json::to_vec(&lettergate::protocol::itk3::message_bundle(&doc))
                    .unwrap(),
            })
            .await
            .unwrap();
        assert!(matches!(sent, SendOutcome::Accepted { .. }), "{sent:?}");
    });
    let driven = b.drive(&[
        "scenarios/inpatient/discharge_summary.yaml",
        "scenarios/emergency/several_attendances.yaml",
    ]);
    assert_eq!(driven.status.code(), Some(0), "{}", text(&driven));
    assert!(
        text(&driven)
            .contains("1 MESH message(s) and 0 file(s) were waiting before anything was driven"),
        "{}",
        text(&driven)
    );
    let v: serde_json::Value = serde_json::from_str(&b.ledger_json()).unwrap();
    for s in v["scenarios"].as_array().unwrap() {
        assert_eq!(
            s["local_ids"].as_array().unwrap().len(),
            s["driven_at"].as_array().unwrap().len(),
            "{s}"
        );
    }
    std::thread::sleep(Duration::from_secs(3));

    let by_nhs = b.collect("--accept");
    let out = text(&by_nhs);
    assert_eq!(by_nhs.status.code(), Some(3), "{out}");
    assert!(
        out.lines().any(
            |l| l.contains("inpatient/discharge_summary: unexpected letter #")
                && l.contains("emergency discharge for bob")
        ),
        "{out}"
    );
    assert!(
        out.contains("not all letters have arrived, and they are not due until"),
        "{out}"
    );

    b.write_target("match: local_id\n");
    let by_id = b.collect("--accept");
    let out = text(&by_id);
    assert_eq!(by_id.status.code(), Some(0), "{out}");
    assert!(out.contains("2 scenarios: 2 passed"), "{out}");
    assert!(!out.contains("unmatched letter"), "{out}");

    // The field that holds the local id; compared with the baseline just accepted.
    b.write_target("match: {field: Encounter.identifier.value}\n");
    let by_field = b.collect("--check");
    let out = text(&by_field);
    assert_eq!(by_field.status.code(), Some(0), "{out}");
    assert!(out.contains("2 scenarios: 2 passed"), "{out}");
}

/// Every driver with every capture, end to end on loopback: one scenario discharges four
/// patients whose practices take letters over MESH, an HTTP document route, MLLP and a
/// folder; it is driven over FHIR R4, HL7 v2 ADT and HTTP templates, with the simulator's
/// MESH going to lettergate's own endpoint and then to mesh-sandbox (polled). Every letter is
/// matched to the scenario by the local id its event was driven with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_driver_is_captured_on_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let root_dir = dir.path().join("project");
    std::fs::create_dir_all(root_dir.join("scenarios/fixtures")).unwrap();
    std::fs::create_dir_all(root_dir.join("scenarios/pairs")).unwrap();
    let fixture = root_dir.join("scenarios/fixtures/routes.yaml");
    std::fs::write(
        &fixture,
        "practices:\n  riverside: {ods: A81001, name: Riverside Surgery, mailbox: A81001HC001}\n  fernbank: {ods: F86006, name: Fernbank Surgery, route: http}\n  willowbank: {ods: G87007, name: Willow Bank Surgery, route: mllp}\n  ashgrove: {ods: H88008, name: Ashgrove Medical Practice, route: folder}\npatients:\n  alice: {nhs_number: \"9990000018\", name: Alice Example, born: 1950-01-01, practice: riverside}\n  gina: {nhs_number: \"9990000077\", name: Gina Example, born: 1961-04-12, practice: fernbank}\n  lena: {nhs_number: \"9990000123\", name: Lena Example, born: 1972-10-10, practice: willowbank}\n  omar: {nhs_number: \"9990000131\", name: Omar Example, born: 1958-03-21, practice: ashgrove}\n",
    )
    .unwrap();
    let patients = ["alice", "gina", "lena", "omar"];
    let mut scenario = String::from(
        "name: A discharge summary on every transport\ninclude: [../fixtures/routes.yaml]\ntimeline:\n",
    );
    for (i, p) in patients.iter().enumerate() {
        let when = if i == 0 {
            "at: 2025-06-02T09:00:00Z".to_string()
        } else {
            "after: 1m".to_string()
        };
        scenario += &format!("  - {when}\n    event: admission\n    patient: {p}\n");
    }
    for p in patients {
        scenario += &format!("  - after: 1h\n    event: discharge\n    patient: {p}\n");
    }
    scenario += "expect:\n";
    for p in patients {
        // Each follows its practice's route: mesh, http, mllp, folder.
        scenario += &format!("  - letter: discharge_summary\n    patient: {p}\n");
    }
    let scenario_path = root_dir.join("scenarios/pairs/every_transport.yaml");
    std::fs::write(&scenario_path, scenario).unwrap();

    let boxes = ["A81001HC001", "RXXHC001"];
    let sandbox = peers::mesh_sandbox(&dir.path().join("mesh-store"), "TestKey", &boxes);
    let sandbox_url = format!("http://127.0.0.1:{}", sandbox.port);
    for mesh in ["endpoint", "poll"] {
        let (mesh_port, http_port, mllp_port, adt_port) =
            (free_port(), free_port(), free_port(), free_port());
        let drop_dir = dir.path().join(format!("drop-{mesh}"));
        std::fs::create_dir_all(&drop_dir).unwrap();
        let (mesh_url, password) = match mesh {
            "endpoint" => (format!("http://127.0.0.1:{mesh_port}"), "sender-secret"),
            _ => (sandbox_url.clone(), peers::SANDBOX_PASSWORD),
        };
        let http_url = format!("http://127.0.0.1:{http_port}");
        let (mllp, adt) = (
            format!("127.0.0.1:{mllp_port}"),
            format!("127.0.0.1:{adt_port}"),
        );
        let sim = SimServe {
            profile: "baseline",
            mesh_url: &mesh_url,
            http_url: &http_url,
            password,
            extra: &[
                "--directory",
                fixture.to_str().unwrap(),
                "--mllp-addr",
                &mllp,
                "--drop-folder",
                drop_dir.to_str().unwrap(),
                "--adt-listen",
                &adt,
            ],
        }
        .start();
        register(
            sim.port,
            &[
                ("9990000018", "Alice Example", "1950-01-01", "A81001"),
                ("9990000077", "Gina Example", "1961-04-12", "F86006"),
                ("9990000123", "Lena Example", "1972-10-10", "G87007"),
                ("9990000131", "Omar Example", "1958-03-21", "H88008"),
            ],
        )
        .await;
        let mesh_capture = match mesh {
            "endpoint" => format!("  mesh_endpoint:\n    listen: 127.0.0.1:{mesh_port}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes: {{RXXHC001: LG_TEST_SENDER_PASSWORD, A81001HC001: LG_TEST_SENDER_PASSWORD}}\n"),
            _ => format!("  mesh_poll:\n    url: {sandbox_url}\n    shared_key_env: LG_TEST_MESH_KEY\n    mailboxes:\n      - {{id: A81001HC001, password_env: LG_TEST_SANDBOX_PASSWORD}}\n"),
        };
        let local_id = ", \"local_id\": \"{{local_id}}\"";
        let drivers = [
            (
                "fhir",
                format!("  fhir: {{base_url: http://127.0.0.1:{}/fhir}}\n", sim.port),
            ),
            ("hl7v2", format!("  hl7v2: {{address: '{adt}'}}\n")),
            (
                "http",
                format!(
                    "  http:\n    base_url: http://127.0.0.1:{}\n    requests:\n{}{}",
                    sim.port,
                    event_template("admission", local_id),
                    event_template("discharge", local_id)
                ),
            ),
        ];
        for (driver, drive) in drivers {
            let name = format!("pair-{driver}-{mesh}");
            let target = dir.path().join(format!("{name}.yaml"));
            std::fs::write(
                &target,
                format!(
                    "name: {name}\nnon_production: true\ndrive:\n{drive}capture:\n{mesh_capture}  http_endpoint: {{listen: '127.0.0.1:{http_port}'}}\n  mllp: {{listen: '{mllp}'}}\n  folder: {{path: '{}', poll_interval: 1s}}\nmatch: local_id\nwait: {{max: 10s, poll_interval: 1s, settle: 2s}}\n",
                    drop_dir.display()
                ),
            )
            .unwrap();
            let o = tokio::task::block_in_place(|| {
                Command::new(bin())
                    .current_dir(&root_dir)
                    .args(["run", "--accept", "--target"])
                    .arg(&target)
                    .arg(&scenario_path)
                    .env("LG_TEST_MESH_KEY", "TestKey")
                    .env("LG_TEST_SENDER_PASSWORD", "sender-secret")
                    .env("LG_TEST_SANDBOX_PASSWORD", peers::SANDBOX_PASSWORD)
                    .env("NO_COLOR", "1")
                    .output()
                    .unwrap()
            });
            let out = text(&o);
            assert_eq!(
                o.status.code(),
                Some(0),
                "{driver} driver, MESH {mesh}:\n{out}"
            );
            assert!(out.contains("1 scenario: 1 passed"), "{out}");
            let snap = std::fs::read_to_string(
                root_dir.join(format!("snapshots/{name}/pairs/every_transport.snap")),
            )
            .unwrap();
            for transport in ["mesh", "http", "mllp", "folder"] {
                assert!(
                    snap.contains(&format!("transport: {transport}\n")),
                    "{driver} driver, MESH {mesh}: no letter over {transport}:\n{snap}"
                );
            }
        }
        drop(sim);
    }
}

/// Issue 12: `lettergate ARGS` on `scenarios`, with "now" for clinical times at `now`
/// (`LETTERGATE_NOW`), so that the test does not depend on the day it runs.
fn lettergate_at(
    now: &str,
    args: &[&str],
    target: &Path,
    dir: &Path,
    scenarios: &[&str],
) -> Output {
    Command::new(bin())
        .current_dir(root())
        .args(args)
        .arg("--target")
        .arg(target)
        .arg("--snapshots")
        .arg(dir.join("snapshots"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .args(scenarios)
        .env("LETTERGATE_NOW", now)
        .env("LG_TEST_MESH_KEY", "TestKey")
        .env("LG_TEST_SENDER_PASSWORD", "sender-secret")
        .env("LG_TEST_PRACTICE_PASSWORD", "practice-secret")
        .env("NO_COLOR", "1")
        .output()
        .expect("run lettergate")
}

/// A target file of [`target_file`] with `clock:` set.
fn target_with_clock(dir: &Path, sim_port: u16, capture_port: u16, clock: &str) -> PathBuf {
    let p = target_file(dir, sim_port, capture_port);
    let text = std::fs::read_to_string(&p).unwrap() + &format!("clock: {clock}\n");
    std::fs::write(&p, text).unwrap();
    p
}

/// A Wednesday in January, far from any bank holiday, and another five weeks later.
const WEDNESDAY: &str = "2025-01-08T10:00:00Z";
const LATER_WEDNESDAY: &str = "2025-02-12T10:00:00Z";

/// Issue 12: an EHR that sends no letters about weekend events passes with `clock: now` on a
/// weekday (the Saturday discharge reaches it as a Wednesday one), and is caught with
/// `clock: scenario`, which tells it the discharge on a Saturday.
#[test]
fn a_weekend_fault_passes_with_clock_now_on_a_weekday_and_is_caught_with_clock_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let sim = sim_serve("no-letters-at-weekends", capture_port);
    let weekend = ["scenarios/calendar/weekend_discharge.yaml"];
    let now = target_with_clock(dir.path(), sim.port, capture_port, "now");
    let first = lettergate_at(WEDNESDAY, &["run", "--accept"], &now, dir.path(), &weekend);
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    assert!(out.contains("1 scenario: 1 passed"), "{out}");
    assert!(out.contains("clinical time: clock now"), "{out}");

    let scenario = target_with_clock(dir.path(), sim.port, capture_port, "scenario");
    let caught = lettergate_at(
        WEDNESDAY,
        &["run", "--check"],
        &scenario,
        dir.path(),
        &weekend,
    );
    let out = text(&caught);
    assert_eq!(caught.status.code(), Some(1), "{out}");
    assert!(
        out.contains("missing letter: discharge summary for bob"),
        "{out}"
    );
    assert!(
        out.contains("clinical time: clock scenario (moved "),
        "{out}"
    );
}

/// Issue 12: with `clock: scenario` a healthy EHR's letters state the scenario's days, and two
/// runs on different days give identical snapshots; an EHR that dates its letters the day it
/// sends them is caught with `wrong date`, naming both days.
#[test]
fn letters_dated_the_send_day_are_a_wrong_date_with_clock_scenario_and_healthy_runs_do_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let capture_port = free_port();
    let friday = ["scenarios/calendar/friday_clinic_signed_monday.yaml"];
    let sim = sim_serve("baseline", capture_port);
    let target = target_with_clock(dir.path(), sim.port, capture_port, "scenario");
    let first = lettergate_at(
        WEDNESDAY,
        &["run", "--accept"],
        &target,
        dir.path(),
        &friday,
    );
    let out = text(&first);
    assert_eq!(first.status.code(), Some(0), "{out}");
    let snap = dir
        .path()
        .join("snapshots/sim-fhir/calendar/friday_clinic_signed_monday.snap");
    let body = std::fs::read_to_string(&snap).unwrap();
    // The attendance on the Friday, the letter signed on the Monday at 09:15 GMT.
    assert!(
        body.contains(
            "dated: event +0d 17:30 (Encounter.period.start), letter +3d 09:15 (Composition.date)"
        ),
        "{body}"
    );
    let again = lettergate_at(
        LATER_WEDNESDAY,
        &["run", "--check"],
        &target,
        dir.path(),
        &friday,
    );
    let out = text(&again);
    assert_eq!(again.status.code(), Some(0), "{out}");
    drop(sim);

    let sim = sim_serve("letters-dated-send-day", capture_port);
    let target = target_with_clock(dir.path(), sim.port, capture_port, "scenario");
    let dated = lettergate_at(WEDNESDAY, &["run", "--check"], &target, dir.path(), &friday);
    let out = text(&dated);
    assert_eq!(dated.status.code(), Some(1), "{out}");
    // Told on a Friday before 8 January 2025 (27 December 2024 keeps no calendar: it is a
    // bank holiday week), sent today.
    let today =
        lettergate::protocol::calendar::uk_day(lettergate::protocol::clock::Timestamp::now());
    assert!(
        out.contains("wrong date: clinic letter #1 for alice"),
        "{out}"
    );
    assert!(
        out.contains("but the outpatient attendance was on Fri 20"),
        "{out}"
    );
    assert!(
        out.contains(&format!("on {} {today}", &today.weekday().to_string()[..3])),
        "{out}"
    );
}

/// Issue 12, two-phase: `drive` with `clock: scenario` records the clock and each event's
/// clinical time in the ledger, and `collect`, in another process, checks the letters' dates
/// against them. A healthy EHR is GO through mesh-sandbox; one that dates its letters the day
/// it sends them is a `wrong date`, with the same accepted snapshots.
#[test]
fn drive_records_the_clinical_clock_and_collect_checks_dates_against_it() {
    let weekend = ["scenarios/calendar/weekend_discharge.yaml"];
    let healthy = Batch::start_with("baseline", Some(WEDNESDAY));
    healthy.write_target("clock: scenario\n");
    let driven = healthy.drive(&weekend);
    assert_eq!(driven.status.code(), Some(0), "{}", text(&driven));
    let ledger: serde_json::Value = serde_json::from_str(&healthy.ledger_json()).unwrap();
    let recorded = &ledger["scenarios"][0];
    let clock = recorded["clock"].as_str().unwrap_or_default();
    // Moved whole weeks back from the injected Wednesday: the discharge still on a Saturday.
    assert!(clock.starts_with("scenario (moved "), "{ledger:#}");
    assert!(clock.contains("first event Thu "), "{ledger:#}");
    std::thread::sleep(Duration::from_secs(3));
    let accepted = healthy.collect("--accept");
    let out = text(&accepted);
    assert_eq!(accepted.status.code(), Some(0), "{out}");
    assert!(out.contains("1 scenario: 1 passed"), "{out}");
    assert!(
        out.contains("clinical time: clock scenario: each scenario"),
        "{out}"
    );
    let snapshots = healthy.dir.path().join("snapshots");
    let snap = std::fs::read_to_string(snapshots.join("sim-batch/calendar/weekend_discharge.snap"))
        .unwrap();
    // The discharge on its own Saturday at 14:00, the letter the same day, relative to it.
    assert!(
        snap.contains(
            "dated: event +0d 14:00 (Encounter.period.start), letter +0d 14:00 (Composition.date)"
        ),
        "{snap}"
    );

    let faulty = Batch::start_with("letters-dated-send-day", Some(WEDNESDAY));
    faulty.write_target("clock: scenario\n");
    let copy = faulty.dir.path().join("snapshots/sim-batch/calendar");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(
        snapshots.join("sim-batch/calendar/weekend_discharge.snap"),
        copy.join("weekend_discharge.snap"),
    )
    .unwrap();
    let driven = faulty.drive(&weekend);
    assert_eq!(driven.status.code(), Some(0), "{}", text(&driven));
    std::thread::sleep(Duration::from_secs(3));
    let checked = faulty.collect("--check");
    let out = text(&checked);
    assert_eq!(checked.status.code(), Some(1), "{out}");
    let today =
        lettergate::protocol::calendar::uk_day(lettergate::protocol::clock::Timestamp::now());
    assert!(
        out.contains("wrong date: discharge summary #1 for bob"),
        "{out}"
    );
    assert!(out.contains("but the discharge was on Sat "), "{out}");
    assert!(
        out.contains(&format!("on {} {today}", &today.weekday().to_string()[..3])),
        "{out}"
    );
}

/// Issue 12, the other drivers: the HL7 v2 driver tells the clinical time in EVN-6 and
/// PV1-44/45, and an HTTP template tells it with `{{clinical_at}}`. Against a simulator that
/// sends no letters about weekend events, each passes with `clock: now` on a weekday and is
/// caught with `clock: scenario`; a template that sends only `{{at}}` (when the event was
/// driven) does not carry the Saturday: the letter comes, dated the day it was driven, and is
/// a wrong date, not a pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hl7_and_http_drivers_carry_the_clinical_time_and_a_weekend_fault_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (capture_port, adt_port) = (free_port(), free_port());
    let capture = format!("http://127.0.0.1:{capture_port}");
    let adt = format!("127.0.0.1:{adt_port}");
    let sim = SimServe {
        profile: "no-letters-at-weekends",
        mesh_url: &capture,
        http_url: &capture,
        password: "sender-secret",
        extra: &["--adt-listen", &adt],
    }
    .start();
    register(sim.port, &[BOB]).await;
    let weekend = ["scenarios/calendar/weekend_discharge.yaml"];
    let fhir = std::fs::read_to_string(target_file(dir.path(), sim.port, capture_port)).unwrap();
    let hl7 = |clock: &str| {
        let text = fhir.replace("name: sim-fhir", "name: sim-hl7").replace(
            &format!(
                "  fhir:\n    base_url: http://127.0.0.1:{}/fhir\n",
                sim.port
            ),
            &format!("  hl7v2:\n    address: {adt}\n    sending_facility: RXX\n"),
        ) + &format!("clock: {clock}\n");
        assert!(text.contains("hl7v2:"), "{text}");
        // A file of its own for each clock: the cases are written before they run.
        let p = dir.path().join(format!("sim-hl7-{clock}.yaml"));
        std::fs::write(&p, text).unwrap();
        p
    };
    // The simulator's event API takes `at` (when it is told) and `clinical_at` (when it
    // happened); without `clinical_at` the event happened when it was told.
    let http = |clinical: bool, clock: &str| {
        let extra = if clinical {
            r#", "clinical_at": "{{clinical_at}}""#
        } else {
            ""
        };
        let written = http_target_file(
            dir.path(),
            sim.port,
            capture_port,
            extra,
            &format!("clock: {clock}\n"),
        );
        let p = dir.path().join(format!("sim-http-{clinical}-{clock}.yaml"));
        std::fs::rename(written, &p).unwrap();
        p
    };
    let run = |target: PathBuf| {
        tokio::task::block_in_place(|| {
            lettergate_at(
                WEDNESDAY,
                &["run", "--check"],
                &target,
                dir.path(),
                &weekend,
            )
        })
    };
    const MISSING: &str = "missing letter: discharge summary for bob";
    const WRONG_DATE: &str = "wrong date: discharge summary #1 for bob";
    let cases = [
        ("hl7v2, clock now", hl7("now"), 0, None),
        ("hl7v2, clock scenario", hl7("scenario"), 1, Some(MISSING)),
        (
            "http {{clinical_at}}, clock now",
            http(true, "now"),
            0,
            None,
        ),
        (
            "http {{clinical_at}}, clock scenario",
            http(true, "scenario"),
            1,
            Some(MISSING),
        ),
        // The EHR was never told the Saturday: it sends the letter, dated today, and
        // lettergate, which believes it told a Saturday, says the date is wrong.
        (
            "http without {{clinical_at}}, clock scenario",
            http(false, "scenario"),
            1,
            Some(WRONG_DATE),
        ),
    ];
    // The first run of each target name accepts its baseline, on a weekday.
    for name in ["sim-hl7", "sim-http"] {
        let target = if name == "sim-hl7" {
            hl7("now")
        } else {
            http(true, "now")
        };
        let accepted = tokio::task::block_in_place(|| {
            lettergate_at(
                WEDNESDAY,
                &["run", "--accept"],
                &target,
                dir.path(),
                &weekend,
            )
        });
        assert_eq!(
            accepted.status.code(),
            Some(0),
            "{name}: {}",
            text(&accepted)
        );
    }
    for (what, target, code, says) in cases {
        let ran = run(target);
        let out = text(&ran);
        assert_eq!(ran.status.code(), Some(code), "{what}: {out}");
        for finding in [MISSING, WRONG_DATE] {
            assert_eq!(
                out.contains(finding),
                says == Some(finding),
                "{what}: {finding}?\n{out}"
            );
        }
    }
}
