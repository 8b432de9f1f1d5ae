//! [`SnapshotStore`]: accepted snapshots in `snapshots/<target>/<scenario id>.snap`, pending
//! ones beside them as `.snap.new`, both in insta's format (a YAML header that starts with
//! `source:`, a `---` line, then the body) so `cargo insta review` can read them too.
//!
//! A changed or new result is written as `.snap.new`, never over the `.snap`; only an explicit
//! accept writes a `.snap`. Every write goes through [`crate::files::write`] (a random
//! temporary file renamed into place), so a failed run never leaves a half-written snapshot.

use crate::files::Links;
use similar::TextDiff;
use std::path::{Path, PathBuf};

/// What a run may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Write `.snap.new` for a new or changed snapshot (the default).
    New,
    /// Record the result as the accepted `.snap` (`run --accept`).
    Accept,
    /// Write nothing (`run --check`, for CI).
    Check,
}

/// The result of comparing a rendering with the accepted snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    Matches,
    /// No accepted snapshot exists.
    New,
    /// The accepted snapshot differs; `letters` names the letter blocks that changed.
    Changed {
        diff: String,
        letters: Vec<String>,
    },
}

#[derive(Clone, Debug)]
pub struct SnapshotStore {
    pub root: PathBuf,
    pub target: String,
}

impl SnapshotStore {
    pub fn new(root: impl Into<PathBuf>, target: impl Into<String>) -> SnapshotStore {
        SnapshotStore {
            root: root.into(),
            target: target.into(),
        }
    }

    pub fn path(&self, scenario_id: &str) -> PathBuf {
        self.root
            .join(&self.target)
            .join(format!("{scenario_id}.snap"))
    }

    pub fn pending_path(&self, scenario_id: &str) -> PathBuf {
        new_path(&self.path(scenario_id))
    }

    /// The body of the accepted snapshot of `scenario_id`, if there is one.
    pub fn accepted_body(&self, scenario_id: &str) -> std::io::Result<Option<String>> {
        match crate::files::read_regular_to_string(&self.path(scenario_id), Links::Follow) {
            Ok(text) => Ok(Some(body_of(&unix_lines(&text)).to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Compares `body` with the accepted snapshot of `scenario_id`.
    pub fn compare(&self, scenario_id: &str, body: &str) -> std::io::Result<Comparison> {
        Ok(compare_bodies(
            self.accepted_body(scenario_id)?.as_deref(),
            body,
        ))
    }

    /// Writes `body` as the pending `.snap.new` of a scenario.
    pub fn write_pending(
        &self,
        scenario_id: &str,
        source: &Path,
        description: &str,
        body: &str,
    ) -> std::io::Result<PathBuf> {
        let path = self.pending_path(scenario_id);
        crate::files::write(
            &path,
            file_text(source, description, &self.target, body).as_bytes(),
        )?;
        Ok(path)
    }

    /// Writes `body` as the accepted `.snap` and removes any pending one.
    pub fn write_accepted(
        &self,
        scenario_id: &str,
        source: &Path,
        description: &str,
        body: &str,
    ) -> std::io::Result<PathBuf> {
        let path = self.path(scenario_id);
        crate::files::write(
            &path,
            file_text(source, description, &self.target, body).as_bytes(),
        )?;
        remove_if_present(&self.pending_path(scenario_id))?;
        Ok(path)
    }

    /// Removes a stale `.snap.new` once the result matches the accepted snapshot again.
    pub fn clear_pending(&self, scenario_id: &str) -> std::io::Result<()> {
        remove_if_present(&self.pending_path(scenario_id))
    }
}

/// Compares a rendering with an accepted body already read (`None`: there is none).
pub fn compare_bodies(old: Option<&str>, body: &str) -> Comparison {
    let Some(old) = old else {
        return Comparison::New;
    };
    if old.trim_end() == body.trim_end() {
        return Comparison::Matches;
    }
    // A whole-text diff keeps true line numbers; past a size it stops scaling, and then
    // only the letters that changed are diffed.
    let diff = if old.len() + body.len() > LARGE {
        diff_by_letter(old, body)
    } else {
        diff(old, body)
    };
    Comparison::Changed {
        diff,
        letters: changed_letters(old, body),
    }
}

/// `x.snap` -> `x.snap.new`.
pub fn new_path(snap: &Path) -> PathBuf {
    let mut s = snap.as_os_str().to_os_string();
    s.push(".new");
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn yaml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn file_text(source: &Path, description: &str, target: &str, body: &str) -> String {
    format!(
        "---\nsource: {}\ndescription: {}\nexpression: {}\n---\n{}\n",
        yaml_string(&source.to_string_lossy().replace('\\', "/")),
        yaml_string(description),
        yaml_string(&format!("target {target}")),
        body.trim_end()
    )
}

/// A snapshot's text with CRLF line endings read as LF: a `.snap` checked out on Windows
/// (git's `core.autocrlf`) or saved by an editor that way says the same as it did.
pub fn unix_lines(text: &str) -> std::borrow::Cow<'_, str> {
    match text.contains("\r\n") {
        true => std::borrow::Cow::Owned(text.replace("\r\n", "\n")),
        false => std::borrow::Cow::Borrowed(text),
    }
}

/// The body of a snapshot file: everything after the header's closing `---` line.
pub fn body_of(text: &str) -> &str {
    let text = text.strip_prefix("---\n").unwrap_or(text);
    match text.find("\n---\n") {
        Some(i) => &text[i + 5..],
        None => text,
    }
}

/// A unified diff, accepted (`-`) against captured (`+`), with three lines of context.
pub fn diff(old: &str, new: &str) -> String {
    TextDiff::configure()
        .algorithm(similar::Algorithm::Patience)
        .timeout(std::time::Duration::from_millis(500))
        .diff_lines(
            &format!("{}\n", old.trim_end()),
            &format!("{}\n", new.trim_end()),
        )
        .unified_diff()
        .context_radius(3)
        .header("accepted", "captured")
        .to_string()
}

/// Snapshots larger than this (bytes, both sides) are diffed letter by letter.
const LARGE: usize = 2_000_000;

/// Splits a snapshot body into its header and its letter blocks, keyed by what each letter
/// is (kind and patient, and which of several such), as [`changed_letters`] matches them.
fn keyed_blocks(t: &str) -> (&str, Vec<(String, &str)>) {
    let mut parts = t.split("\n\n");
    let header = parts.next().unwrap_or("");
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let blocks = parts
        .map(|b| {
            let first = b.lines().next().unwrap_or("");
            let what = first.split_once(": ").map_or(first, |(_, w)| w);
            let what = what.rsplit_once(" to ").map_or(what, |(w, _)| w);
            let n = seen.entry(what.to_string()).or_default();
            *n += 1;
            (format!("{what}#{n}"), b.trim_end())
        })
        .collect();
    (header, blocks)
}

/// A unified diff of only the header and the letters that differ, each letter's hunks
/// numbered within that letter.
fn diff_by_letter(old: &str, new: &str) -> String {
    let (old_header, a) = keyed_blocks(old);
    let (new_header, b) = keyed_blocks(new);
    let in_a: std::collections::HashMap<&str, &str> =
        a.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let in_b: std::collections::HashSet<&str> = b.iter().map(|(k, _)| k.as_str()).collect();
    let hunks = |x: &str, y: &str| -> String {
        TextDiff::configure()
            .algorithm(similar::Algorithm::Patience)
            .diff_lines(&format!("{x}\n"), &format!("{y}\n"))
            .unified_diff()
            .context_radius(3)
            .to_string()
    };
    let mut out = String::from("--- accepted\n+++ captured\n");
    if old_header != new_header {
        out.push_str(&hunks(old_header, new_header));
    }
    for (key, block) in &b {
        match in_a.get(key.as_str()) {
            Some(x) if without_seq(x) == without_seq(block) => {}
            Some(x) => out.push_str(&hunks(x, block)),
            None => out.push_str(&hunks("", block)),
        }
    }
    for (key, block) in &a {
        if !in_b.contains(key.as_str()) {
            out.push_str(&hunks(block, ""));
        }
    }
    out
}

/// The letter blocks that differ, named by their header line. Blocks are matched by what the
/// letter is (kind, patient, and which of several such it is), not by position, so
/// one letter that is no longer sent does not make every later one look changed.
fn changed_letters(old: &str, new: &str) -> Vec<String> {
    fn blocks(t: &str) -> Vec<(String, String)> {
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        t.split("\n\n")
            .skip(1)
            .map(|b| {
                let header = first_line(b);
                // `letter 3: clinic_letter for alice to A81001` -> `clinic_letter for alice`: the
                // recipient is a property of the letter that can change, not its identity.
                let what = header
                    .split_once(": ")
                    .map_or(header.clone(), |(_, w)| w.to_string());
                let what = what
                    .rsplit_once(" to ")
                    .map_or(what.clone(), |(w, _)| w.to_string());
                let n = seen.entry(what.clone()).or_default();
                *n += 1;
                (format!("{what}#{n}"), b.trim_end().to_string())
            })
            .collect()
    }
    let (a, b) = (blocks(old), blocks(new));
    let in_a: std::collections::HashMap<&str, &str> =
        a.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let in_b: std::collections::HashSet<&str> = b.iter().map(|(k, _)| k.as_str()).collect();
    let mut names = Vec::new();
    for (key, block) in &b {
        match in_a.get(key.as_str()) {
            None => names.push(format!("{} (newly sent)", first_line(block))),
            Some(x) if without_seq(x) != without_seq(block) => names.push(format!(
                "{} (changed: {})",
                first_line(block),
                changed_fields(x, block)
            )),
            Some(_) => {}
        }
    }
    for (key, block) in &a {
        if !in_b.contains(key.as_str()) {
            names.push(format!("{} (no longer sent)", first_line(block)));
        }
    }
    if names.is_empty() {
        names.push("the scenario header".into());
    }
    names
}

/// A block without its `letter N:` number and message id, which shift when letters come
/// and go.
fn without_seq(block: &str) -> String {
    block
        .lines()
        .enumerate()
        .filter(|(i, l)| *i > 0 && !l.trim_start().starts_with("message_id: "))
        .map(|(_, l)| l)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names of the `  name: value` lines that differ between two letter blocks, such as
/// `section Medications`, in the order they first appear.
fn changed_fields(a: &str, b: &str) -> String {
    let fields = |t: &str| -> Vec<(String, String)> {
        t.lines()
            .skip(1)
            .filter_map(|l| {
                l.trim()
                    .split_once(": ")
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    };
    let (fa, fb) = (fields(a), fields(b));
    let mut names: Vec<String> = Vec::new();
    for (k, v) in fa.iter().chain(fb.iter()) {
        let in_a = fa.iter().any(|(ka, va)| ka == k && va == v);
        let in_b = fb.iter().any(|(kb, vb)| kb == k && vb == v);
        let same = in_a && in_b;
        if !same && !names.contains(k) {
            names.push(k.clone());
        }
    }
    names.join(", ")
}

fn first_line(block: &str) -> String {
    block.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_result_is_written_beside_the_snapshot_never_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), "simulator");
        let body = "scenario: x\nletters: 1\n\nletter 1: clinic_letter for alice to A81001\n  recipient_ods: A81001";
        store
            .write_accepted("a/b", Path::new("scenarios/a/b.yaml"), "x", body)
            .unwrap();
        assert_eq!(store.compare("a/b", body).unwrap(), Comparison::Matches);
        let changed = body.replace("A81001", "B82002");
        let Comparison::Changed { diff, letters } = store.compare("a/b", &changed).unwrap() else {
            panic!("expected a change")
        };
        assert!(diff.contains("-  recipient_ods: A81001\n"), "{diff}");
        assert!(diff.contains("+  recipient_ods: B82002\n"), "{diff}");
        assert!(!diff.contains("No newline"), "{diff}");
        assert_eq!(
            letters,
            vec![
                "letter 1: clinic_letter for alice to B82002 (changed: recipient_ods)".to_string()
            ]
        );
        let before = std::fs::read_to_string(store.path("a/b")).unwrap();
        store
            .write_pending("a/b", Path::new("scenarios/a/b.yaml"), "x", &changed)
            .unwrap();
        assert_eq!(std::fs::read_to_string(store.path("a/b")).unwrap(), before);
        assert!(store.pending_path("a/b").exists());
    }

    #[test]
    fn a_letter_no_longer_sent_is_named_without_blaming_the_letters_after_it() {
        let old = "scenario: x\nletters: 2\n\nletter 1: clinic_letter for alice to A81001\n  transport: mesh\n\nletter 2: patient_copy for alice to the patient\n  transport: http\n  message_id: HTTP-000002";
        let new = "scenario: x\nletters: 1\n\nletter 1: patient_copy for alice to the patient\n  transport: http\n  message_id: HTTP-000001";
        assert_eq!(
            changed_letters(old, new),
            vec!["letter 1: clinic_letter for alice to A81001 (no longer sent)".to_string()]
        );
    }

    #[test]
    fn a_large_snapshot_is_diffed_letter_by_letter() {
        let block = |i: u32, ods: &str| {
            format!("letter {i}: clinic_letter for p{i} to {ods}\n  recipient_ods: {ods}\n  digest: {i:016x}")
        };
        let body = |changed: u32| {
            let mut s = String::from("scenario: big\nletters: 30000");
            for i in 1..=30_000 {
                s.push_str("\n\n");
                s.push_str(&block(i, if i == changed { "B82002" } else { "A81001" }));
            }
            s
        };
        let (old, new) = (body(0), body(17));
        assert!(old.len() + new.len() > LARGE);
        let d = diff_by_letter(&old, &new);
        assert!(d.starts_with("--- accepted\n+++ captured\n"), "{d}");
        for line in [
            "-letter 17: clinic_letter for p17 to A81001\n",
            "+letter 17: clinic_letter for p17 to B82002\n",
            "-  recipient_ods: A81001\n",
            "+  recipient_ods: B82002\n",
        ] {
            assert!(d.contains(line), "{line} in {d}");
        }
        assert_eq!(
            d.lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count(),
            2,
            "{d}"
        );
    }

    #[test]
    fn snapshot_files_use_the_insta_header() {
        let text = file_text(Path::new("scenarios/a.yaml"), "desc", "simulator", "body\n");
        assert!(
            text.starts_with("---\nsource: \"scenarios/a.yaml\"\n"),
            "{text}"
        );
        assert_eq!(body_of(&text), "body\n");
    }

    #[test]
    fn a_snapshot_with_crlf_line_endings_matches_as_it_does_with_lf() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), "simulator");
        let body = "letter 1: clinic_letter for alice to A81001\n  recipient_ods: A81001\n";
        store
            .write_accepted("a", Path::new("a.yaml"), "d", body)
            .unwrap();
        let crlf = std::fs::read_to_string(store.path("a"))
            .unwrap()
            .replace('\n', "\r\n");
        std::fs::write(store.path("a"), crlf).unwrap();
        assert_eq!(store.compare("a", body).unwrap(), Comparison::Matches);
    }

    #[test]
    fn a_missing_snapshot_compares_as_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path(), "simulator");
        assert_eq!(store.compare("none", "x").unwrap(), Comparison::New);
    }
}
