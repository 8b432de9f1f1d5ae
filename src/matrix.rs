//! The detection matrix: every simulator profile run against every scenario, and what was
//! found ([`Matrix`]). It shows that each fault profile is caught by at least one scenario
//! with the right finding, and that `baseline` is clean.

use crate::expect::Finding;
use crate::protocol::ids::Identifiers;
use crate::run::{run_all, Outcome, RunConfig, Verdict};
use crate::scenario::Scenario;
use crate::sim::profile::PROFILES;
use crate::sim::SimConfig;
use crate::snapshot::{SnapshotMode, SnapshotStore};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

/// Codes for the matrix cells, in the order they are shown within a cell.
const KEY: &[(char, &str)] = &[
    ('M', "missing letter"),
    ('R', "wrong recipient"),
    ('W', "wrong workflow or ITK3 event"),
    ('T', "wrong transport"),
    ('L', "late"),
    ('Y', "wrong date"),
    ('D', "duplicate"),
    ('X', "letter to a deceased patient"),
    ('P', "MESH report"),
    ('A', "acknowledgement problem"),
    ('U', "unexpected letter"),
    ('F', "refused by the endpoint"),
    ('?', "unreadable letter"),
    ('C', "content changed"),
    ('N', "no accepted snapshot"),
    ('E', "harness error"),
];

/// The one-letter code of a finding.
pub fn code(f: &Finding) -> char {
    match f {
        Finding::MissingLetter { .. } => 'M',
        Finding::WrongRecipient { .. } | Finding::RecipientsDisagree { .. } => 'R',
        Finding::WrongWorkflow { .. } | Finding::WrongEventCode { .. } => 'W',
        Finding::WrongTransport { .. } => 'T',
        Finding::Late { .. } => 'L',
        Finding::WrongDate { .. } => 'Y',
        Finding::Duplicate { .. } => 'D',
        Finding::LetterToDeceased { .. } => 'X',
        Finding::ReportReceived { .. } => 'P',
        Finding::MissingAck { .. }
        | Finding::NegativeAck { .. }
        | Finding::WrongBusinessAck { .. }
        | Finding::AckNotCollected { .. } => 'A',
        // No simulator profile replays letters; a replayed one is a letter nobody sent now.
        Finding::UnexpectedLetter { .. }
        | Finding::UnmatchedLetter { .. }
        | Finding::ReplayedLetter { .. } => 'U',
        Finding::Refused { .. } => 'F',
        // No simulator profile sends these; they share the code of a letter read badly.
        Finding::Unreadable { .. } | Finding::NonConformant { .. } | Finding::NotFinal { .. } => {
            '?'
        }
        Finding::ContentChanged { .. } => 'C',
        Finding::NewSnapshot { .. } => 'N',
    }
}

/// Every profile's outcomes, in the order of [`PROFILES`] and of the scenarios.
pub struct Matrix {
    pub scenarios: Vec<String>,
    pub rows: Vec<(String, Vec<Outcome>)>,
}

/// Runs `scenarios` under every profile, comparing with `snapshots` and writing nothing there.
pub async fn build(
    scenarios: Vec<Arc<Scenario>>,
    snapshots: &Path,
    work_dir: &Path,
    jobs: usize,
) -> Matrix {
    let mut rows = Vec::new();
    for p in PROFILES {
        let sim = SimConfig::named(p.name).unwrap_or_else(|_| SimConfig::baseline());
        let mut config = RunConfig::new(
            sim,
            SnapshotStore::new(snapshots, "simulator"),
            work_dir.join(p.name),
        );
        config.mode = SnapshotMode::Check;
        config.jobs = jobs;
        rows.push((
            p.name.to_string(),
            run_all(&scenarios, config, |_| {}).await,
        ));
    }
    Matrix {
        scenarios: scenarios.iter().map(|s| s.id.clone()).collect(),
        rows,
    }
}

fn cell(o: &Outcome) -> String {
    if o.verdict == Verdict::Error {
        return "E".into();
    }
    let found: Vec<char> = o.findings.iter().map(|f| code(f)).collect();
    let text: String = KEY
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| found.contains(c))
        .collect();
    if text.is_empty() {
        ".".into()
    } else {
        text
    }
}

/// The finding that best names what went wrong: anything before a snapshot difference.
fn headline(o: &Outcome, identifiers: Identifiers) -> String {
    if let Some(e) = &o.error {
        return format!("harness error: {e}");
    }
    let f = o
        .findings
        .iter()
        .find(|f| !matches!(f.finding, Finding::ContentChanged { .. }))
        .or(o.findings.first());
    f.map_or_else(|| "passed".into(), |f| f.describe(identifiers))
}

impl Matrix {
    /// True when every scenario passes on `baseline`.
    pub fn baseline_clean(&self) -> bool {
        self.rows
            .first()
            .is_some_and(|(_, outcomes)| outcomes.iter().all(|o| o.verdict == Verdict::Pass))
    }

    /// Fault profiles that no scenario fails on.
    pub fn uncaught(&self) -> Vec<&str> {
        self.rows
            .iter()
            .skip(1)
            .filter(|(_, outcomes)| outcomes.iter().all(|o| o.verdict != Verdict::Fail))
            .map(|(p, _)| p.as_str())
            .collect()
    }

    pub fn any_error(&self) -> bool {
        self.rows
            .iter()
            .flat_map(|(_, o)| o)
            .any(|o| o.verdict == Verdict::Error)
    }

    /// Writes the matrix, its key, and what each fault profile was caught by.
    pub fn render(&self, w: &mut dyn Write, identifiers: Identifiers) -> io::Result<()> {
        writeln!(
            w,
            "detection matrix: {} profiles x {} scenarios on the built-in simulator (snapshots compared, none written)",
            self.rows.len(),
            self.scenarios.len()
        )?;
        writeln!(w)?;
        for (i, s) in self.scenarios.iter().enumerate() {
            writeln!(w, "  S{:<3} {s}", i + 1)?;
        }
        writeln!(w)?;
        let name_w = self.table(w)?;
        writeln!(w)?;
        let key: Vec<String> = std::iter::once(". pass".to_string())
            .chain(KEY.iter().map(|(c, what)| format!("{c} {what}")))
            .collect();
        writeln!(w, "key: {}", key.join(", "))?;
        writeln!(w)?;
        self.caught_by(w, name_w, identifiers)?;
        writeln!(w)?;
        self.result(w)
    }

    /// The table of profiles by scenarios; returns the width of its first column.
    fn table(&self, w: &mut dyn Write) -> io::Result<usize> {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|(_, o)| o.iter().map(cell).collect())
            .collect();
        let name_w = self
            .rows
            .iter()
            .map(|(p, _)| p.len())
            .max()
            .unwrap_or(7)
            .max(7);
        let col_w = cells
            .iter()
            .flatten()
            .map(String::len)
            .chain([format!("S{}", self.scenarios.len()).len()])
            .max()
            .unwrap_or(3);
        let mut header = format!("{:<name_w$}", "profile");
        for i in 0..self.scenarios.len() {
            header.push_str(&format!("  {:<col_w$}", format!("S{}", i + 1)));
        }
        writeln!(w, "{}", header.trim_end())?;
        for ((p, _), row) in self.rows.iter().zip(&cells) {
            let mut line = format!("{p:<name_w$}");
            for c in row {
                line.push_str(&format!("  {c:<col_w$}"));
            }
            writeln!(w, "{}", line.trim_end())?;
        }
        Ok(name_w)
    }

    /// The first failing scenario of each fault profile, and what it found.
    fn caught_by(
        &self,
        w: &mut dyn Write,
        name_w: usize,
        identifiers: Identifiers,
    ) -> io::Result<()> {
        writeln!(
            w,
            "caught by (the first failing scenario of each fault profile):"
        )?;
        for (p, outcomes) in self.rows.iter().skip(1) {
            match outcomes.iter().position(|o| o.verdict != Verdict::Pass) {
                Some(i) => writeln!(
                    w,
                    "  {p:<name_w$}  S{} {}: {}",
                    i + 1,
                    self.scenarios[i],
                    headline(&outcomes[i], identifiers)
                )?,
                None => writeln!(w, "  {p:<name_w$}  NOT CAUGHT by any scenario")?,
            }
        }
        Ok(())
    }

    fn result(&self, w: &mut dyn Write) -> io::Result<()> {
        let uncaught = self.uncaught();
        match (self.baseline_clean(), uncaught.is_empty()) {
            (true, true) => writeln!(
                w,
                "result: baseline is clean and every fault profile is caught"
            ),
            (clean, _) => writeln!(
                w,
                "result: {}{}",
                if clean { "" } else { "baseline is NOT clean; " },
                if uncaught.is_empty() {
                    "every fault profile is caught".to_string()
                } else {
                    format!("not caught: {}", uncaught.join(", "))
                }
            ),
        }
    }
}
