//! The console report: one line per scenario as it finishes, then a summary and the findings
//! and diffs of every scenario that did not pass.

use crate::run::{Outcome, Verdict};
use std::io::{self, Write};

/// Settings of the console report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Terminal {
    /// Show NHS numbers in full rather than masked.
    pub show_identifiers: bool,
}

fn tag(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS ",
        Verdict::Fail => "FAIL ",
        Verdict::Error => "ERROR",
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Terminal {
    pub fn header(
        &self,
        w: &mut dyn Write,
        scenarios: usize,
        target: &str,
        profile: &str,
    ) -> io::Result<()> {
        writeln!(
            w,
            "running {} against {target} (profile {profile})",
            plural(scenarios, "scenario", "scenarios")
        )
    }

    /// `PASS  outpatient/clinic_letter  2 letters`
    pub fn line(&self, w: &mut dyn Write, o: &Outcome) -> io::Result<()> {
        let detail = match o.verdict {
            Verdict::Error => "harness error".to_string(),
            _ if o.findings.is_empty() => plural(o.letters, "letter", "letters"),
            _ => format!(
                "{}, {}",
                plural(o.letters, "letter", "letters"),
                plural(o.findings.len(), "finding", "findings")
            ),
        };
        writeln!(w, "{} {:<44} {detail}", tag(o.verdict), o.scenario_id)
    }

    /// The summary, then each scenario that did not pass with its findings and diffs.
    pub fn summary(&self, w: &mut dyn Write, outcomes: &[Outcome]) -> io::Result<()> {
        let count = |v| outcomes.iter().filter(|o| o.verdict == v).count();
        let (pass, fail, error) = (
            count(Verdict::Pass),
            count(Verdict::Fail),
            count(Verdict::Error),
        );
        let letters: usize = outcomes.iter().map(|o| o.letters).sum();
        for o in outcomes.iter().filter(|o| o.verdict != Verdict::Pass) {
            writeln!(w)?;
            writeln!(w, "--- {} ({})", o.scenario_id, o.path.display())?;
            writeln!(w, "    {}", o.name)?;
            if let Some(e) = &o.error {
                writeln!(w, "  error: {e}")?;
            }
            for f in &o.findings {
                writeln!(w, "  - {}", f.describe(self.show_identifiers))?;
                if let crate::expect::Finding::ContentChanged { diff, .. } = f {
                    for line in diff.lines() {
                        writeln!(w, "      {line}")?;
                    }
                }
            }
            if let Some(p) = &o.pending_snapshot {
                writeln!(
                    w,
                    "  new snapshot written to {} (review it, then `lettergate accept`)",
                    p.display()
                )?;
            }
            if o.verdict == Verdict::Fail {
                writeln!(w, "  captured messages: {}", o.capture_dir.display())?;
            }
        }
        writeln!(w)?;
        writeln!(
            w,
            "{}: {pass} passed, {fail} failed, {error} could not run; {} captured",
            plural(outcomes.len(), "scenario", "scenarios"),
            plural(letters, "letter", "letters")
        )?;
        let verdict = if error > 0 {
            "INCOMPLETE: the harness could not drive the target or capture for some scenarios; this is not a pass"
        } else if fail > 0 {
            "NO-GO: letters were missing, misrouted, late, duplicated or changed"
        } else {
            "GO: every letter went where it should, on time, exactly once"
        };
        writeln!(w, "{verdict}")
    }
}
