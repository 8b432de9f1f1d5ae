//! Every report format rendered from one passing and one failing run, kept as snapshots; the
//! HTML report loaded in real headless Chromium.

use crate::support::assert_snapshot;
use crate::support::fixtures::{load, run_on_simulator};
use lettergate::Decision;
use lettergate::Scenario;
use lettergate::SimConfig;
use lettergate::{html, junit, markdown, RunReport, Terminal};
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

/// Measures the report as Chromium lays it out, from inside the page: a column with nothing in
/// any row, a table wider than the page, a header on two lines, or a word broken in two. The
/// test adds it to its own copy of the report; the report itself has no script.
const LAYOUT_PROBE: &str = r#"<script>
(function(){
const bad=[];
const lines=(el)=>{const r=document.createRange();r.selectNodeContents(el);return new Set([...r.getClientRects()].filter(x=>x.width>0).map(x=>Math.round(x.top))).size;};
for (const t of document.querySelectorAll('table')) {
  const name=t.id||t.className;
  const rows=[...t.rows];
  if (rows.length<2) continue;
  for (let c=0;c<rows[0].cells.length;c++){
    if (rows.slice(1).every(r=>!r.cells[c]||r.cells[c].textContent.trim()===''))
      bad.push('empty column '+(c+1)+' in '+name);
  }
  if (t.getBoundingClientRect().right>document.documentElement.clientWidth+1) bad.push(name+' is wider than the page');
  for (const cell of t.querySelectorAll('th,td')) {
    const words=cell.textContent.trim().split(/\s+/).filter(w=>w).length;
    if (words && lines(cell)>words) bad.push('a word broken in '+name+': '+cell.textContent.trim());
    if (cell.tagName==='TH' && lines(cell)>1) bad.push('a header wraps in '+name+': '+cell.textContent.trim());
  }
}
document.body.setAttribute('data-layout', bad.length ? bad.join(' | ') : 'ok');
})();
</script>"#;

/// Issue 15: at 1280 px every table of a failing report is readable: no empty column, none
/// wider than the page, no header on two lines, no word broken in two ("notificati on").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_at_1280_px_has_no_empty_column_wrapped_header_or_broken_word() {
    let browser = chromium();
    let r = report("op-letters-silently-dropped").await;
    let html = html::render(&r).replace("</body>", &format!("{LAYOUT_PROBE}</body>"));
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    assert_eq!(layout_of(&browser, &page), "ok", "the report at 1280 px");

    // Negative control: the probe sees an empty column and a squeezed header.
    let bad = dir.path().join("bad.html");
    std::fs::write(
        &bad,
        format!(
            "<!DOCTYPE html><html><body><table class=\"bad\" style=\"width:3rem\"><tr><th>times</th><th></th></tr>\
             <tr><td>1</td><td></td></tr></table>{LAYOUT_PROBE}</body></html>"
        ),
    )
    .unwrap();
    let layout = layout_of(&browser, &bad);
    assert!(layout.contains("empty column 2 in bad"), "{layout}");
}

/// What [`LAYOUT_PROBE`] found in `page` at 1280 px: `ok`, or the problems.
fn layout_of(browser: &str, page: &std::path::Path) -> String {
    let profile = page.with_extension("profile");
    let dom = headless(browser, &profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let at = dom.find("data-layout=\"").expect("the probe ran") + "data-layout=\"".len();
    dom[at..at + dom[at..].find('"').unwrap()].to_string()
}

/// Issue 15: the baseline column counts an aggregate (volume) snapshot's letters, not its
/// rows: the shipped volume snapshot's rows add up to the letters its header counts.
#[test]
fn the_baseline_of_an_aggregate_snapshot_counts_every_letter_it_stands_for() {
    let path = crate::support::root().join("snapshots/simulator/volume/week_mid_sized_trust.snap");
    let body = std::fs::read_to_string(path).unwrap();
    let header: u32 = body
        .lines()
        .find_map(|l| l.strip_prefix("letters: "))
        .and_then(|n| n.parse().ok())
        .expect("a letters: line");
    let lines = lettergate::LetterLine::from_snapshot(&body);
    let clinic_a81001: u32 = lines
        .iter()
        .filter(|l| l.kind == "clinic_letter" && l.recipient == "A81001")
        .map(|l| l.count)
        .sum();
    println!("baseline clinic_letter to A81001: {clinic_a81001}; all: {header}");
    assert_eq!(lines.iter().map(|l| l.count).sum::<u32>(), header);
    assert!(clinic_a81001 > 4_000, "{clinic_a81001}");
}

/// Issue 12: "the report says which clock was used". A target run's scenarios carry their
/// clinical clock; the Markdown and HTML reports name it, and a failing scenario's section
/// says how its events were moved. A simulator run, whose scenarios carry none, says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_and_html_reports_say_which_clinical_clock_a_target_run_used() {
    let mut r = report("op-letters-silently-dropped").await;
    assert_eq!(r.clinical_time(), None);
    assert!(!markdown::render(&r).contains("Clinical time"));
    assert!(!html::render(&r).contains("clinical time"));
    let moved = "scenario (moved 53 weeks back: first event Sat 2024-12-14 23:30 in England)";
    for s in &mut r.scenarios {
        s.clock = Some(moved.to_string());
    }
    let md = markdown::render(&r);
    assert!(
        md.contains("Clinical time: clock scenario: each scenario's events at their own times"),
        "{md}"
    );
    let page = html::render(&r);
    assert!(
        page.contains("<p class=\"meta\" id=\"clinical-time\">clinical time: clock scenario: each scenario&#39;s events at their own times"),
        "{page}"
    );
    assert!(
        page.contains(&format!(
            "<p class=\"meta\">clinical time: clock {moved}</p>"
        )),
        "{page}"
    );
    r.scenarios[0].clock = Some("now (each event when it was driven)".into());
    let both = r.clinical_time().unwrap();
    assert!(
        both.starts_with("clock now: each event as having happened when it was driven (1 scenario); clock scenario:"),
        "{both}"
    );
}
