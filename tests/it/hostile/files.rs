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

/// `lettergate ARGS` in the project, failing the test if it has not ended within 30 s.
fn ends(p: &Project, args: &[&str]) -> Ran {
    let mut c = crate::support::lettergate();
    c.args(args)
        .current_dir(p.dir.path())
        .env("NO_COLOR", "1")
        .env("LETTERGATE_TEST_SECRET", "hunter2-in-the-environment");
    output_within(&mut c, Duration::from_secs(30))
}

/// A scenario that includes `inc` besides the shipped fixtures.
fn including(inc: &str) -> String {
    let clinic = std::fs::read_to_string(crate::support::root().join(ONE)).unwrap();
    clinic.replace(
        "include: [../fixtures/common.yaml]",
        &format!("include: [../fixtures/common.yaml, {inc}]"),
    )
}

#[test]
fn an_include_of_an_absolute_path_is_exit_2_and_the_file_is_not_echoed() {
    let p = Project::copy();
    p.write(
        "scenarios/outpatient/leak.yaml",
        &including("/proc/self/environ"),
    );
    let r = ends(&p, &["validate", "scenarios"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("included file `/proc/self/environ` is an absolute path"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("hunter2"),
        "the environment was echoed: {}",
        r.stderr
    );
}

#[test]
fn an_include_that_escapes_the_suite_or_links_out_of_it_is_exit_2_and_not_echoed() {
    let p = Project::copy();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(
        &secret,
        "password: hunter2-outside\nmore: hunter2-second-line\n",
    )
    .unwrap();
    let up = Path::new("../..").join(
        // From scenarios/outpatient/ up to the project's folder, then to the secret.
        pathdiff(&secret, p.dir.path()),
    );
    p.write(
        "scenarios/outpatient/dotdot.yaml",
        &including(&up.display().to_string()),
    );
    std::os::unix::fs::symlink(&secret, p.path("scenarios/fixtures/linked.yaml")).unwrap();
    p.write(
        "scenarios/outpatient/linked.yaml",
        &including("../fixtures/linked.yaml"),
    );
    let r = ends(&p, &["validate", "scenarios/outpatient"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("is outside the suite folder; it was not read"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("outside the suite folder").count(),
        2,
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("hunter2"),
        "the file was echoed: {}",
        r.stderr
    );
}

/// `to` relative to `from` (`from` an ancestor's sibling tree, both absolute).
fn pathdiff(to: &Path, from: &Path) -> std::path::PathBuf {
    let depth = from.components().count() - 1;
    let mut out = std::path::PathBuf::new();
    for _ in 0..depth {
        out.push("..");
    }
    out.join(to.strip_prefix("/").unwrap())
}

#[test]
fn a_yaml_symlink_to_a_file_outside_the_suite_is_exit_2_and_not_read() {
    let p = Project::copy();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, "SECRET=hunter2-outside\n").unwrap();
    std::os::unix::fs::symlink(&secret, p.path("scenarios/outpatient/leak.yaml")).unwrap();
    let r = ends(&p, &["validate", "scenarios"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("is a link to a file outside the suite folder"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("hunter2"),
        "the file was echoed: {}",
        r.stderr
    );
}

#[test]
fn a_fifo_named_like_a_scenario_and_a_symlink_loop_do_not_stop_validate() {
    let p = Project::copy();
    mkfifo(&p.path("scenarios/outpatient/x.yaml"));
    std::os::unix::fs::symlink("..", p.path("scenarios/outpatient/up")).unwrap();
    let r = ends(&p, &["validate", "scenarios"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let plain = Project::copy();
    let r0 = plain.run(&["validate", "scenarios"]);
    assert_eq!(r.stdout, r0.stdout, "the same scenarios, each once");
    // Given on its own, the FIFO is refused, not waited on.
    let r = ends(&p, &["validate", "scenarios/outpatient/x.yaml"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("is not a regular file"), "{}", r.stderr);
}

#[test]
fn a_file_that_is_not_yaml_is_quoted_no_further_than_its_first_line() {
    let p = Project::copy();
    p.write(
        "scenarios/outpatient/env.yaml",
        "FIRST=line one\nTOKEN=hunter2-line-two\nMORE=hunter2-line-three\n",
    );
    p.write(
        "scenarios/outpatient/passwd.yaml",
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:hunter2:/usr/sbin:/usr/sbin/nologin\n",
    );
    let r = ends(&p, &["validate", "scenarios/outpatient"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a YAML file"), "{}", r.stderr);
    assert!(r.stderr.contains("FIRST=line one"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("hunter2"),
        "beyond the first line: {}",
        r.stderr
    );
    // And the same for a target file.
    p.write("target.yaml", "KEY=first\nSECRET=hunter2-target\n");
    let r = ends(&p, &["targets", "check", "target.yaml"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        !r.stderr.contains("hunter2"),
        "beyond the first line: {}",
        r.stderr
    );
}

#[test]
fn a_fifo_as_the_target_file_or_the_accepted_snapshot_is_refused_not_waited_on() {
    let p = Project::copy();
    mkfifo(&p.path("target.yaml"));
    let r = ends(
        &p,
        &["run", ONE, "--target", "target.yaml", "--work-dir", "work"],
    );
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a regular file"), "{}", r.stderr);
    let snap = p.path("snapshots/simulator/outpatient/clinic_letter.snap");
    std::fs::remove_file(&snap).unwrap();
    mkfifo(&snap);
    let r = ends(&p, &["run", ONE, "--work-dir", "work"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
}

#[test]
fn accept_walks_a_snapshot_folder_with_a_link_back_up_and_a_fifo_once_to_the_end() {
    let p = Project::copy();
    let snap = "snapshots/simulator/outpatient/clinic_letter.snap";
    p.write(&format!("{snap}.new"), &p.read(snap));
    std::os::unix::fs::symlink("..", p.path("snapshots/simulator/up")).unwrap();
    mkfifo(&p.path("snapshots/simulator/x.snap.new"));
    let r = ends(&p, &["accept"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Found once, not again through `up/simulator/…`.
    assert!(r.stdout.contains("accepted 1 snapshots"), "{}", r.stdout);
}

#[test]
fn a_file_name_with_a_newline_and_ansi_escapes_cannot_forge_a_line_in_the_console_or_a_report() {
    let p = Project::copy();
    let forged = "x\n\x1b[32mPASS\x1b[0m  all_good                                 2 letters\n";
    let name = format!("scenarios/outpatient/{forged}.yaml");
    p.write(
        &name,
        &std::fs::read_to_string(crate::support::root().join(ONE)).unwrap(),
    );
    let r = run_in(
        &p,
        &[
            "run",
            &name,
            "--work-dir",
            "work",
            "--report-junit",
            "r.xml",
            "--report-markdown",
            "r.md",
            "--report-html",
            "r.html",
        ],
    );
    assert!(r.code == 0 || r.code == 1, "{}{}", r.stdout, r.stderr);
    for (what, text) in [
        ("the console", r.stdout.clone()),
        ("JUnit", p.read("r.xml")),
        ("Markdown", p.read("r.md")),
        ("HTML", p.read("r.html")),
    ] {
        assert!(
            !text.contains('\x1b'),
            "{what} holds an ANSI escape:\n{text}"
        );
        assert!(
            !text.contains("\nPASS  all_good"),
            "{what} holds a forged line:\n{text}"
        );
        assert!(
            text.contains("\\u{1b}[32mPASS"),
            "{what} does not show the escape:\n{text}"
        );
    }
    // A diagnostic about such a file escapes its name too.
    p.write(&name, "name: broken\nnot_a_field: 1\n");
    let r = run_in(&p, &["validate", &name]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains('\x1b'), "{}", r.stderr);
    assert!(r.stderr.contains("x\\n\\u{1b}[32mPASS"), "{}", r.stderr);
}

#[test]
fn a_snap_with_crlf_line_endings_reads_as_the_same_snapshot() {
    let p = Project::copy();
    let snap = "snapshots/simulator/outpatient/clinic_letter.snap";
    let crlf = p.read(snap).replace('\n', "\r\n");
    assert!(crlf.contains("\r\n"));
    p.write(snap, &crlf);
    let r = run_in(&p, &["run", ONE, "--work-dir", "work", "--check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("newly sent"), "{}", r.stdout);
    assert!(r.stdout.contains("\nGO: "), "{}", r.stdout);
}
