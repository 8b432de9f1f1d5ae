//! Range checks at load (issue 13, point 5) and checks before anything is driven (point 6):
//! values that parse but cannot be run are exit 2 with the file, line and column, never a
//! panic, a spin or a wrong verdict later.

use crate::support::project::{Project, Ran};

const FILE: &str = "scenarios/hostile/range.yaml";

/// A scenario of alice's clinic letter with `timeline` and `expect` as given, checked with
/// `validate` and with `run` (which must not start).
fn load(extra_top: &str, timeline: &str, expect: &str) -> (Project, Ran) {
    let p = Project::copy();
    p.write(
        FILE,
        &format!(
            "name: a range check\ninclude: [../fixtures/common.yaml]\n{extra_top}timeline:\n{timeline}expect:\n{expect}"
        ),
    );
    let r = p.run(&["validate", FILE]);
    (p, r)
}

const ATTENDANCE: &str = "  - at: 2025-03-03T09:30:00Z\n    event: outpatient_attendance\n    patient: alice\n  - after: 1d\n    event: letter_signed\n    patient: alice\n";
const CLINIC_LETTER: &str = "  - letter: clinic_letter\n    patient: alice\n";

fn assert_bad_input_at(p: &Project, r: &Ran, line_col: &str, words: &[&str]) {
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(&format!("--> {FILE}:{line_col}")),
        "{}",
        r.stderr
    );
    for w in words {
        assert!(r.stderr.contains(w), "{w:?} in {}", r.stderr);
    }
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    // `run` refuses the same file before anything runs.
    let run = p.run(&["run", "--check", FILE]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(!p.path(".lettergate").exists(), "nothing ran");
}

/// Issue 13: years 0000 and 1969 validated and then gave wrong NO-GOs.
#[test]
fn a_time_before_1970_is_bad_input_at_its_line() {
    for year in ["0000", "1969"] {
        let timeline = ATTENDANCE.replace("2025-03-03", &format!("{year}-12-31"));
        let (p, r) = load("", &timeline, CLINIC_LETTER);
        assert_bad_input_at(
            &p,
            &r,
            "4:9",
            &["is outside 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z"],
        );
    }
    let (p, r) = load("start: 1969-01-01T00:00:00Z\n", ATTENDANCE, CLINIC_LETTER);
    assert_bad_input_at(&p, &r, "3:8", &["time `1969-01-01T00:00:00Z` is outside"]);
}

/// Issue 13: durations near `i64::MAX` validated and then gave "late by -106751991167298d".
#[test]
fn a_duration_longer_than_ten_years_is_bad_input_at_its_line() {
    let timeline = ATTENDANCE.replace("after: 1d", "after: 106751991167298d");
    let (p, r) = load("", &timeline, CLINIC_LETTER);
    assert_bad_input_at(
        &p,
        &r,
        "7:12",
        &["duration `106751991167298d` is longer than 3660d (ten years)"],
    );
    let expect = format!("{CLINIC_LETTER}    within: 106751991167298d\n");
    let (p, r) = load("", ATTENDANCE, &expect);
    assert_bad_input_at(&p, &r, "13:13", &["is longer than 3660d"]);
    let (p, r) = load("observe_for: 9999999d\n", ATTENDANCE, CLINIC_LETTER);
    assert_bad_input_at(&p, &r, "3:14", &["is longer than 3660d"]);
}

#[test]
fn a_timeline_past_the_year_9999_or_longer_than_ten_years_is_bad_input() {
    let timeline = ATTENDANCE.replace("2025-03-03", "9999-12-30");
    let (p, r) = load("", &timeline, CLINIC_LETTER);
    assert_bad_input_at(
        &p,
        &r,
        "3:1",
        &["letters would be observed until after 9999-12-31T23:59:59Z"],
    );
    let timeline = ATTENDANCE.replace("after: 1d", "after: 3000d").replace(
        "    patient: alice\n",
        "    patient: alice\n  - after: 3000d\n    event: admission\n    patient: bob\n",
    );
    let (p, r) = load("", &timeline, CLINIC_LETTER);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("a timeline spans at most 3660d"),
        "{}",
        r.stderr
    );
    drop(p);
}

/// Issue 13: `count: 4294967295` validated and then spun.
#[test]
fn a_count_above_the_cap_is_bad_input_at_its_expectation() {
    let expect = format!("{CLINIC_LETTER}    count: 4294967295\n");
    let (p, r) = load("", ATTENDANCE, &expect);
    assert_bad_input_at(&p, &r, "11:5", &["`count: 4294967295` is more than 1000"]);
}

fn population(patients: &str, days: &str, daily: &str) -> (Project, Ran) {
    let p = Project::copy();
    p.write(
        FILE,
        &format!(
            "name: a population\ninclude: [../fixtures/common.yaml]\nstart: 2025-01-06T00:00:00Z\npopulation:\n  seed: 1\n  patients: {patients}\n  practices: [riverside]\n  days: {days}\n  daily:\n{daily}"
        ),
    );
    let r = p.run(&["validate", FILE]);
    (p, r)
}

/// Issue 13: population counts near `u32::MAX` panicked (index out of bounds) or aborted
/// out of memory.
#[test]
fn population_counts_above_their_caps_are_bad_input_not_a_panic() {
    let (p, r) = population("1000", "366", "    death: 4294967295\n");
    assert_bad_input_at(
        &p,
        &r,
        "5:3",
        &["`daily: {death: 4294967295}` is more than 100000"],
    );
    let (p, r) = population("800000", "366", "    death: 11740\n");
    assert_bad_input_at(
        &p,
        &r,
        "5:3",
        &["4296840 deaths need at least 8593680 patients"],
    );
    let (p, r) = population("800000", "366", "    outpatient_attendance: 100000\n");
    assert_bad_input_at(
        &p,
        &r,
        "5:3",
        &["calls for 73200000 letters; at most 2000000"],
    );
    let (p, r) = population("4294967295", "7", "    discharge: 1\n");
    assert_bad_input_at(&p, &r, "5:3", &["`patients:` must be between 1 and 800000"]);
}

/// Issue 13: two practices with one ODS code validated.
#[test]
fn two_practices_with_one_ods_code_are_bad_input() {
    let (p, r) = load(
        "practices:\n  twin:\n    ods: A81001\n    name: Twin Surgery\n",
        ATTENDANCE,
        CLINIC_LETTER,
    );
    assert_bad_input_at(
        &p,
        &r,
        "4:3",
        &["practice `twin` has the same ODS code A81001 as practice `riverside`"],
    );
}

/// Issue 13: merge cycles validated.
#[test]
fn practices_merged_into_each_other_are_bad_input() {
    let (p, r) = load(
        "practices:\n  north:\n    ods: G87001\n    name: North\n    merged_into: south\n  south:\n    ods: G87002\n    name: South\n    merged_into: north\n",
        ATTENDANCE,
        CLINIC_LETTER,
    );
    assert_bad_input_at(
        &p,
        &r,
        "7:5",
        &["practice `north` is merged into itself: `north` -> `south` -> `north`"],
    );
    let (p, r) = load(
        "practices:\n  alone:\n    ods: G87001\n    name: Alone\n    merged_into: alone\n",
        ATTENDANCE,
        CLINIC_LETTER,
    );
    assert_bad_input_at(&p, &r, "7:5", &["practice `alone` is merged into itself"]);
}

/// Checks before anything runs (issue 13, point 6): capture addresses and target
/// consistency, by `run --target` and `targets check` alike, and a FHIR server that does not
/// answer FHIR.
mod before_running {
    use crate::support::loopback::free_port;
    use crate::support::project::{Project, Ran};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    const SCENARIO: &str = "scenarios/outpatient/clinic_letter.yaml";

    fn target(p: &Project, fhir: u16, capture: &str) {
        p.write(
            "target.yaml",
            &format!("name: staging\nnon_production: true\ndrive:\n  fhir: {{base_url: \"http://127.0.0.1:{fhir}/fhir\"}}\ncapture:\n{capture}wait: {{max: 2s, poll_interval: 1s, settle: 1s}}\n"),
        );
    }

    fn both(p: &Project) -> (Ran, Ran) {
        (
            p.run(&["targets", "check", "target.yaml"]),
            p.run(&["run", "--check", "--target", "target.yaml", SCENARIO]),
        )
    }

    /// A stand-in FHIR server on loopback: `/fhir/metadata` answers a CapabilityStatement
    /// unless `html_everywhere`; every other request an HTML page with 200, as a web server
    /// in front of the wrong application would. Counts the requests that are not metadata.
    struct Stub {
        port: u16,
        others: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
    }

    impl Stub {
        fn start(html_everywhere: bool) -> Stub {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let port = listener.local_addr().unwrap().port();
            let (others, stop) = (
                Arc::new(AtomicUsize::new(0)),
                Arc::new(AtomicBool::new(false)),
            );
            let (o, s) = (others.clone(), stop.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            stream
                                .set_read_timeout(Some(Duration::from_secs(5)))
                                .unwrap();
                            answer(stream, html_everywhere, &o);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            });
            Stub { port, others, stop }
        }
    }

    impl Drop for Stub {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    fn answer(stream: std::net::TcpStream, html_everywhere: bool, others: &AtomicUsize) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        if reader.read_line(&mut first).is_err() {
            return;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let metadata = first.contains("/metadata");
        if !metadata {
            others.fetch_add(1, Ordering::SeqCst);
        }
        let (kind, text) = if metadata && !html_everywhere {
            (
                "application/fhir+json",
                r#"{"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}"#.to_string(),
            )
        } else {
            (
                "text/html",
                "<html>\n<body><h1>Welcome to nginx!</h1>\x1b[31m</body></html>".to_string(),
            )
        };
        let mut s = stream;
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
    }

    /// Issue 13: two captures on one port were found only after the whole run (exit 3), and
    /// `targets check` said all was well.
    #[test]
    fn two_captures_on_one_port_are_bad_input_for_run_and_targets_check() {
        let p = Project::copy();
        let port = free_port();
        target(
            &p,
            1,
            &format!("  mesh_endpoint:\n    listen: 127.0.0.1:{port}\n    shared_key_env: KEY\n    mailboxes: {{RXXHC001: PW}}\n  http_endpoint:\n    listen: 127.0.0.1:{port}\n"),
        );
        for r in [both(&p).0, both(&p).1] {
            assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
            assert!(r.stderr.contains(&format!("`capture.http_endpoint` listens on 127.0.0.1:{port}, as `capture.mesh_endpoint` does (127.0.0.1:{port}): two captures cannot share a port")), "{}", r.stderr);
            assert!(r.stderr.contains("--> target.yaml:10:3"), "{}", r.stderr);
        }
        assert!(!p.path(".lettergate").exists());
    }

    /// Issue 13: `mailboxes: {}` was found only after the run.
    #[test]
    fn a_mesh_endpoint_without_mailboxes_is_bad_input_for_run_and_targets_check() {
        let p = Project::copy();
        target(
            &p,
            1,
            &format!("  mesh_endpoint:\n    listen: 127.0.0.1:{}\n    shared_key_env: KEY\n    mailboxes: {{}}\n", free_port()),
        );
        let (check, run) = both(&p);
        for r in [check, run] {
            assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
            assert!(
                r.stderr.contains("`mesh_endpoint.mailboxes` is empty"),
                "{}",
                r.stderr
            );
            assert!(r.stderr.contains("--> target.yaml:9:5"), "{}", r.stderr);
        }
    }

    /// Issue 13: a capture address in use was found only after every scenario had been
    /// driven (exit 3 for each); now the run stops before driving anything.
    #[test]
    fn a_capture_address_in_use_stops_the_run_before_anything_is_driven() {
        let p = Project::copy();
        let fhir = Stub::start(false);
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        target(
            &p,
            fhir.port,
            &format!("  http_endpoint: {{listen: 127.0.0.1:{port}}}\n"),
        );
        let (check, run) = both(&p);
        assert_eq!(check.code, 3, "{}{}", check.stdout, check.stderr);
        assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "FAILED capture.http_endpoint  cannot listen on 127.0.0.1:{port}"
            )),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("checks of target staging failed before anything was driven"),
            "{}",
            run.stderr
        );
        assert_eq!(fhir.others.load(Ordering::SeqCst), 0, "nothing was driven");
        drop(taken);
    }

    fn free_capture() -> String {
        format!("  http_endpoint: {{listen: 127.0.0.1:{}}}\n", free_port())
    }

    /// Issue 13: a FHIR server answering an HTML page with 200 gave NO-GO "missing letter".
    #[test]
    fn a_fhir_server_answering_html_is_a_harness_failure_saying_what_it_answered() {
        let p = Project::copy();
        let html = Stub::start(true);
        target(&p, html.port, &free_capture());
        let (check, run) = both(&p);
        assert_eq!(check.code, 3, "{}{}", check.stdout, check.stderr);
        for out in [&check.stdout, &run.stderr] {
            assert!(out.contains("did not answer FHIR: it answered 200 OK text/html: `<html> <body><h1>Welcome to nginx!</h1>\\u{1b}[31m</body></html>`"), "{out}");
        }
        assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
        assert!(!run.stdout.contains("missing letter"), "{}", run.stdout);
        assert_eq!(html.others.load(Ordering::SeqCst), 0, "nothing was driven");

        // Metadata that is FHIR, and events answered with the HTML page: the scenario is an
        // error with what the server answered, never a missing letter.
        let half = Stub::start(false);
        target(&p, half.port, &free_capture());
        let r = p.run(&["run", "--check", "--target", "target.yaml", SCENARIO]);
        let out = format!("{}{}", r.stdout, r.stderr);
        assert_eq!(r.code, 3, "{out}");
        assert!(out.contains("/fhir/Patient?identifier="), "{out}");
        assert!(
            out.contains("did not answer FHIR: it answered 200 OK text/html: `<html>"),
            "{out}"
        );
        assert!(!out.contains("missing letter"), "{out}");
    }
}
