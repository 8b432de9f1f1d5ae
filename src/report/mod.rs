//! Reports read a finished [`model::RunReport`] and render it: [`terminal`] for people at a
//! console, [`junit`] for CI systems, [`markdown`] for job summaries and merge requests,
//! [`html`] for a change board, and JSON (the report itself) for scripts. Each renders into a
//! string or a writer, so tests can snapshot them.

pub mod html;
pub mod junit;
pub mod markdown;
pub mod model;
pub mod terminal;

pub use model::RunReport;
pub use terminal::Terminal;

pub use model::MergeError;

use std::path::PathBuf;

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

/// The report formats written to files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Junit,
    Json,
    Markdown,
    Html,
}

impl Format {
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
    /// Renders and writes every requested format, each through a temporary file so a failure
    /// never leaves half a report in place.
    pub fn write(&self, report: &RunReport) -> Result<Vec<PathBuf>, ReportError> {
        let wanted = [
            (Format::Junit, &self.junit),
            (Format::Json, &self.json),
            (Format::Markdown, &self.markdown),
            (Format::Html, &self.html),
        ];
        let mut written = Vec::new();
        for (format, path) in wanted {
            if let Some(path) = path {
                let text = format.render(report)?;
                crate::snapshot::store::write_atomic(path, &text).map_err(|source| {
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
