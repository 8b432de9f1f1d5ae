//! `lettergate explain`: where each fact lettergate checks a letter on was read from, for the
//! letters of a capture folder (the `captured messages:` folder a run prints) or for one body
//! file. For a trust's IT person whose EHR's letters come out unreadable, non-conformant or
//! misrouted: it names the element, the reference and how it was followed.

use super::error::{Error, ExitStatus, UsageError};
use clap::Args;
use lettergate::protocol::ids::mask_in_text;
use lettergate::protocol::letter::Transport;
use lettergate::protocol::read::explain_letter;
use lettergate::{CaptureLog, Numbering};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A capture folder (with `messages.ndjson` and `bodies.bin`), or one body file.
    path: PathBuf,
    /// Only these letters of a capture folder, by the numbers the run's findings use.
    letters: Vec<u32>,
    /// How a body file arrived: `mesh`, `http`, `mllp` or `folder` (a capture folder records it).
    #[arg(long, default_value = "mesh")]
    transport: String,
    /// Show NHS numbers in full.
    #[arg(long)]
    show_identifiers: bool,
}

pub fn explain(args: ExplainArgs) -> Result<ExitStatus, Error> {
    let mut out = std::io::stdout().lock();
    let text = if args.path.join("messages.ndjson").is_file() {
        explain_folder(&args.path, &args.letters)?
    } else if args.path.is_file() {
        let transport = transport(&args.transport)?;
        let body = std::fs::read(&args.path).map_err(|source| UsageError::ReadFolder {
            path: args.path.clone(),
            source,
        })?;
        let mut text = String::new();
        letter(&mut text, transport, &body, None);
        text
    } else {
        return Err(UsageError::Missing(args.path.join("messages.ndjson")).into());
    };
    let text = if args.show_identifiers {
        text
    } else {
        mask_in_text(&text)
    };
    // Every value was read from a letter the EHR sent: escaped, line by line.
    let text = lettergate::protocol::text::escape_controls_keeping_lines(&text);
    out.write_all(text.as_bytes()).map_err(Error::WriteReport)?;
    Ok(ExitStatus::Pass)
}

fn transport(name: &str) -> Result<Transport, Error> {
    serde_json::from_value(serde_json::Value::String(name.into()))
        .map_err(|e| Error::config(format!("unknown transport `{name}`: {e}")))
}

/// Every letter of a capture folder (or the ones asked for), numbered as the run numbered them.
fn explain_folder(dir: &Path, only: &[u32]) -> Result<String, Error> {
    let mut log = CaptureLog::open(dir).map_err(|source| UsageError::ReadFolder {
        path: dir.to_path_buf(),
        source,
    })?;
    // A target run's numbering, by content (a simulator run's follows its virtual clock).
    log.renumber(Numbering::Content);
    let mut text = String::new();
    for l in log
        .letters
        .iter()
        .filter(|l| only.is_empty() || only.contains(&l.seq))
    {
        text.push_str(&format!("letter {} via {}\n", l.seq, l.route));
        match l.read_body() {
            Ok(body) => letter(&mut text, l.transport, &body, l.to_mailbox.as_deref()),
            Err(e) => text.push_str(&format!("  could not read the body back: {e}\n")),
        }
        text.push('\n');
    }
    Ok(text)
}

/// One letter: each fact with its value and where it was read, then the rules it breaks.
fn letter(out: &mut String, transport: Transport, body: &[u8], mex_to: Option<&str>) {
    let mut line = |what: &str, value: &str, from: &str| {
        out.push_str(&format!("  {what:<15} {value:<24} {from}\n"));
    };
    if let Some(to) = mex_to {
        line("transport to", to, "MESH mex-To");
    }
    match explain_letter(transport, body) {
        Err(why) => line("unreadable", "", &why.to_string()),
        Ok((facts, trail)) => {
            let kind = facts.kind.map_or("unrecognised".into(), |k| k.to_string());
            line("kind", &kind, "from the document type and encounter");
            for s in &trail.sources {
                line(s.fact.words(), &s.value, &s.from);
            }
            if facts.recipient_ods.is_none() && facts.recipient_mailbox.is_none() {
                line(
                    "recipient",
                    "",
                    "none in the message: routed by the transport",
                );
            }
            for r in &facts.nonconformance {
                line("non-conformant", r.name(), r.words());
            }
        }
    }
}
