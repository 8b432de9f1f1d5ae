//! Runs the real `lettergate` binary in a fresh temporary copy of the project's scenarios and
//! snapshots, so a test can change files and read what the run wrote.

use super::{lettergate, root};
use std::path::{Path, PathBuf};

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            // Volume scenarios take minutes in a debug build; the benchmarks run them.
            if e.file_name() == "volume" {
                continue;
            }
            copy_tree(&e.path(), &target);
        } else if !e.path().to_string_lossy().ends_with(".snap.new") {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl Project {
    /// A temporary folder holding copies of `scenarios/` and `snapshots/`.
    pub fn copy() -> Project {
        let root = root();
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&root.join("scenarios"), &dir.path().join("scenarios"));
        copy_tree(&root.join("snapshots"), &dir.path().join("snapshots"));
        Project { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        let out = lettergate()
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Every file below `snapshots/` with its content, to show that nothing was changed.
    pub fn snapshot_files(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        fn walk(p: &Path, out: &mut Vec<(PathBuf, String)>) {
            for e in std::fs::read_dir(p).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out)
                } else {
                    out.push((p.clone(), std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(&self.path("snapshots"), &mut out);
        out.sort();
        out
    }
}

/// Replaces what changes from run to run (the run folder's name) in printed output.
pub fn redact(text: &str) -> String {
    let re = regex::Regex::new(r"\.lettergate/runs/\d{8}T\d{6}-\d+").unwrap();
    re.replace_all(text, ".lettergate/runs/[run]").into_owned()
}
