//! keygate: an SSH gateway for CI workers whose every (team, key) decision
//! is made by a WebAssembly policy that can be replaced while it runs.
//!
//! - [`policy`]: the Wasm policy host (compile, sandbox, decide).
//! - [`commands`]: one module per CLI command.
//! - [`cli`]: flags and their `KEYGATE_*` environment variables.
//! - [`domain`]: the shared vocabulary (teams, workers, keys).

#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod domain;
pub mod logging;
pub mod policy;
