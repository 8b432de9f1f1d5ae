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
    for f in &found.fixtures {
        if let Err(d) = loader.load_fixtures(f) {
            diags.push(d);
        }
    }
    let mut scenarios = Vec::new();
    for p in &found.scenarios {
        match loader.load_scenario(p) {
            Ok(s) => scenarios.push(Arc::new(s)),
            Err(d) => diags.push(d),
        }
    }
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
