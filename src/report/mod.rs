//! Reports read a finished [`model::RunReport`] and render it: [`terminal`] for people at a
//! console, [`junit`] for CI systems, [`markdown`] for job summaries and merge requests,
//! [`html`] for a change board, and JSON (the report itself) for scripts. Each renders into a
//! string or a writer, so tests can snapshot them.

pub mod html;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod model;
pub mod terminal;

pub use model::RunReport;
pub use terminal::Terminal;

pub use merge::{MergeError, RunParameters};

use std::path::{Path, PathBuf};

/// Why a report could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("failed to write JUnit XML")]
    Junit(#[from] quick_junit::SerializeError),
    #[error("failed to write the report {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why the report paths given cannot be written; found before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum ReportPathError {
    #[error("cannot write the {format} report")]
    Output {
        format: &'static str,
        #[source]
        source: crate::files::OutputError,
    },
    #[error("{} is given for two report formats ({first} and {second}); give each its own file", .path.display())]
    Twice {
        path: PathBuf,
        first: &'static str,
        second: &'static str,
    },
}

/// The report formats written to files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Junit,
    Json,
    Markdown,
    Html,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Junit => "JUnit",
            Format::Json => "JSON",
            Format::Markdown => "Markdown",
            Format::Html => "HTML",
        }
    }

    pub fn render(self, report: &RunReport) -> Result<String, ReportError> {
        match self {
            Format::Junit => Ok(junit::render(report)?),
            Format::Json => Ok(report.to_json()),
            Format::Markdown => Ok(markdown::render(report)),
            Format::Html => Ok(html::render(report)),
        }
    }
}

/// Where to write each report format; `None` writes none.
#[derive(Clone, Debug, Default)]
pub struct ReportFiles {
    pub junit: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub markdown: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

impl ReportFiles {
    fn wanted(&self) -> [(Format, &Option<PathBuf>); 4] {
        [
            (Format::Junit, &self.junit),
            (Format::Json, &self.json),
            (Format::Markdown, &self.markdown),
            (Format::Html, &self.html),
        ]
    }

    /// Checks every path before the run, so a report that could not be written fails now
    /// (exit 2) and not after the whole run: each must be absent or a regular file (not a
    /// symbolic link, folder, device or FIFO) in a folder lettergate can write in, and no two
    /// formats may share one.
    pub fn check(&self) -> Result<(), ReportPathError> {
        let given: Vec<(Format, &PathBuf)> = self
            .wanted()
            .into_iter()
            .filter_map(|(f, p)| p.as_ref().map(|p| (f, p)))
            .collect();
        for (i, (format, path)) in given.iter().enumerate() {
            if let Some((other, _)) = given[..i].iter().find(|(_, p)| same_path(p, path)) {
                return Err(ReportPathError::Twice {
                    path: (*path).clone(),
                    first: other.name(),
                    second: format.name(),
                });
            }
            crate::files::check_output(path).map_err(|source| ReportPathError::Output {
                format: format.name(),
                source,
            })?;
        }
        Ok(())
    }

    /// Renders and writes every requested format, each through a temporary file so a failure
    /// never leaves half a report in place.
    pub fn write(&self, report: &RunReport) -> Result<Vec<PathBuf>, ReportError> {
        let mut written = Vec::new();
        for (format, path) in self.wanted() {
            if let Some(path) = path {
                let text = format.render(report)?;
                crate::files::write(path, text.as_bytes()).map_err(|source| {
                    ReportError::Write {
                        path: path.clone(),
                        source,
                    }
                })?;
                written.push(path.clone());
            }
        }
        Ok(written)
    }
}

/// Whether two paths name one file: the same once made absolute and tidied of `.` and `..`,
/// or (when both exist) the same file on disk.
fn same_path(a: &Path, b: &Path) -> bool {
    let tidy = |p: &Path| {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let mut out = PathBuf::new();
        for c in abs.components() {
            match c {
                std::path::Component::ParentDir => {
                    out.pop();
                }
                std::path::Component::CurDir => {}
                other => out.push(other),
            }
        }
        out
    };
    if tidy(a) == tidy(b) {
        return true;
    }
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_formats_on_one_path_are_refused_however_it_is_spelt() {
        let files = ReportFiles {
            json: Some("out/r.txt".into()),
            html: Some("./out/x/../r.txt".into()),
            ..ReportFiles::default()
        };
        let e = files.check().unwrap_err().to_string();
        assert_eq!(
            e,
            "./out/x/../r.txt is given for two report formats (JSON and HTML); give each its own file"
        );
        let fine = ReportFiles {
            json: Some("out/r.json".into()),
            html: Some("out/r.html".into()),
            ..ReportFiles::default()
        };
        assert!(fine.check().is_ok());
    }
}
