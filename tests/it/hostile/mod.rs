//! The hostile-input suite of issue 13: one test (at least) per class of bad input or attack
//! that lettergate must survive without a false GO, without touching what it did not make,
//! without reading or echoing what it should not, and without unbounded memory or hangs.
//! Each submodule is one class; README "Security and limits" says what each defends against.

/// No GO without every part: report merge, zero scenarios, replayed letters, private runs.
mod completeness;
/// Only ever touch what lettergate made; confined reads; escaping; CRLF snapshots.
mod files;
/// Range checks at load and checks before anything is driven.
mod load;
/// Bounded bodies, timeouts, connection limits, shutdown, NHSMESH timestamp skew.
mod network;
