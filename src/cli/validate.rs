//! `lettergate validate`: load scenario and fixture files without running them.

use super::error::{Error, ExitStatus};
use lettergate::load_all;
use std::path::PathBuf;

pub fn validate(paths: &[PathBuf]) -> Result<ExitStatus, Error> {
    let (scenarios, fixtures) = load_all(paths)?;
    println!(
        "{} scenario files and {fixtures} fixture files are valid",
        scenarios.len()
    );
    Ok(ExitStatus::Pass)
}
