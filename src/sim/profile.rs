//! Named behaviours of the simulator: [`SimConfig`] and the profile catalogue.
//!
//! A profile is the baseline configuration with a few knobs turned, so adding one is a local
//! change: a new entry in [`PROFILES`] and, if no knob fits, a new field on [`SimConfig`] read
//! in one place of [`super::ehr`].

use crate::protocol::clock::Span;
use crate::protocol::letter::{EventKind, LetterKind};

/// "When this event happens, this letter is written."
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LetterRule {
    pub on: EventKind,
    pub letter: LetterKind,
}

/// Everything that decides how the simulated EHR behaves.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub profile: String,
    pub rules: Vec<LetterRule>,
    /// The dispatcher sends whatever is queued at every multiple of this interval.
    pub dispatch_interval: Span,
    /// The trust's own ODS code and name, used as the sender of letters.
    pub trust_ods: String,
    pub trust_name: String,
    /// What is broken; all off in `baseline`.
    pub faults: Faults,
}

/// The knobs fault profiles turn. Each is read in one place of [`super::ehr`].
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Letters of these kinds are recorded as sent but never sent.
    pub silently_drop: Vec<LetterKind>,
    /// Letters for a patient whose named GP has left are not sent electronically; a paper copy
    /// goes to the practice through the print service instead.
    pub skip_when_named_gp_left: bool,
    /// Once a letter is queued the dispatcher stalls this long, then sends everything at once.
    pub stall: Option<Span>,
    /// The recipient comes from the registration held when the patient attended, not from the
    /// patient index when the letter is sent.
    pub stale_registration: bool,
    /// Letters of a kind go out with another MESH workflow id.
    pub workflow_override: Vec<(LetterKind, &'static str)>,
    /// Every MESH send is posted twice, as by a client that retries the first POST.
    pub duplicate_sends: bool,
    /// The patient's copy is still posted after the patient has died.
    pub copies_after_death: bool,
    /// Letters of a kind are queued this long after the event that finalises them.
    pub delay: Vec<(LetterKind, Span)>,
    /// A section (by title) is dropped from letters of a kind.
    pub drop_section: Vec<(LetterKind, &'static str)>,
    /// A second signature is never recorded, so letters that need one are never final.
    pub countersign_lost: bool,
    /// Letters for a merged practice go to the old practice's own mailbox, which nobody collects.
    pub stale_directory: bool,
    /// Only one letter of a kind in every N is sent.
    pub send_one_in: Vec<(LetterKind, u32)>,
    /// Letters about events on a Saturday, Sunday or bank holiday (in England) are never sent.
    pub skip_weekend_events: bool,
    /// Letters carry the day they are sent as the date of the event and of the document.
    pub date_when_sent: bool,
    /// Letters that fall due in the hour before the clocks go forward are never sent.
    pub skip_missing_hour: bool,
}

/// One entry of the catalogue: a name, a line for `sim profiles`, and how it differs.
pub struct Profile {
    pub name: &'static str,
    pub description: &'static str,
    pub apply: fn(&mut SimConfig),
}

/// The catalogue. `baseline` is correct behaviour and the default; each other entry is a
/// failure seen after a real EHR upgrade (DOMAIN.md, failure modes A to L).
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "baseline",
        description: "correct behaviour: every letter to the right recipient, on time, once",
        apply: |_| {},
    },
    Profile {
        name: "op-letters-silently-dropped",
        description: "clinic letters are recorded as sent but never sent (Royal Free, 2019; mode A)",
        apply: |c| c.faults.silently_drop = vec![LetterKind::ClinicLetter],
    },
    Profile {
        name: "named-gp-left-not-sent",
        description: "letters for a patient whose named GP has left are not sent electronically; a paper copy is posted (Essex; mode B)",
        apply: |c| c.faults.skip_when_named_gp_left = true,
    },
    Profile {
        name: "dispatch-stall-3-weeks",
        description: "the dispatcher stalls for three weeks, then sends everything at once with the original dates (Kent, 2024; mode D)",
        apply: |c| c.faults.stall = Some(Span::days(21)),
    },
    Profile {
        name: "stale-registered-practice",
        description: "letters go to the practice held when the patient attended, not the one registered now (mode F)",
        apply: |c| c.faults.stale_registration = true,
    },
    Profile {
        name: "wrong-workflow-discharge",
        description: "discharge summaries go out with the outpatient workflow id TOC_FHIR_OP_ATTEN (Yeovil; mode G)",
        apply: |c| c.faults.workflow_override = vec![(LetterKind::DischargeSummary, "TOC_FHIR_OP_ATTEN")],
    },
    Profile {
        name: "duplicate-send-on-retry",
        description: "every MESH send is posted twice, as by a client that retries the first POST (North Cumbria; mode H)",
        apply: |c| c.faults.duplicate_sends = true,
    },
    Profile {
        name: "no-death-notification",
        description: "the practice is not told when a patient dies in hospital (mode I)",
        apply: |c| c.rules.retain(|r| r.letter != LetterKind::DeathNotification),
    },
    Profile {
        name: "letters-after-death",
        description: "the patient's copy of a letter is still posted after the patient has died (Leicester, Lister; mode I)",
        apply: |c| c.faults.copies_after_death = true,
    },
    Profile {
        name: "discharge-after-48h",
        description: "discharge summaries are sent 48 hours after discharge instead of within 24 (mode D)",
        apply: |c| c.faults.delay = vec![(LetterKind::DischargeSummary, Span::hours(48))],
    },
    Profile {
        name: "medications-section-dropped",
        description: "the medications section of discharge summaries is dropped (Forth Valley, 2019; mode J)",
        apply: |c| c.faults.drop_section = vec![(LetterKind::DischargeSummary, "Medications")],
    },
    Profile {
        name: "stuck-awaiting-second-signer",
        description: "letters that need a second signer are never released (Nottingham, Newcastle; mode C)",
        apply: |c| c.faults.countersign_lost = true,
    },
    Profile {
        name: "uncollected-report",
        description: "letters for a merged practice go to its old mailbox; nobody collects them and MESH reports it after 5 days (mode K)",
        apply: |c| c.faults.stale_directory = true,
    },
    Profile {
        name: "ed-letters-partial",
        description: "only one emergency department discharge letter in two is sent (East Surrey, 2024; mode A)",
        apply: |c| c.faults.send_one_in = vec![(LetterKind::EmergencyDischarge, 2)],
    },
    Profile {
        name: "no-letters-at-weekends",
        description: "letters about events on a Saturday, Sunday or bank holiday are never sent: the batch job that sends them runs on working days only (mode A)",
        apply: |c| c.faults.skip_weekend_events = true,
    },
    Profile {
        name: "letters-dated-send-day",
        description: "letters state the day they were sent as the day of the visit and of the letter (Kent, 2024; mode D)",
        apply: |c| c.faults.date_when_sent = true,
    },
    Profile {
        name: "dispatcher-skips-missing-hour",
        description: "on the night the clocks go forward, letters due in the hour before are put in dispatch slots of the hour that does not exist, which never run (mode A)",
        apply: |c| c.faults.skip_missing_hour = true,
    },
];

impl SimConfig {
    /// The correct behaviour every fault profile starts from.
    pub fn baseline() -> SimConfig {
        use EventKind as E;
        use LetterKind as L;
        SimConfig {
            profile: "baseline".into(),
            rules: vec![
                LetterRule {
                    on: E::LetterSigned,
                    letter: L::ClinicLetter,
                },
                LetterRule {
                    on: E::LetterSigned,
                    letter: L::PatientCopy,
                },
                LetterRule {
                    on: E::Discharge,
                    letter: L::DischargeSummary,
                },
                LetterRule {
                    on: E::EmergencyDischarge,
                    letter: L::EmergencyDischarge,
                },
                LetterRule {
                    on: E::Death,
                    letter: L::DeathNotification,
                },
            ],
            dispatch_interval: Span::minutes(15),
            trust_ods: "RXX".into(),
            trust_name: "Lettergate Simulated NHS Trust".into(),
            faults: Faults::default(),
        }
    }

    /// The configuration of a named profile, or the list of known names.
    pub fn named(name: &str) -> Result<SimConfig, UnknownProfile> {
        let p = PROFILES
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| UnknownProfile(name.to_string()))?;
        let mut config = SimConfig::baseline();
        config.profile = p.name.to_string();
        (p.apply)(&mut config);
        Ok(config)
    }

    /// The same configuration without the rules that write `kind`.
    pub fn without_letter(mut self, kind: LetterKind) -> SimConfig {
        self.rules.retain(|r| r.letter != kind);
        self
    }

    pub fn letters_for(&self, event: EventKind) -> impl Iterator<Item = LetterKind> + '_ {
        self.rules
            .iter()
            .filter(move |r| r.on == event)
            .map(|r| r.letter)
    }
}

/// A simulator profile name that is not in [`PROFILES`]; the text lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown simulator profile `{0}`; known profiles: {known}", known = known_profiles())]
pub struct UnknownProfile(pub String);

fn known_profiles() -> String {
    let names: Vec<_> = PROFILES.iter().map(|p| p.name).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_but_baseline_changes_the_baseline() {
        for p in PROFILES.iter().skip(1) {
            let c = SimConfig::named(p.name).unwrap();
            let b = SimConfig::baseline();
            assert!(
                format!("{:?}{:?}", c.rules, c.faults) != format!("{:?}{:?}", b.rules, b.faults),
                "{}",
                p.name
            );
        }
        let names: std::collections::BTreeSet<_> = PROFILES.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), PROFILES.len(), "profile names are unique");
    }

    #[test]
    fn baseline_is_the_default_profile_and_unknown_names_list_the_known_ones() {
        assert_eq!(SimConfig::named("baseline").unwrap().profile, "baseline");
        let err = SimConfig::named("basline").unwrap_err().to_string();
        assert!(err.contains("baseline"), "{err}");
    }

    #[test]
    fn every_letter_kind_has_a_rule_in_the_baseline() {
        let c = SimConfig::baseline();
        for k in LetterKind::SIMULATED {
            assert!(c.rules.iter().any(|r| r.letter == k), "{k}");
        }
        assert!(!c
            .clone()
            .without_letter(LetterKind::ClinicLetter)
            .rules
            .iter()
            .any(|r| r.letter == LetterKind::ClinicLetter));
    }
}
