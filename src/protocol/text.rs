//! Text from the outside world made safe to show: [`escape_controls`] turns control
//! characters (a newline or an ANSI escape in a file name, a header, an EHR's error text, a
//! letter's field) into visible escapes, so nothing a file or an EHR says can move the cursor,
//! colour the console, start a line of its own or hide text (issue 13, point 6).

use std::borrow::Cow;

/// Whether `c` must not reach a console or report as it is: C0 and C1 controls and DEL, and
/// the bidirectional overrides and isolates that reorder what is shown (U+202A–U+202E,
/// U+2066–U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every unsafe character (see [`is_unsafe`]) written as an escape: `\n`, `\r`, `\t`,
/// `\u{1b}`; a backslash stays as it is. Borrowed when there is nothing to escape.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// As [`escape_controls`], keeping line breaks (`\n`) and tabs: for multi-line text such as a
/// diff, whose lines are each made safe.
pub fn escape_controls_keeping_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && c != '\t' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && c != '\t' && is_unsafe(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        None => Cow::Borrowed(s),
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_and_an_ansi_escape_in_a_file_name_become_visible_escapes() {
        assert_eq!(
            escape_controls("x\n\x1b[32mPASS\x1b[0m y"),
            "x\\n\\u{1b}[32mPASS\\u{1b}[0m y"
        );
        assert_eq!(
            escape_controls("a\rb\tc\u{7f}\u{9b}"),
            "a\\rb\\tc\\u{7f}\\u{9b}"
        );
    }

    #[test]
    fn bidirectional_overrides_are_escaped_and_plain_text_is_borrowed() {
        assert_eq!(escape_controls("ab\u{202e}cd"), "ab\\u{202e}cd");
        assert!(matches!(
            escape_controls("Dr Ólafsdóttir, A81001"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_controls(r"C:\path"), r"C:\path");
    }

    #[test]
    fn lines_and_tabs_are_kept_where_text_has_lines() {
        assert_eq!(
            escape_controls_keeping_lines("-a\n+b\x1b[2J\tc"),
            "-a\n+b\\u{1b}[2J\tc"
        );
    }

    #[test]
    fn truncation_counts_characters_not_bytes() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
