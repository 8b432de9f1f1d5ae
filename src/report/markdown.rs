//! The change-board summary in Markdown, usable as a GitHub job summary or a merge-request
//! comment: the decision first, letters by kind and recipient, findings by severity, diffs
//! folded away.

use super::model::RunReport;
use crate::expect::Severity;
use crate::protocol::text::{escape_controls as esc, escape_controls_keeping_lines};
use crate::run::Verdict;
use std::fmt::Write;

/// Text for a table cell or a line: control characters from outside escaped, `|` too.
fn cell(text: &str) -> String {
    esc(text).replace('|', "\\|")
}

/// Text for inline code: escaped, and with no backtick that could end the span early.
fn code(text: &str) -> String {
    esc(text).replace('`', "'")
}

/// The summary as Markdown: the decision and counts, letters by kind, findings by severity,
/// the diffs folded away, and every scenario.
pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    decision(&mut o, r);
    by_kind(&mut o, r);
    for sev in [Severity::Blocker, Severity::Major, Severity::Review] {
        findings_of(&mut o, r, sev);
    }
    diffs(&mut o, r);
    scenarios(&mut o, r);
    o
}

/// The decision with its reason, the target and the counts table.
fn decision(o: &mut String, r: &RunReport) {
    let c = r.counts();
    let d = r.decision();
    let _ = writeln!(o, "## lettergate: {}", d.label());
    let _ = writeln!(o);
    let _ = writeln!(o, "**{}**: {}.", d.label(), cell(&r.reason()));
    let _ = writeln!(o);
    let shards = if r.shards.is_empty() {
        String::new()
    } else {
        format!(", shards {}", r.shard_list())
    };
    let _ = writeln!(
        o,
        "Target `{}`, profile `{}`{shards}.",
        code(&r.target),
        code(&r.profile)
    );
    if let Some(c) = r.clinical_time() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Clinical time: {}.", cell(&c));
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "| scenarios | passed | failed | could not run | letters | blocker | major | review |"
    );
    let _ = writeln!(o, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        o,
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        c.scenarios, c.passed, c.failed, c.errors, c.letters, c.blocker, c.major, c.review
    );
    let _ = writeln!(o);
}

/// Letters expected, captured and in the baseline by kind and recipient; a short kind flagged.
fn by_kind(o: &mut String, r: &RunReport) {
    let _ = writeln!(o, "### Letters by kind and recipient");
    let _ = writeln!(o);
    let _ = writeln!(o, "| letter | recipient | expected | captured | baseline |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|");
    for k in r.by_kind() {
        let flag = if k.captured < k.expected {
            " ⚠️"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "| {} | {} | {} | {}{flag} | {} |",
            cell(&k.kind.replace('_', " ")),
            cell(&k.recipient),
            k.expected,
            k.captured,
            k.baseline
        );
    }
}

/// Every finding of one severity under its heading; nothing when there is none.
fn findings_of(o: &mut String, r: &RunReport, sev: Severity) {
    let found: Vec<_> = r
        .scenarios
        .iter()
        .flat_map(|s| {
            s.findings
                .iter()
                .filter(|f| f.severity == sev)
                .map(move |f| (s, f))
        })
        .collect();
    if found.is_empty() {
        return;
    }
    let _ = writeln!(o);
    let _ = writeln!(o, "### {} ({})", sev.name().to_uppercase(), found.len());
    let _ = writeln!(o);
    for (s, f) in found {
        let _ = writeln!(o, "- `{}`: {}", code(&s.id), cell(&f.text));
    }
}

/// Each snapshot diff in a folded `<details>` block.
fn diffs(o: &mut String, r: &RunReport) {
    for s in &r.scenarios {
        for diff in s.findings.iter().filter_map(|f| f.diff.as_deref()) {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "<details><summary>Snapshot diff: <code>{}</code></summary>",
                crate::report::html::escape(&s.id)
            );
            let _ = writeln!(o);
            // A fence longer than any run of backticks in the diff, which it cannot end.
            let diff = escape_controls_keeping_lines(diff.trim_end());
            let fence = "`".repeat(longest_backtick_run(&diff).max(2) + 1);
            let _ = writeln!(o, "{fence}diff\n{diff}\n{fence}");
            let _ = writeln!(o);
            let _ = writeln!(o, "</details>");
        }
    }
}

/// Every scenario with its verdict, letters and findings.
fn scenarios(o: &mut String, r: &RunReport) {
    let _ = writeln!(o);
    let _ = writeln!(o, "### Scenarios");
    let _ = writeln!(o);
    let _ = writeln!(o, "| scenario | verdict | letters | findings |");
    let _ = writeln!(o, "|---|---|---:|---:|");
    for s in &r.scenarios {
        let v = match s.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail => "**fail**",
            Verdict::Error => "**could not run**",
        };
        let _ = writeln!(
            o,
            "| `{}` | {v} | {} | {} |",
            code(&s.id).replace('|', "\\|"),
            s.captured.len(),
            s.findings.len()
        );
    }
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}
