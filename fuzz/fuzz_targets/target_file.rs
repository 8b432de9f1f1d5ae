//! The target loader: the input is a target file. A target or a diagnostic at a position
//! inside the file; never a panic.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = common::file("target.yaml");
    std::fs::write(&path, data).unwrap();
    let text = String::from_utf8_lossy(data);
    if let Err(d) = lettergate::load_target(&path) {
        common::check_diagnostic(&d, &[(path.as_path(), text.as_ref())]);
    }
});
