//! Targets: a staging EHR (or the simulator standing in for one) that lettergate drives, and
//! the places its letters come out. A target file says how to drive it, where to capture, how
//! to match letters to scenarios and how long to wait; see README, "Testing your staging EHR".
//!
//! [`load`] reads and checks a file (nothing is contacted); [`check::run`] contacts everything
//! the file names, before any scenario runs.

pub mod check;
pub mod file;
pub mod ledger;
pub mod matching;
pub mod run;

use crate::scenario::load::{locate, yaml_diagnostic};
use crate::scenario::Diagnostic;
use file::RawTarget;
use std::path::{Path, PathBuf};

/// A target file, read and checked.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    pub raw: RawTarget,
}

impl Target {
    pub fn name(&self) -> &str {
        &self.raw.name.0
    }

    /// The driver's kind, for reports: `fhir`, `hl7v2` or `http`.
    pub fn driver_kind(&self) -> &'static str {
        let d = &self.raw.drive;
        if d.fhir.is_some() {
            "fhir"
        } else if d.hl7v2.is_some() {
            "hl7v2"
        } else {
            "http"
        }
    }
}

/// Reads a target file. Errors name the file, line and column, and refuse a target that does
/// not declare itself non-production.
pub fn load(path: &Path) -> Result<Target, Diagnostic> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Diagnostic::new(path, format!("failed to read the target file: {e}")))?;
    let raw: RawTarget =
        yaml_serde::from_str(&text).map_err(|e| yaml_diagnostic(path, &text, &e))?;
    let at = |key: &str, d: Diagnostic| match locate(&text, key) {
        Some((line, col)) => d.at(&text, line, col),
        None => d,
    };
    match raw.non_production {
        Some(true) => {}
        Some(false) => {
            return Err(at(
                "non_production:",
                Diagnostic::new(
                    path,
                    format!(
                        "target `{}` says it is production: lettergate refuses to drive it",
                        raw.name.0
                    ),
                )
                .with_help(Some(
                    "point lettergate at a staging or test system, which says `non_production: true`"
                        .into(),
                )),
            ))
        }
        None => {
            return Err(at(
                "name:",
                Diagnostic::new(
                    path,
                    format!(
                        "target `{}` does not declare itself non-production: lettergate refuses to drive it",
                        raw.name.0
                    ),
                )
                .with_help(Some(
                    "add `non_production: true` once you are sure this is a staging or test system"
                        .into(),
                )),
            ))
        }
    }
    let drivers = [
        raw.drive.fhir.is_some(),
        raw.drive.hl7v2.is_some(),
        raw.drive.http.is_some(),
    ];
    if drivers.iter().filter(|d| **d).count() != 1 {
        return Err(at(
            "drive:",
            Diagnostic::new(path, "`drive:` needs exactly one driver").with_help(Some(
                "give one of `fhir:`, `hl7v2:` or `http:` (run one target file per driver)".into(),
            )),
        ));
    }
    let c = &raw.capture;
    if c.mesh_endpoint.is_none()
        && c.http_endpoint.is_none()
        && c.mllp.is_none()
        && c.folder.is_none()
        && c.mesh_poll.is_none()
    {
        return Err(at(
            "capture:",
            Diagnostic::new(path, "`capture:` names nowhere to capture letters").with_help(Some(
                "give at least one of `mesh_endpoint:`, `http_endpoint:`, `mllp:`, `folder:` or `mesh_poll:`"
                    .into(),
            )),
        ));
    }
    if let Some(p) = &c.mesh_poll {
        if p.mailboxes.is_empty() {
            return Err(at(
                "mailboxes:",
                Diagnostic::new(path, "`mesh_poll.mailboxes` is empty").with_help(Some(
                    "list the recipient mailboxes to collect from, each with `id:` and `password_env:`"
                        .into(),
                )),
            ));
        }
    }
    Ok(Target {
        path: path.to_path_buf(),
        raw,
    })
}

/// A secret named by the target file, read from the environment.
pub fn secret(name: &file::EnvName, what: &str) -> Result<String, String> {
    match std::env::var(&name.0) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(format!(
            "the environment variable {} ({what}) is not set",
            name.0
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Target, Diagnostic> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.yaml");
        std::fs::write(&p, text).unwrap();
        load(&p)
    }

    const GOOD: &str = "name: staging-epr\nnon_production: true\ndrive:\n  fhir:\n    base_url: https://epr.example/fhir/\n    auth:\n      bearer_token_env: EPR_TOKEN\ncapture:\n  mesh_poll:\n    url: https://mesh.example\n    shared_key_env: MESH_KEY\n    mailboxes:\n      - {id: A81001HC001, password_env: MESH_A81001}\n";

    #[test]
    fn reads_a_target_file() {
        let t = load_text(GOOD).unwrap();
        assert_eq!(t.name(), "staging-epr");
        assert_eq!(t.driver_kind(), "fhir");
        let fhir = t.raw.drive.fhir.unwrap();
        assert_eq!(fhir.base_url.0, "https://epr.example/fhir");
    }

    #[test]
    fn refuses_a_target_that_does_not_say_it_is_not_production() {
        let e = load_text(&GOOD.replace("non_production: true\n", "")).unwrap_err();
        assert!(
            e.message.contains("does not declare itself non-production"),
            "{e}"
        );
        assert_eq!(e.line, 1);
        let e =
            load_text(&GOOD.replace("non_production: true", "non_production: false")).unwrap_err();
        assert!(e.message.contains("says it is production"), "{e}");
        assert_eq!(e.line, 2);
    }

    #[test]
    fn a_secret_written_in_the_file_is_refused_where_it_is() {
        let e = load_text(&GOOD.replace("bearer_token_env: EPR_TOKEN", "bearer_token: abc123"))
            .unwrap_err();
        assert_eq!((e.line, e.column), (7, 7), "{e}");
        assert!(
            e.help.as_deref().unwrap_or("").contains("bearer_token_env"),
            "{e}"
        );
        let e = load_text(&GOOD.replace(
            "bearer_token_env: EPR_TOKEN",
            "bearer_token_env: s3cr3t-value",
        ))
        .unwrap_err();
        assert!(e.message.contains("never written in a target file"), "{e}");
        assert_eq!(e.line, 7);
    }

    #[test]
    fn misspelt_event_kinds_and_placeholders_get_did_you_mean() {
        let t = GOOD.replace(
            "    auth:\n",
            "    requests:\n      dischage:\n        path: /Encounter\n    auth:\n",
        );
        let e = load_text(&t).unwrap_err();
        assert!(
            e.help.as_deref().unwrap_or("").contains("`discharge`")
                || e.message.contains("`discharge`"),
            "{e}"
        );
        assert_eq!(e.line, 7);
        let t = GOOD.replace(
            "    auth:\n",
            "    requests:\n      discharge:\n        path: /Patient/{{nhs_numbr}}\n    auth:\n",
        );
        let e = load_text(&t).unwrap_err();
        assert!(e.to_string().contains("{{nhs_number}}"), "{e}");
        assert_eq!(e.line, 8);
    }

    #[test]
    fn reads_every_way_of_matching_and_points_at_a_bad_one() {
        use file::{FieldPath, MatchBy};
        let by = |m: &str| load_text(&format!("{GOOD}match: {m}\n")).map(|t| t.raw.match_by);
        assert_eq!(by("nhs_number").unwrap(), MatchBy::NhsNumber);
        assert_eq!(by("local_id").unwrap(), MatchBy::LocalId);
        assert_eq!(
            load_text(GOOD).unwrap().raw.match_by,
            MatchBy::NhsNumber,
            "the default"
        );
        let MatchBy::Field(paths) =
            by("{field: [/entry/0/resource/id, PV1-19, PID-3.1, Encounter.identifier.value]}")
                .unwrap()
        else {
            panic!("not a field match");
        };
        assert_eq!(
            paths,
            vec![
                FieldPath::Json("/entry/0/resource/id".into()),
                FieldPath::Hl7 {
                    segment: "PV1".into(),
                    field: 19,
                    component: 1,
                    subcomponent: 1
                },
                FieldPath::Hl7 {
                    segment: "PID".into(),
                    field: 3,
                    component: 1,
                    subcomponent: 1
                },
                FieldPath::Fhir {
                    resource: "Encounter".into(),
                    elements: vec!["identifier".into(), "value".into()]
                },
            ]
        );
        let names: Vec<String> = paths.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            // PID-3.1 is PID-3's first component, as PID-3 is.
            [
                "/entry/0/resource/id",
                "PV1-19",
                "PID-3",
                "Encounter.identifier.value"
            ]
        );
        assert!(matches!(by("{field: OBX-5}").unwrap(), MatchBy::Field(p) if p.len() == 1));

        let e = by("local_ids").unwrap_err();
        assert_eq!((e.line, e.column), (14, 8), "{e}");
        assert!(e.to_string().contains("did you mean `local_id`?"), "{e}");
        let e = by("{field: patient.nhs}").unwrap_err();
        assert_eq!(e.line, 14, "{e}");
        assert!(e.message.contains("is not a field path"), "{e}");
        let e = by("{field: PID-0}").unwrap_err();
        assert!(e.message.contains("numbered from 1"), "{e}");
        let e = by("{feild: PV1-19}").unwrap_err();
        assert!(e.to_string().contains("did you mean `field`?"), "{e}");
        assert!(by("field").unwrap_err().message.contains("needs the path"));
    }

    #[test]
    fn needs_one_driver_and_somewhere_to_capture() {
        let two = GOOD.replace(
            "drive:\n",
            "drive:\n  hl7v2:\n    address: 127.0.0.1:2575\n",
        );
        assert!(load_text(&two)
            .unwrap_err()
            .message
            .contains("exactly one driver"));
        let none = GOOD.split("capture:").next().unwrap().to_string() + "capture: {}\n";
        assert!(load_text(&none)
            .unwrap_err()
            .message
            .contains("nowhere to capture"));
    }
}
