//! Snapshots of what a scenario sent: [`render`] turns captured letters into a deterministic,
//! readable text; [`store`] keeps accepted `.snap` files and pending `.snap.new` files in
//! insta's format and diffs them.

pub mod render;
pub mod store;

pub use render::render;
pub use store::{Comparison, SnapshotMode, SnapshotStore};
