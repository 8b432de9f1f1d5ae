//! Finding and loading scenario files: [`Loader`] turns paths into checked [`Scenario`]s or
//! [`Diagnostic`]s. YAML stays behind this module.

use super::diagnostic::{suggest_from_serde_message, Diagnostic};
use super::file::RawPracticeStatus;
use super::file::{
    with_context, Checked, LoadContext, RawFixtures, RawPatient, RawPractice, RawScenario,
};
use super::model::{Event, Expectation, Patient, Practice, PracticeStatus, Recipient, Scenario};
use crate::files::Links;
use crate::protocol::clock::{Span, Timestamp};
use crate::protocol::letter::{EventKind, Signs, Transport};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

/// Where a scenario starts when it gives neither `start:` nor a first `at:` (a Monday).
pub const DEFAULT_START: Timestamp = Timestamp(1_736_154_000); // 2025-01-06T09:00:00Z
/// How long after the last event the run keeps collecting letters, unless `observe_for:`.
pub const DEFAULT_OBSERVE_FOR: Span = Span::days(28);

/// Practices and patients a file can refer to, gathered from it and its includes.
#[derive(Default, Clone, Debug)]
struct Fixtures {
    practices: BTreeMap<String, Practice>,
    patients: BTreeMap<String, Patient>,
}

/// Scenario and fixture files found under some paths.
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    pub scenarios: Vec<PathBuf>,
    pub fixtures: Vec<PathBuf>,
    /// The suite root each scenario's id is taken below (see [`suite_root`]).
    pub roots: BTreeMap<PathBuf, PathBuf>,
}

/// Finds `*.yaml` and `*.yml` files under `paths`, sorted; those below a `fixtures` folder
/// are fixture files, the rest scenarios. A path that does not exist is a diagnostic, and so
/// is a file that is a link to one outside its suite folder ([`suite_root`]). The walk reads
/// only regular files: it skips FIFOs, sockets and devices, and enters a folder reached twice
/// (a link back up the tree) once.
pub fn discover(paths: &[PathBuf]) -> Result<Discovered, Diagnostic> {
    let mut found = Discovered::default();
    for path in paths {
        let root = suite_root(path);
        if path.is_dir() {
            let files = crate::files::walk(path, &|p| {
                matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
            })
            .map_err(|e| Diagnostic::new(path, format!("failed to read directory: {e}")))?;
            for p in files {
                inside_suite(&root, &p)?;
                push(p, &root, &mut found);
            }
        } else if path.is_file() {
            inside_suite(&root, path)?;
            push(path.clone(), &root, &mut found);
        } else if path.exists() {
            return Err(Diagnostic::new(
                path,
                "is not a regular file or a folder (a FIFO, socket or device)",
            )
            .with_help(Some(
                "give a scenario file or a folder of them, such as `scenarios/`".into(),
            )));
        } else {
            return Err(
                Diagnostic::new(path, "no such file or directory").with_help(Some(
                    "give a scenario file or a folder of them, such as `scenarios/`".into(),
                )),
            );
        }
    }
    found.scenarios.sort();
    found.scenarios.dedup();
    found.fixtures.sort();
    found.fixtures.dedup();
    Ok(found)
}

/// Refuses a scenario or fixture file that resolves (through a symbolic link) to a file
/// outside the suite folder `root`; the file is not read.
fn inside_suite(root: &Path, p: &Path) -> Result<(), Diagnostic> {
    if is_inside(root, p) {
        return Ok(());
    }
    Err(Diagnostic::new(
        p,
        format!(
            "is a link to a file outside the suite folder {}; it was not read",
            display_root(root)
        ),
    )
    .with_help(Some(
        "copy the file into the suite, or give its own folder on the command line".into(),
    )))
}

/// Whether `p` (which exists) resolves to a place inside the folder tree `root`.
fn is_inside(root: &Path, p: &Path) -> bool {
    let root = std::fs::canonicalize(if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    });
    match (root, std::fs::canonicalize(p)) {
        (Ok(root), Ok(p)) => p.starts_with(root),
        _ => false,
    }
}

fn display_root(root: &Path) -> String {
    match root.as_os_str().is_empty() {
        true => ".".into(),
        false => root.display().to_string(),
    }
}

fn push(p: PathBuf, root: &Path, found: &mut Discovered) {
    if p.components().any(|c| c.as_os_str() == "fixtures") {
        found.fixtures.push(p);
    } else {
        // The first path given that reaches a scenario names it.
        found
            .roots
            .entry(p.clone())
            .or_insert_with(|| root.to_path_buf());
        found.scenarios.push(p);
    }
}

/// The folder the ids of the scenarios under `given` (a folder or a file given on the command
/// line) are taken below: the nearest folder, from `given` up, that holds a `fixtures` folder
/// (a suite keeps its shared fixtures at its root, as `scenarios/fixtures/` does); failing
/// that, `given` itself, or the folder of a file given.
///
/// Why not a folder's name: a trust's suite may live in any folder, and its ids (and so its
/// snapshots' names) must not change when the folder is renamed or moved.
pub fn suite_root(given: &Path) -> PathBuf {
    let is_file = given.is_file()
        || matches!(
            given.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml")
        );
    let start = match is_file {
        true => given.parent().unwrap_or(Path::new("")),
        false => given,
    };
    let holds_fixtures = |dir: &Path| {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        dir.join("fixtures").is_dir()
    };
    start
        .ancestors()
        .find(|dir| holds_fixtures(dir))
        .unwrap_or(start)
        .to_path_buf()
}

/// The stable id of a scenario file: its path below its suite root ([`suite_root`] of the
/// file), without extension (`death/in_hospital`).
pub fn scenario_id(path: &Path) -> String {
    scenario_id_below(&suite_root(path), path)
}

/// The id of the scenario file at `path` below `root`, `/`-separated, without extension; its
/// file stem when it is not below `root`.
pub fn scenario_id_below(root: &Path, path: &Path) -> String {
    let below = lexical(path);
    let below = below
        .strip_prefix(lexical(root))
        .ok()
        .filter(|b| !b.as_os_str().is_empty())
        .map_or_else(
            || below.file_name().map(PathBuf::from).unwrap_or_default(),
            Path::to_path_buf,
        );
    let mut id: Vec<String> = below
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = id.last_mut() {
        if let Some(stem) = Path::new(last.as_str()).file_stem() {
            *last = stem.to_string_lossy().into_owned();
        }
    }
    id.join("/")
}

/// Loads files, reading each fixture file once however many scenarios include it.
#[derive(Default)]
pub struct Loader {
    /// Each fixture file's result, good or bad, so a broken one is read and reported once,
    /// by the names the other fixture files of its scenario give it (see [`Shared`]).
    cache: HashMap<(PathBuf, PathBuf, Shared), Result<Fixtures, Diagnostic>>,
    /// The fixture files read for a scenario, which need no check on their own.
    included: BTreeSet<PathBuf>,
}

/// The practices and patients every fixture file a scenario includes (directly or through
/// another fixture file) defines. Each of those files may refer to any of them, so a file of
/// patients can use the practices of a file of practices included beside it.
#[derive(Default, Clone, Debug, PartialEq, Eq, Hash)]
struct Shared {
    practices: BTreeSet<String>,
    patients: BTreeSet<String>,
}

/// `a/b/../c` -> `a/c`, without touching the file system, so every scenario names an included
/// file the same way.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The names a file defines itself, read before the typed pass so references can be checked.
struct Prepass {
    practices: BTreeSet<String>,
    patients: BTreeSet<String>,
    include: Vec<String>,
    start: Option<Timestamp>,
}

impl Loader {
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Loads and checks one scenario file; its id is its path below its [`suite_root`].
    pub fn load_scenario(&mut self, path: &Path) -> Result<Scenario, Diagnostic> {
        self.load_scenario_below(&suite_root(path), path)
    }

    /// Loads and checks one scenario file, its id taken below `root`.
    pub fn load_scenario_below(
        &mut self,
        root: &Path,
        path: &Path,
    ) -> Result<Scenario, Diagnostic> {
        let text = read(path)?;
        let pre = prepass(path, &text)?;
        let mut shared = Shared::default();
        shared_names(root, path, &pre.include, &mut shared, &mut BTreeSet::new());
        let included = self.load_includes(root, path, &text, &pre.include, &mut vec![], &shared);
        // Good or bad, these files were checked (and reported) as this scenario's.
        self.included
            .extend(self.cache.keys().map(|(k, _, _)| k.clone()));
        let included = included?;
        let start = pre.start.unwrap_or(DEFAULT_START);
        let ctx = LoadContext {
            practices: included
                .practices
                .keys()
                .cloned()
                .chain(pre.practices)
                .collect(),
            patients: included
                .patients
                .keys()
                .cloned()
                .chain(pre.patients)
                .collect(),
            start: Some(start),
            ..LoadContext::default()
        };
        let raw: RawScenario = with_context(ctx, || yaml_serde::from_str(&text))
            .map_err(|e| yaml_diagnostic(path, &text, &e))?;
        let mut raw = raw;
        let mut fixtures = included;
        let (practices, patients) = (
            std::mem::take(&mut raw.practices),
            std::mem::take(&mut raw.patients),
        );
        merge_local(path, &text, &mut fixtures, practices, patients)?;
        let id = scenario_id_below(root, path);
        build(path, &text, fixtures, raw, (id, start))
    }

    /// Loads and checks one fixture file (and what it includes) on its own.
    pub fn load_fixtures(&mut self, path: &Path) -> Result<(), Diagnostic> {
        self.fixture_file(&suite_root(path), path, &mut vec![], &Shared::default())
            .map(|_| ())
    }

    /// Whether a scenario loaded so far included the fixture file at `path`: it was checked
    /// with the names of the fixture files beside it, and needs no check on its own.
    pub fn was_included(&self, path: &Path) -> bool {
        self.included.contains(&canonical(path))
    }

    /// The practices a fixture file (and what it includes) defines.
    pub fn fixture_practices(
        &mut self,
        path: &Path,
    ) -> Result<BTreeMap<String, Practice>, Diagnostic> {
        self.fixture_file(&suite_root(path), path, &mut vec![], &Shared::default())
            .map(|f| f.practices)
    }

    fn fixture_file(
        &mut self,
        root: &Path,
        path: &Path,
        stack: &mut Vec<PathBuf>,
        shared: &Shared,
    ) -> Result<Fixtures, Diagnostic> {
        let key = canonical(path);
        let cache_key = (key.clone(), root.to_path_buf(), shared.clone());
        if let Some(f) = self.cache.get(&cache_key) {
            return f.clone();
        }
        if stack.contains(&key) {
            return Err(Diagnostic::new(
                path,
                "fixture files include each other in a loop",
            ));
        }
        stack.push(key.clone());
        let result = self.read_fixture_file(root, path, stack, shared);
        stack.pop();
        self.cache.insert(cache_key, result.clone());
        result
    }

    fn read_fixture_file(
        &mut self,
        root: &Path,
        path: &Path,
        stack: &mut Vec<PathBuf>,
        shared: &Shared,
    ) -> Result<Fixtures, Diagnostic> {
        let text = read(path)?;
        let pre = prepass(path, &text)?;
        let mut fixtures = self.load_includes(root, path, &text, &pre.include, stack, shared)?;
        let ctx = LoadContext {
            practices: fixtures
                .practices
                .keys()
                .cloned()
                .chain(pre.practices)
                .chain(shared.practices.iter().cloned())
                .collect(),
            patients: fixtures
                .patients
                .keys()
                .cloned()
                .chain(shared.patients.iter().cloned())
                .collect(),
            ..LoadContext::default()
        };
        let raw: RawFixtures = with_context(ctx, || yaml_serde::from_str(&text))
            .map_err(|e| yaml_diagnostic(path, &text, &e))?;
        merge_local(path, &text, &mut fixtures, raw.practices, raw.patients)?;
        Ok(fixtures)
    }

    /// The practices and patients of the files `include`d by the file at `path`, each of
    /// which must be a regular file inside the suite folder `root` (see [`confine`]).
    fn load_includes(
        &mut self,
        root: &Path,
        path: &Path,
        text: &str,
        include: &[String],
        stack: &mut Vec<PathBuf>,
        shared: &Shared,
    ) -> Result<Fixtures, Diagnostic> {
        let mut all = Fixtures::default();
        let dir = path.parent().unwrap_or(Path::new("."));
        for inc in include {
            let inc_path = lexical(&dir.join(inc));
            if let Err((message, help)) = confine(root, dir, inc, &inc_path) {
                let (line, col) = locate(text, inc).unwrap_or((1, 1));
                return Err(Diagnostic::new(path, message)
                    .at(text, line, col)
                    .with_help(Some(help)));
            }
            let f = self.fixture_file(root, &inc_path, stack, shared)?;
            for (k, v) in f.practices {
                all.practices.entry(k).or_insert(v);
            }
            for (k, v) in f.patients {
                all.patients.entry(k).or_insert(v);
            }
        }
        Ok(all)
    }
}

/// Whether the file `inc` (resolved from the including file's folder `dir` to `inc_path`) may
/// be read: a relative path to a regular file that is, links resolved, inside the suite
/// folder `root`. Otherwise the message and help of the diagnostic, which never show the
/// file's content: an include of `/proc/self/environ` or `../../../etc/passwd` is not read.
fn confine(root: &Path, dir: &Path, inc: &str, inc_path: &Path) -> Result<(), (String, String)> {
    let stay = format!(
        "include fixture files inside the suite folder ({}), with paths relative to this file's folder, such as `../fixtures/common.yaml`",
        display_root(root)
    );
    if Path::new(inc).is_absolute() || Path::new(inc).has_root() {
        return Err((
            format!("included file `{inc}` is an absolute path; it was not read"),
            stay,
        ));
    }
    let Ok(meta) = std::fs::metadata(inc_path) else {
        return Err((
            format!("included file `{inc}` does not exist"),
            format!(
                "paths are relative to this file's folder ({})",
                dir.display()
            ),
        ));
    };
    if !is_inside(root, inc_path) {
        return Err((
            format!("included file `{inc}` is outside the suite folder; it was not read"),
            stay,
        ));
    }
    if !meta.is_file() {
        return Err((
            format!("included file `{inc}` is not a regular file"),
            "include a fixture file (`*.yaml`), not a folder, FIFO or device".into(),
        ));
    }
    Ok(())
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Adds to `shared` the names the fixture files `include`d by the file at `path` define, and
/// those they include in turn. Files that cannot be read are left to the typed pass, which
/// reports them where they are named.
fn shared_names(
    root: &Path,
    path: &Path,
    include: &[String],
    shared: &mut Shared,
    seen: &mut BTreeSet<PathBuf>,
) {
    let dir = path.parent().unwrap_or(Path::new("."));
    for inc in include {
        let inc_path = lexical(&dir.join(inc));
        // What may not be included is not read here either; the typed pass reports it.
        if confine(root, dir, inc, &inc_path).is_err() || !seen.insert(canonical(&inc_path)) {
            continue;
        }
        let Ok(text) = crate::files::read_regular_to_string(&inc_path, Links::Follow) else {
            continue;
        };
        let Ok(pre) = prepass(&inc_path, &text) else {
            continue;
        };
        shared.practices.extend(pre.practices);
        shared.patients.extend(pre.patients);
        shared_names(root, &inc_path, &pre.include, shared, seen);
    }
}

/// Reads a scenario or fixture file; only a regular file is read (a FIFO is refused, not
/// waited on).
fn read(path: &Path) -> Result<String, Diagnostic> {
    crate::files::read_regular_to_string(path, Links::Follow)
        .map_err(|e| Diagnostic::new(path, format!("failed to read file: {e}")))
}

fn prepass(path: &Path, text: &str) -> Result<Prepass, Diagnostic> {
    let value: yaml_serde::Value =
        yaml_serde::from_str(text).map_err(|e| yaml_diagnostic(path, text, &e))?;
    let keys = |field: &str| -> BTreeSet<String> {
        value
            .get(field)
            .and_then(|v| v.as_mapping())
            .map(|m| {
                m.keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let include = value
        .get("include")
        .and_then(|v| v.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let start = value
        .get("start")
        .and_then(|v| v.as_str())
        .and_then(|s| Timestamp::parse(s).ok());
    // A scenario's own first `at:` is its start when it gives no `start:`.
    let first_at = value
        .get("timeline")
        .and_then(|t| t.as_sequence())
        .and_then(|s| s.first())
        .and_then(|e| e.get("at"))
        .and_then(|v| v.as_str())
        .and_then(|s| Timestamp::parse(s).ok());
    Ok(Prepass {
        practices: keys("practices"),
        patients: keys("patients"),
        include,
        start: start.or(first_at),
    })
}

/// How much of serde's message a diagnostic keeps, in characters.
const MESSAGE_MAX: usize = 300;

/// Converts a `yaml_serde` error into a diagnostic with position, source line and a hint.
/// A file that does not even begin like a YAML mapping (a `.env` file, `/etc/passwd`, a binary
/// file) is reported as that, showing at most its first line: serde's message would quote the
/// whole file back as one long string.
pub(crate) fn yaml_diagnostic(path: &Path, text: &str, err: &yaml_serde::Error) -> Diagnostic {
    if !looks_like_yaml_mapping(text) {
        return Diagnostic::new(path, "not a YAML file of keys and values (such as `name:`)")
            .at(text, 1, 1)
            .with_help(Some(
                "give a lettergate YAML file; only its first line is shown here".into(),
            ));
    }
    let full = err.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) if err.location().is_some() => full[..i].to_string(),
        _ => full,
    };
    // Reference errors carry their hint after "; " (see `unknown_name`); show it as help.
    let (message, hint) = match message.split_once("; ") {
        Some((m, h))
            if h.starts_with("did you mean") || h.starts_with("known ") || h.starts_with("no ") =>
        {
            (m.to_string(), Some(h.to_string()))
        }
        _ => (message, None),
    };
    let help = hint.or_else(|| suggest_from_serde_message(&message));
    // A value serde quotes back in full (`invalid type: string "…"`) is cut short.
    let message = crate::protocol::text::truncate(&message, MESSAGE_MAX).into_owned();
    let d = Diagnostic::new(path, message).with_help(help);
    match err.location() {
        Some(loc) => d.at(text, loc.line(), loc.column()),
        // A second document has no position of its own in the error: point at its `---`.
        None => match second_document(text) {
            Some(line) => d.at(text, line, 1).with_help(Some(
                "a lettergate file is one YAML document: remove this `---` and what follows, or move it to a file of its own".into(),
            )),
            None => d,
        },
    }
}

/// The line (from 1) of the `---` that starts a second YAML document, if there is one.
fn second_document(text: &str) -> Option<usize> {
    let content = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let first = text.lines().position(|l| content(&l))?;
    text.lines()
        .enumerate()
        .skip(first + 1)
        .find(|(_, l)| l.starts_with("---"))
        .map(|(i, _)| i + 1)
}

/// Whether the first line with something on it (not a comment) begins a YAML mapping: `key:`
/// followed by a space or the end of the line, a `{`, a `---` document start or a `%`
/// directive. An empty file counts as YAML (there is nothing to quote).
fn looks_like_yaml_mapping(text: &str) -> bool {
    let Some(first) = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
    else {
        return true;
    };
    if first.starts_with("---") || first.starts_with('%') || first.starts_with('{') {
        return true;
    }
    let key_end = first
        .find(": ")
        .or_else(|| first.strip_suffix(':').map(str::len));
    key_end.is_some_and(|i| {
        let key = first[..i].trim_matches(|c| c == '"' || c == '\'');
        !key.is_empty() && !key.chars().any(|c| c.is_control() || c == '=')
    })
}

/// The 1-based line and column of the first occurrence of `needle` in `text`.
pub(crate) fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    // Lines as YAML counts them, so that the position agrees with the parser's.
    super::diagnostic::lines(text)
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

/// Adds the practices and patients a file defines itself to those of its includes; a name
/// defined twice, or an NHS number given to two patients, is an error at the second one.
fn merge_local(
    path: &Path,
    text: &str,
    fixtures: &mut Fixtures,
    practices: BTreeMap<String, Checked<RawPractice>>,
    patients: BTreeMap<String, Checked<RawPatient>>,
) -> Result<(), Diagnostic> {
    let clash = |kind: &str, name: &str| {
        let (line, col) = locate(text, &format!("{name}:")).unwrap_or((1, 1));
        Diagnostic::new(
            path,
            format!("{kind} `{name}` is already defined in an included file"),
        )
        .at(text, line, col)
        .with_help(Some(format!("rename it, or use the included `{name}`")))
    };
    let mine: Vec<String> = practices.keys().cloned().collect();
    for (key, Checked(p)) in practices {
        if fixtures.practices.contains_key(&key) {
            return Err(clash("practice", &key));
        }
        if let Some(other) = fixtures.practices.values().find(|o| o.ods == p.ods) {
            let (line, col) = locate(text, &format!("{key}:")).unwrap_or((1, 1));
            return Err(Diagnostic::new(
                path,
                format!(
                    "practice `{key}` has the same ODS code {} as practice `{}`",
                    p.ods, other.key
                ),
            )
            .at(text, line, col)
            .with_help(Some(format!(
                "each practice has an ODS code of its own: correct one of them, or, if `{key}` is now a branch of `{}`, give it its old code and `merged_into: {}`",
                other.key, other.key
            ))));
        }
        fixtures.practices.insert(key.clone(), practice(key, p));
    }
    check_merges(path, text, fixtures, &mine)?;
    for (key, Checked(p)) in patients {
        if fixtures.patients.contains_key(&key) {
            return Err(clash("patient", &key));
        }
        if let Some(other) = fixtures
            .patients
            .values()
            .find(|o| o.nhs_number == p.nhs_number.0)
        {
            let (line, col) = locate(text, &format!("{key}:")).unwrap_or((1, 1));
            return Err(Diagnostic::new(
                path,
                format!("patient `{key}` has the same NHS number as `{}`", other.key),
            )
            .at(text, line, col));
        }
        let patient = Patient {
            key: key.clone(),
            nhs_number: p.nhs_number.0,
            name: p.name,
            born: p.born.0,
            practice: p.practice.0,
            previous_practice: p.previous_practice.map(|r| r.0),
            named_gp: p.named_gp,
        };
        fixtures.patients.insert(key, patient);
    }
    Ok(())
}

/// No practice of this file (`mine`) merged, through others, into itself: letters for it
/// would have nowhere to go. Checked when the file's practices join those it can see, so a
/// cycle is found in the file whose practice closes it.
fn check_merges(
    path: &Path,
    text: &str,
    fixtures: &Fixtures,
    mine: &[String],
) -> Result<(), Diagnostic> {
    for key in mine {
        let mut chain = vec![key.clone()];
        let mut at = key;
        while let Some(Practice {
            status: PracticeStatus::MergedInto(next),
            ..
        }) = fixtures.practices.get(at)
        {
            if next == key {
                chain.push(next.clone());
                let (line, col) = locate(text, &format!("{key}:"))
                    .and_then(|(l, _)| locate_from(text, l, "merged_into"))
                    .unwrap_or((1, 1));
                return Err(Diagnostic::new(
                    path,
                    format!(
                        "practice `{key}` is merged into itself: {}",
                        chain
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(" -> ")
                    ),
                )
                .at(text, line, col)
                .with_help(Some(
                    "a merge ends at an open practice: remove one `merged_into:` of the cycle"
                        .into(),
                )));
            }
            if chain.contains(next) {
                break; // a cycle that does not pass through `key`: found from one of its own
            }
            chain.push(next.clone());
            at = next;
        }
    }
    Ok(())
}

/// The line and column of the first `needle` at or after line `from` (1-based).
fn locate_from(text: &str, from: usize, needle: &str) -> Option<(usize, usize)> {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
}

/// A practice as written, with its default mailbox (`{ods}HC001`) and route (MESH).
fn practice(key: String, p: RawPractice) -> Practice {
    let mailbox = p.mailbox.map_or_else(|| format!("{}HC001", p.ods), |m| m.0);
    let status = match (p.status, p.merged_into) {
        (_, Some(into)) => PracticeStatus::MergedInto(into.0),
        (Some(RawPracticeStatus::Closed), None) => PracticeStatus::Closed,
        _ => PracticeStatus::Active,
    };
    Practice {
        key,
        ods: p.ods,
        name: p.name,
        mailbox,
        status,
        route: p.route.unwrap_or(Transport::Mesh),
    }
}

/// What each letter event signs, and which discharges wait for one. A letter event signs the
/// patient's oldest unsigned clinic letter (of an outpatient attendance) when there is one, as
/// the simulator does; else it is about their inpatient or emergency stay's discharge summary,
/// and a discharge whose summary a later `letter_signed` signs holds the summary until then.
fn link_signatures(timeline: &mut [Event]) {
    use std::collections::{HashMap, VecDeque};
    #[derive(Default)]
    struct Chart {
        /// Attendances whose letter is unsigned: whether each needs a second signer.
        unsigned: VecDeque<bool>,
        awaiting_second_signer: usize,
        in_stay: bool,
        unsigned_discharge: Option<usize>,
    }
    let mut charts: HashMap<String, Chart> = HashMap::new();
    for i in 0..timeline.len() {
        let c = charts.entry(timeline[i].patient.clone()).or_default();
        let e = &mut timeline[i];
        match e.kind {
            EventKind::OutpatientAttendance => c.unsigned.push_back(e.second_signer),
            EventKind::Admission | EventKind::EmergencyAttendance => {
                c.in_stay = true;
                c.unsigned_discharge = None;
            }
            EventKind::Discharge | EventKind::EmergencyDischarge => {
                c.in_stay = true;
                c.unsigned_discharge = Some(i);
            }
            EventKind::LetterSigned if !c.unsigned.is_empty() => {
                let needs_second_signer = c.unsigned.pop_front() == Some(true);
                c.awaiting_second_signer += usize::from(needs_second_signer);
            }
            EventKind::LetterCountersigned if c.awaiting_second_signer > 0 => {
                c.awaiting_second_signer -= 1;
            }
            EventKind::LetterDrafted if !c.unsigned.is_empty() => {}
            EventKind::LetterDrafted | EventKind::LetterSigned | EventKind::LetterCountersigned
                if c.in_stay =>
            {
                e.signs = Signs::DischargeSummary;
                if e.kind == EventKind::LetterSigned {
                    if let Some(d) = c.unsigned_discharge.take() {
                        timeline[d].held_for_signature = true;
                    }
                }
            }
            _ => {}
        }
    }
}

fn build(
    path: &Path,
    text: &str,
    fixtures: Fixtures,
    mut raw: RawScenario,
    (id, start): (String, Timestamp),
) -> Result<Scenario, Diagnostic> {
    let population = raw.population.take().map(|Checked(p)| p);
    timeline_or_population(path, text, &population, raw.timeline.is_empty())?;
    let mut timeline: Vec<Event> = raw
        .timeline
        .into_iter()
        .map(|Checked(e)| Event {
            at: e.resolved.unwrap_or(start),
            clinical_at: e.resolved.unwrap_or(start),
            kind: e.event,
            patient: e.patient.0,
            to_practice: e.to.map(|p| p.0),
            second_signer: e.second_signer.unwrap_or(false),
            signs: Signs::ClinicLetter,
            held_for_signature: false,
        })
        .collect();
    link_signatures(&mut timeline);
    // Which expectations named their transport; the others follow the recipient's route.
    let given: Vec<bool> = raw
        .expect
        .iter()
        .map(|Checked(x)| x.transport.is_some())
        .collect();
    let mut expect: Vec<Expectation> = raw
        .expect
        .into_iter()
        .map(|Checked(x)| expectation(x))
        .collect();
    let mut patients = fixtures.patients;
    if let Some(pop) = &population {
        let g = pop.generate(start);
        // Taken whole when there are no fixture patients: a map built from sorted entries has
        // its nodes full, where inserting into another leaves each about half empty (17 MB
        // at a month's 125,000 patients).
        if patients.is_empty() {
            patients = g.patients;
        } else {
            patients.extend(g.patients);
        }
        timeline = g.timeline;
        expect.extend(g.expect);
    }
    let mut scenario = Scenario {
        path: path.to_path_buf(),
        id,
        name: raw.name,
        description: raw.description,
        tags: raw.tags,
        start,
        observe_for: raw.observe_for.unwrap_or(DEFAULT_OBSERVE_FOR),
        practices: fixtures.practices,
        patients,
        timeline,
        expect,
        generated: population.is_some(),
        acknowledgements: population.as_ref().is_none_or(|p| p.acknowledgements),
        real_time: false,
        clinical_clock: None,
        nothing_else: raw.nothing_else,
        severity: raw.severity,
        index: Default::default(),
    };
    scenario.reindex();
    if scenario.end().plus(scenario.observe_for) > Timestamp::MAX {
        let (line, col) = ["observe_for:", "population:", "timeline:"]
            .iter()
            .find_map(|k| locate(text, k))
            .unwrap_or((1, 1));
        return Err(Diagnostic::new(
            path,
            format!(
                "letters would be observed until after 9999-12-31T23:59:59Z, the latest time lettergate keeps: the timeline ends {} and `observe_for` is {}",
                scenario.end(),
                scenario.observe_for
            ),
        )
        .at(text, line, col)
        .with_help(Some("move the timeline earlier, or shorten `observe_for`".into())));
    }
    resolve_routes(&mut scenario, &given);
    check_expectations(path, text, &scenario)?;
    Ok(scenario)
}

/// A scenario has a `timeline:` or a `population:`, exactly one of them.
fn timeline_or_population(
    path: &Path,
    text: &str,
    population: &Option<super::population::RawPopulation>,
    no_timeline: bool,
) -> Result<(), Diagnostic> {
    match (population, no_timeline) {
        (Some(_), false) => {
            let (line, col) = text
                .lines()
                .enumerate()
                .find(|(_, l)| l.starts_with("population:"))
                .map_or((1, 1), |(i, _)| (i + 1, 1));
            let msg = "give either a `timeline:` or a `population:`, not both";
            Err(Diagnostic::new(path, msg).at(text, line, col))
        }
        (None, true) => Err(Diagnostic::new(
            path,
            "a scenario needs a `timeline:` of events (or a `population:` for a volume run)",
        )
        .with_help(Some("add `timeline:` with at least one event".into()))),
        _ => Ok(()),
    }
}

/// An expectation as written, with the defaults of its letter kind filled in.
fn expectation(x: super::file::RawExpectation) -> Expectation {
    use super::file::RawRecipient;
    Expectation {
        letter: x.letter,
        patient: x.patient.0,
        to: match x.to {
            None if x.letter.goes_to_practice() => Recipient::RegisteredPractice,
            None => Recipient::Patient,
            Some(RawRecipient::RegisteredPractice) => Recipient::RegisteredPractice,
            Some(RawRecipient::Patient) => Recipient::Patient,
            Some(RawRecipient::Practice(p)) => Recipient::Practice(p),
        },
        transport: x.transport.unwrap_or(x.letter.default_transport()),
        workflow: x
            .workflow
            .or_else(|| x.letter.workflow_id().map(str::to_string)),
        within: x.within.unwrap_or(x.letter.default_deadline()),
        of: x.of.unwrap_or(x.letter.trigger()),
        count: x.count.unwrap_or(1),
        acknowledged: x.acknowledged.unwrap_or(x.letter.goes_to_practice()),
        business_ack: x.business_ack,
        dated: x
            .dated
            .unwrap_or(super::model::Dated::default_for(x.letter)),
    }
}

/// An expectation that does not name its transport follows the recipient practice's route:
/// a practice reached over an HTTP document route gets its letters over `http`, one on HL7 v2
/// over `mllp`, one with a watched folder over `folder`; none of these has a MESH workflow or
/// ITK3 acknowledgements.
fn resolve_routes(s: &mut Scenario, given: &[bool]) {
    let end = s.end();
    let routes: Vec<Option<Transport>> = s
        .expect
        .iter()
        .map(|x| match &x.to {
            Recipient::RegisteredPractice => {
                s.recipient_practice_at(&x.patient, end).map(|p| p.route)
            }
            Recipient::Practice(k) => s.practices.get(k).map(|p| p.route),
            Recipient::Patient => None,
        })
        .collect();
    for ((x, given), route) in s.expect.iter_mut().zip(given).zip(routes) {
        if let (false, Some(route)) = (given, route) {
            x.transport = route;
        }
        if x.transport != Transport::Mesh {
            x.workflow = None;
            x.acknowledged = false;
        }
    }
}

/// Rules that need the whole scenario; they point at the `expect:` entry's patient line.
fn check_expectations(path: &Path, text: &str, s: &Scenario) -> Result<(), Diagnostic> {
    let expect_line = text
        .lines()
        .position(|l| l.starts_with("expect:"))
        .map_or(1, |i| i + 1);
    for (i, x) in s.expect.iter().enumerate() {
        let at = |msg: String, help: Option<String>| {
            // Point at the i-th list item below `expect:`.
            let line = text
                .lines()
                .enumerate()
                .skip(expect_line)
                .filter(|(_, l)| l.trim_start().starts_with("- "))
                .nth(i)
                .map_or(expect_line, |(n, _)| n + 1);
            let col = text
                .lines()
                .nth(line - 1)
                .map_or(1, |l| l.len() - l.trim_start().len() + 1);
            Diagnostic::new(path, format!("expect[{i}]: {msg}"))
                .at(text, line, col)
                .with_help(help)
        };
        if x.count > 0 && s.events_of(&x.patient, x.of).is_empty() {
            return Err(at(
                format!(
                    "the deadline runs from `{}` but `{}` has no such event in the timeline",
                    x.of, x.patient
                ),
                Some(format!(
                    "add the event to the timeline, or set `of:` to one of `{}`'s events",
                    x.patient
                )),
            ));
        }
        if x.to == Recipient::RegisteredPractice
            && x.count > 0
            && s.recipient_practice_at(&x.patient, s.end()).is_none()
        {
            return Err(at(
                format!(
                    "`{}` has no registered GP with an open practice when the timeline ends, so no practice can receive a {}",
                    x.patient,
                    x.letter.words()
                ),
                Some("expect `count: 0`, or register the patient with an open practice".into()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_file_that_begins_like_a_yaml_mapping_is_quoted_beyond_its_first_line() {
        for yes in [
            "name: x\n",
            "# yaml-language-server: $schema=x\n\nname: x\n",
            "---\nname: x\n",
            "\"name\": x\n",
            "practices:\n  a: {}\n",
            "",
        ] {
            assert!(looks_like_yaml_mapping(yes), "{yes:?}");
        }
        for no in [
            "SECRET=abc\nname: x\n",
            "root:x:0:0:root:/root:/bin/bash\n",
            "A=1\u{0}B=2",
            "- a\n- b\n",
            "just words\n",
        ] {
            assert!(!looks_like_yaml_mapping(no), "{no:?}");
        }
    }

    use super::*;

    #[test]
    fn scenario_ids_are_the_path_below_the_scenarios_folder() {
        assert_eq!(
            scenario_id(Path::new("scenarios/death/in_hospital.yaml")),
            "death/in_hospital"
        );
        assert_eq!(scenario_id(Path::new("/x/scenarios/a.yml")), "a");
        assert_eq!(scenario_id(Path::new("/tmp/elsewhere/b.yaml")), "b");
    }

    #[test]
    fn include_paths_are_named_the_same_from_every_folder() {
        assert_eq!(
            lexical(Path::new("scenarios/death/../fixtures/a.yaml")),
            Path::new("scenarios/fixtures/a.yaml")
        );
        assert_eq!(lexical(Path::new("./a/./b")), Path::new("a/b"));
        assert_eq!(lexical(Path::new("../x")), Path::new("../x"));
    }

    /// The timeline of `events` (kind, patient), an hour apart, linked as the loader links it:
    /// what each letter event signs, which discharges hold their summary.
    fn linked(events: &[(EventKind, &str)]) -> Vec<(Signs, bool)> {
        let mut t: Vec<Event> = events
            .iter()
            .enumerate()
            .map(|(i, (kind, patient))| Event {
                at: DEFAULT_START.plus(crate::protocol::clock::Span::hours(i as i64)),
                clinical_at: DEFAULT_START.plus(crate::protocol::clock::Span::hours(i as i64)),
                kind: *kind,
                patient: patient.to_string(),
                to_practice: None,
                second_signer: false,
                signs: Signs::ClinicLetter,
                held_for_signature: false,
            })
            .collect();
        link_signatures(&mut t);
        t.iter().map(|e| (e.signs, e.held_for_signature)).collect()
    }

    #[test]
    fn a_signature_after_a_discharge_signs_its_summary_and_holds_it_until_then() {
        use EventKind::*;
        use Signs::*;
        let got = linked(&[
            (Admission, "bob"),
            (Discharge, "bob"),
            (LetterDrafted, "bob"),
            (LetterSigned, "bob"),
        ]);
        assert_eq!(
            got,
            [
                (ClinicLetter, false),
                (ClinicLetter, true),
                (DischargeSummary, false),
                (DischargeSummary, false)
            ]
        );
        // Signed before the discharge: nothing waits.
        let got = linked(&[
            (Admission, "bob"),
            (LetterSigned, "bob"),
            (Discharge, "bob"),
        ]);
        assert_eq!(
            got,
            [
                (ClinicLetter, false),
                (DischargeSummary, false),
                (ClinicLetter, false)
            ]
        );
        // An emergency stay the same; another patient's signature is not this one's.
        let got = linked(&[
            (EmergencyDischarge, "dave"),
            (OutpatientAttendance, "alice"),
            (LetterSigned, "alice"),
            (LetterSigned, "dave"),
        ]);
        assert_eq!(
            got,
            [
                (ClinicLetter, true),
                (ClinicLetter, false),
                (ClinicLetter, false),
                (DischargeSummary, false)
            ]
        );
    }

    #[test]
    fn an_unsigned_clinic_letter_is_signed_first_even_during_a_stay() {
        use EventKind::*;
        use Signs::*;
        // scenarios/death/in_hospital.yaml: seen in clinic, admitted, the clinic letter signed.
        let got = linked(&[
            (OutpatientAttendance, "carol"),
            (Admission, "carol"),
            (Death, "carol"),
            (LetterSigned, "carol"),
        ]);
        assert_eq!(got[3], (ClinicLetter, false));
        // Then a second signature during the stay is the summary's.
        let got = linked(&[
            (OutpatientAttendance, "carol"),
            (Discharge, "carol"),
            (LetterSigned, "carol"),
            (LetterSigned, "carol"),
        ]);
        assert_eq!(
            got,
            [
                (ClinicLetter, false),
                (ClinicLetter, true),
                (ClinicLetter, false),
                (DischargeSummary, false)
            ]
        );
    }

    #[test]
    fn default_start_is_the_documented_monday() {
        assert_eq!(DEFAULT_START.rfc3339(), "2025-01-06T09:00:00Z");
    }
}
