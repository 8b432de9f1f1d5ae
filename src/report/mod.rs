//! Reports read finished [`crate::run::Outcome`]s and write into any writer, so tests can
//! render them into a string: [`terminal`] for people at a console.

pub mod terminal;

pub use terminal::Terminal;
