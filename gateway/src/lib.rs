//! keygate: an SSH gateway for CI workers whose every (team, key) decision
//! is made by a WebAssembly policy that can be replaced while it runs.
//!
//! - [`policy`]: the Wasm policy host (compile, sandbox, decide).
//! - [`ssh`]: the SSH front: authentication, worker commands, tunnels.
//! - [`gateway`]: state every connection shares.
//! - [`registry`]: the registered workers.
//! - [`reload`]: hot reload and revocation of live sessions.
//! - [`admin`]: the admin HTTP API; [`metrics`]: its Prometheus metrics.
//! - [`commands`]: one module per CLI command.
//! - [`cli`]: flags and their `KEYGATE_*` environment variables.
//! - [`domain`]: the shared vocabulary (teams, workers, keys).

#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod commands;
pub mod domain;
pub mod gateway;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod reload;
pub mod ssh;
