//! `lettergate completions SHELL` and `lettergate man`: generated from the command line itself,
//! so every command is in them, and each shell can read its script.

use crate::support::lettergate;
use std::process::Command;

fn stdout_of(args: &[&str]) -> String {
    let out = lettergate().args(args).output().unwrap();
    assert!(out.status.success(), "lettergate {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_shell_gets_a_completion_script_naming_every_command() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for command in [
            "run", "validate", "accept", "targets", "schema", "init", "man",
        ] {
            assert!(
                script.contains(command),
                "the {shell} script does not complete `{command}`"
            );
        }
    }
}

#[test]
fn bash_loads_the_completion_script_and_completes_lettergate() {
    let script = stdout_of(&["completions", "bash"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lettergate.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(". {} && complete -p lettergate", file.display()))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("lettergate"),
        "bash did not register the completion: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_completion_for_an_unknown_shell_is_refused_with_exit_2() {
    let out = lettergate().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
}

#[test]
fn the_man_page_is_roff_for_lettergate_with_its_commands_and_exit_codes() {
    let page = stdout_of(&["man"]);
    assert!(
        page.contains(".TH lettergate 1"),
        "no title header:\n{page}"
    );
    for words in ["validate", "completions", "Exit codes"] {
        assert!(page.contains(words), "the man page lacks `{words}`");
    }
}
