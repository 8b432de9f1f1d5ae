//! Scenarios: the [`model`] a run works from, the YAML [`file`] shapes, [`load`]ing with checks,
//! and [`diagnostic`]s that point at `file:line:column`.

pub mod diagnostic;
pub mod file;
pub mod load;
pub mod model;
pub mod population;
pub mod severity;
pub mod shard;
pub mod suite;

pub use diagnostic::Diagnostic;
pub use load::{discover, Loader};
pub use model::{Event, Expectation, Practice, Recipient, Scenario};
pub use shard::Shard;
pub use suite::{load_all, LoadError};
