//! The change-board summary in Markdown, usable as a GitHub job summary or a merge-request
//! comment: the decision first, letters by kind and recipient, findings by severity, diffs
//! folded away.

use super::model::RunReport;
use crate::expect::Severity;
use crate::run::Verdict;
use std::fmt::Write;

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

pub fn render(r: &RunReport) -> String {
    let mut o = String::new();
    let c = r.counts();
    let d = r.decision();
    let _ = writeln!(o, "## lettergate: {}", d.label());
    let _ = writeln!(o);
    let _ = writeln!(o, "**{}**: {}.", d.label(), r.reason());
    let _ = writeln!(o);
    let shards = if r.shards.is_empty() {
        String::new()
    } else {
        format!(", shards {}", r.shard_list())
    };
    let _ = writeln!(o, "Target `{}`, profile `{}`{shards}.", r.target, r.profile);
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
    for sev in [Severity::Blocker, Severity::Major, Severity::Review] {
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
            continue;
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "### {} ({})", sev.name().to_uppercase(), found.len());
        let _ = writeln!(o);
        for (s, f) in found {
            let _ = writeln!(o, "- `{}`: {}", s.id, f.text);
        }
    }
    for s in &r.scenarios {
        for diff in s.findings.iter().filter_map(|f| f.diff.as_deref()) {
            let _ = writeln!(o);
            let _ = writeln!(
                o,
                "<details><summary>Snapshot diff: <code>{}</code></summary>",
                s.id
            );
            let _ = writeln!(o);
            let _ = writeln!(o, "```diff\n{}\n```", diff.trim_end());
            let _ = writeln!(o);
            let _ = writeln!(o, "</details>");
        }
    }
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
            s.id,
            s.captured.len(),
            s.findings.len()
        );
    }
    o
}
