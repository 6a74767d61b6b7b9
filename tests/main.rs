//! keygate's integration tests: one test binary, so the build links once.
//!
//! Every test here runs the real thing: policy components compiled to
//! `wasm32-wasip2` loaded through the real host, the real `keygate` binary,
//! and real SSH clients (OpenSSH's `ssh` and a russh client) on loopback.

mod support;

mod cli;
mod policy_host;
mod reload;
mod serve;
