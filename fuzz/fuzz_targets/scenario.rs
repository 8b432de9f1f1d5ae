//! The scenario loader: the input is a scenario file beside the shipped fixture file
//! (`include: [../fixtures/common.yaml]` finds it), then the same bytes as a fixture file.
//! It loads or gives a diagnostic at a position inside the file; never a panic.

#![no_main]

#[path = "common.rs"]
mod common;

use lettergate::Loader;
use libfuzzer_sys::fuzz_target;

const FIXTURES: &str = include_str!("../../scenarios/fixtures/common.yaml");

fuzz_target!(|data: &[u8]| {
    let fixture = common::file("scenarios/fixtures/common.yaml");
    if !fixture.exists() {
        std::fs::write(&fixture, FIXTURES).unwrap();
    }
    let path = common::file("scenarios/case/case.yaml");
    std::fs::write(&path, data).unwrap();
    let text = String::from_utf8_lossy(data);
    let dotted = path.parent().unwrap().join("../fixtures/common.yaml");
    let files = [
        (path.as_path(), text.as_ref()),
        (fixture.as_path(), FIXTURES),
        (dotted.as_path(), FIXTURES),
    ];
    if let Err(d) = Loader::new().load_scenario(&path) {
        common::check_diagnostic(&d, &files);
    }
    if let Err(d) = Loader::new().load_fixtures(&path) {
        common::check_diagnostic(&d, &files);
    }
});
