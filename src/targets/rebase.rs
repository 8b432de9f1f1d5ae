//! A scenario as run against a target: [`rebase`] puts its timeline on the times its events
//! were actually driven, so "within 3d" means three days from when the EHR was told, and
//! applies what the target file says of every scenario.

use super::Target;
use crate::protocol::clock::Timestamp;
use crate::protocol::ids::NhsNumber;
use crate::scenario::Scenario;

/// The scenario as run against `t`: its timeline on the times its events were driven
/// (`driven`, in order; an event not yet driven lies in the far future, so nothing answers
/// from an event that has not happened) and told as having happened (`clinical`, the same
/// length or shorter: an event without one happened when it was driven), the target's
/// severity overrides under the scenario's own, and acknowledgements left out where
/// lettergate cannot see them.
pub fn rebase(t: &Target, s: &Scenario, driven: &[Timestamp], clinical: &[Timestamp]) -> Scenario {
    let mut r = s.clone();
    r.start = driven.first().copied().unwrap_or_else(Timestamp::now);
    r.real_time = true;
    r.clinical_clock = Some(t.clock.name());
    for (i, e) in r.timeline.iter_mut().enumerate() {
        e.at = driven.get(i).copied().unwrap_or(Timestamp(i64::MAX / 4));
        e.clinical_at = clinical.get(i).copied().unwrap_or(e.at);
    }
    for (kind, severity) in &t.severity {
        r.severity.entry(*kind).or_insert(*severity);
    }
    if t.capture.mesh_endpoint.is_none() || !t.acknowledgements {
        // ITK3 acknowledgements are seen only where lettergate is the MESH server; polling
        // a real MESH it does not see the EHR collect them (see the run's note). A target
        // whose EHR does not collect them says so once (`acknowledgements: false`).
        r.acknowledgements = false;
        for x in &mut r.expect {
            x.acknowledged = false;
            x.business_ack = None;
        }
    }
    r.reindex();
    r
}

/// The patients a scenario's events are about (its fixtures bring many more).
pub fn event_patients(s: &Scenario) -> Vec<NhsNumber> {
    let mut p: Vec<NhsNumber> = s
        .timeline
        .iter()
        .map(|e| s.patients[&e.patient].nhs_number)
        .collect();
    p.sort_unstable();
    p.dedup();
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Loader;
    use std::path::Path;

    fn target(more: &str) -> Target {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.yaml");
        let text = format!("name: staging-epr\nnon_production: true\ndrive:\n  fhir:\n    base_url: https://epr.example/fhir\ncapture:\n  mesh_endpoint:\n    listen: 127.0.0.1:0\n    shared_key_env: MESH_KEY\n    mailboxes: {{A81001HC001: MESH_PW}}\n{more}");
        std::fs::write(&p, text).unwrap();
        crate::targets::load(&p).unwrap()
    }

    fn acknowledged(t: &Target) -> Vec<bool> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/outpatient/clinic_letter.yaml");
        let s = Loader::new().load_scenario(&path).unwrap();
        let r = rebase(t, &s, &[], &[]);
        let mut acks: Vec<bool> = r.expect.iter().map(|x| x.acknowledged).collect();
        acks.push(r.acknowledgements);
        acks
    }

    #[test]
    fn a_target_that_says_its_ehr_collects_no_acknowledgements_checks_none_in_any_scenario() {
        // With its own MESH endpoint lettergate checks the clinic letter's acknowledgements...
        assert_eq!(acknowledged(&target("")), [true, false, true]);
        // ...unless the target file says once that its EHR does not collect them.
        let none = target("acknowledgements: false\n");
        assert!(!none.acknowledgements);
        assert_eq!(acknowledged(&none), [false, false, false]);
    }
}
