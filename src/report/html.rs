//! The HTML report: one self-contained file (no external assets, no script) a change board
//! opens in a browser. The decision comes first with its reason, then letters per kind and
//! recipient (expected, captured, baseline), the reconciliation per day, and each failing
//! scenario with its timeline, expected and captured letters side by side, and the diff.
//! Everything from scenarios or letters is escaped.

use super::model::{RunReport, ScenarioReport};
use crate::run::Verdict;
use std::fmt::Write;

/// Escapes text for HTML element content and attribute values; control characters from
/// outside (other than line breaks and tabs, which a `<pre>` diff keeps) become visible escapes.
pub fn escape(text: &str) -> String {
    let text = crate::protocol::text::escape_controls_keeping_lines(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1b1b1b;max-width:78rem}
h1{font-size:1.4rem;margin:0 0 1rem}
h2{font-size:1.15rem;margin:2rem 0 .6rem;border-bottom:1px solid #ccc;padding-bottom:.2rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem}
#verdict{padding:1rem 1.4rem;border-radius:.4rem;color:#fff;font-size:1.1rem}
#verdict strong{font-size:2rem;display:block;letter-spacing:.05em}
.GO{background:#1a7f37}.NO-GO{background:#b42318}.REVIEW{background:#1f5fae}.INCOMPLETE{background:#6b3fa0}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.92rem}
th,td{border:1px solid #d0d0d0;padding:.3rem .6rem;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#f3f3f3;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.short td{background:#fde8e6;font-weight:600}
.blocker{color:#b42318;font-weight:700}.major{color:#9a6700;font-weight:700}.review{color:#1f5fae;font-weight:700}
.side>div{overflow-x:auto}
h4{margin:.8rem 0 .3rem}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.85rem}
pre .add{color:#1a7f37}pre .del{color:#b42318}
.meta{color:#555;font-size:.9rem}
";

/// The whole report as one HTML page: the decision, letters by kind, the reconciliation by
/// day, each failing scenario in full, and every scenario in a table.
pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    head(&mut o, r);
    by_kind(&mut o, r);
    reconciliation(&mut o, r);
    let failing: Vec<&ScenarioReport> = r
        .scenarios
        .iter()
        .filter(|s| s.verdict != Verdict::Pass)
        .collect();
    let _ = writeln!(o, "<h2>Failing scenarios ({})</h2>", failing.len());
    if failing.is_empty() {
        let _ = writeln!(o, "<p>None.</p>");
    }
    for s in failing {
        scenario(&mut o, s);
    }
    all_scenarios(&mut o, r);
    let _ = writeln!(o, "</body></html>");
    o
}

/// The document head, the decision with its reason, and the run's figures.
fn head(o: &mut String, r: &RunReport) {
    let d = r.decision();
    let c = r.counts();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lettergate: {}</title><style>{STYLE}</style></head><body>\n",
        d.label()
    );
    let _ = writeln!(o, "<h1>lettergate report</h1>");
    let _ = writeln!(
        o,
        "<section id=\"verdict\" class=\"{}\" data-decision=\"{}\"><strong>{}</strong>{}</section>",
        d.label(),
        d.label(),
        d.label(),
        escape(&r.reason())
    );
    let shards = if r.shards.is_empty() {
        String::new()
    } else {
        format!(" · shards {}", r.shard_list())
    };
    let _ = writeln!(
        o,
        "<p class=\"meta\">target {} · profile {} · {} scenarios: {} passed, {} failed, {} could not run · {} letters captured · findings: <span class=\"blocker\">{} blocker</span>, <span class=\"major\">{} major</span>, <span class=\"review\">{} review</span>{}{}</p>",
        escape(&r.target),
        escape(&r.profile),
        c.scenarios,
        c.passed,
        c.failed,
        c.errors,
        c.letters,
        c.blocker,
        c.major,
        c.review,
        escape(&shards),
        if r.identifiers_shown { " · <strong>identifiers shown</strong>" } else { " · identifiers masked" }
    );
    if let Some(c) = r.clinical_time() {
        let _ = writeln!(
            o,
            "<p class=\"meta\" id=\"clinical-time\">clinical time: {}</p>",
            escape(&c)
        );
    }
}

/// Letters expected, captured and in the baseline by kind and recipient; short rows marked.
fn by_kind(o: &mut String, r: &RunReport) {
    let _ = writeln!(o, "<h2>Letters by kind and recipient</h2>");
    let _ = writeln!(o, "<table id=\"by-kind\"><thead><tr><th>letter</th><th>recipient</th><th>expected</th><th>captured (candidate)</th><th>baseline</th></tr></thead><tbody>");
    for k in r.by_kind() {
        let short = if k.captured < k.expected {
            " class=\"short\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<tr{short}><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&k.kind.replace('_', " ")),
            escape(&k.recipient),
            k.expected,
            k.captured,
            k.baseline
        );
    }
    let _ = writeln!(o, "</tbody></table>");
}

/// Letters expected and captured per day of the clinical event, in day order.
fn reconciliation(o: &mut String, r: &RunReport) {
    let _ = writeln!(o, "<h2>Reconciliation by day</h2>");
    let _ = writeln!(o, "<table id=\"reconciliation\"><thead><tr><th>day of the clinical event</th><th>letter</th><th>recipient</th><th>expected</th><th>captured</th></tr></thead><tbody>");
    let mut rows = r.reconciliation();
    rows.sort_by(|a, b| (&a.day, &a.kind, &a.recipient).cmp(&(&b.day, &b.kind, &b.recipient)));
    for row in rows {
        let short = if row.captured < row.expected {
            " class=\"short\""
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "<tr{short}><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&row.day),
            escape(&row.kind.replace('_', " ")),
            escape(&row.recipient),
            row.expected,
            row.captured
        );
    }
    let _ = writeln!(o, "</tbody></table>");
}

/// Every scenario with its verdict, letters and findings.
fn all_scenarios(o: &mut String, r: &RunReport) {
    let _ = writeln!(o, "<h2>All scenarios</h2>");
    let _ = writeln!(o, "<table id=\"scenarios\"><thead><tr><th>scenario</th><th>verdict</th><th>letters</th><th>findings</th></tr></thead><tbody>");
    for s in &r.scenarios {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&s.id),
            match s.verdict {
                Verdict::Pass => "pass",
                Verdict::Fail => "<span class=\"blocker\">fail</span>",
                Verdict::Error => "<span class=\"blocker\">could not run</span>",
            },
            s.captured.len(),
            s.findings.len()
        );
    }
    let _ = writeln!(o, "</tbody></table>");
}

/// A failing scenario in full: findings, patients, timeline, expected and captured letters
/// side by side, and its diffs.
fn scenario(o: &mut String, s: &ScenarioReport) {
    let _ = writeln!(
        o,
        "<article class=\"scenario failing\" id=\"scenario-{}\">",
        escape(&s.id.replace('/', "-"))
    );
    let _ = writeln!(
        o,
        "<h3>{} <span class=\"meta\">{}</span></h3>",
        escape(&s.id),
        escape(&s.path)
    );
    let _ = writeln!(o, "<p>{}</p>", escape(&s.name));
    if let Some(c) = &s.clock {
        let _ = writeln!(
            o,
            "<p class=\"meta\">clinical time: clock {}</p>",
            escape(c)
        );
    }
    if let Some(e) = &s.error {
        let _ = writeln!(o, "<p class=\"blocker\">harness error: {}</p>", escape(e));
    }
    if !s.findings.is_empty() {
        let _ = writeln!(o, "<ul class=\"findings\">");
        for f in &s.findings {
            let _ = writeln!(
                o,
                "<li><span class=\"{0}\">{0}</span> {1}</li>",
                f.severity.name(),
                escape(&f.text)
            );
        }
        let _ = writeln!(o, "</ul>");
    }
    patients(o, s);
    timeline(o, s);
    expected_and_captured(o, s);
    diffs(o, s);
    let _ = writeln!(o, "</article>");
}

/// The scenario's patients, masked as the report holds them.
fn patients(o: &mut String, s: &ScenarioReport) {
    let _ = writeln!(o, "<table class=\"patients\"><thead><tr><th>patient</th><th>NHS number</th><th>name</th><th>born</th></tr></thead><tbody>");
    for p in &s.patients {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.key),
            escape(&p.nhs_number),
            escape(&p.name),
            escape(&p.born)
        );
    }
    let _ = writeln!(o, "</tbody></table>");
}

/// The scenario's events in order; a detail column (where a patient moved to, ...) only
/// when an event has one, so the table has no empty column.
fn timeline(o: &mut String, s: &ScenarioReport) {
    let details = s.timeline.iter().any(|e| e.detail.is_some());
    let _ = write!(
        o,
        "<table class=\"timeline\"><thead><tr><th>time</th><th>event</th><th>patient</th>"
    );
    let _ = writeln!(
        o,
        "{}</tr></thead><tbody>",
        if details { "<th>detail</th>" } else { "" }
    );
    for e in &s.timeline {
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            escape(&e.at.rfc3339()),
            escape(e.event.name()),
            escape(&e.patient),
        );
        if details {
            let _ = write!(o, "<td>{}</td>", escape(e.detail.as_deref().unwrap_or("")));
        }
        let _ = writeln!(o, "</tr>");
    }
    let _ = writeln!(o, "</tbody></table>");
}

/// What the scenario expects beside what was captured.
fn expected_and_captured(o: &mut String, s: &ScenarioReport) {
    let _ = writeln!(o, "<div class=\"side\"><div><h4>Expected</h4><table class=\"expected\"><thead><tr><th>letter</th><th>patient</th><th>to</th><th>how</th><th>within</th><th>times</th></tr></thead><tbody>");
    for x in &s.expectations {
        let how = match &x.workflow {
            Some(w) => format!("{} {w}", x.transport),
            None => x.transport.to_string(),
        };
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td class=\"num\">{}</td></tr>",
            escape(&x.letter.words()),
            escape(&x.patient),
            escape(&x.to),
            escape(&how),
            x.within,
            x.of,
            x.count
        );
    }
    let _ = writeln!(o, "</tbody></table></div><div><h4>Captured</h4><table class=\"captured\"><thead><tr><th>#</th><th>letter</th><th>patient</th><th>to</th><th>route</th><th>status</th></tr></thead><tbody>");
    for l in &s.captured {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            l.seq,
            escape(&l.kind.replace('_', " ")),
            escape(&l.patient),
            escape(&l.recipient),
            escape(&l.route),
            escape(l.workflow.as_deref().unwrap_or("")),
            l.status
        );
    }
    if s.captured.is_empty() {
        let _ = writeln!(o, "<tr><td colspan=\"6\">nothing was captured</td></tr>");
    }
    let _ = writeln!(o, "</tbody></table></div></div>");
}

/// Each snapshot diff, added and removed lines marked.
fn diffs(o: &mut String, s: &ScenarioReport) {
    for diff in s.findings.iter().filter_map(|f| f.diff.as_deref()) {
        let _ = writeln!(o, "<h4>Snapshot diff</h4><pre class=\"diff\">");
        for line in diff.lines() {
            let class = match line.chars().next() {
                Some('+') if !line.starts_with("+++") => " class=\"add\"",
                Some('-') if !line.starts_with("---") => " class=\"del\"",
                _ => "",
            };
            let _ = writeln!(o, "<span{class}>{}</span>", escape(line));
        }
        let _ = writeln!(o, "</pre>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_be_markup() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
