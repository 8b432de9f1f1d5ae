//! Ordered, named normalisation steps that replace volatile values with placeholders so that
//! snapshots and digests are stable: [`Step`] and [`normalize`].
//!
//! Steps run in the order of [`Step::ALL`]. New steps go at the end so old snapshots keep
//! passing. Each step checks the shape of what it replaces (a UUID's groups, a real calendar
//! date), so a malformed value is left as it is and still shows up as a difference.

use regex::Regex;
use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `\r\n` and `\r` become `\n`.
    LineEndings,
    /// MESH message ids (`20250303093000123456_ABC123`) become `[mesh-message-id-N]`.
    MeshMessageIds,
    /// UUIDs become `[uuid-N]`, numbered by first appearance so references keep their shape.
    Uuids,
    /// ISO 8601 date-times become `[timestamp]`.
    Timestamps,
    /// The port of an IPv4 address (`127.0.0.1:41234`, an MLLP capture's route) becomes
    /// `[port]`: captures listen on a free port, a different one every run.
    Ports,
    /// The local ids lettergate gives the events it drives (`LG-7K2M9QXA-3`), which an EHR
    /// echoes into its letters, become `[local-id-N]`: each target run makes new ones.
    LocalIds,
    /// The simulator's local ids for its letters (`SIM-7K2M9QXA-000001`) keep their number
    /// and lose the eight characters each simulator makes new (`SIM-000001`), so that two
    /// runs render alike although no two send a letter with one id (issue 13).
    SimLocalIds,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::LineEndings,
        Step::MeshMessageIds,
        Step::Uuids,
        Step::Timestamps,
        Step::Ports,
        Step::LocalIds,
        Step::SimLocalIds,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::LineEndings => "line-endings",
            Step::MeshMessageIds => "mesh-message-ids",
            Step::Uuids => "uuids",
            Step::Timestamps => "timestamps",
            Step::Ports => "ports",
            Step::LocalIds => "local-ids",
            Step::SimLocalIds => "sim-local-ids",
        }
    }

    pub fn apply(self, text: &str) -> String {
        static MESH_ID: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\b\d{20}_[0-9A-F]{6}\b").expect("valid regex"));
        static UUID: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
                .expect("valid regex")
        });
        static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?")
                .expect("valid regex")
        });
        static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}):(\d{1,5})\b").expect("valid regex")
        });
        static LOCAL_ID: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\bLG-[0-9A-Z]{8}-[0-9]{1,6}\b").expect("valid regex"));
        static SIM_LOCAL_ID: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\bSIM-[0-9A-Z]{8}-([0-9]{6})\b").expect("valid regex"));
        match self {
            Step::SimLocalIds if !text.contains("SIM-") => text.to_string(),
            Step::SimLocalIds => SIM_LOCAL_ID.replace_all(text, "SIM-$1").into_owned(),
            // Simulator runs carry none: skip the scan on their hot path.
            Step::LocalIds if !text.contains("LG-") => text.to_string(),
            Step::LocalIds => numbered(&LOCAL_ID, text, "local-id"),
            Step::Ports => ADDRESS
                .replace_all(text, |c: &regex::Captures| {
                    let ip_ok = c[1].parse::<std::net::Ipv4Addr>().is_ok();
                    let port_ok = c[2].parse::<u16>().is_ok_and(|p| p > 0);
                    if ip_ok && port_ok {
                        format!("{}:[port]", &c[1])
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned(),
            Step::LineEndings => text.replace("\r\n", "\n").replace('\r', "\n"),
            Step::MeshMessageIds => numbered(&MESH_ID, text, "mesh-message-id"),
            Step::Uuids => numbered(&UUID, text, "uuid"),
            Step::Timestamps => TIMESTAMP
                .replace_all(text, |c: &regex::Captures| {
                    let n = |i: usize| {
                        c.get(i)
                            .map_or(0, |m| m.as_str().parse::<u32>().unwrap_or(99))
                    };
                    let valid = (1..=12).contains(&n(2))
                        && (1..=31).contains(&n(3))
                        && n(4) < 24
                        && n(5) < 60
                        && n(6) < 61;
                    if valid {
                        "[timestamp]".to_string()
                    } else {
                        c[0].to_string()
                    }
                })
                .into_owned(),
        }
    }
}

fn numbered(re: &Regex, text: &str, label: &str) -> String {
    let mut seen: HashMap<String, usize> = HashMap::new();
    re.replace_all(text, |c: &regex::Captures| {
        let key = c[0].to_ascii_lowercase();
        let next = seen.len() + 1;
        let n = *seen.entry(key).or_insert(next);
        format!("[{label}-{n}]")
    })
    .into_owned()
}

/// Applies every step in order.
///
/// ```
/// let t = lettergate::protocol::normalize::normalize("id 123e4567-e89b-12d3-a456-426614174000 at 2025-03-03T09:30:00Z");
/// assert_eq!(t, "id [uuid-1] at [timestamp]");
/// ```
pub fn normalize(text: &str) -> String {
    Step::ALL.iter().fold(text.to_string(), |t, s| s.apply(&t))
}

/// The ids an EHR makes for each letter it sends: the resource ids of a bundle's entries and
/// the `identifier` values of the bundle and of its MessageHeader, Composition and Encounter.
/// Whatever their shape (UUIDs, running numbers, `enc-17`), they say nothing about the letter's
/// content and are new on every run, so [`mask_ids`] takes them out before a digest.
pub fn fhir_own_ids(bundle: &serde_json::Value) -> Vec<String> {
    const WITH_OWN_IDS: [&str; 4] = ["MessageHeader", "Composition", "Encounter", "Bundle"];
    fn identifiers(v: &serde_json::Value, ids: &mut Vec<String>) {
        let list = match v {
            serde_json::Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for i in list {
            if let Some(value) = i["value"].as_str() {
                ids.push(value.to_string());
            }
        }
    }
    let mut ids = Vec::new();
    identifiers(&bundle["identifier"], &mut ids);
    let mut resources: Vec<&serde_json::Value> = Vec::new();
    for e in bundle["entry"].as_array().into_iter().flatten() {
        resources.push(&e["resource"]);
        // A document bundle nested in a message: its entries are the letter's too.
        resources.extend(
            e["resource"]["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| &n["resource"]),
        );
    }
    for r in resources {
        if r["resourceType"]
            .as_str()
            .is_some_and(|t| WITH_OWN_IDS.contains(&t))
        {
            identifiers(&r["identifier"], &mut ids);
        }
        if let Some(id) = r["id"].as_str() {
            ids.push(id.to_string());
        }
    }
    ids.retain(|id| id.len() >= 2);
    ids
}

/// Replaces each of `ids` where a bundle keeps ids (a resource's `id`, an entry's `fullUrl`,
/// a `reference`, an `identifier`'s `value`), also as the end of a `Type/id` reference, by
/// `[own-id-N]`, numbered by first appearance in `ids`. The same text anywhere else (a code, a
/// title, a date) is content and stays.
pub fn mask_ids(v: &mut serde_json::Value, ids: &[String]) {
    let mut numbers: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        let next = numbers.len() + 1;
        numbers.entry(id.as_str()).or_insert(next);
    }
    if !numbers.is_empty() {
        walk(v, "", &numbers);
    }
}

fn walk(v: &mut serde_json::Value, key: &str, numbers: &HashMap<&str, usize>) {
    match v {
        serde_json::Value::String(s)
            if matches!(key, "id" | "fullUrl" | "reference" | "identifier") =>
        {
            if let Some(m) = masked(s, numbers) {
                *s = m;
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, key, numbers)),
        serde_json::Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                // An identifier's `value` is an id; any other `value` is content.
                let k = if key == "identifier" && k == "value" {
                    "identifier"
                } else {
                    k.as_str()
                };
                walk(x, k, numbers);
            }
        }
        _ => {}
    }
}

fn masked(s: &str, numbers: &HashMap<&str, usize>) -> Option<String> {
    if let Some(n) = numbers.get(s) {
        return Some(format!("[own-id-{n}]"));
    }
    // `Encounter/17`, `https://ehr.example/fhir/Encounter/17`, `urn:uuid:…` are references.
    let (head, id) = s.rsplit_once(['/', ':'])?;
    let n = numbers.get(id)?;
    let kind = head.rsplit(['/', ':']).next().unwrap_or("");
    let is_reference = kind == "uuid"
        || kind.chars().next().is_some_and(|c| c.is_ascii_uppercase())
            && kind.chars().all(|c| c.is_ascii_alphabetic());
    is_reference.then(|| format!("{head}{}[own-id-{n}]", &s[head.len()..head.len() + 1]))
}

/// The same for the text of a message that is not JSON (an HL7 v2 message, a body read by a
/// target's reader): each of `ids` that stands as a whole field or component, between HL7
/// delimiters, quotes or line ends, becomes `[own-id-N]`.
pub fn mask_ids_in_text(text: &str, ids: &[String]) -> String {
    let mut out = text.to_string();
    let mut seen: Vec<&str> = Vec::new();
    for id in ids.iter().filter(|id| id.len() >= 2) {
        if seen.contains(&id.as_str()) {
            continue;
        }
        seen.push(id);
        let n = seen.len();
        let pattern = format!(r#"(^|[|^~&"\n])({})($|[|^~&"\n])"#, regex::escape(id));
        let Ok(re) = Regex::new(&pattern) else {
            continue;
        };
        // Twice: adjacent occurrences share a delimiter, which one pass consumes.
        for _ in 0..2 {
            out = re
                .replace_all(&out, format!("${{1}}[own-id-{n}]${{3}}"))
                .into_owned();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ehrs_own_ids_are_masked_in_any_shape_and_nothing_else_is() {
        let mut v = serde_json::json!({
            "resourceType": "Bundle", "identifier": {"value": "SDN123450001"},
            "entry": [
                {"fullUrl": "https://ehr.example/fhir/Encounter/17",
                 "resource": {"resourceType": "Encounter", "id": "17",
                              "identifier": [{"value": "V-0042"}],
                              "period": {"start": "2026-12-03T09:17:00Z"}}},
                {"resource": {"resourceType": "Composition", "encounter": {"reference": "Encounter/17"},
                              "identifier": {"value": "SDN123450001"}, "title": "visit 17",
                              "type": {"coding": [{"code": "17"}]}}},
                {"resource": {"resourceType": "Patient", "id": "pat-9",
                              "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9990000018"}]}}
            ]
        });
        let ids = fhir_own_ids(&v);
        assert_eq!(
            ids,
            ["SDN123450001", "V-0042", "17", "SDN123450001", "pat-9"]
        );
        mask_ids(&mut v, &ids);
        let e = &v["entry"];
        assert_eq!(v["identifier"]["value"], "[own-id-1]");
        assert_eq!(
            e[0]["fullUrl"],
            "https://ehr.example/fhir/Encounter/[own-id-3]"
        );
        assert_eq!(e[0]["resource"]["identifier"][0]["value"], "[own-id-2]");
        assert_eq!(
            e[1]["resource"]["encounter"]["reference"],
            "Encounter/[own-id-3]"
        );
        // A value that merely contains or equals an id in another role is content.
        assert_eq!(e[0]["resource"]["period"]["start"], "2026-12-03T09:17:00Z");
        assert_eq!(e[1]["resource"]["title"], "visit 17");
        assert_eq!(e[1]["resource"]["type"]["coding"][0]["code"], "17");
        assert_eq!(e[2]["resource"]["identifier"][0]["value"], "9990000018");
    }

    #[test]
    fn own_ids_in_hl7_fields_are_masked_only_as_whole_fields() {
        let text = "PV1|1|O|||||||||||||||V-17^^^RXX\nTXA|1|CD|TX|||||||||DOC-17||V-17|x V-17 y";
        let ids = ["DOC-17".to_string(), "V-17".to_string()];
        assert_eq!(
            mask_ids_in_text(text, &ids),
            "PV1|1|O|||||||||||||||[own-id-2]^^^RXX\nTXA|1|CD|TX|||||||||[own-id-1]||[own-id-2]|x V-17 y"
        );
    }

    #[test]
    fn each_step_replaces_only_well_formed_values() {
        let table = [
            (Step::LineEndings, "a\r\nb\rc", "a\nb\nc"),
            (Step::MeshMessageIds, "id 20250303093000123456_ABC123.", "id [mesh-message-id-1]."),
            (Step::MeshMessageIds, "id 2025030309300012345_ABC123", "id 2025030309300012345_ABC123"),
            (
                Step::Uuids,
                "a 123e4567-e89b-12d3-a456-426614174000 b 00000000-0000-0000-0000-000000000001 a 123E4567-E89B-12D3-A456-426614174000",
                "a [uuid-1] b [uuid-2] a [uuid-1]",
            ),
            (Step::Uuids, "not 123e4567-e89b-12d3-a456-42661417400", "not 123e4567-e89b-12d3-a456-42661417400"),
            (Step::Timestamps, "at 2025-03-03T09:30:00Z and 2025-03-03T09:30:00.123+01:00", "at [timestamp] and [timestamp]"),
            (Step::Timestamps, "bad 2025-13-03T09:30:00Z", "bad 2025-13-03T09:30:00Z"),
            (Step::Timestamps, "a date alone 2025-03-03 stays", "a date alone 2025-03-03 stays"),
            (Step::Ports, "route: MLLP 127.0.0.1:41234", "route: MLLP 127.0.0.1:[port]"),
            (Step::Ports, "not 127.0.0.1:99999 nor 327.0.0.1:80", "not 127.0.0.1:99999 nor 327.0.0.1:80"),
            (Step::LocalIds, "PV1|1|O|||||||||||||||LG-7K2M9QXA-3^^^RXX LG-ABCDEFGH-12 LG-7K2M9QXA-3", "PV1|1|O|||||||||||||||[local-id-1]^^^RXX [local-id-2] [local-id-1]"),
            (Step::LocalIds, "not LG-7k2m9qxa-3 nor LG-7K2M9QX-3 nor SIM-000001", "not LG-7k2m9qxa-3 nor LG-7K2M9QX-3 nor SIM-000001"),
            (Step::SimLocalIds, "MSH|^~\\&|x|||||||SIM-7K2M9QXA-000012|P FOLDER SIM-ABCDEFGH-000005.json", "MSH|^~\\&|x|||||||SIM-000012|P FOLDER SIM-000005.json"),
            (Step::SimLocalIds, "not SIM-7k2m9qxa-000001 nor SIM-7K2M9QX-000001 nor SIM-7K2M9QXA-0001", "not SIM-7k2m9qxa-000001 nor SIM-7K2M9QX-000001 nor SIM-7K2M9QXA-0001"),
        ];
        for (step, input, want) in table {
            assert_eq!(step.apply(input), want, "{} on {input:?}", step.name());
        }
    }

    #[test]
    fn steps_run_in_their_fixed_order() {
        assert_eq!(
            Step::ALL.map(Step::name),
            [
                "line-endings",
                "mesh-message-ids",
                "uuids",
                "timestamps",
                "ports",
                "local-ids",
                "sim-local-ids"
            ]
        );
    }
}
