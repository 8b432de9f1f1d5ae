//! Every report format rendered from one passing and one failing run, kept as snapshots; the
//! HTML report loaded in real headless Chromium.

use crate::support::assert_snapshot;
use crate::support::fixtures::{load, run_on_simulator};
use lettergate::report::model::Decision;
use lettergate::report::{html, junit, markdown, RunReport, Terminal};
use lettergate::scenario::Scenario;
use lettergate::sim::SimConfig;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

const SCENARIOS: [&str; 3] = [
    "death/in_hospital",
    "inpatient/discharge_summary",
    "outpatient/clinic_letter",
];

fn scenarios() -> Vec<Arc<Scenario>> {
    // Relative, as a user gives it: reports name scenario files by the path they were given,
    // and cargo runs tests from the package root.
    load(&[PathBuf::from("scenarios")])
        .into_iter()
        .filter(|s| SCENARIOS.contains(&s.id.as_str()))
        .collect()
}

/// The report of running three shipped scenarios under `profile`, with the timings zeroed so
/// that renderings are stable.
async fn report(profile: &str) -> RunReport {
    let s = scenarios();
    let (_work, outcomes) = run_on_simulator(SimConfig::named(profile).unwrap(), &s).await;
    let mut r = RunReport::new(
        "simulator",
        profile,
        lettergate::protocol::ids::Identifiers::Masked,
    )
    .build(&s, &outcomes);
    for s in &mut r.scenarios {
        s.elapsed_ms = 0;
    }
    r
}

fn terminal(r: &RunReport) -> String {
    let mut out = Vec::new();
    Terminal {
        show_identifiers: false,
        color: false,
    }
    .summary(&mut out, r, &[])
    .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_of_a_passing_run() {
    let r = report("baseline").await;
    assert_eq!(r.decision(), Decision::Go);
    assert_snapshot!("pass_terminal", terminal(&r));
    assert_snapshot!("pass_junit", junit::render(&r).unwrap());
    assert_snapshot!("pass_markdown", markdown::render(&r));
    assert_snapshot!("pass_html", html::render(&r));
    assert_snapshot!("pass_json", r.to_json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_of_a_failing_run() {
    let r = report("op-letters-silently-dropped").await;
    assert_eq!(r.decision(), Decision::NoGo);
    assert_snapshot!("fail_terminal", terminal(&r));
    assert_snapshot!("fail_junit", junit::render(&r).unwrap());
    assert_snapshot!("fail_markdown", markdown::render(&r));
    assert_snapshot!("fail_html", html::render(&r));
    assert_snapshot!("fail_json", r.to_json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_report_reads_back_as_the_same_report() {
    let r = report("op-letters-silently-dropped").await;
    let back: RunReport = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.decision(), r.decision());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_mask_identifiers_by_default() {
    let r = report("op-letters-silently-dropped").await;
    let all = [
        terminal(&r),
        junit::render(&r).unwrap(),
        markdown::render(&r),
        html::render(&r),
        r.to_json(),
    ];
    for text in &all {
        for nhs in ["9990000018", "9990000026", "9990000034"] {
            assert!(!text.contains(nhs), "an NHS number in full: {text}");
        }
        assert!(
            !text.contains("Alice Example") && !text.contains("1950-01-01"),
            "a name or date of birth: {text}"
        );
    }
    assert!(html::render(&r).contains("*******018"));
}

fn chromium() -> String {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c.to_string();
        }
    }
    panic!(
        "headless Chromium is needed to check the HTML report and was not found: run `scripts/install-test-deps.sh` \
         (Debian: `apt-get install chromium`)"
    );
}

fn headless(browser: &str, profile: &std::path::Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
    ]);
    c.arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// Issue 5: the HTML report in real headless Chromium: its DOM, and a screenshot kept as an
/// artifact in `target/tmp/artifacts/report-no-go.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_in_chromium_with_the_verdict_first() {
    let browser = chromium();
    let mut r = report("op-letters-silently-dropped").await;
    // Content from scenarios must be escaped, never run.
    r.scenarios[0].name =
        "<script>document.title='owned'</script><img src=x onerror=alert(1)>".into();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html::render(&r)).unwrap();
    let url = format!("file://{}", page.display());

    let dom = headless(&browser, &dir.path().join("profile-dom"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    let verdict = dom.find("id=\"verdict\"").expect("a verdict section");
    assert!(
        dom[verdict..].starts_with("id=\"verdict\" class=\"NO-GO\" data-decision=\"NO-GO\""),
        "{}",
        &dom[verdict..verdict + 80]
    );
    assert!(
        verdict < dom.find("id=\"by-kind\"").unwrap(),
        "the verdict comes before the tables"
    );
    assert!(
        dom.contains("<title>lettergate: NO-GO</title>"),
        "the title was not changed by content"
    );
    assert!(
        dom.contains("&lt;script&gt;document.title"),
        "the scenario name is shown as text"
    );
    assert!(
        !dom.contains("<img src=\"x\""),
        "no element was made from content"
    );
    let short = dom
        .find("<tr class=\"short\"><td>clinic letter</td><td>A81001</td>")
        .expect("the missing clinic letters are marked");
    assert!(
        dom[short..].contains("<td class=\"num\">2</td><td class=\"num\">0</td>"),
        "2 expected, 0 captured"
    );
    assert!(dom.matches("class=\"scenario failing\"").count() >= 2);

    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report-no-go.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(&browser, &dir.path().join("profile-shot"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    println!("screenshot of the NO-GO report: {}", shot.display());
}
