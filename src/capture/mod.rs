//! Where letters are received: [`server`] runs a MESH-compatible endpoint and an HTTP capture
//! on loopback, [`mllp`] an HL7 v2 MLLP receiver and [`folder`] a watched folder; all record
//! into one [`sink::LogSink`] per run; [`store`] writes every received message to disk and
//! numbers the letters; [`route`] says who a letter is for by its message and by its
//! transport; [`group`] starts, proves alive and stops all the captures of one scenario run.
//! Everything downstream sees only [`CapturedLetter`].

pub mod chunks;
pub mod folder;
pub mod group;
pub mod inbox;
pub mod mllp;
pub mod poll;
pub mod route;
pub mod server;
pub mod sink;
pub mod store;

pub use folder::FolderCapture;
pub use group::{CaptureGroup, CaptureGroupError, CapturePlan, Carried};
pub use mllp::MllpCapture;
pub use route::Routing;
pub use server::{CaptureConfig, CaptureServer, Endpoint, GpReceiver};
pub use sink::LogSink;
pub use store::{CaptureLog, CapturedLetter, Numbering};
