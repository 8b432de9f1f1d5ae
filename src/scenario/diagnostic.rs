//! [`Diagnostic`]: an error in an input file that names `file:line:column`, shows the line with
//! a caret under the column, and suggests the likely fix.

use crate::protocol::text::escape_controls;
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (a missing file).
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The source line the caret points into.
    pub source_line: Option<String>,
    pub help: Option<String>,
}

/// How much of a source line a diagnostic shows, in characters.
pub const SOURCE_LINE_MAX: usize = 160;

impl Diagnostic {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: file.into(),
            line: 0,
            column: 0,
            message: message.into(),
            source_line: None,
            help: None,
        }
    }

    /// Points the diagnostic at a position of `text` (1-based line and column).
    pub fn at(mut self, text: &str, line: usize, column: usize) -> Diagnostic {
        self.line = line;
        self.column = column.max(1);
        // Bounded and escaped: the line may be a whole file with no line breaks in it, or
        // hold control characters that would move the cursor or colour the console.
        self.source_line = lines(text).nth(line.saturating_sub(1)).map(|l| {
            let l = crate::protocol::text::truncate(l, SOURCE_LINE_MAX);
            crate::protocol::text::escape_controls(&l).into_owned()
        });
        self
    }

    pub fn with_help(mut self, help: Option<String>) -> Diagnostic {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// The lines of `text` as the YAML reader counts them, and so its line numbers: a line ends at
/// LF, CRLF or a CR alone (YAML 1.2, "Line Break Characters"), and, as in YAML 1.1, which the
/// reader follows, at NEL (U+0085), LS (U+2028) and PS (U+2029).
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let t = rest?;
        match t.find(['\r', '\n', '\u{85}', '\u{2028}', '\u{2029}']) {
            Some(i) => {
                let after = if t[i..].starts_with("\r\n") {
                    i + 2
                } else {
                    i + t[i..].chars().next().map_or(1, char::len_utf8)
                };
                rest = (after < t.len()).then(|| &t[after..]);
                Some(&t[..i])
            }
            None => {
                rest = None;
                (!t.is_empty()).then_some(t)
            }
        }
    })
}

impl fmt::Display for Diagnostic {
    /// ```text
    /// error: unknown field `recipent`
    ///   --> scenarios/a.yaml:14:5
    ///    |
    /// 14 |     recipent: registered_practice
    ///    |     ^ did you mean `recipient`?
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The file name, the message and the help may hold text from outside (a file named
        // with a newline and an ANSI escape): escaped, so none can forge a line.
        let file = self.file.display().to_string();
        let file = escape_controls(&file);
        let help = self.help.as_deref().map(escape_controls);
        writeln!(f, "error: {}", escape_controls(&self.message))?;
        if self.line == 0 {
            write!(f, "  --> {file}")?;
            if let Some(help) = &help {
                write!(f, "\n  = help: {help}")?;
            }
            return Ok(());
        }
        let num = self.line.to_string();
        let pad = " ".repeat(num.len());
        writeln!(f, "{pad}--> {file}:{}:{}", self.line, self.column)?;
        if let Some(src) = &self.source_line {
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {src}")?;
            let caret_pad = " ".repeat(self.column.saturating_sub(1));
            match &help {
                Some(help) => write!(f, "{pad} | {caret_pad}^ {help}")?,
                None => write!(f, "{pad} | {caret_pad}^")?,
            }
        } else if let Some(help) = &help {
            write!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// The candidate nearest to `word` by edit distance, if near enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
/// neighbouring letters each cost one, so `alcie` is one step from `alice`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Words people write for a field that has another name here.
const ALIASES: &[(&str, &str)] = &[
    ("recipient", "to"),
    ("practice", "to"),
    ("kind", "letter"),
    ("type", "letter"),
    ("deadline", "within"),
    ("workflow_id", "workflow"),
    ("times", "count"),
    ("after_event", "of"),
    ("date_of_birth", "born"),
    ("dob", "born"),
    ("nhs", "nhs_number"),
    ("gp_practice", "practice"),
    ("kind", "event"),
    ("type", "event"),
    ("time", "at"),
];

/// For serde's "unknown field `x`, expected one of `a`, `b`" and "unknown variant ..."
/// messages: a did-you-mean for the offending word, or the list of what is allowed.
pub fn suggest_from_serde_message(message: &str) -> Option<String> {
    let unknown = message
        .split("unknown field `")
        .nth(1)
        .or_else(|| message.split("unknown variant `").nth(1))?;
    let word = unknown.split('`').next()?;
    let expected: Vec<&str> = message
        .split("expected one of ")
        .nth(1)
        .or_else(|| message.split("expected ").nth(1))
        .map(|rest| rest.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    let alias = ALIASES
        .iter()
        .filter(|(_, real)| expected.contains(real))
        .find(|(alias, _)| closest(word, [*alias]).is_some())
        .map(|(_, real)| *real);
    match closest(word, expected.iter().copied()).or(alias) {
        Some(best) => Some(format!("did you mean `{best}`?")),
        None if !expected.is_empty() => Some(format!(
            "write one of {}",
            expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_field_for_a_misspelt_one() {
        let msg = "expect[0]: unknown field `recipent`, expected one of `letter`, `patient`, `recipient`, `count`";
        assert_eq!(
            suggest_from_serde_message(msg).as_deref(),
            Some("did you mean `recipient`?")
        );
    }

    #[test]
    fn suggests_the_field_a_common_other_word_stands_for() {
        let msg = "unknown field `recipent`, expected one of `letter`, `patient`, `to`, `count`";
        assert_eq!(
            suggest_from_serde_message(msg).as_deref(),
            Some("did you mean `to`?")
        );
    }

    #[test]
    fn a_swapped_pair_of_letters_is_one_step() {
        assert_eq!(closest("alcie", ["alice", "bob"]), Some("alice"));
        assert_eq!(closest("pateint", ["patient", "practice"]), Some("patient"));
        assert_eq!(closest("zzz", ["alice"]), None);
    }

    #[test]
    fn lists_the_choices_when_nothing_is_near() {
        let msg = "unknown variant `zzzzzzzz`, expected `mesh` or `http`";
        assert_eq!(
            suggest_from_serde_message(msg).as_deref(),
            Some("write one of `mesh`, `http`")
        );
    }

    #[test]
    fn renders_file_line_column_and_a_caret_under_the_column() {
        let text = "name: x\nexpect:\n  - recipent: patient\n";
        let d = Diagnostic::new("s.yaml", "unknown field `recipent`")
            .at(text, 3, 5)
            .with_help(Some("did you mean `recipient`?".into()));
        assert_eq!(
            d.to_string(),
            "error: unknown field `recipent`\n --> s.yaml:3:5\n  |\n3 |   - recipent: patient\n  |     ^ did you mean `recipient`?"
        );
    }

    /// Found by the fuzz targets of issue 13 (`scenario`, `target_file`): YAML counts a lone
    /// CR as a line break, so its positions in a file with old Mac line endings pointed past
    /// the lines lettergate split, and the line was not shown.
    #[test]
    fn shows_the_line_of_a_file_whose_lines_end_in_cr_alone_or_crlf() {
        for text in [
            "name: x\rexpect:\r  - recipent: patient\r",
            "name: x\r\nexpect:\r\n  - recipent: patient\r\n",
            // Found by the loader property test: the YAML reader breaks lines at NEL, LS and
            // PS too, so a diagnostic pointed past the lines lettergate split.
            "name: x\u{85}expect:\n  - recipent: patient\n",
            "name: x\u{2028}expect:\u{2029}  - recipent: patient",
        ] {
            let d = Diagnostic::new("s.yaml", "unknown field `recipent`").at(text, 3, 5);
            assert_eq!(
                d.source_line.as_deref(),
                Some("  - recipent: patient"),
                "{text:?}"
            );
        }
    }
}
