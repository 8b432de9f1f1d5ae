//! [`Target`]: a target file, checked. Built once from the YAML's [`RawTarget`] when the file
//! is loaded, so everything that runs a target reads a model in which the driver is one
//! [`Drive`] (not three optional ones checked by counting), durations are durations, and
//! defaults are filled in. Nothing after [`load`] sees the raw file.

use super::file::{
    MatchBy, RawAuth, RawCapture, RawDrive, RawHl7Driver, RawLetterRow, RawMeshEndpoint,
    RawMeshPoll, RawParallel, RawReader, RawRequest, RawTarget, RawWait, TargetClock,
};
use crate::expect::{FindingKind, Severity};
use crate::protocol::clock::Span;
use crate::protocol::letter::{EventKind, KindRow, KindTable};
use crate::scenario::load::{locate, yaml_diagnostic};
use crate::scenario::Diagnostic;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A target file, read and checked.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: PathBuf,
    /// Names the target in reports, and the folder of its snapshots (`snapshots/<name>/`).
    pub name: String,
    pub description: Option<String>,
    /// How lettergate tells the EHR what happened.
    pub drive: Drive,
    /// Where its letters come out: at least one place.
    pub capture: Capture,
    /// How a captured letter is matched to its scenario.
    pub match_by: MatchBy,
    /// The clinical time the EHR is told of each event (README, "Clinical time").
    pub clock: TargetClock,
    pub wait: Wait,
    /// How many scenarios may be driven at once (see [`super::parallel`]).
    pub parallel: Parallel,
    /// Severity overrides for kinds of finding, for every scenario run against this target.
    pub severity: BTreeMap<FindingKind, Severity>,
    /// Whether the EHR collects ITK3 acknowledgements (`acknowledgements: false` says it does
    /// not); when it does not, no scenario run against it checks them.
    pub acknowledgements: bool,
    /// The letter table letters are classified with: the specifications' rows after the
    /// target's own `letters:`; `None` when it gives none (the specifications' table alone).
    pub kinds: Option<KindTable>,
    /// How to read the bodies of given transports and routes (see [`super::readers`]).
    pub readers: Vec<RawReader>,
}

/// The one driver of a target: a closed set, so a `match` says what each does.
#[derive(Debug, Clone)]
pub enum Drive {
    /// FHIR R4 resources, with per-event request templates that replace the default mapping.
    Fhir(HttpDrive),
    /// HL7 v2 ADT messages over MLLP.
    Hl7v2(Hl7Drive),
    /// One request template per event kind.
    Http(HttpDrive),
}

/// A driver that speaks HTTP to the EHR: FHIR or request templates.
#[derive(Debug, Clone)]
pub struct HttpDrive {
    /// Without a trailing `/`.
    pub base_url: String,
    pub auth: Option<RawAuth>,
    pub requests: BTreeMap<EventKind, RawRequest>,
}

#[derive(Debug, Clone)]
pub struct Hl7Drive {
    /// Where the EHR's MLLP listener is, `host:port`.
    pub address: String,
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    /// How long to wait for each ACK (at least a second).
    pub ack_timeout: Duration,
}

/// Where a target's letters are captured.
#[derive(Debug, Clone)]
pub struct Capture {
    /// lettergate's own MESH-compatible server (and HTTP catch-all), which the EHR sends to.
    pub mesh_endpoint: Option<RawMeshEndpoint>,
    /// lettergate's HTTP capture on its own address.
    pub http_endpoint: Option<SocketAddr>,
    /// An MLLP listener that answers ACKs, for HL7 v2 MDM messages.
    pub mllp: Option<SocketAddr>,
    /// A folder the EHR drops letters into.
    pub folder: Option<Folder>,
    /// A real MESH server whose recipient mailboxes lettergate signs in to.
    pub mesh_poll: Option<RawMeshPoll>,
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub path: PathBuf,
    /// At least a second.
    pub poll_interval: Duration,
}

/// How long to wait for letters after the last event was driven.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    pub max: Duration,
    pub poll_interval: Duration,
    /// Stop early once every expected letter has arrived and nothing new came for this long.
    pub settle: Duration,
}

/// How many scenarios may be driven at once against a target (`parallel:`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Parallel {
    /// At most this many at once, whatever `-j` asks; `None`: as many as `-j` says.
    pub max: Option<usize>,
    /// Scenarios about the same patient may run at once (only with `match: local_id` or a
    /// field path), unless one changes the patient or they register the patient differently.
    pub shared_patients: bool,
}

/// The most `parallel.max` may be: a staging EHR is one shared system.
pub const MAX_PARALLEL: u32 = 256;

impl Target {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver's kind, for reports: `fhir`, `hl7v2` or `http`.
    pub fn driver_kind(&self) -> &'static str {
        match self.drive {
            Drive::Fhir(_) => "fhir",
            Drive::Hl7v2(_) => "hl7v2",
            Drive::Http(_) => "http",
        }
    }
}

/// Reads a target file. Errors name the file, line and column, and refuse a target that does
/// not declare itself non-production.
pub fn load(path: &Path) -> Result<Target, Diagnostic> {
    // Only a regular file: a FIFO or device given as the target file is refused, not read.
    let text = crate::files::read_regular_to_string(path, crate::files::Links::Follow)
        .map_err(|e| Diagnostic::new(path, format!("failed to read the target file: {e}")))?;
    let raw: RawTarget =
        yaml_serde::from_str(&text).map_err(|e| yaml_diagnostic(path, &text, &e))?;
    let at = |key: &str, d: Diagnostic| match locate(&text, key) {
        Some((line, col)) => d.at(&text, line, col),
        None => d,
    };
    non_production(path, &raw).map_err(|(key, d)| at(key, *d))?;
    let drive = one_driver(raw.drive).ok_or_else(|| {
        at(
            "drive:",
            Diagnostic::new(path, "`drive:` needs exactly one driver").with_help(Some(
                "give one of `fhir:`, `hl7v2:` or `http:` (run one target file per driver)".into(),
            )),
        )
    })?;
    let capture = somewhere_to_capture(path, raw.capture).map_err(|(key, d)| at(key, *d))?;
    let kinds = letter_rows(path, raw.letters).map_err(|(key, d)| at(key, *d))?;
    if raw
        .readers
        .iter()
        .any(|r| r.recipient.is_none() && r.address.is_none())
    {
        return Err(at(
            "readers:",
            Diagnostic::new(path, "a reader needs `recipient:` or `address:`").with_help(Some(
                "give `recipient:` the path to the practice's ODS code (or `patient`), or `address:` the path to the address a patient's letter is posted to".into(),
            )),
        ));
    }
    let parallel = parallel(path, &raw.parallel, &raw.match_by).map_err(|(key, d)| at(key, *d))?;
    Ok(Target {
        path: path.to_path_buf(),
        name: raw.name.0,
        description: raw.description,
        drive,
        capture,
        match_by: raw.match_by,
        clock: raw.clock,
        wait: wait(&raw.wait),
        parallel,
        severity: raw.severity,
        acknowledgements: raw.acknowledgements.unwrap_or(true),
        kinds,
        readers: raw.readers,
    })
}

/// The target's own rows of the letter table, each naming at least one code.
fn letter_rows(path: &Path, rows: Vec<RawLetterRow>) -> Result<Option<KindTable>, Misplaced> {
    if let Some(r) = rows
        .iter()
        .find(|r| r.document_types.is_empty() && r.itk3_events.is_empty())
    {
        let kind = r.kind.0;
        let d = Diagnostic::new(path, format!("the `letters:` row for `{kind}` names no code"))
            .with_help(Some(format!(
                "give the codes your EHR writes for a {}: `document_types: [CODE]` (Composition.type, TXA-2, or what a reader's `kind:` path holds) or `itk3_events: [CODE]`",
                kind.words()
            )));
        return Err(("letters:", Box::new(d)));
    }
    Ok((!rows.is_empty()).then(|| {
        KindTable::with_local(
            rows.into_iter()
                .map(|r| KindRow {
                    kind: r.kind.0,
                    itk3_events: r.itk3_events,
                    document_types: r.document_types,
                    local: true,
                })
                .collect(),
        )
    }))
}

/// An error in the file, with the key it points at (boxed: a diagnostic is large).
type Misplaced = (&'static str, Box<Diagnostic>);

/// The guard: lettergate drives only systems that declare themselves not production. The
/// error comes with the key it points at.
fn non_production(path: &Path, raw: &RawTarget) -> Result<(), Misplaced> {
    let name = &raw.name.0;
    let (key, message, help) = match raw.non_production {
        Some(true) => return Ok(()),
        Some(false) => (
            "non_production:",
            format!("target `{name}` says it is production: lettergate refuses to drive it"),
            "point lettergate at a staging or test system, which says `non_production: true`",
        ),
        None => (
            "name:",
            format!(
                "target `{name}` does not declare itself non-production: lettergate refuses to drive it"
            ),
            "add `non_production: true` once you are sure this is a staging or test system",
        ),
    };
    let d = Diagnostic::new(path, message).with_help(Some(help.into()));
    Err((key, Box::new(d)))
}

/// The one driver the file gives, or `None` when it gives none or several.
fn one_driver(d: RawDrive) -> Option<Drive> {
    let by_kind = |requests: BTreeMap<super::file::EventName, RawRequest>| {
        requests.into_iter().map(|(k, r)| (k.0, r)).collect()
    };
    match (d.fhir, d.hl7v2, d.http) {
        (Some(f), None, None) => Some(Drive::Fhir(HttpDrive {
            base_url: f.base_url.0,
            auth: f.auth,
            requests: by_kind(f.requests),
        })),
        (None, Some(h), None) => Some(Drive::Hl7v2(hl7_drive(h))),
        (None, None, Some(h)) => Some(Drive::Http(HttpDrive {
            base_url: h.base_url.0,
            auth: h.auth,
            requests: by_kind(h.requests),
        })),
        _ => None,
    }
}

fn hl7_drive(h: RawHl7Driver) -> Hl7Drive {
    Hl7Drive {
        address: h.address.0,
        sending_application: h.sending_application,
        sending_facility: h.sending_facility,
        receiving_application: h.receiving_application.unwrap_or_else(|| "EHR".into()),
        receiving_facility: h.receiving_facility.unwrap_or_else(|| "TRUST".into()),
        ack_timeout: seconds(h.ack_timeout.0).max(Duration::from_secs(1)),
    }
}

/// The captures the file gives: at least one, and mailboxes for a MESH poller.
fn somewhere_to_capture(path: &Path, c: RawCapture) -> Result<Capture, Misplaced> {
    let misplaced = |key, message: &str, help: &str| {
        let d = Diagnostic::new(path, message).with_help(Some(help.into()));
        Err((key, Box::new(d)))
    };
    if c.mesh_endpoint.is_none()
        && c.http_endpoint.is_none()
        && c.mllp.is_none()
        && c.folder.is_none()
        && c.mesh_poll.is_none()
    {
        return misplaced(
            "capture:",
            "`capture:` names nowhere to capture letters",
            "give at least one of `mesh_endpoint:`, `http_endpoint:`, `mllp:`, `folder:` or `mesh_poll:`",
        );
    }
    if c.mesh_poll.as_ref().is_some_and(|p| p.mailboxes.is_empty()) {
        return misplaced(
            "mailboxes:",
            "`mesh_poll.mailboxes` is empty",
            "list the recipient mailboxes to collect from, each with `id:` and `password_env:`",
        );
    }
    if c.mesh_endpoint
        .as_ref()
        .is_some_and(|m| m.mailboxes.is_empty())
    {
        return misplaced(
            "mailboxes:",
            "`mesh_endpoint.mailboxes` is empty: the EHR could not sign in to send, and no practice mailbox would take a letter",
            "list the EHR's sending mailbox and every recipient mailbox, each with the environment variable of its password: `mailboxes: {RXXHC001: SENDER_PASSWORD, A81001HC001: PRACTICE_PASSWORD}`",
        );
    }
    if let Some((key, message)) = shared_port(&c) {
        let help = "give each capture a port of its own (`mesh_endpoint` also takes HTTP letters on any path, so an `http_endpoint` beside it is needed only on another port)";
        return misplaced(key, &message, help);
    }
    Ok(Capture {
        mesh_endpoint: c.mesh_endpoint,
        http_endpoint: c.http_endpoint.map(|h| h.listen.0),
        mllp: c.mllp.map(|m| m.listen.0),
        folder: c.folder.map(|f| Folder {
            path: f.path,
            poll_interval: seconds(f.poll_interval.0).max(Duration::from_secs(1)),
        }),
        mesh_poll: c.mesh_poll,
    })
}

/// Two captures the file gives that would listen on one port: the key of the second and why.
/// Port 0 (a free port each) never clashes; an unspecified address (`0.0.0.0`) clashes with
/// every address of its family.
fn shared_port(c: &RawCapture) -> Option<(&'static str, String)> {
    let listens = [
        (
            "mesh_endpoint:",
            "capture.mesh_endpoint",
            c.mesh_endpoint.as_ref().map(|m| m.listen.0),
        ),
        (
            "http_endpoint:",
            "capture.http_endpoint",
            c.http_endpoint.as_ref().map(|h| h.listen.0),
        ),
        ("mllp:", "capture.mllp", c.mllp.as_ref().map(|m| m.listen.0)),
    ];
    let given: Vec<(&'static str, &str, std::net::SocketAddr)> = listens
        .into_iter()
        .filter_map(|(key, name, a)| Some((key, name, a?)))
        .filter(|(_, _, a)| a.port() != 0)
        .collect();
    for (i, (key, name, a)) in given.iter().enumerate() {
        for (_, first, b) in &given[..i] {
            let same_ip = a.ip() == b.ip()
                || (a.is_ipv4() == b.is_ipv4()
                    && (a.ip().is_unspecified() || b.ip().is_unspecified()));
            if a.port() == b.port() && same_ip {
                return Some((
                    key,
                    format!("`{name}` listens on {a}, as `{first}` does ({b}): two captures cannot share a port"),
                ));
            }
        }
    }
    None
}

fn wait(w: &RawWait) -> Wait {
    Wait {
        max: seconds(w.max.0),
        poll_interval: seconds(w.poll_interval.0),
        settle: seconds(w.settle.0),
    }
}

/// `parallel:`: a cap of 1 to [`MAX_PARALLEL`], and patients shared only where letters are
/// matched by something other than their patient.
fn parallel(path: &Path, p: &RawParallel, by: &MatchBy) -> Result<Parallel, Misplaced> {
    if let Some(max) = p.max.filter(|m| !(1..=MAX_PARALLEL).contains(m)) {
        let d = Diagnostic::new(
            path,
            format!("`parallel.max` is {max}: it must be 1 to {MAX_PARALLEL}"),
        )
        .with_help(Some(
            "give how many scenarios your staging EHR may be driven with at once, e.g. `parallel: {max: 4}`; 1 runs them one after another".into(),
        ));
        return Err(("parallel:", Box::new(d)));
    }
    if p.shared_patients && *by == MatchBy::NhsNumber {
        let d = Diagnostic::new(
            path,
            "`parallel.shared_patients: true` needs `match: local_id` or `match: {field: PATH}`: by NHS number, two scenarios about one patient running at once could not be told apart",
        )
        .with_help(Some(
            "add `match: local_id` once your EHR's letters carry the local id (README, \"Matching letters to scenarios\"), or leave `shared_patients` out".into(),
        ));
        return Err(("shared_patients:", Box::new(d)));
    }
    Ok(Parallel {
        max: p.max.map(|m| m as usize),
        shared_patients: p.shared_patients,
    })
}

/// A span as a duration; a negative span is none.
fn seconds(s: Span) -> Duration {
    Duration::from_secs(s.0.max(0) as u64)
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
        assert!(t.acknowledgements, "collected unless the file says not");
        assert_eq!(t.name(), "staging-epr");
        assert_eq!(t.driver_kind(), "fhir");
        let Drive::Fhir(fhir) = t.drive else {
            panic!("not a fhir driver")
        };
        assert_eq!(fhir.base_url, "https://epr.example/fhir");
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

    /// Issue 12: `clock:` is `now` (the default), `scenario`, or `scenario` not after a day; a
    /// misspelt or malformed one is pointed at with what to write.
    #[test]
    fn reads_every_clock_and_points_at_a_bad_one() {
        use super::super::file::TargetClock;
        assert_eq!(load_text(GOOD).unwrap().clock, TargetClock::Now);
        let with = |clock: &str| load_text(&format!("{GOOD}clock: {clock}\n"));
        assert_eq!(with("now").unwrap().clock, TargetClock::Now);
        assert_eq!(
            with("scenario").unwrap().clock,
            TargetClock::Scenario { not_after: None }
        );
        assert_eq!(
            with("{scenario: {not_after: 2026-11-28}}").unwrap().clock,
            TargetClock::Scenario {
                not_after: Some(
                    time::Date::from_calendar_date(2026, time::Month::November, 28).unwrap()
                )
            }
        );
        let line = GOOD.lines().count() + 1;
        let e = with("sceanrio").unwrap_err();
        assert!(e.to_string().contains("did you mean `scenario`"), "{e}");
        assert_eq!(e.line, line, "{e}");
        let e = with("{scenario: {not_after: 28/11/2026}}").unwrap_err();
        assert!(e.to_string().contains("YYYY-MM-DD"), "{e}");
        assert_eq!(e.line, line, "{e}");
        let e = with("{scenaro: {not_after: 2026-11-28}}").unwrap_err();
        assert!(e.to_string().contains("did you mean `scenario`"), "{e}");
    }

    #[test]
    fn reads_every_way_of_matching_and_points_at_a_bad_one() {
        use super::super::file::FieldPath;
        let by = |m: &str| load_text(&format!("{GOOD}match: {m}\n")).map(|t| t.match_by);
        assert_eq!(by("nhs_number").unwrap(), MatchBy::NhsNumber);
        assert_eq!(by("local_id").unwrap(), MatchBy::LocalId);
        assert_eq!(
            load_text(GOOD).unwrap().match_by,
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
