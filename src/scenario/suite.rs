//! Loading a whole suite: every scenario and fixture file under the paths given, with every
//! diagnostic collected rather than stopping at the first.

use super::{discover, Diagnostic, Loader, Scenario};
use std::path::PathBuf;
use std::sync::Arc;

/// Why a suite could not be loaded. All are bad input (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// One or more files are wrong; each diagnostic points at its file, line and column.
    #[error("{} in the input", plural(.0.len()))]
    Input(Vec<Diagnostic>),
    #[error("no scenario selected: no scenario files (*.yaml) found under {0}")]
    NoScenario(String),
    #[error("two scenario files have the same id `{id}` ({} and {}): rename one", first.display(), second.display())]
    SameId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
}

/// "1 error", "2 errors".
pub fn plural(n: usize) -> String {
    if n == 1 {
        "1 error".into()
    } else {
        format!("{n} errors")
    }
}

/// Loads every scenario under `paths`, collecting all diagnostics rather than stopping early.
///
/// Scenarios come shared ([`Arc`]), since runs hand them to tasks and a generated one is large.
pub fn load_all(paths: &[PathBuf]) -> Result<(Vec<Arc<Scenario>>, usize), LoadError> {
    let found = discover(paths).map_err(|d| LoadError::Input(vec![d]))?;
    let mut loader = Loader::new();
    let mut diags: Vec<Diagnostic> = Vec::new();
    let mut scenarios = Vec::new();
    for p in &found.scenarios {
        let root = found.roots.get(p).cloned().unwrap_or_default();
        match loader.load_scenario_below(&root, p) {
            Ok(s) => scenarios.push(Arc::new(s)),
            Err(d) => diags.push(d),
        }
    }
    // A fixture file a scenario includes was checked with the names of the fixture files
    // beside it; one that no scenario includes is checked on its own.
    let alone: Vec<&PathBuf> = found
        .fixtures
        .iter()
        .filter(|f| !loader.was_included(f))
        .collect();
    for f in alone {
        if let Err(d) = loader.load_fixtures(f) {
            diags.push(d);
        }
    }
    // Fixture files' diagnostics first, as they are what the scenarios' depend on.
    diags.sort_by_key(|d| !found.fixtures.contains(&d.file));
    // A broken fixture file is reported once, not again by every scenario that includes it.
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert(d.to_string()));
    if !diags.is_empty() {
        return Err(LoadError::Input(diags));
    }
    if scenarios.is_empty() {
        let shown: Vec<_> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError::NoScenario(shown.join(", ")));
    }
    let mut ids = std::collections::BTreeMap::new();
    for s in &scenarios {
        if let Some(other) = ids.insert(s.id.clone(), s.path.clone()) {
            return Err(LoadError::SameId {
                id: s.id.clone(),
                first: other,
                second: s.path.clone(),
            });
        }
    }
    Ok((scenarios, found.fixtures.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const SCENARIO: &str = "name: a letter\npractices:\n  riverside: {ods: A81001, name: Riverside}\npatients:\n  alice: {nhs_number: \"9990000018\", name: Alice Example, born: 1950-01-01, practice: riverside}\ntimeline:\n  - at: 2025-03-03T09:30:00Z\n    event: discharge\n    patient: alice\nexpect:\n  - letter: discharge_summary\n    patient: alice\n";

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ids(given: &Path) -> Vec<String> {
        let (scenarios, _) = load_all(&[given.to_path_buf()]).unwrap();
        scenarios.iter().map(|s| s.id.clone()).collect()
    }

    /// Before, only a folder named `scenarios` rooted the ids: these were `clinic` and `ward`.
    #[test]
    fn ids_are_the_path_below_the_folder_given_whatever_it_is_called() {
        let dir = tempfile::tempdir().unwrap();
        let suite = dir.path().join("trust-regression");
        write(&suite, "outpatient/clinic.yaml", SCENARIO);
        write(&suite, "inpatient/ward.yaml", SCENARIO);
        assert_eq!(ids(&suite), ["inpatient/ward", "outpatient/clinic"]);
    }

    #[test]
    fn a_suite_with_fixtures_names_its_scenarios_alike_from_a_file_a_subfolder_or_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let suite = dir.path().join("letters");
        write(&suite, "fixtures/none.yaml", "practices: {}\n");
        let file = write(&suite, "inpatient/ward.yaml", SCENARIO);
        for given in [suite.clone(), suite.join("inpatient"), file] {
            assert_eq!(ids(&given), ["inpatient/ward"], "{}", given.display());
        }
    }

    /// The shipped suite keeps its ids, and so the names of its accepted snapshots.
    #[test]
    fn the_shipped_suite_keeps_the_ids_its_snapshots_are_named_after() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let snaps = root.join("snapshots/simulator");
        let mut accepted = Vec::new();
        for dir in std::fs::read_dir(&snaps).unwrap() {
            let dir = dir.unwrap().path();
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                let rel = f.strip_prefix(&snaps).unwrap().with_extension("");
                accepted.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        accepted.sort();
        let scenarios = root.join("scenarios");
        assert_eq!(ids(&scenarios), accepted);
        let one = scenarios.join("death/in_hospital.yaml");
        assert_eq!(ids(&one), ["death/in_hospital"]);
        assert_eq!(
            ids(&scenarios.join("routing"))[0],
            "routing/changed_practice"
        );
    }

    const PRACTICES: &str = "practices:\n  riverside: {ods: A81001, name: Riverside}\n";
    const PATIENTS: &str = "patients:\n  alice:\n    nhs_number: \"9990000018\"\n    name: Alice Example\n    born: 1950-01-01\n    practice: riverside\n";
    const USES_BOTH: &str = "name: a letter\ninclude: [../fixtures/practices.yaml, ../fixtures/patients.yaml]\ntimeline:\n  - at: 2025-03-03T09:30:00Z\n    event: discharge\n    patient: alice\nexpect:\n  - letter: discharge_summary\n    patient: alice\n";

    /// Before, `patients.yaml` was read on its own and `riverside` was an unknown practice.
    #[test]
    fn a_fixture_file_uses_the_practices_of_another_the_scenario_includes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fixtures/practices.yaml", PRACTICES);
        write(dir.path(), "fixtures/patients.yaml", PATIENTS);
        write(dir.path(), "inpatient/ward.yaml", USES_BOTH);
        let (scenarios, fixtures) = load_all(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(fixtures, 2);
        assert_eq!(
            scenarios[0].patients["alice"].practice.as_deref(),
            Some("riverside")
        );
        assert_eq!(scenarios[0].practices["riverside"].ods.as_str(), "A81001");
    }

    #[test]
    fn a_name_no_fixture_of_the_scenario_defines_points_at_its_line_with_the_likely_fix() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fixtures/practices.yaml", PRACTICES);
        let patients = write(
            dir.path(),
            "fixtures/patients.yaml",
            &PATIENTS.replace("practice: riverside", "practice: riversde"),
        );
        write(dir.path(), "inpatient/ward.yaml", USES_BOTH);
        let Err(LoadError::Input(diags)) = load_all(&[dir.path().to_path_buf()]) else {
            panic!("loaded")
        };
        assert_eq!(diags.len(), 1, "{diags:?}");
        let d = &diags[0];
        assert_eq!((&d.file, d.line, d.column), (&patients, 6, 15), "{d}");
        assert!(d.message.contains("unknown practice `riversde`"), "{d}");
        assert!(
            d.help
                .as_ref()
                .unwrap()
                .starts_with("did you mean `riverside`?"),
            "{d}"
        );
    }

    /// The names are shared only among the fixture files of one scenario: a fixture file no
    /// scenario includes is checked on its own.
    #[test]
    fn a_fixture_file_no_scenario_includes_is_checked_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "fixtures/practices.yaml", PRACTICES);
        let patients = write(dir.path(), "fixtures/patients.yaml", PATIENTS);
        write(dir.path(), "inpatient/ward.yaml", SCENARIO);
        let Err(LoadError::Input(diags)) = load_all(&[dir.path().to_path_buf()]) else {
            panic!("loaded")
        };
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].file, patients);
        assert!(diags[0].message.contains("unknown practice `riverside`"));
    }
}
