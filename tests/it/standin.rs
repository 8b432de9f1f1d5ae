//! The stand-in EHR of `tests/standin/` against lettergate: the Proof of issue 11. The
//! stand-in was written from the NHS ITK3 specifications by someone who never read
//! lettergate's reader, so what lettergate says about it is what it would say about a real
//! supplier's staging EHR.
//!
//! - The healthy stand-in is baselined (GO), and two more runs are GO and would write
//!   byte-identical snapshots.
//! - Each structural variant the specifications allow (relative references, no receiver, FHIR
//!   XML, the EHR's running numbers) is GO against its own baseline; the ones ITK3 does not
//!   allow (`MessageHeader.destination`, a focus on a Composition in a flat message) are read
//!   and reported as non-conformant letters, naming the rule.
//! - Each fault switch, after a healthy baseline of the same scenarios, fails the run with a
//!   finding whose words name the problem; the test compares every blocker and major finding
//!   word for word, so a fault caught under the wrong name (or twice) fails too.
//!
//! Every run starts its own stand-in on free loopback ports with a copy of
//! `tests/standin/target.yaml` rewritten for them and with short waits. Why not one stand-in
//! for several runs: it keeps its patients in memory as an EHR does, so a second run against
//! the same process would find a patient who died in the first already dead.

use crate::support::loopback::{free_port, Server};
use crate::support::project::Ran;
use crate::support::{bin, output_within, peers, root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const OUTPATIENT: &str = "scenarios/outpatient/clinic_letter.yaml";
const DISCHARGE: &str = "scenarios/inpatient/discharge_summary.yaml";
const EMERGENCY: &str = "scenarios/emergency/ed_discharge.yaml";
const DEATH: &str = "scenarios/death/in_hospital.yaml";
const ROUTING: &str = "scenarios/routing/changed_practice.yaml";

/// One scenario per kind of letter the stand-in sends: a clinic letter with the patient's
/// print-service copy, an inpatient and an emergency discharge, a death in hospital. The
/// structural variants change how letters are written, not where they go, so these suffice.
const KINDS: [&str; 4] = [OUTPATIENT, DISCHARGE, EMERGENCY, DEATH];

/// [`KINDS`] and a change of practice before the letter is signed.
const HEALTHY: [&str; 5] = [OUTPATIENT, DISCHARGE, EMERGENCY, DEATH, ROUTING];

/// The target file's waits for these runs. Why this short: the stand-in sends within a
/// second of being told, and a fault run waits `max` for each letter that never comes.
const WAIT: &str = "wait: {max: 6s, poll_interval: 1s, settle: 1s}";

/// Longest a lettergate run may take before the test kills it and fails.
const RUN_LIMIT: Duration = Duration::from_secs(150);

/// The secrets `tests/standin/target.yaml` names, and the stand-in's own two.
const SECRETS: [(&str, &str); 3] = [
    ("STANDIN_MESH_SHARED_KEY", "TestKey"),
    ("STANDIN_MESH_PASSWORD", "password"),
    ("STANDIN_PRACTICE_PASSWORD", "practice"),
];

/// The stand-in EHR running on loopback with a target file pointing lettergate at it; killed
/// when dropped.
struct StandIn {
    _server: Server,
    dir: tempfile::TempDir,
    target: PathBuf,
    flags: String,
}

/// How a run treats snapshots.
#[derive(Clone, Copy)]
enum Mode {
    /// `--accept`: record a baseline.
    Accept,
    /// `--check`: compare, write nothing.
    Check,
    /// Neither: compare, and write a `.snap.new` where the snapshot would change.
    Compare,
}

impl Mode {
    fn args(self) -> &'static [&'static str] {
        match self {
            Mode::Accept => &["--accept"],
            Mode::Check => &["--check"],
            Mode::Compare => &[],
        }
    }
}

/// `tests/standin/target.yaml` with the stand-in's FHIR port and lettergate's MESH and HTTP
/// capture ports moved to `fhir`, `mesh` and `http`, and [`WAIT`]; as `try.sh` rewrites it.
fn target_for(fhir: u16, mesh: u16, http: u16) -> String {
    let text = std::fs::read_to_string(root().join("tests/standin/target.yaml")).unwrap();
    let wait = regex::Regex::new(r"(?m)^wait: \{[^}]*\}$").unwrap();
    assert!(
        wait.is_match(&text),
        "tests/standin/target.yaml has no one-line `wait:`"
    );
    wait.replace(&text, WAIT)
        .replace("127.0.0.1:18800", &format!("127.0.0.1:{fhir}"))
        .replace("127.0.0.1:18702", &format!("127.0.0.1:{mesh}"))
        .replace("127.0.0.1:18703", &format!("127.0.0.1:{http}"))
}

impl StandIn {
    /// Starts `tests/standin/ehr.py` with `flags` on free ports, with the shipped fixture
    /// practices as its directory, and waits until it answers.
    fn start(flags: &[&str]) -> StandIn {
        StandIn::start_with(flags, "")
    }

    /// [`StandIn::start`] with `more` (settings such as `clock: scenario`) at the end of its
    /// target file.
    fn start_with(flags: &[&str], more: &str) -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let (fhir, mesh, http) = (free_port(), free_port(), free_port());
        let target = dir.path().join("target.yaml");
        std::fs::write(&target, target_for(fhir, mesh, http) + more).unwrap();
        let log = std::fs::File::create(dir.path().join("standin.log")).unwrap();
        let url = |port: u16| format!("http://127.0.0.1:{port}");
        let child = Command::new(peers::bin("python"))
            .current_dir(root())
            .arg("tests/standin/ehr.py")
            .args(["--directory", "scenarios/fixtures/common.yaml"])
            .args(["--port", &fhir.to_string(), "--mesh-url", &url(mesh)])
            .args(["--print-url", &url(http), "--docman-url", &url(http)])
            // Why: the runs settle for 1s; a collector polling each second can, on a busy
            // machine, take its acknowledgements after lettergate has looked.
            .args(["--collect-interval", "0.2"])
            .args(flags)
            .envs(SECRETS)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the stand-in EHR");
        let server = Server { child, port: fhir }.wait_listening(Duration::from_secs(30));
        StandIn {
            _server: server,
            dir,
            target,
            flags: flags.join(" "),
        }
    }

    /// `lettergate run --target` against this stand-in on `scenarios`, with snapshots in
    /// `snapshots` and its work folder in the stand-in's temporary folder.
    fn run(&self, mode: Mode, snapshots: &Path, scenarios: &[&str]) -> Said {
        let mut command = Command::new(bin());
        command
            .current_dir(root())
            .arg("run")
            .arg("--target")
            .arg(&self.target)
            .arg("--snapshots")
            .arg(snapshots)
            .arg("--work-dir")
            .arg(self.dir.path().join("work"))
            .args(mode.args())
            .args(scenarios)
            .envs(SECRETS)
            .env("NO_COLOR", "1");
        let ran = output_within(&mut command, RUN_LIMIT);
        let log = std::fs::read_to_string(self.dir.path().join("standin.log")).unwrap_or_default();
        Said {
            ran,
            log,
            flags: self.flags.clone(),
        }
    }
}

/// What lettergate printed about one run against the stand-in, and the stand-in's log.
struct Said {
    ran: Ran,
    log: String,
    flags: String,
}

impl Said {
    /// Every finding as `SEVERITY scenario/id: text`, in the order printed.
    fn findings(&self) -> Vec<String> {
        let heading = regex::Regex::new(r"^([A-Z][A-Z-]*) \(\d+\)$").unwrap();
        let mut severity = None;
        let mut found = Vec::new();
        for line in self.ran.stdout.lines() {
            if let Some(c) = heading.captures(line) {
                severity = Some(c[1].to_string());
            } else if line.is_empty() || !line.starts_with("  ") {
                severity = None;
            } else if let Some(s) = &severity {
                found.push(format!("{s} {}", line.trim_start()));
            }
        }
        found
    }

    /// The findings that decide GO or NO-GO: every one but the REVIEW ones.
    fn blocking(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .findings()
            .into_iter()
            .filter(|f| !f.starts_with("REVIEW "))
            .collect();
        found.sort();
        found
    }

    /// The decision line's label: GO, NO-GO, REVIEW or INCOMPLETE.
    fn decision(&self) -> &str {
        let last = self.ran.stdout.lines().rev().find(|l| !l.is_empty());
        last.and_then(|l| l.split(':').next()).unwrap_or("")
    }

    /// All of it, for a failed assertion.
    fn shown(&self) -> String {
        format!(
            "stand-in flags: [{}]\nlettergate exit {}\n--- stdout\n{}--- stderr\n{}--- stand-in log\n{}",
            self.flags, self.ran.code, self.ran.stdout, self.ran.stderr, self.log
        )
    }

    fn assert_go(&self, what: &str) {
        assert!(
            self.ran.code == 0 && self.decision() == "GO",
            "{what}: expected GO (exit 0)\n{}",
            self.shown()
        );
    }

    /// NO-GO (exit 1) with exactly `expected` as its blocker and major findings.
    fn assert_no_go_with(&self, what: &str, expected: &[&str]) {
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(
            self.blocking(),
            expected,
            "{what}: not the findings expected\n{}",
            self.shown()
        );
        assert!(
            self.ran.code == 1 && self.decision() == "NO-GO",
            "{what}: expected NO-GO (exit 1)\n{}",
            self.shown()
        );
    }
}

/// Every file below `dir` with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, at: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(at).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// A fresh temporary folder holding a copy of `files`.
fn copy_of(files: &BTreeMap<PathBuf, Vec<u8>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

/// Accepts a baseline of the stand-in started with `flags` on `scenarios`, which must be GO
/// with one snapshot per scenario; returns the snapshots folder.
fn baseline(flags: &[&str], scenarios: &[&str]) -> tempfile::TempDir {
    let snapshots = tempfile::tempdir().unwrap();
    let said = StandIn::start(flags).run(Mode::Accept, snapshots.path(), scenarios);
    said.assert_go("accepting a baseline of the healthy stand-in");
    let written = files(snapshots.path());
    assert!(
        written.len() == scenarios.len()
            && written
                .keys()
                .all(|p| p.extension().is_some_and(|e| e == "snap")),
        "accepting wrote {:?}, not one .snap per scenario\n{}",
        written.keys().collect::<Vec<_>>(),
        said.shown()
    );
    snapshots
}

/// The stand-in with `flags` is GO against a baseline accepted with the same flags.
fn go_against_its_own_baseline(flags: &[&str]) {
    let snapshots = baseline(flags, &KINDS);
    StandIn::start(flags)
        .run(Mode::Check, snapshots.path(), &KINDS)
        .assert_go("checking against its own baseline");
}

/// After a healthy baseline of `scenarios`, the stand-in with the fault switches `fault` is
/// NO-GO with exactly the findings `expected`.
fn fault_is_caught(fault: &[&str], scenarios: &[&str], expected: &[&str]) {
    let snapshots = baseline(&[], scenarios);
    StandIn::start(fault)
        .run(Mode::Check, snapshots.path(), scenarios)
        .assert_no_go_with("checking the faulty stand-in", expected);
}

#[test]
fn the_healthy_stand_in_is_baselined_and_two_runs_after_are_go_with_identical_snapshots() {
    let accepted = files(baseline(&[], &HEALTHY).path());
    for n in 1..=2 {
        // Why not `--check`: a run that compares may also write, so a `.snap.new` (or any
        // changed byte) shows what a check would only summarise.
        let snapshots = copy_of(&accepted);
        let said = StandIn::start(&[]).run(Mode::Compare, snapshots.path(), &HEALTHY);
        said.assert_go(&format!("run {n} after the baseline"));
        assert!(
            files(snapshots.path()) == accepted,
            "run {n} after the baseline would write other snapshots: {:?}\n{}",
            files(snapshots.path()).keys().collect::<Vec<_>>(),
            said.shown()
        );
    }
}

#[test]
fn relative_references_are_go_against_their_own_baseline() {
    go_against_its_own_baseline(&["--refs", "relative"]);
}

#[test]
fn a_message_with_no_receiver_is_routed_by_its_mesh_mailbox_and_go() {
    go_against_its_own_baseline(&["--recipient", "none"]);
}

#[test]
fn fhir_xml_letters_are_go_against_their_own_baseline() {
    go_against_its_own_baseline(&["--format", "xml"]);
}

#[test]
fn xml_with_relative_references_is_go_against_its_own_baseline() {
    go_against_its_own_baseline(&["--format", "xml", "--refs", "relative"]);
}

#[test]
fn the_ehrs_own_running_numbers_do_not_change_the_snapshots() {
    go_against_its_own_baseline(&["--own-ids", "counter"]);
}

#[test]
fn a_silent_practice_is_a_missing_letter() {
    fault_is_caught(
        &["--fault", "silent-practice=B82002"],
        &[DISCHARGE],
        &["BLOCKER inpatient/discharge_summary: missing letter: discharge summary for bob (NHS *******026) to B82002 Hillside Medical Centre (mailbox B82002HC001): expected 1, captured 0"],
    );
}

#[test]
fn a_letter_to_the_previous_practice_is_a_wrong_recipient_and_not_also_missing() {
    fault_is_caught(
        &["--fault", "previous-practice"],
        &[ROUTING],
        &["BLOCKER routing/changed_practice: wrong recipient: clinic letter #1 for erin (NHS *******050) went to C83003 (mailbox C83003HC001); expected B82002 Hillside Medical Centre (mailbox B82002HC001)"],
    );
}

#[test]
fn a_letter_sent_twice_is_a_duplicate() {
    fault_is_caught(
        &["--fault", "duplicate"],
        &[DISCHARGE],
        &["MAJOR inpatient/discharge_summary: duplicate: discharge summary for bob (NHS *******026) sent 2 times; expected 1"],
    );
}

#[test]
fn emergency_discharges_never_sent_are_missing() {
    fault_is_caught(
        &["--fault", "stop-kind=emergency"],
        &[EMERGENCY],
        &["BLOCKER emergency/ed_discharge: missing letter: emergency discharge for dave (NHS *******042) to A81001 Riverside Surgery (mailbox A81001HC001): expected 1, captured 0"],
    );
}

#[test]
fn a_death_notification_never_sent_is_missing() {
    fault_is_caught(
        &["--fault", "stop-kind=death"],
        &[DEATH],
        &["BLOCKER death/in_hospital: missing letter: death notification for carol (NHS *******034) to A81001 Riverside Surgery (mailbox A81001HC001): expected 1, captured 0"],
    );
}

#[test]
fn a_patient_copy_never_posted_is_missing() {
    fault_is_caught(
        &["--fault", "stop-kind=patient-copy"],
        &[OUTPATIENT],
        &["BLOCKER outpatient/clinic_letter: missing letter: patient copy for alice (NHS *******018) to the patient: expected 1, captured 0"],
    );
}

#[test]
fn a_copy_posted_after_death_is_a_letter_to_a_deceased_patient() {
    let snapshots = baseline(&[], &[DEATH]);
    let ran = StandIn::start(&["--fault", "copy-after-death"]).run(
        Mode::Check,
        snapshots.path(),
        &[DEATH],
    );
    // Numbered in the scenario's order: the copy reports on the clinic visit, so it comes
    // before the death notification. The stand-in posts the copy as soon as the death is
    // recorded, so how long after the death it went depends on the machine: the finding must
    // name a time, any time.
    let after = regex::Regex::new(r"sent to the patient \d+[smhd] after their death$").unwrap();
    let found: Vec<String> = ran
        .blocking()
        .iter()
        .map(|f| {
            after
                .replace(f, "sent to the patient [some time] after their death")
                .into_owned()
        })
        .collect();
    assert_eq!(
        found,
        ["BLOCKER death/in_hospital: letter to a deceased patient: patient copy #2 for carol (NHS *******034) was sent to the patient [some time] after their death"],
        "{}",
        ran.shown()
    );
    assert_eq!(ran.ran.code, 1, "{}", ran.shown());
}

/// The non-conformant letters the stand-in sends on [`KINDS`] when every ITK3 message breaks
/// `rules` (the rules' words, as the finding joins them).
fn every_itk3_letter_non_conformant(rules: &str) -> Vec<String> {
    [
        "outpatient/clinic_letter: non-conformant letter: clinic letter #1 for alice (NHS *******018) via RXXHC001 -> A81001HC001",
        "inpatient/discharge_summary: non-conformant letter: discharge summary #1 for bob (NHS *******026) via RXXHC001 -> B82002HC001",
        "emergency/ed_discharge: non-conformant letter: emergency discharge #1 for dave (NHS *******042) via RXXHC001 -> A81001HC001",
        "death/in_hospital: non-conformant letter: clinic letter #1 for carol (NHS *******034) via RXXHC001 -> A81001HC001",
        "death/in_hospital: non-conformant letter: death notification #2 for carol (NHS *******034) via RXXHC001 -> A81001HC001",
    ]
    .iter()
    .map(|letter| format!("MAJOR {letter} was read, but {rules}"))
    .collect()
}

/// The stand-in with `flags`, checked on [`KINDS`] with no baseline, is NO-GO with exactly
/// `expected` (the REVIEW "no accepted snapshot" findings aside).
fn read_but_non_conformant(flags: &[&str], expected: &[String]) {
    let snapshots = tempfile::tempdir().unwrap();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    StandIn::start(flags)
        .run(Mode::Check, snapshots.path(), &KINDS)
        .assert_no_go_with("checking a variant ITK3 does not allow", &expected);
}

const DESTINATION: &str = "the MessageHeader names its recipient in destination, which ITK-MessageHeader-2 does not allow; ITK3 uses receiver";
const FOCUS_ON_COMPOSITION: &str =
    "the MessageHeader's focus is a Composition, not a document Bundle (ITK3 MessageDefinitions)";

#[test]
fn a_header_destination_is_read_and_reported_as_non_conformant() {
    read_but_non_conformant(
        &["--recipient", "destination"],
        &every_itk3_letter_non_conformant(DESTINATION),
    );
}

#[test]
fn a_flat_message_is_read_and_reported_as_non_conformant() {
    read_but_non_conformant(
        &["--layout", "flat"],
        &every_itk3_letter_non_conformant(FOCUS_ON_COMPOSITION),
    );
}

#[test]
fn xml_relative_flat_with_destination_is_read_and_names_both_rules() {
    read_but_non_conformant(
        &[
            "--format",
            "xml",
            "--refs",
            "relative",
            "--layout",
            "flat",
            "--recipient",
            "destination",
        ],
        &every_itk3_letter_non_conformant(&format!("{DESTINATION}; {FOCUS_ON_COMPOSITION}")),
    );
}

#[test]
fn a_preliminary_letter_is_not_final() {
    fault_is_caught(
        &["--fault", "preliminary"],
        &[DISCHARGE],
        &["MAJOR inpatient/discharge_summary: letter not final: discharge summary #1 for bob (NHS *******026) was sent with Composition.status `preliminary`"],
    );
}

#[test]
fn entries_without_full_url_are_non_conformant() {
    fault_is_caught(
        &["--fault", "no-fullurl"],
        &[DISCHARGE],
        &["MAJOR inpatient/discharge_summary: non-conformant letter: discharge summary #1 for bob (NHS *******026) via RXXHC001 -> B82002HC001 was read, but an entry without fullUrl (FHIR Bundle: references resolve through fullUrl); a reference that matches no entry's fullUrl, followed by resource id only (FHIR Bundle references)"],
    );
}

/// A scenario, written for the test beside a copy of the shipped fixtures (includes stay
/// inside their scenario set), expecting a mental health discharge for bob.
fn mental_health_scenario(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("fixtures")).unwrap();
    std::fs::copy(
        root().join("scenarios/fixtures/common.yaml"),
        dir.join("fixtures/common.yaml"),
    )
    .unwrap();
    let scenario = dir.join("mental_health_discharge.yaml");
    std::fs::write(
        &scenario,
        "name: A mental health discharge tells the practice\ninclude: [fixtures/common.yaml]\ntimeline:\n  - at: 2025-03-10T14:00:00Z\n    event: admission\n    patient: bob\n  - after: 9d\n    event: discharge\n    patient: bob\nexpect:\n  - letter: mental_health_discharge\n    patient: bob\n    within: 24h\n    of: discharge\n",
    )
    .unwrap();
    scenario
}

#[test]
fn a_mental_health_trusts_discharges_are_read_as_mental_health_discharges() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = mental_health_scenario(dir.path());
    let scenario = scenario.to_str().unwrap();
    // The healthy inpatient stand-in sends an inpatient discharge summary: not what this
    // scenario expects, so the scenario can fail.
    let snapshots = tempfile::tempdir().unwrap();
    let inpatient = StandIn::start(&[]).run(Mode::Accept, snapshots.path(), &[scenario]);
    assert!(
        inpatient
            .blocking()
            .iter()
            .any(|f| f.contains("missing letter: mental health discharge for bob")),
        "{}",
        inpatient.shown()
    );
    // As a mental health trust (ITK004D, TOC_FHIR_MH_DISCH): the letter expected.
    let snapshots = tempfile::tempdir().unwrap();
    let mental_health = StandIn::start(&["--inpatient-as", "mental-health"]);
    mental_health
        .run(Mode::Accept, snapshots.path(), &[scenario])
        .assert_go("a mental health discharge, baselined");
    let checked = mental_health.run(Mode::Check, snapshots.path(), &[scenario]);
    checked.assert_go("a mental health discharge, checked");
    // The kinds table's first column is as wide as its longest kind: the recipients line up
    // under their heading.
    let out = &checked.ran.stdout;
    let column = |starts: &str, word: &str| {
        out.lines()
            .find(|l| l.starts_with(starts))
            .and_then(|l| l.find(word))
    };
    assert!(
        column("mental_health_discharge", "B82002").is_some(),
        "{}",
        checked.shown()
    );
    assert_eq!(
        column("letter kind", "recipient"),
        column("mental_health_discharge", "B82002"),
        "{}",
        checked.shown()
    );
}

/// Issue 12 against an EHR lettergate's authors did not write: with `clock: scenario` the
/// stand-in is told each event at its scenario's own (past) time, and a healthy stand-in is
/// baselined on it; one that dates its letters (Composition.date, Encounter.period) the moment
/// it sends them is a `wrong date` for each letter whose kind must be dated on its event's day.
#[test]
fn letters_dated_when_sent_are_a_wrong_date_with_clock_scenario() {
    let clock = "clock: scenario\n";
    let snapshots = tempfile::tempdir().unwrap();
    let healthy = StandIn::start_with(&[], clock).run(Mode::Accept, snapshots.path(), &KINDS);
    healthy.assert_go("accepting a baseline of the healthy stand-in with clock: scenario");
    assert!(
        healthy.ran.stderr.contains("clinical time: clock scenario"),
        "{}",
        healthy.shown()
    );
    StandIn::start_with(&[], clock)
        .run(Mode::Check, snapshots.path(), &KINDS)
        .assert_go("checking the healthy stand-in against it");
    let said = StandIn::start_with(&["--fault", "dated-when-sent"], clock).run(
        Mode::Check,
        snapshots.path(),
        &KINDS,
    );
    // Each letter states its event on the day it was sent (today), not on the day the
    // stand-in was told it happened. Emergency discharges default to `dated: any`: no finding.
    let today =
        lettergate::protocol::calendar::uk_day(lettergate::protocol::clock::Timestamp::now());
    let finding = regex::Regex::new(&format!(
        r"^MAJOR ([a-z_/]+): wrong date: ([a-z ]+) #\d for [a-z]+ \(NHS \*{{7}}\d{{3}}\) states the ([a-z ]+) on {} {today} \(Encounter\.period\.end\), but the ([a-z ]+) was on [A-Z][a-z]{{2}} \d{{4}}-\d{{2}}-\d{{2}}$",
        &today.weekday().to_string()[..3]
    ))
    .unwrap();
    let caught: Vec<String> = said
        .blocking()
        .iter()
        .map(|f| match finding.captures(f) {
            Some(c) if c[3] == c[4] => format!("{}: {}", &c[1], &c[2]),
            _ => format!("not a wrong date naming today: {f}"),
        })
        .collect();
    assert_eq!(
        caught,
        [
            "death/in_hospital: clinic letter",
            "death/in_hospital: death notification",
            "inpatient/discharge_summary: discharge summary",
            "outpatient/clinic_letter: clinic letter",
        ],
        "{}",
        said.shown()
    );
    assert!(
        said.ran.code == 1 && said.decision() == "NO-GO",
        "{}",
        said.shown()
    );
}
