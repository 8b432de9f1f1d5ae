//! `lettergate init DIR`: a new suite that runs GO at once, whose files pass their schemas and
//! whose CI files pass the official GitLab CI and GitHub Actions schemas; never written over
//! anything.

use super::schemas::{check_jsonschema, yaml_files};
use crate::support::lettergate;
use std::path::{Path, PathBuf};

fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = lettergate()
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn init_writes_a_suite_that_runs_go_at_once_and_passes_every_schema() {
    let parent = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run_in(parent.path(), &["init", "our-letters"]);
    assert_eq!(code, 0, "init: {stdout}{stderr}");
    assert!(
        stdout.contains("next: cd our-letters && lettergate run"),
        "{stdout}"
    );
    let dir = parent.path().join("our-letters");

    let (code, stdout, stderr) = run_in(&dir, &["run"]);
    assert_eq!(code, 0, "run in the new suite: {stdout}{stderr}");
    assert!(stdout.contains("\nGO"), "{stdout}");
    assert!(stdout.contains("3 scenarios: 3 passed"), "{stdout}");
    let pending: Vec<PathBuf> = walk(&dir.join("snapshots"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".snap.new"))
        .collect();
    assert!(
        pending.is_empty(),
        "a first run left pending snapshots: {pending:?}"
    );

    for (ci, schema) in [
        (".gitlab-ci.yml", "vendor.gitlab-ci"),
        (
            ".github/workflows/lettergate.yml",
            "vendor.github-workflows",
        ),
    ] {
        let (ok, said) = check_jsonschema(schema, &[dir.join(ci)]);
        assert!(ok, "{ci} against {schema}:\n{said}");
        let text = std::fs::read_to_string(dir.join(ci)).unwrap();
        for part in [
            "--check",
            "--report-junit",
            "--report-html",
            "--report-markdown",
        ] {
            assert!(text.contains(part), "{ci} does not use {part}");
        }
    }

    let files = yaml_files(&dir);
    for (kind, wanted) in [
        ("fixture", "/scenarios/fixtures/"),
        ("scenario", "/scenarios/"),
        ("target", "/targets/"),
    ] {
        let of_kind: Vec<PathBuf> = files
            .iter()
            .filter(|f| f.to_string_lossy().contains(wanted))
            .filter(|f| kind != "scenario" || !f.to_string_lossy().contains("/fixtures/"))
            .cloned()
            .collect();
        assert!(!of_kind.is_empty(), "no {kind} file");
        let schema = dir.join(format!("schemas/{kind}.schema.json"));
        let (ok, said) = check_jsonschema(schema.to_str().unwrap(), &of_kind);
        assert!(ok, "the new suite's {kind} files:\n{said}");
        for f in &of_kind {
            let first = std::fs::read_to_string(f).unwrap();
            assert!(
                first.starts_with("# yaml-language-server: $schema="),
                "{} has no schema line",
                f.display()
            );
        }
    }
    for driver in ["fhir", "hl7v2", "http"] {
        let file = dir.join(format!("targets/{driver}.yaml"));
        let target = lettergate::load_target(&file);
        assert!(
            target.is_ok(),
            "targets/{driver}.yaml: {}",
            target.err().unwrap()
        );
    }
}

#[test]
fn init_refuses_a_folder_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ours").unwrap();
    let (code, _, stderr) = run_in(dir.path(), &["init", "."]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        names.len(),
        1,
        "init wrote into a folder that was not empty"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            match e.path().is_dir() {
                true => out.extend(walk(&e.path())),
                false => out.push(e.path()),
            }
        }
    }
    out
}
