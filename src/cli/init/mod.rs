//! `lettergate init DIR`: a trust's own starting suite in a new folder. Synthetic practices
//! and patients, an outpatient, a discharge and a death scenario, a commented target file per
//! driver, CI files for GitLab CI and GitHub Actions, and the JSON Schemas that editors read;
//! then the scenarios are run once against the simulator and their snapshots accepted, so
//! `cd DIR && lettergate run` gives GO at once.
//!
//! The files are kept in `suite/` beside this file, as they are written: each can be read,
//! and checked by the tests, as the YAML or CI file it is.

use super::error::{Error, ExitStatus, UsageError};
use super::runtime;
use super::workdir::new_run_dir;
use lettergate::load_all;
use lettergate::SchemaKind;
use lettergate::SimConfig;
use lettergate::{run_all, RunConfig, Verdict};
use lettergate::{SnapshotMode, SnapshotStore};
use std::path::{Path, PathBuf};

/// The suite's files: where each goes below DIR, and its text.
const SUITE: [(&str, &str); 12] = [
    ("README.md", include_str!("suite/README.md")),
    (".gitignore", include_str!("suite/.gitignore")),
    (
        "scenarios/fixtures/trust.yaml",
        include_str!("suite/scenarios/fixtures/trust.yaml"),
    ),
    (
        "scenarios/outpatient/clinic_letter.yaml",
        include_str!("suite/scenarios/outpatient/clinic_letter.yaml"),
    ),
    (
        "scenarios/inpatient/discharge_summary.yaml",
        include_str!("suite/scenarios/inpatient/discharge_summary.yaml"),
    ),
    (
        "scenarios/death/in_hospital.yaml",
        include_str!("suite/scenarios/death/in_hospital.yaml"),
    ),
    ("targets/fhir.yaml", include_str!("suite/targets/fhir.yaml")),
    (
        "targets/hl7v2.yaml",
        include_str!("suite/targets/hl7v2.yaml"),
    ),
    ("targets/http.yaml", include_str!("suite/targets/http.yaml")),
    (".gitlab-ci.yml", include_str!("suite/.gitlab-ci.yml")),
    (
        ".github/workflows/lettergate.yml",
        include_str!("suite/.github/workflows/lettergate.yml"),
    ),
    ("schemas/README.md", SCHEMAS_README),
];

const SCHEMAS_README: &str = "\
JSON Schemas of this suite's files, written by `lettergate schema --out schemas`; the first
line of each scenario, fixture and target file points its editor here.
";

/// Writes the suite into `dir` (new, or empty), accepts its snapshots, and says what is next.
pub fn init(dir: &Path) -> Result<ExitStatus, Error> {
    refuse_non_empty(dir)?;
    let mut written = Vec::new();
    for (rel, text) in SUITE {
        written.push(write(dir, rel, text)?);
    }
    for kind in SchemaKind::ALL {
        let rel = format!("schemas/{}", kind.file_name());
        written.push(write(dir, &rel, &kind.render())?);
    }
    // Run from inside the suite, as `cd DIR && lettergate run --accept` would: the snapshots
    // record each scenario's path as the run was given it (`scenarios/…`), so they read the
    // same whoever checks the suite out, wherever.
    std::env::set_current_dir(dir)
        .map_err(|e| Error::harness(format!("failed to enter {}", dir.display()), e))?;
    let accepted = accept_snapshots()?;
    println!("wrote a new lettergate suite in {}:", dir.display());
    for path in &written {
        println!("  {}", path.strip_prefix(dir).unwrap_or(path).display());
    }
    println!("accepted the snapshots of its {accepted} scenarios against the simulator");
    println!("next: cd {} && lettergate run", dir.display());
    Ok(ExitStatus::Pass)
}

/// A folder that does not exist yet, or one with nothing in it.
fn refuse_non_empty(dir: &Path) -> Result<(), Error> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(UsageError::NotEmpty(dir.to_path_buf()).into()),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(UsageError::ReadFolder {
            path: dir.to_path_buf(),
            source,
        }
        .into()),
    }
}

fn write(dir: &Path, rel: &str, text: &str) -> Result<PathBuf, Error> {
    let path = dir.join(rel);
    let fail = |e| Error::harness(format!("failed to write {}", path.display()), e);
    lettergate::files::write(&path, text.as_bytes()).map_err(fail)?;
    Ok(path)
}

/// Runs the suite's scenarios once on the simulator, accepting each snapshot; every one must
/// pass, or the suite would not be the GO it promises.
fn accept_snapshots() -> Result<usize, Error> {
    let (scenarios, _) = load_all(&[PathBuf::from("scenarios")])?;
    let mut config = RunConfig::new(
        SimConfig::baseline(),
        SnapshotStore::new(Path::new("snapshots"), "simulator"),
        new_run_dir(Path::new(".lettergate"))?,
    );
    config.mode = SnapshotMode::Accept;
    let outcomes = runtime()?.block_on(run_all(&scenarios, config, |_| {}));
    if let Some(o) = outcomes.iter().find(|o| o.verdict != Verdict::Pass) {
        return Err(Error::harness(
            "failed to accept the new suite's snapshots",
            format!("scenario {} did not pass on the simulator", o.scenario_id),
        ));
    }
    Ok(outcomes.len())
}
