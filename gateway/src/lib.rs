//! keygate: an SSH gateway for CI workers whose every (team, key) decision
//! is made by a WebAssembly policy that can be replaced while it runs.
//!
//! - [`policy`]: the Wasm policy host (compile, sandbox, decide).
//! - [`ssh`]: the SSH front: authentication, worker commands, tunnels.
//! - [`gateway`]: state every connection shares.
//! - [`registry`]: the registered workers.
//! - [`reload`]: hot reload and revocation of live sessions.
//! - [`shadow`]: the shadow policy's second opinion; [`audit`]: the
//!   decision audit log.
//! - [`admin`]: the admin HTTP API; [`metrics`]: its Prometheus metrics.
//! - [`commands`]: one module per CLI command.
//! - [`cli`]: flags and their `KEYGATE_*` environment variables.
//! - [`domain`]: the shared vocabulary (teams, workers, keys).

// One exception, argued where it stands: loading compiled policy code from
// keygate's own cache (`policy::cache`).
#![deny(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod cli;
pub mod commands;
pub mod domain;
pub mod gateway;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod reload;
pub mod shadow;
pub mod ssh;
