//! The JSON Schemas in `schemas/`: current with the Rust types (`lettergate schema` writes them
//! again byte for byte), named by the first line of every shipped YAML file, and checked by an
//! independent validator, `check-jsonschema`, against every shipped scenario and fixture and
//! every YAML example in the README.

use crate::support::{lettergate, peers, root};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const KINDS: [&str; 3] = ["scenario", "fixture", "target"];

/// Runs check-jsonschema from the peers against `schema` (a file, or `--builtin-schema NAME`
/// when it starts with `vendor.`); returns whether every file passed, and what it said.
pub fn check_jsonschema(schema: &str, files: &[PathBuf]) -> (bool, String) {
    let mut cmd = Command::new(peers::bin("check-jsonschema"));
    match schema.starts_with("vendor.") {
        true => cmd.args(["--builtin-schema", schema]),
        false => cmd.args(["--schemafile", schema]),
    };
    let out = cmd.args(files).output().expect("run check-jsonschema");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Every `*.yaml` below `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// True for a file below a `fixtures` folder, as the loader decides.
fn is_fixture(p: &Path) -> bool {
    p.components().any(|c| c.as_os_str() == "fixtures")
}

#[test]
fn the_schemas_in_the_repository_are_what_lettergate_schema_writes() {
    let dir = tempfile::tempdir().unwrap();
    let out = lettergate()
        .args(["schema", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in KINDS {
        let name = format!("{kind}.schema.json");
        let fresh = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        let kept = std::fs::read_to_string(root().join("schemas").join(&name)).unwrap_or_default();
        assert!(
            kept == fresh,
            "schemas/{name} is not current with the Rust types: run `cargo run -- schema --out schemas` and commit it"
        );
        let one = lettergate().args(["schema", kind]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&one.stdout),
            fresh,
            "`lettergate schema {kind}` prints the same"
        );
    }
}

#[test]
fn every_shipped_yaml_file_names_its_schema_on_its_first_line() {
    for file in yaml_files(&root().join("scenarios")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let kind = if is_fixture(&file) {
            "fixture"
        } else {
            "scenario"
        };
        let depth = file.strip_prefix(root()).unwrap().components().count() - 1;
        let want = format!(
            "# yaml-language-server: $schema={}schemas/{kind}.schema.json",
            "../".repeat(depth)
        );
        assert_eq!(first, want, "first line of {}", file.display());
        let schema = file.parent().unwrap().join(want.split_once('=').unwrap().1);
        assert!(schema.exists(), "{} names a missing schema", file.display());
    }
}

#[test]
fn every_shipped_scenario_and_fixture_passes_check_jsonschema() {
    let (fixtures, scenarios): (Vec<_>, Vec<_>) = yaml_files(&root().join("scenarios"))
        .into_iter()
        .partition(|p| is_fixture(p));
    assert!(!fixtures.is_empty() && scenarios.len() > 5);
    for (kind, files) in [("scenario", &scenarios), ("fixture", &fixtures)] {
        let schema = root().join(format!("schemas/{kind}.schema.json"));
        let (ok, said) = check_jsonschema(schema.to_str().unwrap(), files);
        assert!(ok, "shipped {kind} files against their schema:\n{said}");
    }
}

#[test]
fn a_misspelt_key_or_a_bad_value_fails_check_jsonschema() {
    // Negative control: the schema is strict where lettergate is.
    let dir = tempfile::tempdir().unwrap();
    let schema = root().join("schemas/scenario.schema.json");
    for (name, text) in [
        ("misspelt.yaml", "name: x\nexpect:\n  - letter: clinic_letter\n    patient: alice\n    recipent: patient\n"),
        ("bad_letter.yaml", "name: x\nexpect:\n  - letter: clinic_leter\n    patient: alice\n"),
        ("bad_time.yaml", "name: x\nstart: 2025-03-03T09:30\n"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (ok, said) = check_jsonschema(schema.to_str().unwrap(), &[file]);
        assert!(!ok, "{name} passed check-jsonschema:\n{said}");
    }
}

/// The README's ```yaml blocks, in order.
fn readme_yaml_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A README block as the whole file it belongs in: (kind, document). A fragment (a `drive:`,
/// a `severity:`, an indented `requests:`) is put where it goes in the smallest file of its
/// kind, so the schema checks it in place.
fn as_document(block: &str, target: &Value) -> (&'static str, Value) {
    let indented = block.starts_with(' ');
    let text = match indented {
        true => block
            .lines()
            .map(|l| l.get(4..).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n"),
        false => block.to_string(),
    };
    let value: Value = yaml_serde::from_str(&text).unwrap();
    let has = |k: &str| value.get(k).is_some();
    let mut doc = value.clone();
    let kind = if indented {
        doc = target.clone();
        doc["drive"] =
            json!({"http": {"base_url": "https://ehr.example", "requests": value["requests"]}});
        "target"
    } else if has("drive") {
        if !has("name") {
            doc = target.clone();
            doc["drive"] = value["drive"].clone();
        }
        "target"
    } else if has("name") {
        "scenario"
    } else if has("practices") || has("patients") {
        "fixture"
    } else {
        doc = json!({"name": "a README fragment"});
        doc.as_object_mut()
            .unwrap()
            .extend(value.as_object().unwrap().clone());
        "scenario"
    };
    (kind, doc)
}

#[test]
fn every_yaml_example_in_the_readme_passes_check_jsonschema() {
    let blocks = readme_yaml_blocks();
    let target: Value = blocks
        .iter()
        .map(|b| yaml_serde::from_str::<Value>(b).unwrap_or(Value::Null))
        .find(|v| v.get("drive").is_some() && v.get("name").is_some())
        .expect("the README has a whole target file");
    let dir = tempfile::tempdir().unwrap();
    let mut by_kind: Vec<(&str, PathBuf)> = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let (kind, doc) = as_document(block, &target);
        let file = dir.path().join(format!("readme-{i}-{kind}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        by_kind.push((kind, file));
    }
    assert!(by_kind.len() >= 8, "README yaml blocks: {}", by_kind.len());
    for kind in KINDS {
        let files: Vec<PathBuf> = by_kind
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, f)| f.clone())
            .collect();
        assert!(!files.is_empty(), "no README example of a {kind} file");
        let schema = root().join(format!("schemas/{kind}.schema.json"));
        let (ok, said) = check_jsonschema(schema.to_str().unwrap(), &files);
        assert!(ok, "README {kind} examples against their schema:\n{said}");
    }
}
