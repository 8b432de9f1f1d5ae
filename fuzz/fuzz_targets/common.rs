//! What the fuzz targets share: a folder of their own for files, and the checks a loader's
//! diagnostic must pass (the same as the property tests of `tests/it/props/loaders.rs`).

#![allow(dead_code)]

use lettergate::Diagnostic;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A temporary folder for this process, removed when it ends normally.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
}

/// `rel` below [`dir`], its folder made.
pub fn file(rel: &str) -> PathBuf {
    let p = dir().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    p
}

/// A diagnostic names one of `files`, and a position it gives is a line of that file (or
/// just past its end) with that line shown; its rendering names file, line and column.
pub fn check_diagnostic(d: &Diagnostic, files: &[(&Path, &str)]) {
    let Some((_, text)) = files.iter().find(|(p, _)| d.file == *p) else {
        panic!(
            "the diagnostic names {}, none of the files loaded:\n{d}",
            d.file.display()
        );
    };
    if d.line == 0 {
        assert_eq!(d.column, 0, "a column without a line:\n{d}");
        return;
    }
    // Lines as YAML counts them: LF, CRLF or a CR alone ends one.
    let lines: Vec<&str> = lettergate::fuzzing::yaml_lines(text).collect();
    assert!(
        d.line <= lines.len() + 1,
        "line {} of {}:\n{d}",
        d.line,
        lines.len()
    );
    assert!(d.column >= 1, "column 0:\n{d}");
    if let Some(src) = &d.source_line {
        let shown = shown_line(lines.get(d.line - 1).copied());
        assert_eq!(Some(src.as_str()), shown.as_deref(), "{d}");
    }
    let position = format!("{}:{}:{}", d.file.display(), d.line, d.column);
    assert!(d.to_string().contains(&position), "{d}");
}

/// A line of a file as a diagnostic shows it: cut to its first characters, control
/// characters escaped.
fn shown_line(line: Option<&str>) -> Option<String> {
    use lettergate::protocol::text::{escape_controls, truncate};
    line.map(|l| escape_controls(&truncate(l, lettergate::fuzzing::SOURCE_LINE_MAX)).into_owned())
}
