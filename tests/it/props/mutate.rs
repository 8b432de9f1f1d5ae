//! Mutations of real inputs, as proptest strategies: byte-level edits (a flipped byte, a
//! deleted or repeated run, a truncation, a token from a dictionary inserted), a YAML or XML
//! line's value replaced by a hostile one (a count near `u32::MAX`, year 0000, a duration
//! near `i64::MAX`, an alias, an empty map), and a JSON node replaced, removed or doubled.
//! Each keeps most of its seed, so the reader gets past its first checks into the code that
//! uses the values.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

/// Values that validate in shape and are hostile in size, date, reference or encoding.
pub const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "1",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "1e308",
    ".nan",
    ".inf",
    "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "10000-01-01T00:00:00Z",
    "2025-02-30T00:00:00Z",
    "2025-06-02T09:00:00+14:00",
    "0s",
    "-1s",
    "1h30m",
    "9223372036854775807s",
    "106751991167300d",
    "99999999999999999999d",
    "~",
    "null",
    "[]",
    "{}",
    "''",
    "\"\"",
    "*a",
    "&a x",
    "!!binary aGk=",
    "[*a, *a]",
    "{a: b, a: c}",
    "é\u{202e}\u{1b}[32mPASS\u{1b}[0m",
    "a\u{0}b",
    "../../../../etc/hostname",
    "9990000018",
    "9990000019",
    "A81001",
    "A81001HC001",
    "clinic_letter",
    "discharge_summary",
];

/// Tokens inserted anywhere: what breaks YAML, JSON, XML and HL7 at their seams.
pub const TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    ":",
    ": ",
    "- ",
    "-",
    "#",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!str ",
    "---\n",
    "...\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "\"",
    "'",
    "\\",
    "\\u0000",
    "\\ud800",
    "<",
    ">",
    "/>",
    "</",
    "<![CDATA[",
    "]]>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&unknown;",
    "<?xml ",
    "<!DOCTYPE x [<!ENTITY e \"ee\">]>",
    "xmlns=\"\" ",
    "value=\"\" ",
    "|",
    "^",
    "~",
    "&",
    "\\X00\\",
    "\\E\\",
    "\\H\\",
    "\\.br\\",
    "MSH|^~\\&|",
    "\rPID|||",
    "\x0b",
    "\x1c",
    "\x1c\r",
    "\u{feff}",
    "\u{0}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "é",
    "4294967295",
    "-0",
    "1e999",
    "null",
    "true",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":",
];

/// One edit of an input.
#[derive(Clone, Debug)]
pub enum Mutation {
    Flip {
        at: Index,
        xor: u8,
    },
    Delete {
        at: Index,
        len: usize,
    },
    Insert {
        at: Index,
        token: usize,
    },
    Truncate {
        at: Index,
    },
    Repeat {
        at: Index,
        len: usize,
        times: usize,
    },
    /// The value after a line's first `: ` (YAML) or inside its first `="…"` (XML).
    LineValue {
        line: Index,
        value: usize,
    },
    /// A whole line doubled, or removed.
    Line {
        line: Index,
        remove: bool,
    },
    /// A JSON node replaced by a hostile value, removed, or doubled in its array.
    Json {
        node: Index,
        op: JsonOp,
    },
}

#[derive(Clone, Copy, Debug)]
pub enum JsonOp {
    Replace(usize),
    Remove,
    Double,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 1u8..=255).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => (any::<Index>(), 1usize..32).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<Index>(), 0..TOKENS.len())
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<Index>(), 1usize..64, 1usize..16)
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        3 => (any::<Index>(), 0..HOSTILE.len())
            .prop_map(|(line, value)| Mutation::LineValue { line, value }),
        1 => (any::<Index>(), any::<bool>())
            .prop_map(|(line, remove)| Mutation::Line { line, remove }),
        3 => (any::<Index>(), json_op()).prop_map(|(node, op)| Mutation::Json { node, op }),
    ]
}

fn json_op() -> impl Strategy<Value = JsonOp> {
    prop_oneof![
        2 => (0..HOSTILE.len()).prop_map(JsonOp::Replace),
        1 => Just(JsonOp::Remove),
        1 => Just(JsonOp::Double),
    ]
}

/// One to six edits.
pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

/// A seed of `seeds` (by name, for the failure message) and edits of it.
pub fn mutated(seeds: Vec<(String, Vec<u8>)>) -> impl Strategy<Value = Case> {
    assert!(!seeds.is_empty(), "no seeds");
    (0..seeds.len(), mutations()).prop_map(move |(i, edits)| {
        let (name, seed) = &seeds[i];
        Case {
            seed: name.clone(),
            bytes: apply(seed, &edits),
            edits,
        }
    })
}

/// A mutated input and where it came from.
#[derive(Clone)]
pub struct Case {
    pub seed: String,
    pub edits: Vec<Mutation>,
    pub bytes: Vec<u8>,
}

impl Case {
    /// The input as text, invalid UTF-8 replaced: for readers that take `&str`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

impl std::fmt::Debug for Case {
    /// The seed, the edits and the input as text, so a failure can be made a named test.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} with {:?}:\n{}",
            self.seed,
            self.edits,
            String::from_utf8_lossy(&self.bytes)
        )
    }
}

/// `input` with `edits` applied in order.
pub fn apply(input: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = input.to_vec();
    for e in edits {
        edit(&mut b, e);
    }
    b
}

fn at(i: &Index, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        i.index(len + 1)
    }
}

fn edit(b: &mut Vec<u8>, e: &Mutation) {
    match e {
        Mutation::Flip { at: i, xor } if !b.is_empty() => {
            let p = i.index(b.len());
            b[p] ^= xor;
        }
        Mutation::Flip { .. } => {}
        Mutation::Delete { at: i, len } => {
            let p = at(i, b.len());
            let end = (p + len).min(b.len());
            b.drain(p..end);
        }
        Mutation::Insert { at: i, token } => {
            let p = at(i, b.len());
            b.splice(p..p, TOKENS[*token].bytes());
        }
        Mutation::Truncate { at: i } => {
            let p = at(i, b.len());
            b.truncate(p);
        }
        Mutation::Repeat { at: i, len, times } => {
            let p = at(i, b.len());
            let end = (p + len).min(b.len());
            let run = b[p..end].to_vec();
            for _ in 0..*times {
                b.splice(end..end, run.iter().copied());
            }
        }
        Mutation::LineValue { line, value } => line_value(b, line, HOSTILE[*value]),
        Mutation::Line { line, remove } => whole_line(b, line, *remove),
        Mutation::Json { node, op } => json(b, node, *op),
    }
}

/// Byte ranges of the lines of `b`, without their `\n`.
fn lines(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in b.iter().enumerate() {
        if *c == b'\n' {
            out.push((start, i));
            start = i + 1;
        }
    }
    out.push((start, b.len()));
    out
}

fn line_value(b: &mut Vec<u8>, line: &Index, value: &str) {
    let ls = lines(b);
    let (start, end) = ls[line.index(ls.len())];
    let text = &b[start..end];
    let find = |needle: &[u8]| text.windows(needle.len()).position(|w| w == needle);
    if let Some(p) = find(b"=\"") {
        // XML: the attribute's value, up to its closing quote.
        let from = start + p + 2;
        let to = b[from..end]
            .iter()
            .position(|c| *c == b'"')
            .map_or(end, |q| from + q);
        b.splice(from..to, value.bytes());
    } else if let Some(p) = find(b": ") {
        b.splice(start + p + 2..end, value.bytes());
    } else if let Some(p) = find(b"- ") {
        b.splice(start + p + 2..end, value.bytes());
    }
}

fn whole_line(b: &mut Vec<u8>, line: &Index, remove: bool) {
    let ls = lines(b);
    let (start, end) = ls[line.index(ls.len())];
    let end = (end + 1).min(b.len());
    if remove {
        b.drain(start..end);
    } else {
        let copy = b[start..end].to_vec();
        b.splice(start..start, copy);
    }
}

/// JSON pointers of every node of `v`, in document order.
fn pointers(v: &Value, here: String, out: &mut Vec<String>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(c, format!("{here}/{k}"), out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{here}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn json(b: &mut Vec<u8>, node: &Index, op: JsonOp) {
    let Ok(mut v) = serde_json::from_slice::<Value>(b) else {
        return;
    };
    let mut all = Vec::new();
    pointers(&v, String::new(), &mut all);
    let target = all[node.index(all.len())].clone();
    match op {
        JsonOp::Replace(h) => {
            let hostile = serde_json::from_str(HOSTILE[h])
                .unwrap_or_else(|_| Value::String(HOSTILE[h].to_string()));
            if let Some(slot) = v.pointer_mut(&target) {
                *slot = hostile;
            }
        }
        JsonOp::Remove | JsonOp::Double => {
            let Some((parent, key)) = target.rsplit_once('/') else {
                return;
            };
            let key = key.replace("~1", "/").replace("~0", "~");
            match (v.pointer_mut(parent), op) {
                (Some(Value::Object(m)), JsonOp::Remove) => {
                    m.remove(&key);
                }
                (Some(Value::Array(a)), op) => {
                    if let Ok(i) = key.parse::<usize>() {
                        if i < a.len() {
                            if matches!(op, JsonOp::Remove) {
                                a.remove(i);
                            } else {
                                let c = a[i].clone();
                                a.insert(i, c);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    *b = serde_json::to_vec_pretty(&v).unwrap_or_default();
}
