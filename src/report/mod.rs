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

use std::path::PathBuf;

/// The report formats written to files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Junit,
    Json,
    Markdown,
    Html,
}

impl Format {
    pub fn render(self, report: &RunReport) -> Result<String, String> {
        match self {
            Format::Junit => junit::render(report),
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
    pub fn write(&self, report: &RunReport) -> Result<Vec<PathBuf>, String> {
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
                crate::snapshot::store::write_atomic(path, &text)
                    .map_err(|e| format!("failed to write the report {}: {e}", path.display()))?;
                written.push(path.clone());
            }
        }
        Ok(written)
    }
}
