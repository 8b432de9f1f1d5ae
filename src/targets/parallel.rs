//! Which scenarios of a target run may be driven at once: [`plan`] puts them in **waves**.
//!
//! A staging EHR is one shared system that keeps one record of each patient. Two scenarios
//! about the same patient driven at once would meet in that record: one's registration undoes
//! the other's GP change or named GP leaving, a discharge takes the other's draft summary, and
//! by NHS number nobody could tell whose a letter is. So scenarios that share a patient are
//! never in one wave, unless the target says `parallel: {shared_patients: true}` (only with
//! `match: local_id` or a field path), and then still not when one changes the patient or
//! they register the patient differently.
//!
//! The waves are filled greedily in scenario order: each scenario goes into the first wave
//! with room after the last wave that holds a scenario it conflicts with, so scenarios about
//! one patient keep their order. With one slot every wave holds one scenario, in order: the
//! sequential run.

use super::file::MatchBy;
use super::Target;
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::EventKind;
use crate::scenario::Scenario;
use std::collections::BTreeMap;

/// The scenarios of a run in waves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Positions in the scenarios given, wave by wave; each exactly once.
    pub waves: Vec<Vec<usize>>,
    /// How many scenarios a wave may hold: `-j`, capped by the target's `parallel.max`.
    pub slots: usize,
    /// What the run says about it before anything is driven: a cap on `-j`, and why fewer
    /// scenarios run at once than the slots allow.
    pub notes: Vec<String>,
}

/// The waves of `scenarios` against `t` with `jobs` (`-j`) at most at once.
pub fn plan(t: &Target, scenarios: &[&Scenario], jobs: usize) -> Plan {
    let jobs = jobs.max(1);
    let slots = t.parallel.max.map_or(jobs, |m| m.min(jobs)).max(1);
    let mut notes = Vec::new();
    if slots < jobs {
        notes.push(format!(
            "-j {jobs} is capped at {slots} at once by target {}'s `parallel: {{max: {slots}}}`",
            t.name()
        ));
    }
    let footprints: Vec<Footprint> = scenarios.iter().map(|s| Footprint::of(s)).collect();
    let mut waves: Vec<Vec<usize>> = Vec::new();
    let mut wave_of: Vec<usize> = Vec::with_capacity(scenarios.len());
    // Per shared patient: the scenarios that had to wait for another about them.
    let mut kept_apart: BTreeMap<NhsNumber, Vec<usize>> = BTreeMap::new();
    for (j, fj) in footprints.iter().enumerate() {
        let mut after = 0;
        for (i, fi) in footprints[..j].iter().enumerate() {
            if let Some(nhs) = conflict(t, fi, fj) {
                after = after.max(wave_of[i] + 1);
                let apart = kept_apart.entry(nhs).or_default();
                for k in [i, j] {
                    if !apart.contains(&k) {
                        apart.push(k);
                    }
                }
            }
        }
        let w = (after..)
            .find(|w| waves.get(*w).is_none_or(|wave| wave.len() < slots))
            .unwrap_or(after);
        if w == waves.len() {
            waves.push(Vec::new());
        }
        waves[w].push(j);
        wave_of.push(w);
    }
    let fewest = scenarios.len().div_ceil(slots);
    if slots > 1 && waves.len() > fewest {
        notes.push(apart_note(t, scenarios, &waves, slots, fewest, &kept_apart));
    }
    Plan {
        waves,
        slots,
        notes,
    }
}

/// Why the run takes more waves than its slots need, naming the patients (masked) and the
/// scenarios that were kept apart for them.
fn apart_note(
    t: &Target,
    scenarios: &[&Scenario],
    waves: &[Vec<usize>],
    slots: usize,
    fewest: usize,
    kept_apart: &BTreeMap<NhsNumber, Vec<usize>>,
) -> String {
    let how = match waves.len() == scenarios.len() {
        true => format!(
            "the {} scenarios run one after another, though -j allows {slots} at once",
            scenarios.len()
        ),
        false => format!(
            "the {} scenarios run in {} waves of at most {slots} at once, not {fewest}",
            scenarios.len(),
            waves.len()
        ),
    };
    let why = match (&t.match_by, t.parallel.shared_patients) {
        (MatchBy::NhsNumber, _) => "with `match: nhs_number` a letter is told whose it is by its patient, and the EHR keeps one record of each patient, so scenarios about the same patient run one after another".to_string(),
        (by, false) => format!("the EHR keeps one record of each patient, so scenarios about the same patient run one after another (with `match: {}`, `parallel: {{shared_patients: true}}` lets them overlap where neither changes the patient)", by.name()),
        (_, true) => "scenarios about the same patient run one after another where one changes the patient (a GP change, a named GP leaving, a death) or they register the patient differently".to_string(),
    };
    let mut shared: Vec<(&NhsNumber, &Vec<usize>)> = kept_apart.iter().collect();
    shared.sort_by_key(|(nhs, ids)| (std::cmp::Reverse(ids.len()), **nhs));
    const SHOWN: usize = 3;
    let names = |ids: &[usize]| {
        let mut ids: Vec<usize> = ids.to_vec();
        ids.sort_unstable();
        let mut s: Vec<&str> = ids
            .iter()
            .take(SHOWN)
            .map(|&i| scenarios[i].id.as_str())
            .collect();
        let more = ids.len().saturating_sub(SHOWN);
        let more = (more > 0).then(|| format!("{more} more"));
        s.extend(more.as_deref());
        s.join(", ")
    };
    let patients: Vec<String> = shared
        .iter()
        .take(SHOWN)
        .map(|(nhs, ids)| format!("{} in {} ({})", nhs.masked(), ids.len(), names(ids)))
        .collect();
    let more = shared.len().saturating_sub(SHOWN);
    format!(
        "{how}: {why}; {} {} kept scenarios apart: {}{}",
        shared.len(),
        if shared.len() == 1 {
            "patient"
        } else {
            "patients"
        },
        patients.join("; "),
        match more {
            0 => String::new(),
            n => format!("; and {n} more"),
        }
    )
}

/// What a scenario does to the EHR's records of its patients.
struct Footprint {
    /// Each patient its events are about: how it registers them, and whether it changes them.
    patients: BTreeMap<NhsNumber, (Registration, bool)>,
}

/// What the EHR is told of a patient when it is registered.
#[derive(PartialEq, Eq)]
struct Registration {
    name: String,
    born: String,
    practice: Option<String>,
    previous_practice: Option<String>,
    named_gp: Option<String>,
}

impl Footprint {
    fn of(s: &Scenario) -> Footprint {
        let ods = |key: &Option<String>| {
            key.as_ref()
                .map(|k| s.practices.get(k).map_or(k.clone(), |p| p.ods.to_string()))
        };
        let mut patients = BTreeMap::new();
        for e in &s.timeline {
            let Some(p) = s.patients.get(&e.patient) else {
                continue;
            };
            let changes = matches!(
                e.kind,
                EventKind::GpChange | EventKind::NamedGpLeft | EventKind::Death
            );
            let entry = patients.entry(p.nhs_number).or_insert_with(|| {
                let r = Registration {
                    name: p.name.clone(),
                    born: p.born.clone(),
                    practice: ods(&p.practice),
                    previous_practice: ods(&p.previous_practice),
                    named_gp: p.named_gp.clone(),
                };
                (r, false)
            });
            entry.1 |= changes;
        }
        Footprint { patients }
    }
}

/// The patient two scenarios may not share at once, if any.
fn conflict(t: &Target, a: &Footprint, b: &Footprint) -> Option<NhsNumber> {
    a.patients.iter().find_map(|(nhs, (ra, changes_a))| {
        let (rb, changes_b) = b.patients.get(nhs)?;
        let together = t.parallel.shared_patients && !changes_a && !changes_b && ra == rb;
        (!together).then_some(*nhs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn target(dir: &Path, more: &str) -> Target {
        let file = dir.join("t.yaml");
        std::fs::write(&file, format!("name: t\nnon_production: true\ndrive:\n  fhir: {{base_url: http://127.0.0.1:1/fhir}}\ncapture:\n  http_endpoint: {{listen: 127.0.0.1:0}}\n{more}")).unwrap();
        crate::targets::load(&file).unwrap_or_else(|d| panic!("{d}"))
    }

    fn shipped(names: &[&str]) -> Vec<std::sync::Arc<Scenario>> {
        let paths: Vec<PathBuf> = names
            .iter()
            .map(|n| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios")).join(n))
            .collect();
        crate::scenario::load_all(&paths).unwrap().0
    }

    fn waves(t: &Target, scenarios: &[std::sync::Arc<Scenario>], jobs: usize) -> Plan {
        let refs: Vec<&Scenario> = scenarios.iter().map(|s| s.as_ref()).collect();
        plan(t, &refs, jobs)
    }

    // In the order of their ids: alice, carol (dies), bob, alice, jack (named GP leaves),
    // alice with others.
    const SIX: [&str; 6] = [
        "outpatient/clinic_letter.yaml",
        "inpatient/discharge_summary.yaml",
        "calendar/friday_clinic_signed_monday.yaml",
        "outpatient/named_gp_left.yaml",
        "death/in_hospital.yaml",
        "routing/mllp_and_folder_practices.yaml",
    ];

    #[test]
    fn one_slot_runs_every_scenario_alone_in_order_and_says_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = shipped(&SIX);
        let p = waves(&target(dir.path(), ""), &s, 1);
        assert_eq!(p.waves, (0..6).map(|i| vec![i]).collect::<Vec<_>>());
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    #[test]
    fn by_nhs_number_scenarios_about_one_patient_go_in_later_waves_and_the_run_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let s = shipped(&SIX);
        let p = waves(&target(dir.path(), ""), &s, 4);
        // The three about alice (0, 3, 5) one wave each, in their order; the rest fill in.
        assert_eq!(p.waves, vec![vec![0, 1, 2, 4], vec![3], vec![5]]);
        let note = p.notes.join("\n");
        assert!(
            note.contains("the 6 scenarios run in 3 waves of at most 4 at once, not 2")
                && note.contains("`match: nhs_number`")
                && note.contains("1 patient kept scenarios apart: *******018 in 3 (calendar/friday_clinic_signed_monday, outpatient/clinic_letter, routing/mllp_and_folder_practices)"),
            "{note}"
        );
        assert!(!note.contains("9990000018"), "{note}");
    }

    #[test]
    fn scenarios_about_one_patient_only_run_one_after_another_and_the_run_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let s = shipped(&[
            "outpatient/clinic_letter.yaml",
            "calendar/friday_clinic_signed_monday.yaml",
        ]);
        let p = waves(&target(dir.path(), "match: local_id\n"), &s, 8);
        assert_eq!(p.waves, vec![vec![0], vec![1]]);
        let note = p.notes.join("\n");
        assert!(
            note.contains("the 2 scenarios run one after another, though -j allows 8 at once")
                && note.contains("`parallel: {shared_patients: true}` lets them overlap"),
            "{note}"
        );
    }

    #[test]
    fn shared_patients_overlap_only_where_nobody_changes_them() {
        let dir = tempfile::tempdir().unwrap();
        let t = target(
            dir.path(),
            "match: local_id\nparallel: {shared_patients: true}\n",
        );
        let s = shipped(&[
            "outpatient/clinic_letter.yaml",
            "calendar/friday_clinic_signed_monday.yaml",
            "routing/changed_practice.yaml",
            "emergency/several_attendances.yaml",
        ]);
        // In the order of their ids: alice, alice and erin, alice, erin's GP change. alice
        // together; erin's GP change keeps changed_practice apart from several_attendances.
        let p = waves(&t, &s, 4);
        assert_eq!(p.waves, vec![vec![0, 1, 2], vec![3]]);
        assert!(
            p.notes.join("").contains("*******050 in 2"),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn a_targets_cap_limits_what_minus_j_asks_and_is_said() {
        let dir = tempfile::tempdir().unwrap();
        let s = shipped(&SIX[..2]);
        let p = waves(&target(dir.path(), "parallel: {max: 1}\n"), &s, 16);
        assert_eq!((p.slots, p.waves.len()), (1, 2));
        assert_eq!(
            p.notes,
            ["-j 16 is capped at 1 at once by target t's `parallel: {max: 1}`"]
        );
    }

    #[test]
    fn a_cap_out_of_range_and_shared_patients_by_nhs_number_are_refused_at_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        let head = "name: t\nnon_production: true\ndrive:\n  fhir: {base_url: http://127.0.0.1:1/fhir}\ncapture:\n  http_endpoint: {listen: 127.0.0.1:0}\n";
        for (more, says, line) in [
            (
                "parallel: {max: 0}\n",
                "`parallel.max` is 0: it must be 1 to 256",
                "7:1",
            ),
            (
                "parallel:\n  shared_patients: true\n",
                "needs `match: local_id`",
                "8:3",
            ),
        ] {
            std::fs::write(&file, format!("{head}{more}")).unwrap();
            let d = crate::targets::load(&file).unwrap_err();
            let text = d.to_string();
            assert!(text.contains(says), "{text}");
            assert!(text.contains(&format!("t.yaml:{line}")), "{text}");
        }
    }
}
