//! lettergate proves an EHR upgrade still sends every letter before it goes live.
//!
//! The pipeline, one module per stage: [`scenario`] files are loaded into a model; a target
//! (the built-in [`sim`]ulator) is driven through their timelines; every outbound letter is
//! received by [`capture`]; letters are [`normalize`]d, checked against expectations
//! ([`expect`]) and accepted [`snapshot`]s by [`run`]; and a finished result is [`report`]ed.

pub mod bench;
pub mod capture;
pub mod expect;
pub mod matrix;
pub mod protocol;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schema;
pub mod sim;
pub mod snapshot;
pub mod targets;
