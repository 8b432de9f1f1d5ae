//! Ordered, named normalisation steps that replace volatile values with placeholders so that
//! snapshots and digests are stable: [`Step`] and [`normalize`].
//!
//! Steps run in the order of [`Step::ALL`]. New steps go at the end so old snapshots keep
//! passing. Each step checks the shape of what it replaces (a UUID's groups, a real calendar
//! date), so a malformed value is left as it is and still shows up as a difference.

use regex::Regex;
use std::borrow::Cow;
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
        self.apply_numbered(text, &mut HashMap::new()).into_owned()
    }

    /// [`Step::apply`], numbering (`[uuid-N]`) on from the values `seen` before, which it
    /// adds to; borrowed back when nothing changed.
    fn apply_numbered<'t>(self, text: &'t str, seen: &mut HashMap<String, usize>) -> Cow<'t, str> {
        self.apply_shaped(text, Shape::of(text), seen)
    }

    /// [`Step::apply_numbered`] of a text whose [`Shape`] is known.
    fn apply_shaped<'t>(
        self,
        text: &'t str,
        shape: Shape,
        seen: &mut HashMap<String, usize>,
    ) -> Cow<'t, str> {
        if !shape.may_match(self) {
            return Cow::Borrowed(text);
        }
        self.scan(text, seen)
    }

    /// The step itself: its pattern over the whole of `text`.
    fn scan<'t>(self, text: &'t str, seen: &mut HashMap<String, usize>) -> Cow<'t, str> {
        static MESH_ID: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"\b\d{20}_[0-9A-F]{6}\b").expect("valid regex"));
        static UUID: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
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
            Step::SimLocalIds => SIM_LOCAL_ID.replace_all(text, "SIM-$1"),
            Step::LocalIds => numbered(&LOCAL_ID, text, "local-id", seen),
            Step::Ports => ADDRESS.replace_all(text, |c: &regex::Captures| {
                let ip_ok = c[1].parse::<std::net::Ipv4Addr>().is_ok();
                let port_ok = c[2].parse::<u16>().is_ok_and(|p| p > 0);
                if ip_ok && port_ok {
                    format!("{}:[port]", &c[1])
                } else {
                    c[0].to_string()
                }
            }),
            Step::LineEndings => Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n")),
            Step::MeshMessageIds => numbered(&MESH_ID, text, "mesh-message-id", seen),
            Step::Uuids => numbered(&UUID, text, "uuid", seen),
            Step::Timestamps if text.is_ascii() => timestamps_ascii(text),
            Step::Timestamps => timestamps_regex(text),
        }
    }
}

/// The `timestamps` step by its regex: each ISO 8601 date-time with a real month, day, hour,
/// minute and second becomes `[timestamp]`.
fn timestamps_regex(text: &str) -> Cow<'_, str> {
    static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\b(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?")
            .expect("valid regex")
    });
    TIMESTAMP.replace_all(text, |c: &regex::Captures| {
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
}

/// [`timestamps_regex`] by hand, for ASCII text (where `\d` is `[0-9]` and `\b` lies between
/// `[0-9A-Za-z_]` and anything else): the same matches, leftmost first, each optional part
/// taken when it is there, without the regex's captures, which cost more than the rest of a
/// letter's normalisation.
fn timestamps_ascii(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let is = |i: usize, c: u8| b.get(i) == Some(&c);
    let num = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (mut out, mut copied, mut i) = (String::new(), 0, 0);
    while i + 16 <= b.len() {
        let at = i;
        // `\b(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})`
        let starts = d(at) && (at == 0 || !word(b[at - 1]));
        let fixed = starts
            && (at + 1..at + 4).all(d)
            && is(at + 4, b'-')
            && d(at + 5)
            && d(at + 6)
            && is(at + 7, b'-')
            && d(at + 8)
            && d(at + 9)
            && is(at + 10, b'T')
            && d(at + 11)
            && d(at + 12)
            && is(at + 13, b':')
            && d(at + 14)
            && d(at + 15);
        if !fixed {
            i += 1;
            continue;
        }
        let mut end = at + 16;
        let mut seconds = 0;
        // `(?::(\d{2})(?:\.\d+)?)?`
        if is(end, b':') && d(end + 1) && d(end + 2) {
            seconds = num(end + 1);
            end += 3;
            if is(end, b'.') && d(end + 1) {
                end += 1;
                while d(end) {
                    end += 1;
                }
            }
        }
        // `(?:Z|[+-]\d{2}:\d{2})?`
        if is(end, b'Z') {
            end += 1;
        } else if (is(end, b'+') || is(end, b'-'))
            && d(end + 1)
            && d(end + 2)
            && is(end + 3, b':')
            && d(end + 4)
            && d(end + 5)
        {
            end += 6;
        }
        let valid = (1..=12).contains(&num(at + 5))
            && (1..=31).contains(&num(at + 8))
            && num(at + 11) < 24
            && num(at + 14) < 60
            && seconds < 61;
        if valid {
            out.push_str(&text[copied..at]);
            out.push_str("[timestamp]");
            copied = end;
        }
        i = end;
    }
    if copied == 0 {
        Cow::Borrowed(text)
    } else {
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

fn numbered<'t>(
    re: &Regex,
    text: &'t str,
    label: &str,
    seen: &mut HashMap<String, usize>,
) -> Cow<'t, str> {
    re.replace_all(text, |c: &regex::Captures| {
        let key = c[0].to_ascii_lowercase();
        let next = seen.len() + 1;
        let n = *seen.entry(key).or_insert(next);
        format!("[{label}-{n}]")
    })
}

/// What a text holds that the steps' patterns need, found in one pass over its bytes, so that
/// a step whose pattern cannot match is not run: a `\r`; a `_` after a digit (a MESH message
/// id's); four `-` five apart (a UUID's 8-4-4-4-12); a `T` between digits with a `-` three
/// before it (a timestamp's `03T09`); a `:` between digits (an address's port); `LG-`, `SIM-`.
/// In text that is not ASCII, where `\d` takes other digits, only the length and the literals
/// are tested. Exact in one direction only: a step it rules out cannot match.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    len: usize,
    carriage_return: bool,
    digit_underscore: bool,
    dashes_five_apart: bool,
    digit_t_digit: bool,
    digit_colon_digit: bool,
    lg: bool,
    sim: bool,
}

/// The bytes [`Shape::of`] looks at: the separators, the first letters of the literals, and
/// every byte of a character that is not ASCII.
static NOTABLE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 128;
    while i < 256 {
        t[i] = true;
        i += 1;
    }
    let notable = b"\r_-T:LS";
    let mut k = 0;
    while k < notable.len() {
        t[notable[k] as usize] = true;
        k += 1;
    }
    t
};

impl Shape {
    fn of(text: &str) -> Shape {
        let b = text.as_bytes();
        let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
        let mut s = Shape {
            len: b.len(),
            ..Shape::default()
        };
        let mut ascii = true;
        for (i, &c) in b.iter().enumerate() {
            if !NOTABLE[usize::from(c)] {
                continue;
            }
            match c {
                b'\r' => s.carriage_return = true,
                b'_' => s.digit_underscore |= i > 0 && digit(i - 1),
                b'-' => {
                    s.dashes_five_apart |= [5, 10, 15].iter().all(|d| b.get(i + d) == Some(&b'-'))
                }
                b'T' => {
                    s.digit_t_digit |= i >= 3 && digit(i - 1) && digit(i + 1) && b[i - 3] == b'-'
                }
                b':' => s.digit_colon_digit |= i > 0 && digit(i - 1) && digit(i + 1),
                b'L' => s.lg |= b[i..].starts_with(b"LG-"),
                b'S' => s.sim |= b[i..].starts_with(b"SIM-"),
                c if !c.is_ascii() => ascii = false,
                _ => {}
            }
        }
        if !ascii {
            // `\d` matches digits of other scripts: keep to what is certain.
            s.digit_underscore |= text.contains('_');
            s.dashes_five_apart |= text.contains('-');
            s.digit_t_digit |= text.contains('T') && text.contains('-');
            s.digit_colon_digit |= text.contains(':');
        }
        s
    }

    /// Whether `step` can change the text at all.
    fn may_match(&self, step: Step) -> bool {
        match step {
            Step::LineEndings => self.carriage_return,
            // 20 digits, `_`, 6 hex digits.
            Step::MeshMessageIds => self.len >= 27 && self.digit_underscore,
            Step::Uuids => self.len >= 36 && self.dashes_five_apart,
            // `2025-03-03T09:30` at least.
            Step::Timestamps => self.len >= 16 && self.digit_t_digit,
            // `1.2.3.4:5` at least.
            Step::Ports => self.len >= 9 && self.digit_colon_digit,
            Step::LocalIds => self.lg,
            Step::SimLocalIds => self.sim,
        }
    }

    /// Whether no step can change the text.
    fn inert(&self) -> bool {
        !Step::ALL.iter().any(|s| self.may_match(*s))
    }
}

/// Applies every step in order.
///
/// ```
/// let t = lettergate::protocol::normalize::normalize("id 123e4567-e89b-12d3-a456-426614174000 at 2025-03-03T09:30:00Z");
/// assert_eq!(t, "id [uuid-1] at [timestamp]");
/// ```
pub fn normalize(text: &str) -> String {
    Normalizer::default().apply(text).into_owned()
}

/// The steps applied to a text given in pieces, one piece after the other, numbering across
/// them as [`normalize`] numbers across one text: the second piece's first new UUID is the
/// one after the first piece's last. For a text whose matches never span two pieces (the
/// string tokens of JSON, see [`super::digest`]) the pieces normalised in order are the whole
/// text normalised.
#[derive(Debug, Default)]
pub struct Normalizer {
    /// The values numbered so far, per step of [`Step::ALL`].
    seen: [HashMap<String, usize>; Step::ALL.len()],
}

impl Normalizer {
    /// Every step in order on `piece`; borrowed back when nothing changed.
    pub fn apply<'t>(&mut self, piece: &'t str) -> Cow<'t, str> {
        let mut shape = Shape::of(piece);
        if shape.inert() {
            return Cow::Borrowed(piece);
        }
        let mut out = Cow::Borrowed(piece);
        for (step, seen) in Step::ALL.iter().zip(self.seen.iter_mut()) {
            let changed = match step.apply_shaped(&out, shape, seen) {
                Cow::Owned(changed) => Some(changed),
                Cow::Borrowed(_) => None,
            };
            if let Some(changed) = changed {
                shape = Shape::of(&changed);
                out = Cow::Owned(changed);
            }
        }
        out
    }
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
    let numbers = own_id_numbers(ids);
    if !numbers.is_empty() {
        walk(v, "", &numbers);
    }
}

/// Each of `ids` with its number, by first appearance: the `N` of `[own-id-N]`.
pub fn own_id_numbers(ids: &[String]) -> HashMap<&str, usize> {
    let mut numbers: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        let next = numbers.len() + 1;
        numbers.entry(id.as_str()).or_insert(next);
    }
    numbers
}

fn walk(v: &mut serde_json::Value, key: &str, numbers: &HashMap<&str, usize>) {
    match v {
        serde_json::Value::String(s)
            if matches!(key, "id" | "fullUrl" | "reference" | "identifier") =>
        {
            if let Some(m) = masked_id(s, numbers) {
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

/// `s`, a string where a bundle keeps ids, with the id in it masked; `None` when it holds none
/// of those numbered.
pub fn masked_id(s: &str, numbers: &HashMap<&str, usize>) -> Option<String> {
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

/// [`normalize`] as it was first written: every step's pattern over the whole text, with no
/// test first of whether it can match. The oracle the faster paths are tested against.
#[cfg(test)]
pub(crate) fn normalize_scanning_all(text: &str) -> String {
    Step::ALL.iter().fold(text.to_string(), |t, s| {
        s.scan(&t, &mut HashMap::new()).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_text_that_cannot_match_changes_nothing() {
        let texts = [
            "a\r\nb\rc",
            "id 20250303093000123456_ABC123. 20250303093000123456_ABC123 20250303093000123457_ABC123",
            "a 123e4567-e89b-12d3-a456-426614174000 b 123E4567-E89B-12D3-A456-426614174000",
            "at 2025-03-03T09:30Z and 2025-03-03T09:30:00.123+01:00, bad 2025-13-03T09:30:00Z",
            "1.2.3.4:5 127.0.0.1:41234 127.0.0.1:99999",
            "LG-7K2M9QXA-3 SIM-7K2M9QXA-000012 LG-7K2M9QXA-3",
            "nothing to see, 12:30 on 2025-03-03, a-b_c T",
            "https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000 at 2025-01-06T09:00:00+00:00",
            "2025-01-06T09:00Z20250303093000123456_ABC123 1.2.3.4:5",
            "١٢٣٤-٠١-٠٦T٠٩:٠٠ in Arabic-Indic digits, and é 127.0.0.1:80",
            "",
        ];
        for t in texts {
            assert_eq!(normalize(t), normalize_scanning_all(t), "{t:?}");
            for step in Step::ALL {
                let (mut a, mut b) = (HashMap::new(), HashMap::new());
                assert_eq!(
                    step.apply_numbered(t, &mut a),
                    step.scan(t, &mut b),
                    "{} on {t:?}",
                    step.name()
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn timestamps_by_hand_are_the_timestamps_of_the_regex(
            text in "[0-9TZ:+.\\-x_ ]{0,60}",
            // Around every bound the step checks: months 0 to 13, days 0 to 32, hours to 24,
            // minutes and seconds to 61.
            stamp in "20[0-9]{2}-(0[0-2]|1[0-3]|0[3-9])-(0[01]|3[0-2]|[12][0-9])T(2[3-4]|[01][0-9]):(5[89]|6[01]|[0-4][0-9])(:(5[89]|6[01]|[0-4][0-9])(\\.[0-9]{1,4})?)?(Z|[+-][0-9]{2}:[0-9]{2})?",
            before in "[0-9a-z_ .:-]{0,3}",
            after in "[0-9a-z_ .:+-]{0,3}",
        ) {
            for t in [text.clone(), format!("{before}{stamp}{after}"), format!("{stamp}{text}{stamp}")] {
                proptest::prop_assert_eq!(timestamps_ascii(&t), timestamps_regex(&t), "{:?}", t);
            }
        }
    }

    #[test]
    fn timestamps_by_hand_take_what_the_regex_takes() {
        for t in [
            "at 2025-03-03T09:30:00Z and 2025-03-03T09:30:00.123+01:00",
            "2025-03-03T09:30",
            "x2025-03-03T09:30",
            "_2025-03-03T09:30",
            "-2025-03-03T09:30:61Z",
            "2025-03-03T09:30:5 2025-03-03T09:30:59.Z 2025-13-03T09:30 2025-03-03T09:30+0100",
            "12025-03-03T09:30 2025-03-03T24:00 2025-03-32T00:00 2025-00-01T00:00Z",
            "2025-03-03T09:30:60Z 2025-03-03T09:60 2025-12-31T23:59:59.999-00:00",
        ] {
            assert_eq!(timestamps_ascii(t), timestamps_regex(t), "{t:?}");
        }
    }

    #[test]
    fn pieces_normalised_in_order_number_on_from_each_other() {
        let mut n = Normalizer::default();
        let a = "123e4567-e89b-12d3-a456-426614174000";
        let b = "00000000-0000-0000-0000-000000000001";
        assert_eq!(n.apply(a), "[uuid-1]");
        assert_eq!(n.apply(b), "[uuid-2]");
        assert_eq!(n.apply(&a.to_uppercase()), "[uuid-1]");
        assert!(matches!(n.apply("plain"), Cow::Borrowed("plain")));
        assert_eq!(
            normalize(&format!("{a} {b} {a}")),
            "[uuid-1] [uuid-2] [uuid-1]"
        );
    }

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
