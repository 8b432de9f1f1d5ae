//! Only what lettergate made is touched, and only what it was given is read (issue 13, points
//! 2, 3 and 6): run folders are marked and private, every write goes through a random
//! temporary file, outputs that are not regular files are refused before anything runs,
//! includes stay inside the suite, walks end, and what comes from outside is escaped.

use crate::support::output_within;
use crate::support::project::{Project, Ran};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// One small scenario: a clinic letter to the registered practice.
const ONE: &str = "scenarios/outpatient/clinic_letter.yaml";

fn run_in(p: &Project, args: &[&str]) -> Ran {
    let mut c = crate::support::lettergate();
    c.args(args).current_dir(p.dir.path()).env("NO_COLOR", "1");
    output_within(&mut c, Duration::from_secs(120))
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Every path below `dir`, relative to it, sorted; symbolic links are not followed.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

fn runs(p: &Project) -> Vec<String> {
    match std::fs::read_dir(p.path("work/runs")) {
        Ok(d) => {
            let mut v: Vec<String> = d
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn pruning_the_ten_newest_runs_leaves_folders_lettergate_did_not_make() {
    let p = Project::copy();
    // Eleven folders of the user's, named as runs are and older than any run.
    for i in 0..11 {
        p.write(
            &format!("work/runs/20000101T0000{i:02}-1/ledger.json"),
            "{\"mine\": true}",
        );
    }
    for _ in 0..2 {
        let r = run_in(&p, &["run", ONE, "--work-dir", "work"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    }
    for i in 0..11 {
        let ledger = format!("work/runs/20000101T0000{i:02}-1/ledger.json");
        assert!(p.path(&ledger).exists(), "pruning deleted {ledger}");
    }
    assert_eq!(runs(&p).len(), 13);
}

#[test]
fn pruning_still_keeps_only_the_ten_newest_of_lettergates_own_runs() {
    let p = Project::copy();
    for i in 0..12 {
        p.write(
            &format!("work/runs/20000101T0000{i:02}-1/.lettergate-run"),
            "",
        );
    }
    let r = run_in(&p, &["run", ONE, "--work-dir", "work"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let left = runs(&p);
    assert_eq!(left.len(), 10, "{left:?}");
    assert!(!left.contains(&"20000101T000002-1".to_string()), "{left:?}");
    assert!(left.contains(&"20000101T000011-1".to_string()), "{left:?}");
}

#[test]
fn run_folders_and_the_captured_bodies_are_private_to_their_owner() {
    let p = Project::copy();
    let r = run_in(&p, &["run", ONE, "--work-dir", "work"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let run = p.path("work/runs").join(&runs(&p)[0]);
    assert_eq!(mode(&p.path("work/runs")), 0o700);
    let all = tree(&run);
    assert!(all.iter().any(|f| f.ends_with("bodies.bin")), "{all:?}");
    assert_eq!(mode(&run), 0o700);
    for rel in all {
        let path = run.join(&rel);
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{rel} is {:o}", mode(&path));
    }
}

#[test]
fn a_symlink_planted_at_a_temporary_name_beside_a_report_is_never_written_through() {
    let p = Project::copy();
    let victim = p.path("victim.txt");
    std::fs::write(&victim, "the user's").unwrap();
    let report = p.path("out/report.json");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let mut c = crate::support::lettergate();
    c.args(["run", ONE, "--report-json", "out/report.json"])
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    // The name a temporary file of the report had: `<report>.tmp<PID>`. Planted at once; the
    // run takes far longer to reach its reports than this takes.
    let planted = p.path(&format!("out/report.json.tmp{}", child.id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "the user's");
    assert!(std::fs::read_to_string(&report)
        .unwrap()
        .contains("\"schema\""));
    // The planted link is still there, untouched; nothing else was left beside the report.
    assert_eq!(
        tree(&p.path("out")),
        vec![
            "report.json".to_string(),
            planted.file_name().unwrap().to_string_lossy().into_owned()
        ]
    );
}

#[test]
fn a_report_path_that_is_a_symlink_a_fifo_or_a_device_is_refused_before_the_run() {
    let p = Project::copy();
    let victim = p.path("victim.txt");
    std::fs::write(&victim, "the user's").unwrap();
    std::os::unix::fs::symlink(&victim, p.path("link.xml")).unwrap();
    mkfifo(&p.path("fifo.md"));
    for (flag, path, what) in [
        ("--report-junit", "link.xml", "is a symbolic link"),
        ("--report-markdown", "fifo.md", "is not a regular file"),
        ("--report-html", "/dev/null", "is not a regular file"),
    ] {
        let r = run_in(&p, &["run", ONE, "--work-dir", "work", flag, path]);
        assert_eq!(r.code, 2, "{flag} {path}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(what), "{}", r.stderr);
        assert!(!r.stdout.contains("running"), "it ran: {}", r.stdout);
        assert!(runs(&p).is_empty(), "a run folder was made");
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "the user's");
    assert!(std::fs::symlink_metadata(p.path("link.xml"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!std::fs::symlink_metadata(p.path("fifo.md"))
        .unwrap()
        .is_file());
}

#[test]
fn a_report_path_that_is_a_folder_or_unwritable_or_given_twice_is_exit_2_before_the_run() {
    let p = Project::copy();
    p.write("reports/a-folder/inside.txt", "the user's");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--report-json", "reports/a-folder"], "is a folder"),
        // Nothing may create a file in /proc, root included.
        (
            vec!["--report-junit", "/proc/lettergate-report.xml"],
            "cannot write in /proc",
        ),
        (
            vec![
                "--report-json",
                "reports/r.txt",
                "--report-markdown",
                "./reports/r.txt",
            ],
            "given for two report formats",
        ),
    ];
    for (flags, what) in cases {
        let mut args = vec!["run", ONE, "--work-dir", "work"];
        args.extend(&flags);
        let r = run_in(&p, &args);
        assert_eq!(r.code, 2, "{flags:?}: {}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(what), "{flags:?}: {}", r.stderr);
        assert!(!r.stdout.contains("running"), "it ran: {}", r.stdout);
        assert!(runs(&p).is_empty(), "a run folder was made");
    }
    // Nothing was left behind: no temporary file beside the folder given as a report.
    assert_eq!(
        tree(&p.path("reports")),
        vec!["a-folder", "a-folder/inside.txt"]
    );
}

#[test]
fn report_merge_and_collect_check_their_report_paths_first_too() {
    let p = Project::copy();
    std::fs::create_dir_all(p.path("a-folder")).unwrap();
    let r = run_in(
        &p,
        &[
            "report",
            "merge",
            "nowhere.json",
            "--report-html",
            "a-folder",
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("a-folder is a folder"), "{}", r.stderr);
    let r = run_in(
        &p,
        &[
            "collect",
            "--ledger",
            "nowhere",
            "--report-html",
            "a-folder",
        ],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("a-folder is a folder"), "{}", r.stderr);
}

#[test]
fn a_snapshot_that_cannot_be_written_leaves_no_temporary_file_in_the_snapshot_folder() {
    let p = Project::copy();
    let folder = p.path("snapshots/simulator/outpatient");
    std::fs::remove_file(folder.join("clinic_letter.snap")).unwrap();
    // The `.snap.new` a new snapshot is written to is taken by a folder of the user's.
    p.write(
        "snapshots/simulator/outpatient/clinic_letter.snap.new/keep",
        "mine",
    );
    let before = tree(&folder);
    let r = run_in(&p, &["run", ONE, "--work-dir", "work"]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(tree(&folder), before, "{}{}", r.stdout, r.stderr);
}
