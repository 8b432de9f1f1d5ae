//! `lettergate completions SHELL` and `lettergate man`: a shell's completion script and the
//! roff man page, both generated from the [`Cli`](super::Cli) definition so they never drift
//! from the options the binary accepts.

use super::error::{Error, ExitStatus};
use clap::{CommandFactory, ValueEnum};
use std::io::Write;

/// The shells `completions` writes a script for.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
            Shell::Powershell => clap_complete::Shell::PowerShell,
        }
    }
}

/// Writes the completion script for `shell` to standard output.
pub fn completions(shell: Shell) -> Result<ExitStatus, Error> {
    let mut cmd = super::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, "lettergate", &mut out);
    write_stdout(&out)
}

/// Writes the man page, lettergate(1), as roff to standard output.
pub fn man() -> Result<ExitStatus, Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::Cli::command())
        .render(&mut out)
        .map_err(|e| Error::harness("failed to render the man page", e))?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<ExitStatus, Error> {
    std::io::stdout()
        .lock()
        .write_all(bytes)
        .map_err(|e| Error::harness("failed to write to standard output", e))?;
    Ok(ExitStatus::Pass)
}
