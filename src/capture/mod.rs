//! Where letters are received: [`server`] runs a MESH-compatible endpoint and an HTTP capture
//! on loopback, [`store`] writes every received message to disk, and [`parse`] reads a
//! message's letter facts. Everything downstream sees only [`CapturedLetter`].

pub mod chunks;
pub mod inbox;
pub mod parse;
pub mod poll;
pub mod server;
pub mod store;

pub use inbox::{AckRecord, ReportRecord};
pub use parse::LetterFacts;
pub use server::{CaptureConfig, CaptureServer, Endpoint, GpReceiver};
pub use store::{CaptureLog, CapturedLetter};
