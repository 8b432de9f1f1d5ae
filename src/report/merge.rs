//! `report merge`: the JSON reports of the shards of one run put back together into one
//! [`RunReport`], or refused.
//!
//! A merged report must never say GO for a run of which a part is missing: a shard whose job
//! failed before it wrote its report, or a report given twice, would otherwise pass unnoticed
//! (a merge of shard 1/3 alone said GO). So every shard K of N must be there exactly once, all
//! cut from the same run ([`RunParameters`]: the same paths, snapshot mode and selection of
//! scenarios), and each shard must hold only scenarios that hash to it.

use super::model::RunReport;
use crate::scenario::Shard;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What a sharded run was asked, written into each shard's report.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunParameters {
    /// The scenario paths given to the command, as given.
    pub paths: Vec<String>,
    /// The snapshot folder and mode (`new`, `check` or `accept`).
    pub snapshots: String,
    pub snapshot_mode: String,
    /// The scenarios the run selected before it was cut into shards: how many, and a digest
    /// of their sorted ids, so that the merged shards can be shown to hold every one.
    pub selected: usize,
    pub selected_digest: String,
}

impl RunParameters {
    /// The parameters of a run that selected the scenarios with these ids.
    pub fn new<'a>(
        paths: Vec<String>,
        snapshots: String,
        snapshot_mode: String,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> RunParameters {
        let ids: Vec<&str> = ids.into_iter().collect();
        RunParameters {
            paths,
            snapshots,
            snapshot_mode,
            selected: ids.len(),
            selected_digest: digest_of_ids(ids),
        }
    }
}

/// A digest of a set of scenario ids, whatever their order.
pub fn digest_of_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Why the reports of several shards could not be combined. All are bad input (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Nothing,
    #[error("cannot merge reports of schema `{first}` and `{other}`")]
    Schema { first: String, other: String },
    /// What differs (`target`, `profile`, …), its value in the first report and in another.
    #[error(
        "cannot merge reports of different runs: {what}: {first_value} in {first}, {other_value} in {other}; merge the shards of one run"
    )]
    DifferentRuns {
        what: &'static str,
        first: String,
        first_value: String,
        other: String,
        other_value: String,
    },
    #[error("{file} is the report of a whole run, not of a shard: merge only the reports of `run --shard K/N`, or use {file} as it is")]
    WholeRunWithOthers { file: String },
    #[error("cannot merge shards of different splits: {first} holds shard {first_shard}, {other} holds shard {other_shard}")]
    DifferentSplits {
        first: String,
        first_shard: Shard,
        other: String,
        other_shard: Shard,
    },
    #[error("{}", missing_text(.missing, .count))]
    MissingShards { missing: Vec<u32>, count: u32 },
    #[error("shard {shard} is given more than once ({}): give each shard's report once", .files.join(", "))]
    RepeatedShard { shard: Shard, files: Vec<String> },
    #[error("scenario `{id}` is in more than one report ({}): give each shard's report once", .files.join(", "))]
    RepeatedScenario { id: String, files: Vec<String> },
    #[error("{file} says it is shard {shard} but holds scenario `{id}`, which belongs to another shard: was the report edited or renamed?")]
    ScenarioInWrongShard {
        file: String,
        shard: Shard,
        id: String,
    },
    #[error("the shards hold {held} of the {selected} scenarios their run selected: a shard's report is missing scenarios or comes from another suite")]
    IncompleteSelection { held: usize, selected: usize },
    #[error("no scenario selected: the reports hold no scenario")]
    NoScenario,
}

fn missing_text(missing: &[u32], count: &u32) -> String {
    let names: Vec<String> = missing.iter().map(|k| format!("{k}/{count}")).collect();
    format!(
        "shard{} {} of the run {} missing: merge the reports of every shard 1/{count} to {count}/{count}",
        if missing.len() == 1 { "" } else { "s" },
        names.join(", "),
        if missing.len() == 1 { "is" } else { "are" },
    )
}

impl RunReport {
    /// Combines the reports of the shards of one run, each with the name it is known by (its
    /// file). Refused unless every shard K of N is there exactly once and all are of one run.
    pub fn merge(parts: Vec<(String, RunReport)>) -> Result<RunReport, MergeError> {
        let Some((first_name, first)) = parts.first() else {
            return Err(MergeError::Nothing);
        };
        for (name, p) in &parts[1..] {
            same_run(first_name, first, name, p)?;
        }
        check_shards(&parts)?;
        let (_, first) = &parts[0];
        let parameters = first.parameters.clone();
        let mut merged = RunReport {
            shards: Vec::new(),
            scenarios: Vec::new(),
            ..first.clone()
        };
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (name, p) in parts {
            for s in &p.scenarios {
                if let Some(other) = seen.insert(s.id.clone(), name.clone()) {
                    return Err(MergeError::RepeatedScenario {
                        id: s.id.clone(),
                        files: vec![other, name],
                    });
                }
            }
            merged.shards.extend(p.shards);
            merged.scenarios.extend(p.scenarios);
        }
        merged.scenarios.sort_by(|a, b| a.id.cmp(&b.id));
        merged.shards.sort();
        if merged.scenarios.is_empty() {
            return Err(MergeError::NoScenario);
        }
        if let Some(p) = parameters.filter(|_| !merged.shards.is_empty()) {
            let held = digest_of_ids(merged.scenarios.iter().map(|s| s.id.as_str()));
            if merged.scenarios.len() != p.selected || held != p.selected_digest {
                return Err(MergeError::IncompleteSelection {
                    held: merged.scenarios.len(),
                    selected: p.selected,
                });
            }
        }
        Ok(merged)
    }
}

/// The parts of a report that must agree in every shard of one run.
fn same_run(a_name: &str, a: &RunReport, b_name: &str, b: &RunReport) -> Result<(), MergeError> {
    if a.schema != b.schema {
        return Err(MergeError::Schema {
            first: a.schema.clone(),
            other: b.schema.clone(),
        });
    }
    for ((what, x), (_, y)) in facts(a).into_iter().zip(facts(b)) {
        if x != y {
            return Err(MergeError::DifferentRuns {
                what,
                first: a_name.to_string(),
                first_value: x,
                other: b_name.to_string(),
                other_value: y,
            });
        }
    }
    Ok(())
}

/// What each shard of one run has alike, each named as the error shows it.
fn facts(r: &RunReport) -> [(&'static str, String); 8] {
    let p = r.parameters.as_ref();
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "(not recorded)".into());
    [
        ("the target", r.target.clone()),
        ("the profile", r.profile.clone()),
        ("the lettergate version", r.lettergate_version.clone()),
        ("--show-identifiers", r.identifiers_shown.to_string()),
        (
            "the scenario paths",
            or_none(p.map(|p| format!("`{}`", p.paths.join(" ")))),
        ),
        (
            "the snapshot folder",
            or_none(p.map(|p| p.snapshots.clone())),
        ),
        (
            "the snapshot mode",
            or_none(p.map(|p| p.snapshot_mode.clone())),
        ),
        (
            "the scenarios selected",
            or_none(p.map(|p| {
                format!(
                    "{} (ids digest {})",
                    p.selected,
                    p.selected_digest.chars().take(12).collect::<String>()
                )
            })),
        ),
    ]
}

/// Every shard K of one N exactly once, each holding only its own scenarios; a whole run's
/// report only alone.
fn check_shards(parts: &[(String, RunReport)]) -> Result<(), MergeError> {
    if parts.len() > 1 {
        if let Some((name, _)) = parts.iter().find(|(_, p)| p.shards.is_empty()) {
            return Err(MergeError::WholeRunWithOthers { file: name.clone() });
        }
    }
    let mut held: BTreeMap<Shard, Vec<String>> = BTreeMap::new();
    let mut split: Option<(String, Shard)> = None;
    for (name, p) in parts {
        for &shard in &p.shards {
            match &split {
                Some((first, first_shard)) if first_shard.count() != shard.count() => {
                    return Err(MergeError::DifferentSplits {
                        first: first.clone(),
                        first_shard: *first_shard,
                        other: name.clone(),
                        other_shard: shard,
                    });
                }
                Some(_) => {}
                None => split = Some((name.clone(), shard)),
            }
            held.entry(shard).or_default().push(name.clone());
        }
        // A scenario belongs to exactly one shard; one that hashes to none of the shards the
        // report claims means the report is not what it says.
        for s in &p.scenarios {
            if !p.shards.is_empty() && !p.shards.iter().any(|k| k.contains(&s.id)) {
                return Err(MergeError::ScenarioInWrongShard {
                    file: name.clone(),
                    shard: p.shards[0],
                    id: s.id.clone(),
                });
            }
        }
    }
    if let Some((shard, files)) = held.iter().find(|(_, files)| files.len() > 1) {
        return Err(MergeError::RepeatedShard {
            shard: *shard,
            files: files.clone(),
        });
    }
    if let Some((_, any)) = split {
        let count = any.count();
        let missing: Vec<u32> = (1..=count)
            .filter(|k| !held.keys().any(|s| s.index() == *k))
            .collect();
        if !missing.is_empty() {
            return Err(MergeError::MissingShards { missing, count });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ids::Identifiers;

    fn shard(k: u32, n: u32) -> (String, RunReport) {
        let mut r = RunReport::new("simulator", "baseline", Identifiers::Masked);
        r.shards.push(Shard::new(k, n).unwrap());
        (format!("shard-{k}.json"), r)
    }

    fn names(e: MergeError) -> String {
        e.to_string()
    }

    #[test]
    fn a_shard_alone_or_with_a_gap_is_refused_naming_the_missing_shards() {
        let e = RunReport::merge(vec![shard(1, 3)]).unwrap_err();
        assert_eq!(
            e,
            MergeError::MissingShards {
                missing: vec![2, 3],
                count: 3
            }
        );
        assert_eq!(
            names(e),
            "shards 2/3, 3/3 of the run are missing: merge the reports of every shard 1/3 to 3/3"
        );
        let e = RunReport::merge(vec![shard(1, 3), shard(3, 3)]).unwrap_err();
        assert_eq!(
            names(e),
            "shard 2/3 of the run is missing: merge the reports of every shard 1/3 to 3/3"
        );
    }

    #[test]
    fn a_shard_given_twice_is_refused_naming_both_files() {
        let (_, one) = shard(1, 2);
        let e = RunReport::merge(vec![shard(1, 2), ("copy.json".into(), one), shard(2, 2)])
            .unwrap_err();
        assert_eq!(
            names(e),
            "shard 1/2 is given more than once (shard-1.json, copy.json): give each shard's report once"
        );
    }

    #[test]
    fn shards_of_different_splits_or_runs_are_refused() {
        let e = RunReport::merge(vec![shard(1, 2), shard(2, 3)]).unwrap_err();
        assert!(matches!(e, MergeError::DifferentSplits { .. }), "{e}");
        let (_, mut other) = shard(2, 2);
        other.profile = "dispatch-stall-3-weeks".into();
        let e = RunReport::merge(vec![shard(1, 2), ("b.json".into(), other)]).unwrap_err();
        assert_eq!(
            names(e),
            "cannot merge reports of different runs: the profile: baseline in shard-1.json, dispatch-stall-3-weeks in b.json; merge the shards of one run"
        );
        let (_, mut other) = shard(2, 2);
        other.parameters = Some(RunParameters::new(vec![], "s".into(), "check".into(), []));
        let e = RunReport::merge(vec![shard(1, 2), ("b.json".into(), other)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("the scenario paths: (not recorded) in shard-1.json, `` in b.json"),
            "{e}"
        );
        let (_, mut other) = shard(2, 2);
        other.identifiers_shown = true;
        assert!(RunReport::merge(vec![shard(1, 2), ("b.json".into(), other)]).is_err());
    }

    #[test]
    fn a_whole_run_merges_only_alone_and_nothing_is_refused() {
        let whole = RunReport::new("simulator", "baseline", Identifiers::Masked);
        let e = RunReport::merge(vec![("whole.json".into(), whole), shard(1, 1)]).unwrap_err();
        assert!(matches!(e, MergeError::WholeRunWithOthers { .. }), "{e}");
        assert_eq!(RunReport::merge(vec![]).unwrap_err(), MergeError::Nothing);
        // Every shard there, but not one scenario in any: no scenario selected.
        assert_eq!(
            RunReport::merge(vec![shard(1, 2), shard(2, 2)]).unwrap_err(),
            MergeError::NoScenario
        );
    }

    #[test]
    fn the_digest_of_ids_does_not_depend_on_their_order() {
        assert_eq!(digest_of_ids(["a", "b"]), digest_of_ids(["b", "a"]));
        assert_ne!(digest_of_ids(["a", "b"]), digest_of_ids(["a"]));
        assert_ne!(digest_of_ids(["ab"]), digest_of_ids(["a", "b"]));
    }
}
