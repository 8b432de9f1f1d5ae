//! The scenario and target loaders on mutated real files: the shipped scenarios and their
//! fixture file, the target files of `tests/standin/` and of `lettergate init`. Whatever the
//! file holds, loading returns a scenario or a diagnostic, never panics; a diagnostic names
//! the file it is about, and a position it gives is inside that file with its line shown.

use super::mutate::{mutated, Case};
use crate::support::root;
use lettergate::{Diagnostic, Loader};
use proptest::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The shipped scenarios, by their path below `scenarios/`; the volume scenario apart (its
/// generated population makes each case slower, and its sizes are the known failures below).
fn scenario_seeds(volume: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root().join("scenarios")).unwrap() {
        let dir = dir.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name == "fixtures" || (name == "volume") != volume {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            let file = f.file_name().unwrap().to_string_lossy().into_owned();
            out.push((format!("{name}/{file}"), std::fs::read(&f).unwrap()));
        }
    }
    out.sort();
    out
}

/// A copy of `scenarios/fixtures/` in a fresh folder, where a case is written at `rel`
/// (below `scenarios/`), so its `include: [../fixtures/common.yaml]` finds the real file.
fn suite_with(rel: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = dir.path().join("scenarios/fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::copy(
        root().join("scenarios/fixtures/common.yaml"),
        fixtures.join("common.yaml"),
    )
    .unwrap();
    let path = dir.path().join("scenarios").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// What every diagnostic of a loader keeps, whatever the input: it names the file it is
/// about, and a position it gives is a line of that file (or just past its end, where YAML
/// reports an unexpected end) with the line itself shown.
pub fn check_diagnostic(d: &Diagnostic, files: &[(&Path, &str)]) -> Result<(), TestCaseError> {
    let Some((_, text)) = files.iter().find(|(p, _)| d.file == *p) else {
        return Err(TestCaseError::fail(format!(
            "the diagnostic names {}, none of the files loaded:\n{d}",
            d.file.display()
        )));
    };
    if d.line == 0 {
        prop_assert_eq!(d.column, 0, "a column without a line:\n{}", d);
        return Ok(());
    }
    // Lines as the YAML reader counts them: LF, CRLF, a CR alone, NEL, LS or PS ends one.
    let lines: Vec<&str> = lettergate::fuzzing::yaml_lines(text).collect();
    prop_assert!(
        d.line <= lines.len() + 1,
        "line {} of a file of {} lines:\n{}",
        d.line,
        lines.len(),
        d
    );
    prop_assert!(d.column >= 1, "column 0 at line {}:\n{}", d.line, d);
    if let Some(src) = &d.source_line {
        let shown = shown_line(lines.get(d.line - 1).copied());
        prop_assert_eq!(Some(src.as_str()), shown.as_deref());
    }
    // The rendering is what a person reads: it names the file and the position.
    let shown = d.to_string();
    let position = format!("{}:{}:{}", d.file.display(), d.line, d.column);
    prop_assert!(shown.contains(&position), "{shown}");
    Ok(())
}

/// How long one load may take, debug build on a loaded machine: the shipped scenarios load
/// in milliseconds.
const LIMIT: Duration = Duration::from_secs(30);

/// Loads the case as a scenario of a suite beside the real fixture file.
fn load_scenario(case: &Case) -> Result<(), TestCaseError> {
    let rel = &case.seed;
    let (_dir, path) = suite_with(rel, &case.bytes);
    let text = case.text();
    let loading = path.clone();
    let loaded = super::within(LIMIT, move || Loader::new().load_scenario(&loading))?;
    match loaded {
        Ok(s) => {
            prop_assert_eq!(&s.path, &path);
            Ok(())
        }
        Err(d) => {
            let fixture = path.parent().unwrap().join("../fixtures/common.yaml");
            let fixture_text = std::fs::read_to_string(&fixture).unwrap();
            let lexical = path
                .parent()
                .unwrap()
                .parent()
                .unwrap()
                .join("fixtures/common.yaml");
            check_diagnostic(
                &d,
                &[
                    (&path, &text),
                    (&fixture, &fixture_text),
                    (&lexical, &fixture_text),
                ],
            )?;
            // A file that is not YAML at all is an error at a position in it.
            if yaml_serde::from_str::<yaml_serde::Value>(&text).is_err()
                && std::str::from_utf8(&case.bytes).is_ok()
            {
                prop_assert!(d.line > 0, "a YAML syntax error without a position:\n{}", d);
            }
            Ok(())
        }
    }
}

proptest! {
    #![proptest_config(super::config(96))]

    /// Issue 13, point 7: mutated shipped scenarios load or give a diagnostic at a position.
    #[test]
    fn mutated_shipped_scenarios_load_or_give_a_diagnostic(case in mutated(scenario_seeds(false))) {
        load_scenario(&case)?;
    }

    /// The fixture file every shipped scenario includes, mutated, under an unchanged
    /// scenario: the diagnostic names the fixture file, at a line of it.
    #[test]
    fn a_mutated_fixture_file_gives_a_diagnostic_in_it(
        case in mutated(vec![(
            "fixtures/common.yaml".to_string(),
            std::fs::read(root().join("scenarios/fixtures/common.yaml")).unwrap(),
        )]),
        scenario in 0..scenario_seeds(false).len(),
    ) {
        let (rel, bytes) = &scenario_seeds(false)[scenario];
        let (_dir, path) = suite_with(rel, bytes);
        let fixture = path.parent().unwrap().parent().unwrap().join("fixtures/common.yaml");
        std::fs::write(&fixture, &case.bytes).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let fixture_text = case.text();
        let dotted = path.parent().unwrap().join("../fixtures/common.yaml");
        if let Err(d) = Loader::new().load_scenario(&path) {
            check_diagnostic(&d, &[(&path, &text), (&fixture, &fixture_text), (&dotted, &fixture_text)])?;
        }
        let mut loader = Loader::new();
        if let Err(d) = loader.load_fixtures(&fixture) {
            check_diagnostic(&d, &[(&fixture, &fixture_text)])?;
        }
    }

    /// Target files, mutated: a target or a diagnostic at a position, never a panic.
    #[test]
    fn mutated_target_files_load_or_give_a_diagnostic(case in mutated(target_seeds())) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("target.yaml");
        std::fs::write(&path, &case.bytes).unwrap();
        let text = case.text();
        match lettergate::load_target(&path) {
            Ok(t) => prop_assert!(!t.name().is_empty()),
            Err(d) => {
                check_diagnostic(&d, &[(&path, &text)])?;
                if yaml_serde::from_str::<yaml_serde::Value>(&text).is_err()
                    && std::str::from_utf8(&case.bytes).is_ok()
                {
                    prop_assert!(d.line > 0, "a YAML syntax error without a position:\n{}", d);
                }
            }
        }
    }
}

/// The lines of the volume scenario that hold a number (`patients: 40000`), by index.
fn number_lines() -> Vec<usize> {
    let (_, bytes) = &scenario_seeds(true)[0];
    String::from_utf8_lossy(bytes)
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            l.split_once(": ")
                .is_some_and(|(_, v)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|(i, _)| i)
        .collect()
}

/// Numbers that validate in shape and are hostile in size.
const HOSTILE_NUMBERS: &[&str] = &[
    "0",
    "1",
    "366",
    "367",
    "800000",
    "800001",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551615",
];

proptest! {
    #![proptest_config(super::config(8))]

    /// The volume scenario, mutated: its population sizes are where hostile values hurt
    /// most.
    #[test]
    fn the_mutated_volume_scenario_loads_or_gives_a_diagnostic(case in mutated(scenario_seeds(true))) {
        load_scenario(&case)?;
    }

    /// Each number of the volume scenario (seed, patients, days, every daily count) set to
    /// a hostile one: a diagnostic or a scenario, within the time limit. Issue 13, "Crashes
    /// and spins from values that validate": before the load range checks of point 5, a
    /// daily count such as `outpatient_attendance: 4294967295` validated and then generated
    /// events without end (over 60 s and 1 GB in `validate`), and `death:` near `u32::MAX`
    /// overflowed (population.rs); this property found both.
    #[test]
    fn hostile_numbers_in_the_volume_scenario_give_a_diagnostic_in_time(
        line in prop::sample::select(number_lines()),
        value in prop::sample::select(HOSTILE_NUMBERS),
    ) {
        let (seed, bytes) = scenario_seeds(true).remove(0);
        let text = String::from_utf8(bytes).unwrap();
        let edited: Vec<String> = text
            .lines()
            .enumerate()
            .map(|(i, l)| match l.split_once(": ") {
                Some((k, _)) if i == line => format!("{k}: {value}"),
                _ => l.to_string(),
            })
            .collect();
        let bytes = (edited.join("\n") + "\n").into_bytes();
        load_scenario(&Case { seed, edits: vec![], bytes })?;
    }
}

/// Target files from the tree: the stand-in's, those `lettergate init` writes, and one per
/// driver and capture as the integration tests write them.
pub fn target_seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![(
        "tests/standin/target.yaml".to_string(),
        std::fs::read(root().join("tests/standin/target.yaml")).unwrap(),
    )];
    let init = root().join("src/cli/init/suite/targets");
    for f in std::fs::read_dir(&init).unwrap() {
        let f = f.unwrap().path();
        out.push((
            format!("init/{}", f.file_name().unwrap().to_string_lossy()),
            std::fs::read(&f).unwrap(),
        ));
    }
    out.extend(super::seeds("target"));
    out.sort();
    out
}

/// Found by the fuzz targets `scenario` and `target_file` (issue 13, point 7): YAML counts a
/// lone CR as a line break, lettergate did not, so a diagnostic in a file with old Mac line
/// endings gave a line past the end of the file and showed no line.
#[test]
fn a_diagnostic_in_a_file_with_cr_line_endings_shows_its_line() {
    let scenario = "name: x\rinclude: [../fixtures/common.yaml]\rtimeline:\r  - at: 2025-06-02T09:00:00Z\r    event: outpatient_attendance\r    patient: alice\r    bogus: 1\r";
    let (_dir, path) = suite_with("case/cr.yaml", scenario.as_bytes());
    let d = Loader::new().load_scenario(&path).unwrap_err();
    assert_eq!(d.line, 7, "{d}");
    assert_eq!(d.source_line.as_deref(), Some("    bogus: 1"), "{d}");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t.yaml");
    std::fs::write(
        &target,
        "name: t\rnon_production: true\rdrive: {}\rcapture: {}\r",
    )
    .unwrap();
    let d = lettergate::load_target(&target).unwrap_err();
    assert!(d.line >= 1 && d.line <= 4, "{d}");
    assert!(d.source_line.is_some(), "{d}");
}

/// The inputs the fuzz targets found (kept in `tests/it/props/regressions/`), replayed
/// through the same checks: each gives a diagnostic inside its file, with its line shown.
#[test]
fn the_inputs_the_fuzz_targets_found_give_diagnostics_inside_their_files() {
    let dir = root().join("tests/it/props/regressions");
    let scenario = std::fs::read(dir.join("scenario-cr-line-endings.yaml")).unwrap();
    let (_suite, path) = suite_with("case/found.yaml", &scenario);
    let text = String::from_utf8_lossy(&scenario).into_owned();
    let d = Loader::new().load_scenario(&path).unwrap_err();
    check_diagnostic(&d, &[(&path, &text)]).unwrap();
    assert!(d.source_line.is_some(), "{d}");
    // The property test's: a NEL (U+0085), a line break to the YAML reader, in a name.
    let scenario = std::fs::read(dir.join("scenario-nel-line-break.yaml")).unwrap();
    let (_suite, path) = suite_with("case/nel.yaml", &scenario);
    let text = String::from_utf8_lossy(&scenario).into_owned();
    let d = Loader::new().load_scenario(&path).unwrap_err();
    check_diagnostic(&d, &[(&path, &text)]).unwrap();
    let target = dir.join("target-cr-line-endings.yaml");
    let text = std::fs::read_to_string(&target).unwrap();
    let d = lettergate::load_target(&target).unwrap_err();
    check_diagnostic(&d, &[(&target, &text)]).unwrap();
    assert!(d.source_line.is_some(), "{d}");
}

/// A line of a file as a diagnostic shows it: cut to its first characters, control
/// characters escaped.
fn shown_line(line: Option<&str>) -> Option<String> {
    use lettergate::protocol::text::{escape_controls, truncate};
    line.map(|l| escape_controls(&truncate(l, lettergate::fuzzing::SOURCE_LINE_MAX)).into_owned())
}
