//! keygate's integration tests: one test binary, so the build links once.
//!
//! Every test here runs the real thing: policy components compiled to
//! `wasm32-wasip2` loaded through the real host, the real `keygate` binary,
//! and real SSH clients (OpenSSH's `ssh` and a russh client) on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail by panicking"
)]

mod support;

mod cli;
mod policy_host;
mod python_policy;
mod reload;
mod rollout;
mod serve;
mod team_rules;
