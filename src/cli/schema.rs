//! `lettergate schema [KIND] [--out DIR]`: the JSON Schemas of scenario, fixture and target
//! files (see [`lettergate::SchemaKind`]), printed or written for editors to read.

use super::error::{Error, ExitStatus};
use clap::{Args, ValueEnum};
use lettergate::SchemaKind;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// Which file's schema; all three when not given.
    pub kind: Option<Kind>,
    /// Write `KIND.schema.json` into this folder instead of printing (all three kinds are
    /// written to `schemas` when neither a kind nor a folder is given).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// The kinds of file, as clap reads them.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Kind {
    Scenario,
    Fixture,
    Target,
}

impl From<Kind> for SchemaKind {
    fn from(k: Kind) -> SchemaKind {
        match k {
            Kind::Scenario => SchemaKind::Scenario,
            Kind::Fixture => SchemaKind::Fixture,
            Kind::Target => SchemaKind::Target,
        }
    }
}

/// Prints one schema, or writes the schemas asked for into a folder.
pub fn schema(args: SchemaArgs) -> Result<ExitStatus, Error> {
    let kinds: Vec<SchemaKind> = match args.kind {
        Some(k) => vec![k.into()],
        None => SchemaKind::ALL.to_vec(),
    };
    let out = match (args.out, args.kind) {
        (Some(dir), _) => dir,
        (None, Some(k)) => {
            std::io::stdout()
                .lock()
                .write_all(SchemaKind::from(k).render().as_bytes())
                .map_err(|e| Error::harness("failed to write to standard output", e))?;
            return Ok(ExitStatus::Pass);
        }
        (None, None) => PathBuf::from("schemas"),
    };
    std::fs::create_dir_all(&out)
        .map_err(|e| Error::harness(format!("failed to create {}", out.display()), e))?;
    for kind in kinds {
        let path = out.join(kind.file_name());
        lettergate::files::write(&path, kind.render().as_bytes())
            .map_err(|e| Error::harness(format!("failed to write {}", path.display()), e))?;
        println!("wrote {}", path.display());
    }
    Ok(ExitStatus::Pass)
}
