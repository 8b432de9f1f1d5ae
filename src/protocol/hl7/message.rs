//! A small HL7 v2 [`Message`] reader (segments by CR or LF, fields by `|`, components by `^`,
//! repetitions by `~`) and the escaping of text put into a field ([`escape`], [`unescape`]).
//!
//! lettergate reads and writes only the default delimiters `|^~\&`, which every message it
//! builds declares in MSH-1 and MSH-2. A message declaring other delimiters is refused rather
//! than misread.

use super::Hl7ReadError;

/// A parsed message: its segments, each split into fields. Fields keep their escapes; read
/// text with [`Message::text`], which unescapes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    segments: Vec<Vec<String>>,
}

impl Message {
    /// Splits `text` into segments (by CR, LF or CRLF) and fields. The MSH segment must come
    /// first and declare the default delimiters.
    ///
    /// ```
    /// use lettergate::protocol::hl7::message::Message;
    /// let m = Message::parse("MSH|^~\\&|A|B\rPID|1||9990000018^^^NHS^NH").unwrap();
    /// assert_eq!(m.get("PID", 3, 1), Some("9990000018"));
    /// ```
    pub fn parse(text: &str) -> Result<Message, Hl7ReadError> {
        let segments: Vec<Vec<String>> = text
            .split(['\r', '\n'])
            .map(|s| s.trim_matches(|c: char| c == '\u{0b}' || c == '\u{1c}'))
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.split('|').map(str::to_string).collect())
            .collect();
        let Some(msh) = segments.first() else {
            return Err(Hl7ReadError::Empty);
        };
        if msh[0] != "MSH" {
            return Err(Hl7ReadError::NoMsh(msh[0].chars().take(10).collect()));
        }
        if msh.get(1).map(String::as_str) != Some("^~\\&") {
            return Err(Hl7ReadError::Delimiters);
        }
        Ok(Message { segments })
    }

    /// The first segment named `name`, as its fields (index 0 is the segment name).
    pub fn segment(&self, name: &str) -> Option<&[String]> {
        self.segments
            .iter()
            .find(|s| s[0] == name)
            .map(Vec::as_slice)
    }

    /// Every segment named `name`, in order.
    pub fn segments<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [String]> + 'a {
        self.segments
            .iter()
            .filter(move |s| s[0] == name)
            .map(Vec::as_slice)
    }

    /// The names of the segments, in order.
    pub fn segment_names(&self) -> Vec<&str> {
        self.segments.iter().map(|s| s[0].as_str()).collect()
    }

    /// Field `field` (HL7 numbering, from 1), component `component` (from 1) of the first
    /// repetition of the first segment `name`, still escaped; `None` when absent or empty.
    ///
    /// MSH is numbered as the standard does: MSH-1 is the field separator itself, so MSH-3 is
    /// the sending application.
    pub fn get(&self, name: &str, field: usize, component: usize) -> Option<&str> {
        component_of(self.segment(name)?, name, field, component)
    }

    /// As [`Message::get`], unescaped.
    pub fn text(&self, name: &str, field: usize, component: usize) -> Option<String> {
        self.get(name, field, component).map(unescape)
    }
}

/// Component `component` of field `field` of one segment's fields (see [`Message::get`]).
pub fn component_of<'a>(
    seg: &'a [String],
    name: &str,
    field: usize,
    component: usize,
) -> Option<&'a str> {
    // MSH-1 is the field separator the split consumed; MSH-2 holds the other delimiters.
    match (name, field) {
        ("MSH", 0 | 1) => return Some("|"),
        ("MSH", 2) => return seg.get(1).map(String::as_str),
        _ => {}
    }
    let index = if name == "MSH" { field - 1 } else { field };
    let value = seg.get(index)?;
    let first = value.split('~').next().unwrap_or("");
    first
        .split('^')
        .nth(component.saturating_sub(1))
        .filter(|c| !c.is_empty())
}

/// Escapes text for a field: the delimiters `| ^ ~ \ &` become `\F\ \S\ \R\ \E\ \T\`, and line
/// breaks become `\.br\`, so the text cannot break the message's structure.
///
/// ```
/// use lettergate::protocol::hl7::message::{escape, unescape};
/// assert_eq!(escape("a|b^c&d~e\\f"), "a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f");
/// assert_eq!(unescape(&escape("Metformin 500 mg | twice daily")), "Metformin 500 mg | twice daily");
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\.br\\");
            }
            '\n' => out.push_str("\\.br\\"),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape`]. Escape sequences lettergate does not know (`\H\`, `\Xhh\`, ...) are left
/// as they are, so nothing is silently lost.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\\') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find('\\') else {
            out.push_str(&rest[start..]);
            return out;
        };
        match &after[..end] {
            "F" => out.push('|'),
            "S" => out.push('^'),
            "T" => out.push('&'),
            "R" => out.push('~'),
            "E" => out.push('\\'),
            ".br" => out.push('\n'),
            other => {
                out.push('\\');
                out.push_str(other);
                out.push('\\');
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_components_with_msh_numbered_as_the_standard_does() {
        let m = Message::parse(
            "MSH|^~\\&|LETTERGATE|RXX|GP|A81001|20250106090000||MDM^T02^MDM_T02|MSG1|P|2.4\r\
             PID|1||9990000018^^^NHS^NH||Example^Alice",
        )
        .unwrap();
        assert_eq!(m.get("MSH", 1, 1), Some("|"));
        assert_eq!(m.get("MSH", 3, 1), Some("LETTERGATE"));
        assert_eq!(m.get("MSH", 6, 1), Some("A81001"));
        assert_eq!(m.get("MSH", 9, 2), Some("T02"));
        assert_eq!(m.get("MSH", 10, 1), Some("MSG1"));
        assert_eq!(m.get("PID", 3, 4), Some("NHS"));
        assert_eq!(m.get("PID", 5, 2), Some("Alice"));
        assert_eq!(m.get("PID", 7, 1), None);
        assert_eq!(m.get("PV1", 2, 1), None);
    }

    #[test]
    fn splits_segments_on_cr_lf_or_crlf_and_tolerates_a_last_segment_without_one() {
        for sep in ["\r", "\n", "\r\n"] {
            let m = Message::parse(&format!("MSH|^~\\&|A{sep}EVN|T02{sep}PID|1")).unwrap();
            assert_eq!(m.segment_names(), vec!["MSH", "EVN", "PID"]);
        }
    }

    #[test]
    fn refuses_text_that_is_not_an_hl7_message() {
        assert!(Message::parse("").is_err());
        assert!(Message::parse("PID|1").is_err());
        assert!(Message::parse("MSH|#~\\&|A").is_err());
    }

    #[test]
    fn escapes_every_delimiter_and_round_trips() {
        let text = "a|b^c&d~e\\f\ng";
        let e = escape(text);
        assert!(!e.contains(['|', '^', '&', '~', '\n']));
        assert_eq!(unescape(&e), text);
    }

    #[test]
    fn leaves_unknown_escapes_and_a_lone_backslash_as_they_are() {
        assert_eq!(unescape("x\\H\\bold\\N\\y"), "x\\H\\bold\\N\\y");
        assert_eq!(unescape("trailing \\"), "trailing \\");
    }
}
