//! Options several commands share: [`CommonArgs`] (`run`, `sim matrix`) and the report files
//! [`ReportArgs`] (`run`, `collect`, `report merge`).

use clap::Args;
use lettergate::ReportFiles;
use std::path::PathBuf;

/// Options `run` and `sim matrix` share.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Folder of accepted snapshots (`sim matrix` compares, never writes).
    #[arg(long, default_value = "snapshots", value_name = "DIR")]
    pub snapshots: PathBuf,
    /// Folder where each run keeps the messages it captured.
    #[arg(long, default_value = ".lettergate", value_name = "DIR")]
    pub work_dir: PathBuf,
    /// How many scenarios run at once: against the simulator 8 by default; against a target
    /// (`run --target`) 4, capped by the target file's `parallel: {max: N}`, scenarios about
    /// the same patient one after another; 1 runs a target's scenarios one at a time.
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// Show NHS numbers, names and dates of birth in full (masked by default).
    #[arg(long)]
    pub show_identifiers: bool,
}

/// How many scenarios run at once against the simulator unless `-j` says.
pub const SIM_JOBS: usize = 8;

/// How many scenarios are driven at once against a target unless `-j` says: a staging EHR
/// is one system that others use too.
pub const TARGET_JOBS: usize = 4;

/// Report files to write; any combination.
#[derive(Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub report_junit: Option<PathBuf>,
    /// Write the whole outcome as JSON here (the input of `report merge`).
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
    /// Write the change-board summary as Markdown here.
    #[arg(long, value_name = "FILE")]
    pub report_markdown: Option<PathBuf>,
    /// Write a self-contained HTML report here.
    #[arg(long, value_name = "FILE")]
    pub report_html: Option<PathBuf>,
}

impl ReportArgs {
    /// Refuses report paths that could not be written (exit 2), before anything runs.
    pub fn check(&self) -> Result<(), super::error::Error> {
        self.files().check().map_err(super::error::Error::config)
    }

    pub fn files(&self) -> ReportFiles {
        ReportFiles {
            junit: self.report_junit.clone(),
            json: self.report_json.clone(),
            markdown: self.report_markdown.clone(),
            html: self.report_html.clone(),
        }
    }
}
