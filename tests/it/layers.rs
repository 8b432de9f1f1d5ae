//! The layers point one way (issue 14): a source scan of `src/` that fails when a lower layer
//! imports a higher one, when library code names the binary's `cli`, when a top-level module
//! has no rank, or when the submodules of `protocol` import each other in a cycle.
//!
//! A simple scan, not a compiler: it reads `crate::x` paths (with `use crate::{x, y::z}`
//! groups) and `super::` paths resolved from the file's place in the tree, after dropping
//! comments, string and character literals, and everything after a file's first
//! `#[cfg(test)]` (tests may reach anywhere). `super::` inside an inline `mod` block is
//! resolved as if it were in the file's own module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level library module's layer: a module may use only modules of a strictly lower
/// rank, or itself. A new top-level module must be given a rank here.
const RANKS: &[(&str, u8)] = &[
    ("protocol", 0),
    ("files", 0),
    ("scenario", 1),
    ("capture", 2),
    ("expect", 3),
    ("snapshot", 3),
    ("sim", 4),
    ("targets", 5),
    ("run", 6),
    ("schema", 6),
    ("report", 7),
    ("matrix", 8),
    ("bench", 8),
    ("error", 8),
];

/// The binary's private module tree (`src/cli/`, declared in `src/main.rs`): it may use
/// anything, and library code must never name it.
const BINARY: &str = "cli";

/// The ranks of [`RANKS`] for a message: `protocol 0, scenario 1, ...`.
fn layered() -> String {
    let ranks: Vec<String> = RANKS.iter().map(|(m, r)| format!("{m} {r}")).collect();
    ranks.join(", ")
}

/// One import found in a library file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    /// The file, relative to the folder scanned (`src/targets/run.rs`).
    file: String,
    line: usize,
    /// The importing module's path (`["targets", "run"]`).
    from: Vec<String>,
    /// The imported path, resolved from the crate root (`["run", "check_with"]`).
    to: Vec<String>,
    /// The import as written (`crate::run::check_with`).
    written: String,
}

/// Every rule broken under `src`, one line each (file:line, what, and the import); empty
/// when the layers hold.
fn violations(src: &Path) -> Vec<String> {
    let ranks: BTreeMap<&str, u8> = RANKS.iter().copied().collect();
    let mut out = Vec::new();
    for module in top_level_modules(src) {
        if module != BINARY && !ranks.contains_key(module.as_str()) {
            out.push(format!(
                "src/{module}: the top-level module `{module}` has no layer: give it a rank in RANKS in tests/it/layers.rs ({})",
                layered()
            ));
        }
    }
    let imports = imports(src);
    for i in &imports {
        let (from, to) = (i.from[0].as_str(), i.to[0].as_str());
        if from == to {
            continue;
        }
        let at = format!("{}:{}", i.file, i.line);
        if to == BINARY {
            out.push(format!(
                "{at}: library code names the binary's `{BINARY}` module: {}",
                i.written
            ));
            continue;
        }
        if let (Some(&a), Some(&b)) = (ranks.get(from), ranks.get(to)) {
            if b >= a {
                out.push(format!(
                    "{at}: `{from}` (rank {a}) imports `{to}` (rank {b}), a layer that is not below it: {}",
                    i.written
                ));
            }
        }
    }
    out.extend(protocol_cycles(src, &imports));
    out
}

/// The modules a folder declares: `x.rs` and `x/` (but not `lib.rs`, `main.rs`, `mod.rs` or
/// `bin/`); for `src/`, the library's top-level modules.
fn top_level_modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let module = if p.is_dir() {
            name != "bin"
        } else {
            p.extension().is_some_and(|x| x == "rs")
                && !["lib", "main", "mod"].contains(&name.as_str())
        };
        if module {
            out.insert(name);
        }
    }
    out
}

/// Every `crate::` and `super::` import of every library file under `src`, resolved.
fn imports(src: &Path) -> Vec<Import> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let Some(module) = module_path(rel) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let name = format!(
            "{}/{}",
            src.file_name().unwrap().to_string_lossy(),
            rel.display()
        );
        for (line, written, to) in paths_in(&code_only(&text), &module) {
            out.push(Import {
                file: name.clone(),
                line,
                from: module.clone(),
                to,
                written,
            });
        }
    }
    out.sort();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a library file holds (`targets/run.rs` is `targets::run`, `protocol/hl7/mod.rs`
/// is `protocol::hl7`); `None` for the crate roots and the binary's files, which are not
/// layered.
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    if parts[0] == BINARY || parts[0] == "bin" {
        return None;
    }
    Some(parts)
}

/// `text` with comments, string and character literals blanked out (newlines kept, so line
/// numbers stay), cut at its first `#[cfg(test)]`.
fn code_only(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Blanks b[from..to], keeping its newlines.
    let blank = |out: &mut String, from: usize, to: usize| {
        for &c in &b[from..to.min(b.len())] {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = |k: usize| b.get(i + k).copied();
        if b[i] == '/' && rest(1) == Some('/') {
            let end = (i..b.len()).find(|&k| b[k] == '\n').unwrap_or(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == '/' && rest(1) == Some('*') {
            let k = block_comment_end(&b, i);
            blank(&mut out, i, k);
            i = k;
        } else if let Some(end) = raw_string_end(&b, i) {
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == '"' {
            let mut k = i + 1;
            while k < b.len() && b[k] != '"' {
                k += if b[k] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, k + 1);
            i = k + 1;
        } else if b[i] == '\'' && (rest(1) == Some('\\') || rest(2) == Some('\'')) {
            // A character literal ('x', '\n', '\''), not a lifetime ('a).
            let mut k = i + 2;
            while k < b.len() && b[k] != '\'' {
                k += 1;
            }
            blank(&mut out, i, k + 1);
            i = k + 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    match out.find("#[cfg(test)]") {
        Some(at) => out[..at].to_string(),
        None => out,
    }
}

/// Where the block comment starting at `i` ends (block comments nest in Rust).
fn block_comment_end(b: &[char], i: usize) -> usize {
    let (mut depth, mut k) = (0, i);
    while k < b.len() {
        if b[k] == '/' && b.get(k + 1) == Some(&'*') {
            depth += 1;
            k += 2;
        } else if b[k] == '*' && b.get(k + 1) == Some(&'/') {
            depth -= 1;
            k += 2;
            if depth == 0 {
                break;
            }
        } else {
            k += 1;
        }
    }
    k
}

/// Where a raw string (`r"…"`, `r#"…"#`, `br#"…"#`) starting at `i` ends, if one does.
fn raw_string_end(b: &[char], i: usize) -> Option<usize> {
    if i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_') {
        return None;
    }
    let mut k = i;
    if b.get(k) == Some(&'b') {
        k += 1;
    }
    if b.get(k) != Some(&'r') {
        return None;
    }
    k += 1;
    let hashes = (k..b.len()).take_while(|&j| b[j] == '#').count();
    k += hashes;
    if b.get(k) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    (k + 1..b.len())
        .find(|&j| b[j..].starts_with(&close))
        .map(|j| j + close.len())
}

/// A token of the code that paths are made of.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Star,
    Other,
}

fn tokens(code: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = code.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), line));
        } else {
            let tok = match c {
                ':' if b.get(i + 1) == Some(&':') => {
                    i += 1;
                    Tok::PathSep
                }
                '{' => Tok::Open,
                '}' => Tok::Close,
                ',' => Tok::Comma,
                '*' => Tok::Star,
                _ => Tok::Other,
            };
            out.push((tok, line));
            i += 1;
        }
    }
    out
}

/// Every `crate::…` and `super::…` path in `code` (a file of `module`), each as its line,
/// how it is written, and the module path it resolves to from the crate root. A group
/// (`crate::{a, b::c}`) gives one path per member.
fn paths_in(code: &str, module: &[String]) -> Vec<(usize, String, Vec<String>)> {
    let toks = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let starts = match &toks[i].0 {
            Tok::Ident(w) => w == "crate" || w == "super",
            _ => false,
        };
        let after_sep = i > 0 && toks[i - 1].0 == Tok::PathSep;
        if !starts || after_sep || toks.get(i + 1).map(|t| &t.0) != Some(&Tok::PathSep) {
            i += 1;
            continue;
        }
        let line = toks[i].1;
        // The base the path starts from: the crate root, or a parent of this module.
        let mut base: Vec<String> = Vec::new();
        let mut prefix = String::new();
        if toks[i].0 == Tok::Ident("crate".into()) {
            prefix.push_str("crate::");
            i += 2;
        } else {
            base = module.to_vec();
            while toks.get(i).map(|t| &t.0) == Some(&Tok::Ident("super".into()))
                && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep)
            {
                base.pop();
                prefix.push_str("super::");
                i += 2;
            }
        }
        let (trees, next) = use_tree(&toks, i);
        for tree in trees {
            let mut to = base.clone();
            to.extend(tree.iter().cloned());
            if !to.is_empty() {
                out.push((line, format!("{prefix}{}", tree.join("::")), to));
            }
        }
        i = next.max(i + 1);
    }
    out
}

/// The paths of the use tree starting at token `i` (`a::b`, `a::{b, c::d}`, `a::*`), and
/// the index after it.
fn use_tree(toks: &[(Tok, usize)], i: usize) -> (Vec<Vec<String>>, usize) {
    match toks.get(i).map(|t| &t.0) {
        Some(Tok::Ident(seg)) => {
            if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep) {
                let (subs, next) = use_tree(toks, i + 2);
                let paths = subs
                    .into_iter()
                    .map(|s| std::iter::once(seg.clone()).chain(s).collect())
                    .collect();
                (paths, next)
            } else {
                (vec![vec![seg.clone()]], i + 1)
            }
        }
        Some(Tok::Open) => {
            let (mut paths, mut k) = (Vec::new(), i + 1);
            loop {
                match toks.get(k).map(|t| &t.0) {
                    None => return (paths, k),
                    Some(Tok::Close) => return (paths, k + 1),
                    Some(Tok::Comma) => k += 1,
                    _ => {
                        let (sub, next) = use_tree(toks, k);
                        paths.extend(sub);
                        // Skip what follows the member (`as name`) up to `,` or `}`.
                        k = next;
                        while !matches!(
                            toks.get(k).map(|t| &t.0),
                            None | Some(Tok::Comma) | Some(Tok::Close)
                        ) {
                            k += 1;
                        }
                    }
                }
            }
        }
        Some(Tok::Star) => (vec![vec![]], i + 1),
        _ => (vec![vec![]], i),
    }
}

/// Import cycles among the submodules of `protocol` (`protocol::hl7` ↔ `protocol::letter`),
/// each named with the imports that close it.
fn protocol_cycles(src: &Path, imports: &[Import]) -> Vec<String> {
    let subs: BTreeSet<String> = top_level_modules(&src.join("protocol"))
        .into_iter()
        .collect();
    // protocol::a -> protocol::b, with the first import that makes the edge.
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Import>> = BTreeMap::new();
    for i in imports {
        let (Some(a), Some(b)) = (sub_of(&i.from, &subs), sub_of(&i.to, &subs)) else {
            continue;
        };
        if a != b {
            edges.entry(a).or_default().entry(b).or_insert(i);
        }
    }
    let mut out = Vec::new();
    let mut reported: BTreeSet<BTreeSet<&str>> = BTreeSet::new();
    for &start in edges.keys() {
        if let Some(cycle) = cycle_from(start, &edges) {
            let members: BTreeSet<&str> = cycle.iter().copied().collect();
            if !reported.insert(members) {
                continue;
            }
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let i = edges[w[0]][w[1]];
                    format!("{}:{}: {}", i.file, i.line, i.written)
                })
                .collect();
            out.push(format!(
                "an import cycle inside protocol: {} ({})",
                cycle.join(" -> "),
                steps.join("; ")
            ));
        }
    }
    out
}

/// The protocol submodule a module path is in (`protocol::hl7::mdm` is in `hl7`).
fn sub_of<'a>(path: &[String], subs: &'a BTreeSet<String>) -> Option<&'a str> {
    match path {
        [p, s, ..] if p == "protocol" => subs.get(s).map(String::as_str),
        _ => None,
    }
}

/// A path of edges from `start` back to `start`, if there is one (`[a, b, a]`).
fn cycle_from<'a>(
    start: &'a str,
    edges: &BTreeMap<&'a str, BTreeMap<&'a str, &Import>>,
) -> Option<Vec<&'a str>> {
    let mut stack = vec![vec![start]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = *path.last().unwrap();
        for &next in edges.get(last).into_iter().flat_map(|m| m.keys()) {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start);
                return Some(cycle);
            }
            if seen.insert(next) {
                let mut longer = path.clone();
                longer.push(next);
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_layer_imports_a_higher_one_and_protocol_has_no_import_cycle() {
    let src = crate::support::root().join("src");
    // A scan that read nothing would pass: it must see the library's many protocol imports.
    let seen = imports(&src);
    assert!(
        seen.iter().filter(|i| i.to[0] == "protocol").count() > 50,
        "the scan found only {} imports in src/",
        seen.len()
    );
    let found = violations(&src);
    assert!(
        found.is_empty(),
        "the layers of src/ point the wrong way (issue 14; ranks: {}):\n{}",
        layered(),
        found.join("\n")
    );
}

/// A fake `src/` in a temporary folder, from (path, text) pairs.
fn fake_src(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join("src").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// A small tree that keeps every rule.
const CLEAN: &[(&str, &str)] = &[
    ("lib.rs", "pub mod protocol;\npub mod run;\npub mod scenario;\n"),
    ("main.rs", "mod cli;\nfn main() { cli::go() }\n"),
    ("cli/mod.rs", "use lettergate::run;\npub fn go() { crate::cli::x(); }\n"),
    ("protocol/mod.rs", "pub mod ids;\npub mod letter;\npub use ids::Nhs;\n"),
    ("protocol/ids.rs", "pub struct Nhs;\n"),
    (
        "protocol/letter.rs",
        "use super::ids::Nhs;\n// use crate::run::Outcome;\nconst S: &str = \"crate::run::x\";\n",
    ),
    (
        "scenario/mod.rs",
        "use crate::protocol::{ids::Nhs, letter};\n#[cfg(test)]\nmod tests { use crate::run::Outcome; }\n",
    ),
    ("run.rs", "use crate::{protocol::ids, scenario::Scenario};\npub(crate) fn f<'a>(c: char) -> bool { c == '{' }\n"),
];

#[test]
fn the_scan_passes_a_tree_that_keeps_the_layers() {
    let dir = fake_src(CLEAN);
    assert_eq!(violations(&dir.path().join("src")), Vec::<String>::new());
}

#[test]
fn the_scan_names_file_line_and_import_of_a_lower_layer_importing_a_higher_one() {
    let mut files = CLEAN.to_vec();
    files.push((
        "protocol/read.rs",
        "//! Reads.\n\nuse super::ids::Nhs;\nuse crate::{scenario::Scenario, run::{Outcome, check}};\n",
    ));
    let dir = fake_src(&files);
    assert_eq!(
        violations(&dir.path().join("src")),
        vec![
            "src/protocol/read.rs:4: `protocol` (rank 0) imports `run` (rank 6), a layer that is not below it: crate::run::Outcome",
            "src/protocol/read.rs:4: `protocol` (rank 0) imports `run` (rank 6), a layer that is not below it: crate::run::check",
            "src/protocol/read.rs:4: `protocol` (rank 0) imports `scenario` (rank 1), a layer that is not below it: crate::scenario::Scenario",
        ]
    );
}

#[test]
fn the_scan_resolves_super_paths_and_catches_modules_of_one_rank_and_the_cli() {
    let mut files = CLEAN.to_vec();
    files.push(("expect.rs", "fn f() { super::snapshot::g(); }\n"));
    files.push(("snapshot/store.rs", "use super::super::cli::Args;\n"));
    let dir = fake_src(&files);
    assert_eq!(
        violations(&dir.path().join("src")),
        vec![
            "src/expect.rs:1: `expect` (rank 3) imports `snapshot` (rank 3), a layer that is not below it: super::snapshot::g",
            "src/snapshot/store.rs:1: library code names the binary's `cli` module: super::super::cli::Args",
        ]
    );
}

#[test]
fn the_scan_asks_for_a_rank_for_a_new_top_level_module() {
    let mut files = CLEAN.to_vec();
    files.push(("plugins/mod.rs", "use crate::protocol::ids;\n"));
    let dir = fake_src(&files);
    let found = violations(&dir.path().join("src"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "src/plugins: the top-level module `plugins` has no layer: give it a rank"
        ),
        "{found:?}"
    );
}

#[test]
fn the_scan_finds_an_import_cycle_inside_protocol() {
    let mut files = CLEAN.to_vec();
    files.push((
        "protocol/ids.rs",
        "use crate::protocol::letter::Kind;\npub struct Nhs;\n",
    ));
    let dir = fake_src(&files);
    assert_eq!(
        violations(&dir.path().join("src")),
        vec![
            "an import cycle inside protocol: ids -> letter -> ids (src/protocol/ids.rs:1: crate::protocol::letter::Kind; src/protocol/letter.rs:1: super::ids::Nhs)",
        ]
    );
}
