//! The console report: one line per scenario as it finishes, then a summary table, the
//! findings grouped by severity, and the diffs. Colour only on a terminal and never when
//! `NO_COLOR` is set.

use super::model::{Decision, RunReport, ScenarioReport};
use crate::expect::Severity;
use crate::protocol::text::{escape_controls as esc, escape_controls_keeping_lines};
use crate::run::{Outcome, Verdict};
use std::io::{self, Write};

/// Settings of the console report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Terminal {
    /// Show NHS numbers in full rather than masked.
    pub show_identifiers: bool,
    /// Use ANSI colours.
    pub color: bool,
}

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const MAGENTA: &str = "35";
const CYAN: &str = "36";
const BOLD: &str = "1";

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Terminal {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect_color() -> bool {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        !no_color
            && std::io::stdout().is_terminal()
            && std::env::var("TERM").map_or(true, |t| t != "dumb")
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn verdict_tag(&self, v: Verdict) -> String {
        match v {
            Verdict::Pass => self.paint("PASS ", GREEN),
            Verdict::Fail => self.paint("FAIL ", RED),
            Verdict::Error => self.paint("ERROR", MAGENTA),
        }
    }

    pub fn header(
        &self,
        w: &mut dyn Write,
        scenarios: usize,
        target: &str,
        setting: &str,
    ) -> io::Result<()> {
        writeln!(
            w,
            "running {} against {} ({})",
            plural(scenarios, "scenario", "scenarios"),
            esc(target),
            esc(setting)
        )
    }

    /// `PASS  outpatient/clinic_letter  2 letters`; the id is escaped (it comes from a file
    /// name, which may hold a newline or an ANSI escape).
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
        writeln!(
            w,
            "{} {:<44} {detail}",
            self.verdict_tag(o.verdict),
            esc(&o.scenario_id)
        )
    }

    /// The summary table, the findings by severity, the diffs and local hints, the verdict.
    pub fn summary(
        &self,
        w: &mut dyn Write,
        report: &RunReport,
        outcomes: &[Outcome],
    ) -> io::Result<()> {
        self.kinds_table(w, report)?;
        for (severity, colour) in [
            (Severity::Blocker, RED),
            (Severity::Major, YELLOW),
            (Severity::Review, CYAN),
        ] {
            self.findings_of(w, report, severity, colour)?;
        }
        for s in report
            .scenarios
            .iter()
            .filter(|s| s.verdict != Verdict::Pass)
        {
            let local = outcomes.iter().find(|o| o.scenario_id == s.id);
            self.not_passed(w, s, local)?;
        }
        self.verdict(w, report)
    }

    /// Letters expected, captured and in the baseline, by kind and recipient; a kind with
    /// fewer captured than expected in red.
    fn kinds_table(&self, w: &mut dyn Write, report: &RunReport) -> io::Result<()> {
        writeln!(w)?;
        let rows = report.by_kind();
        // 22 fits every kind but `mental_health_discharge`, which widens the column.
        let width = rows
            .iter()
            .map(|k| esc(&k.kind).chars().count())
            .max()
            .unwrap_or(0)
            .max(22);
        writeln!(
            w,
            "{:<width$} {:<14} {:>8} {:>8} {:>8}",
            "letter kind", "recipient", "expected", "captured", "baseline"
        )?;
        for k in &rows {
            let short = k.captured < k.expected;
            let captured = format!("{:>8}", k.captured);
            writeln!(
                w,
                "{:<width$} {:<14} {:>8} {} {:>8}",
                esc(&k.kind),
                esc(&k.recipient),
                k.expected,
                if short {
                    self.paint(&captured, RED)
                } else {
                    captured
                },
                k.baseline
            )?;
        }
        Ok(())
    }

    /// Every finding of one severity under a coloured heading; nothing when there is none.
    fn findings_of(
        &self,
        w: &mut dyn Write,
        report: &RunReport,
        severity: Severity,
        colour: &str,
    ) -> io::Result<()> {
        let found: Vec<(&str, &str)> = report
            .scenarios
            .iter()
            .flat_map(|s| {
                s.findings
                    .iter()
                    .filter(|f| f.severity == severity)
                    .map(move |f| (s.id.as_str(), f.text.as_str()))
            })
            .collect();
        if found.is_empty() {
            return Ok(());
        }
        writeln!(w)?;
        writeln!(
            w,
            "{}",
            self.paint(
                &format!("{} ({})", severity.name().to_uppercase(), found.len()),
                &format!("{BOLD};{colour}")
            )
        )?;
        for (id, text) in found {
            writeln!(w, "  {}: {}", esc(id), esc(text))?;
        }
        Ok(())
    }

    /// A scenario that did not pass: its error, its diffs, and, when it ran here (`local`),
    /// where its new snapshot and captured messages are.
    fn not_passed(
        &self,
        w: &mut dyn Write,
        s: &ScenarioReport,
        local: Option<&Outcome>,
    ) -> io::Result<()> {
        writeln!(w)?;
        writeln!(w, "--- {} ({})", esc(&s.id), esc(&s.path))?;
        writeln!(w, "    {}", esc(&s.name))?;
        if let Some(e) = &s.error {
            writeln!(w, "  error: {}", esc(e))?;
        }
        if let Some(c) = &s.clock {
            writeln!(w, "  clinical time: clock {c}")?;
        }
        for diff in s.findings.iter().filter_map(|f| f.diff.as_deref()) {
            for line in escape_controls_keeping_lines(diff).lines() {
                let painted = match line.chars().next() {
                    Some('+') if !line.starts_with("+++") => self.paint(line, GREEN),
                    Some('-') if !line.starts_with("---") => self.paint(line, RED),
                    _ => line.to_string(),
                };
                writeln!(w, "      {painted}")?;
            }
        }
        if let Some(p) = local.and_then(|o| o.pending_snapshot.as_ref()) {
            writeln!(
                w,
                "  new snapshot written to {} (review it, then `lettergate accept`)",
                esc(&p.display().to_string())
            )?;
        }
        if let Some(o) = local.filter(|o| o.verdict == Verdict::Fail) {
            writeln!(
                w,
                "  captured messages: {}",
                esc(&o.capture_dir.display().to_string())
            )?;
        }
        Ok(())
    }

    /// The counts line and the decision with its reason.
    fn verdict(&self, w: &mut dyn Write, report: &RunReport) -> io::Result<()> {
        let c = report.counts();
        writeln!(w)?;
        writeln!(
            w,
            "{}: {} passed, {} failed, {} could not run; {} captured; {} blocker, {} major, {} review",
            plural(c.scenarios, "scenario", "scenarios"),
            c.passed,
            c.failed,
            c.errors,
            plural(c.letters, "letter", "letters"),
            c.blocker,
            c.major,
            c.review
        )?;
        let decision = report.decision();
        let colour = match decision {
            Decision::Go => GREEN,
            Decision::Review => CYAN,
            Decision::NoGo => RED,
            Decision::Incomplete => MAGENTA,
        };
        let label = self.paint(decision.label(), &format!("{BOLD};{colour}"));
        let tail = if decision == Decision::Incomplete {
            "; this is not a pass"
        } else {
            ""
        };
        writeln!(w, "{label}: {}{tail}", esc(&report.reason()))
    }
}
