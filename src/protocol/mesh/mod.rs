//! The MESH API as both sides speak it: [`auth`] builds and checks `NHSMESH` tokens, and
//! [`client`] sends messages to an outbox, and [`codes`] names the error and report codes
//! MESH answers with.

pub mod auth;
pub mod client;
pub mod codes;

pub use codes::MeshErrorCode;

/// The path prefix of every MESH API call.
pub const API_ROOT: &str = "/messageexchange";

/// The `Accept` header that selects the v2 response shapes.
pub const ACCEPT_V2: &str = "application/vnd.mesh.v2+json";

/// The shared key used by lettergate's own endpoint and the simulator unless configured.
/// It is the key DOMAIN.md's test vector and the sandbox runs use.
pub const DEFAULT_SHARED_KEY: &str = "TestKey";

/// Workflow id of the liveness letter that proves a capture path works (never a real one).
pub const CANARY_WORKFLOW: &str = "LETTERGATE_CANARY";
