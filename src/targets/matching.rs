//! Which scenario a letter captured from a target belongs to, by what the target file's
//! `match:` says ([`MatchBy`]).
//!
//! A staging EHR is one shared system, and the same synthetic patients appear in several
//! scenarios; an EHR that sends in batches sends one scenario's letters while, or long after,
//! the next is driven. So every event lettergate drives gets a **local id** of its own
//! ([`local_ids`]: `LG-7K2M9QXA-3`, new for every scenario run), sent with the event (a FHIR
//! Encounter's or Composition's identifier, HL7 PV1-19, the `{{local_id}}` of a request
//! template). An EHR that keeps it as the visit's identifier carries it into the letters about
//! the visit, and lettergate matches each letter to the scenario that drove it:
//!
//! | `match:` | what of the letter is looked at | belongs to |
//! |---|---|---|
//! | `nhs_number` (default) | its NHS number | the latest scenario about that patient driven before the letter arrived |
//! | `local_id` | `mex-LocalID`, a print request's `reference`, a dropped file's name, the document's Encounter identifier, PV1-19 | the scenario that drove that local id |
//! | `{field: PATH}` | the values at PATH | a local id: its scenario; else an NHS number, as `nhs_number` does |
//!
//! A letter the chosen way cannot match is [`Matched::unmatched`], with why: it is then
//! placed by its NHS number, so it is still checked (a letter to a deceased patient is never
//! lost), and its scenario has an "unmatched letter" finding. By NHS number it is placed as
//! before, with no finding: the scenario's checks judge it.

use super::file::{FieldPath, MatchBy};
use crate::capture::CapturedLetter;
use crate::expect::{unmatched_letter, Finding};
use crate::protocol::clock::Timestamp;
use crate::protocol::ids::NhsNumber;
use crate::protocol::letter::Transport;
use crate::protocol::read::json_or_xml;
use crate::scenario::Scenario;
use serde_json::Value;

/// `n` local ids for the events of one scenario run: `LG-<8 random characters>-<1..n>`. Short
/// (HL7 v2.4 keeps an ID of a CX to 15 characters), upper case, and new for every run, so a
/// letter of an earlier run never matches this one.
pub fn local_ids(n: usize) -> Vec<String> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let token: String = uuid::Uuid::new_v4().as_bytes()[..8]
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    (1..=n).map(|i| format!("LG-{token}-{i}")).collect()
}

/// A scenario driven against the target, with what its letters can be recognised by.
#[derive(Clone, Debug)]
pub struct Driven {
    pub id: String,
    /// The local id of each event (given to the driver before the first is sent).
    pub local_ids: Vec<String>,
    /// The patients its events are about.
    pub patients: Vec<NhsNumber>,
    /// When each event was driven.
    pub driven_at: Vec<Timestamp>,
}

/// Where a letter belongs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matched {
    /// The index of its scenario among those given; `None` when nothing places it.
    pub owner: Option<usize>,
    /// Why the target's way of matching did not match it (never for `nhs_number`).
    pub unmatched: Option<String>,
}

/// The scenario among `driven` that `letter` belongs to.
pub fn attribute(by: &MatchBy, letter: &CapturedLetter, driven: &[Driven]) -> Matched {
    let nhs = letter.facts.as_ref().ok().and_then(|f| f.nhs_number);
    let by_patient = |n: NhsNumber| by_patient(n, letter.received_at, driven);
    let tie = match by {
        MatchBy::NhsNumber => Tie::Unmatched(None),
        MatchBy::LocalId => tie_by_local_id(letter, driven),
        MatchBy::Field(paths) => tie_by_field(paths, letter, driven, &by_patient),
    };
    match tie {
        Tie::Owner(i) => Matched {
            owner: Some(i),
            unmatched: None,
        },
        // Not tied the chosen way: placed by its NHS number, so it is still checked.
        Tie::Unmatched(why) => Matched {
            owner: nhs.and_then(by_patient),
            unmatched: why,
        },
    }
}

/// What the chosen way of matching made of a letter.
enum Tie {
    Owner(usize),
    /// Why not, unless the way of matching is by NHS number itself.
    Unmatched(Option<String>),
}

fn tie_by_local_id(letter: &CapturedLetter, driven: &[Driven]) -> Tie {
    let facts = letter.facts.as_ref().ok();
    let ids: Vec<&str> = [
        letter.local_id.as_deref(),
        facts.and_then(|f| f.visit_id.as_deref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    match ids.iter().find_map(|id| by_local_id(id, driven)) {
        Some(i) => Tie::Owner(i),
        None if ids.is_empty() => Tie::Unmatched(Some(
            "it carries no local id (lettergate looked at mex-LocalID, a print request's reference, the file name, the document's Encounter identifier and PV1-19)".into(),
        )),
        None => Tie::Unmatched(Some(format!(
            "none of its ids ({}) is a local id lettergate drove in this run",
            ids.join(", ")
        ))),
    }
}

fn tie_by_field(
    paths: &[FieldPath],
    letter: &CapturedLetter,
    driven: &[Driven],
    by_patient: &dyn Fn(NhsNumber) -> Option<usize>,
) -> Tie {
    let body = match letter.read_body() {
        Ok(b) => b,
        Err(e) => return Tie::Unmatched(Some(format!("its body could not be read back: {e}"))),
    };
    let values: Vec<String> = paths
        .iter()
        .flat_map(|p| values_at(p, letter.transport, &body))
        .collect();
    let owner = values.iter().find_map(|v| {
        by_local_id(v, driven).or_else(|| {
            let digits: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            NhsNumber::parse(&digits).ok().and_then(by_patient)
        })
    });
    let list = paths
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match owner {
        Some(i) => Tie::Owner(i),
        None if values.is_empty() => Tie::Unmatched(Some(format!("it has no value at {list}"))),
        // The values may be patient identifiers: they are not repeated here.
        None => Tie::Unmatched(Some(format!(
            "its value at {list} is neither a local id lettergate drove in this run nor the NHS number of a patient its scenarios are about"
        ))),
    }
}

fn by_local_id(id: &str, driven: &[Driven]) -> Option<usize> {
    driven
        .iter()
        .position(|d| d.local_ids.iter().any(|l| l == id))
}

/// The scenario about patient `nhs` whose events came last before `at`.
fn by_patient(nhs: NhsNumber, at: Timestamp, driven: &[Driven]) -> Option<usize> {
    driven
        .iter()
        .enumerate()
        .filter(|(_, d)| d.patients.contains(&nhs))
        .filter_map(|(i, d)| {
            let last = d.driven_at.iter().filter(|t| **t <= at).max()?;
            Some((*last, i))
        })
        .max()
        .map(|(_, i)| i)
}

/// The values at `path` in a letter's body: none when the body is not of the path's kind.
pub fn values_at(path: &FieldPath, transport: Transport, body: &[u8]) -> Vec<String> {
    match path {
        FieldPath::Hl7 {
            segment,
            field,
            component,
            subcomponent,
        } => {
            let hl7 =
                transport == Transport::Mllp || crate::protocol::hl7::mdm::looks_like_hl7(body);
            let text = std::str::from_utf8(body).ok().filter(|_| hl7);
            let Some(m) = text.and_then(|t| crate::protocol::hl7::message::Message::parse(t).ok())
            else {
                return vec![];
            };
            m.get(segment, *field, *component)
                .and_then(|c| c.split('&').nth(subcomponent - 1))
                .filter(|v| !v.is_empty())
                .map(|v| vec![crate::protocol::hl7::message::unescape(v)])
                .unwrap_or_default()
        }
        // FHIR XML is read into the shape of its JSON (see `capture::fhir_xml`).
        FieldPath::Json(pointer) => json_or_xml(body)
            .ok()
            .and_then(|v| v.pointer(pointer).and_then(scalar))
            .into_iter()
            .collect(),
        FieldPath::Fhir { resource, elements } => {
            let Ok(v) = json_or_xml(body) else {
                return vec![];
            };
            let mut out = Vec::new();
            resources_of(&v, resource, &mut |r| follow(r, elements, &mut out));
            out
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Calls `f` with every object whose `resourceType` is `t`, anywhere in `v`.
fn resources_of<'a>(v: &'a Value, t: &str, f: &mut impl FnMut(&'a Value)) {
    match v {
        Value::Object(m) => {
            if m.get("resourceType").and_then(Value::as_str) == Some(t) {
                f(v);
            }
            for child in m.values() {
                resources_of(child, t, f);
            }
        }
        Value::Array(a) => a.iter().for_each(|c| resources_of(c, t, f)),
        _ => {}
    }
}

/// The scalars at `elements` below `v`, lists flattened at every step.
fn follow(v: &Value, elements: &[String], out: &mut Vec<String>) {
    match (v, elements.split_first()) {
        (Value::Array(a), _) => a.iter().for_each(|c| follow(c, elements, out)),
        (_, None) => out.extend(scalar(v)),
        (Value::Object(m), Some((first, rest))) => {
            if let Some(child) = m.get(first) {
                follow(child, rest, out);
            }
        }
        _ => {}
    }
}

/// Sorts what was captured while the last scenario of `history` ran (`s`, re-based) into its
/// own letters, numbered again from 1, and findings: a letter of a scenario checked before it
/// came is not counted here but said, and one that `by` could not match is counted here (by
/// its NHS number or its time) and said.
pub fn sort_out(
    by: &MatchBy,
    s: &Scenario,
    letters: Vec<CapturedLetter>,
    history: &[Driven],
) -> (Vec<CapturedLetter>, Vec<Finding>) {
    let mut sorted = sort_out_wave(by, &[Some(s)], letters, history);
    sorted.pop().unwrap_or_default()
}

/// Where a letter captured while a wave of scenarios ran belongs among them. The wave is the
/// last scenarios of the history; a member that could not be driven captures nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placed {
    /// Counted with the wave's member `k`; why `match:` could not tie it, when it could not
    /// (it is then placed by its NHS number, or with a scenario running when it came).
    Counted(usize, Option<String>),
    /// A letter of `owner` (in the history), a scenario checked before it came: said on
    /// member `k`, counted nowhere.
    Late { k: usize, owner: usize },
    /// A letter of a member that could not be driven (whose outcome is an error), or with no
    /// member running to say it: counted nowhere.
    Dropped,
}

/// Where `letter` belongs among the wave's members, the last `live.len()` scenarios of
/// `history`; `live[k]` when member `k` was driven and is being checked.
pub fn place(by: &MatchBy, letter: &CapturedLetter, history: &[Driven], live: &[bool]) -> Placed {
    let first = history.len().saturating_sub(live.len());
    let m = attribute(by, letter, history);
    let running = || running_member(letter, &history[first..], live);
    match m.owner {
        Some(i) if i >= first => match live.get(i - first) {
            Some(true) => Placed::Counted(i - first, m.unmatched),
            _ => Placed::Dropped,
        },
        Some(owner) => running().map_or(Placed::Dropped, |k| Placed::Late { k, owner }),
        None => running().map_or(Placed::Dropped, |k| Placed::Counted(k, m.unmatched)),
    }
}

/// The member a letter no member owns is counted or said with: the one about its patient
/// whose events came last before it arrived, else the first member being checked.
fn running_member(letter: &CapturedLetter, wave: &[Driven], live: &[bool]) -> Option<usize> {
    let nhs = letter.facts.as_ref().ok().and_then(|f| f.nhs_number);
    let about = nhs.and_then(|n| {
        let live_only: Vec<Driven> = wave
            .iter()
            .zip(live)
            .map(|(d, &l)| match l {
                true => d.clone(),
                false => Driven {
                    driven_at: vec![],
                    ..d.clone()
                },
            })
            .collect();
        by_patient(n, letter.received_at, &live_only)
    });
    about.or_else(|| live.iter().position(|&l| l))
}

/// [`sort_out`] for a wave of scenarios run at once, the last `wave.len()` of `history`
/// (`wave[k]` re-based, `None` for one that could not be driven): each member's own letters,
/// numbered again from 1, and its findings. A letter counts for one member at most.
pub fn sort_out_wave(
    by: &MatchBy,
    wave: &[Option<&Scenario>],
    letters: Vec<CapturedLetter>,
    history: &[Driven],
) -> Vec<(Vec<CapturedLetter>, Vec<Finding>)> {
    let live: Vec<bool> = wave.iter().map(Option::is_some).collect();
    let mut out: Vec<(Vec<CapturedLetter>, Vec<Finding>)> = vec![Default::default(); wave.len()];
    let mut unmatched: Vec<Vec<(usize, String)>> = vec![Vec::new(); wave.len()];
    for l in letters {
        match place(by, &l, history, &live) {
            Placed::Counted(k, why) => {
                let mine = &mut out[k].0;
                if let Some(why) = why {
                    unmatched[k].push((mine.len(), why));
                }
                mine.push(l);
            }
            Placed::Late { k, owner } => {
                let Some(s) = wave[k] else { continue };
                out[k].1.push(unmatched_letter(
                    s,
                    &l,
                    None,
                    format!(
                        "it belongs to scenario {}, which was checked before it arrived; it is not counted here",
                        history[owner].id
                    ),
                ));
            }
            Placed::Dropped => {}
        }
    }
    for (k, (mine, findings)) in out.iter_mut().enumerate() {
        for (i, l) in mine.iter_mut().enumerate() {
            l.seq = i as u32 + 1;
        }
        let Some(s) = wave[k] else { continue };
        for (i, why) in std::mem::take(&mut unmatched[k]) {
            let l = &mine[i];
            findings.push(unmatched_letter(
                s,
                l,
                Some(l.seq),
                format!(
                    "match: {} could not tie it to a scenario: {why}; it is counted with the scenario running when it came",
                    by.name()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::itk3::{self, LetterDoc};
    use crate::protocol::letter::LetterKind;
    use crate::protocol::read::parse_letter;

    /// alice's clinic letter to A81001, with the visit's id when given.
    pub(crate) fn doc(visit: Option<&str>) -> LetterDoc {
        LetterDoc {
            visit_id: visit.map(str::to_string),
            ..crate::protocol::hl7::mdm::tests::doc(LetterKind::ClinicLetter)
        }
    }

    /// A letter as a capture records it, its body in `dir`.
    pub(crate) fn letter(
        dir: &std::path::Path,
        transport: Transport,
        body: &[u8],
        at: Timestamp,
    ) -> CapturedLetter {
        // A log of its own: a new log in the same folder would start its files again.
        let dir = dir.join(uuid::Uuid::new_v4().to_string());
        let mut log = crate::capture::CaptureLog::create(&dir).unwrap();
        let l = CapturedLetter {
            // As the MESH endpoint records the sender's `mex-LocalID`.
            local_id: Some("SIM-000001".into()),
            ..CapturedLetter::received(
                transport,
                at,
                "RXXHC001 -> A81001HC001".into(),
                "M1".into(),
                body.len(),
                parse_letter(transport, body),
            )
        };
        log.record_message(l, &[], body).unwrap();
        log.flush().unwrap();
        log.letters.pop().unwrap()
    }

    pub(crate) fn mesh(visit: Option<&str>) -> Vec<u8> {
        serde_json::to_vec(&itk3::message_bundle(&doc(visit))).unwrap()
    }

    #[test]
    fn local_ids_are_short_distinct_and_new_each_run() {
        let a = local_ids(3);
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|id| id.len() <= 15), "{a:?}");
        assert!(a[0].ends_with("-1") && a[2].ends_with("-3"), "{a:?}");
        assert_eq!(
            crate::protocol::normalize::Step::LocalIds.apply(&a[1]),
            "[local-id-1]"
        );
        assert_ne!(local_ids(1)[0], local_ids(1)[0]);
    }

    /// Two scenarios about alice: by NHS number a letter goes to the one driven last before it
    /// came; by local id, to the one whose event it carries, whenever it came.
    #[test]
    fn a_letter_goes_to_the_scenario_whose_local_id_it_carries() {
        let dir = tempfile::tempdir().unwrap();
        let alice = NhsNumber::parse("9990000018").unwrap();
        let (first_ids, second_ids) = (local_ids(3), local_ids(1));
        let (t1, t2) = ([Timestamp(100)], [Timestamp(200)]);
        let driven = [
            Driven {
                id: "outpatient/clinic_letter".into(),
                local_ids: first_ids.clone(),
                patients: vec![alice],
                driven_at: t1.to_vec(),
            },
            Driven {
                id: "routing/mllp_and_folder_practices".into(),
                local_ids: second_ids,
                patients: vec![alice],
                driven_at: t2.to_vec(),
            },
        ];
        // The first scenario's letter, sent after the second was driven.
        let late = letter(
            dir.path(),
            Transport::Mesh,
            &mesh(Some(&first_ids[0])),
            Timestamp(300),
        );
        assert_eq!(
            attribute(&MatchBy::NhsNumber, &late, &driven),
            Matched {
                owner: Some(1),
                unmatched: None
            }
        );
        assert_eq!(
            attribute(&MatchBy::LocalId, &late, &driven),
            Matched {
                owner: Some(0),
                unmatched: None
            }
        );
        let encounter = FieldPath::parse("Encounter.identifier.value").unwrap();
        assert_eq!(
            attribute(&MatchBy::Field(vec![encounter.clone()]), &late, &driven).owner,
            Some(0)
        );

        // No local id: placed by its NHS number, and said so.
        let bare = letter(dir.path(), Transport::Mesh, &mesh(None), Timestamp(300));
        let m = attribute(&MatchBy::LocalId, &bare, &driven);
        assert_eq!(m.owner, Some(1));
        assert!(
            m.unmatched.as_deref().unwrap().contains("SIM-000001"),
            "{m:?}"
        );
        let m = attribute(&MatchBy::Field(vec![encounter]), &bare, &driven);
        assert!(
            m.unmatched.as_deref().unwrap().contains("no value at"),
            "{m:?}"
        );
        // A field that holds the NHS number places it by patient.
        let nhs_path = FieldPath::parse("Patient.identifier.value").unwrap();
        assert_eq!(
            attribute(&MatchBy::Field(vec![nhs_path]), &bare, &driven),
            Matched {
                owner: Some(1),
                unmatched: None
            }
        );
        // Before either scenario was driven, and about nobody of theirs: nowhere.
        let early = letter(dir.path(), Transport::Mesh, &mesh(None), Timestamp(50));
        assert_eq!(attribute(&MatchBy::NhsNumber, &early, &driven).owner, None);
    }

    #[test]
    fn values_are_read_at_json_pointers_hl7_fields_and_fhir_paths() {
        let body = mesh(Some("LG-ABCDEFGH-2"));
        let at = |p: &str, t, b: &[u8]| values_at(&FieldPath::parse(p).unwrap(), t, b);
        assert_eq!(
            at("Encounter.identifier.value", Transport::Mesh, &body),
            ["LG-ABCDEFGH-2"]
        );
        assert_eq!(
            at("Patient.identifier.value", Transport::Mesh, &body),
            ["9990000018"]
        );
        assert_eq!(at("/resourceType", Transport::Mesh, &body), ["Bundle"]);
        assert!(at("/no/such", Transport::Mesh, &body).is_empty());
        assert!(at("PV1-19", Transport::Mesh, &body).is_empty());

        let mdm = crate::protocol::hl7::mdm::build(&doc(Some("LG-ABCDEFGH-2")), Some("A81001"));
        assert_eq!(
            at("PV1-19", Transport::Mllp, mdm.as_bytes()),
            ["LG-ABCDEFGH-2"]
        );
        assert_eq!(
            at("PID-3.1", Transport::Folder, mdm.as_bytes()),
            ["9990000018"]
        );
        assert_eq!(at("PID-3.4", Transport::Mllp, mdm.as_bytes()), ["NHS"]);
        assert!(at("PID-3.1.2", Transport::Mllp, mdm.as_bytes()).is_empty());
        assert!(at("/entry", Transport::Mllp, mdm.as_bytes()).is_empty());
        assert!(at(
            "Encounter.identifier.value",
            Transport::Mllp,
            mdm.as_bytes()
        )
        .is_empty());
    }

    /// What came while the second of two scenarios about alice ran: its own letter, a late
    /// one of the first (said, not counted), and one with no local id (counted, and said).
    #[test]
    fn a_late_letter_of_an_earlier_scenario_is_said_and_not_counted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        std::fs::write(&file, "name: t\nnon_production: true\ndrive:\n  fhir: {base_url: http://127.0.0.1:1/fhir}\ncapture:\n  http_endpoint: {listen: 127.0.0.1:0}\nmatch: local_id\n").unwrap();
        let t = crate::targets::load(&file).unwrap();
        let scenarios = crate::scenario::load_all(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/outpatient/clinic_letter.yaml"
        ))])
        .unwrap()
        .0;
        let s = &scenarios[0];
        let ran = |id: &str, at: i64| Driven {
            id: id.into(),
            local_ids: local_ids(3),
            patients: crate::targets::rebase::event_patients(s),
            driven_at: vec![Timestamp(at)],
        };
        let history = [ran("first", 100), ran("second", 200)];
        let letters = vec![
            letter(
                dir.path(),
                Transport::Mesh,
                &mesh(Some(&history[1].local_ids[0])),
                Timestamp(210),
            ),
            letter(
                dir.path(),
                Transport::Mesh,
                &mesh(Some(&history[0].local_ids[2])),
                Timestamp(220),
            ),
            letter(dir.path(), Transport::Mesh, &mesh(None), Timestamp(230)),
        ];
        let (mine, said) = sort_out(&t.match_by, s, letters, &history);
        assert_eq!(mine.len(), 2);
        assert_eq!(mine.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2]);
        let said: Vec<String> = said
            .iter()
            .map(|f| f.describe(crate::protocol::ids::Identifiers::Masked))
            .collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(
            said[0].starts_with("unmatched letter: clinic letter for alice")
                && said[0]
                    .contains("belongs to scenario first, which was checked before it arrived"),
            "{said:?}"
        );
        assert!(
            said[1].starts_with("unmatched letter #2: clinic letter for alice")
                && said[1].contains("match: local_id could not tie it"),
            "{said:?}"
        );

        // By NHS number the same letters all belong to the scenario running: nothing said.
        let letters = vec![letter(
            dir.path(),
            Transport::Mesh,
            &mesh(Some(&history[0].local_ids[2])),
            Timestamp(220),
        )];
        let (mine, said) = sort_out(&MatchBy::NhsNumber, s, letters, &history);
        assert_eq!((mine.len(), said.len()), (1, 0));
    }

    /// Issue 16 (point 4): in a wave of two scenarios, each letter counts for the member whose
    /// local id it carries and for no other; a late letter of an earlier scenario is said on
    /// the member about its patient; a member that could not be driven takes nothing.
    #[test]
    fn in_a_wave_a_letter_counts_for_one_member_only() {
        let dir = tempfile::tempdir().unwrap();
        let alice = NhsNumber::parse("9990000018").unwrap();
        let bob = NhsNumber::parse("9990000026").unwrap();
        let ran = |id: &str, patient: NhsNumber, at: i64| Driven {
            id: id.into(),
            local_ids: local_ids(3),
            patients: vec![patient],
            driven_at: vec![Timestamp(at)],
        };
        // An earlier scenario about alice, then a wave of two: one about bob, one about alice.
        let history = [
            ran("earlier", alice, 100),
            ran("about-bob", bob, 200),
            ran("about-alice", alice, 200),
        ];
        let carrying =
            |id: Option<&str>| letter(dir.path(), Transport::Mesh, &mesh(id), Timestamp(300));
        let letters = [
            carrying(Some(&history[1].local_ids[0])),
            carrying(Some(&history[2].local_ids[1])),
            carrying(Some(&history[0].local_ids[0])),
            carrying(None),
        ];
        let by = MatchBy::LocalId;
        let placed: Vec<Placed> = letters
            .iter()
            .map(|l| place(&by, l, &history, &[true, true]))
            .collect();
        assert_eq!(placed[0], Placed::Counted(0, None));
        assert_eq!(placed[1], Placed::Counted(1, None));
        assert_eq!(placed[2], Placed::Late { k: 1, owner: 0 });
        assert!(
            matches!(&placed[3], Placed::Counted(1, Some(why)) if why.contains("none of its ids (SIM-000001)")),
            "{:?}",
            placed[3]
        );

        // The member about alice could not be driven: its letters count nowhere, and the late
        // one is said on the member still checked.
        let placed: Vec<Placed> = letters
            .iter()
            .map(|l| place(&by, l, &history, &[true, false]))
            .collect();
        assert_eq!(
            placed,
            [
                Placed::Counted(0, None),
                Placed::Dropped,
                Placed::Late { k: 0, owner: 0 },
                Placed::Dropped
            ]
        );

        // Sorted out: each member's own letters, numbered from 1, and its findings.
        let scenarios = crate::scenario::load_all(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scenarios/outpatient/clinic_letter.yaml"
        ))])
        .unwrap()
        .0;
        let s = &scenarios[0];
        let sorted = sort_out_wave(&by, &[Some(s), Some(s)], letters.to_vec(), &history);
        let seqs = |k: usize| sorted[k].0.iter().map(|l| l.seq).collect::<Vec<_>>();
        assert_eq!((seqs(0), seqs(1)), (vec![1], vec![1, 2]));
        assert!(sorted[0].1.is_empty(), "{:?}", sorted[0].1);
        let said: Vec<String> = sorted[1]
            .1
            .iter()
            .map(|f| f.describe(crate::protocol::ids::Identifiers::Masked))
            .collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert!(said[0].contains("belongs to scenario earlier"), "{said:?}");
        assert!(said[1].starts_with("unmatched letter #2"), "{said:?}");
    }
}
