//! Logging into keygate's own log.
//!
//! Lines a policy writes here appear in keygate's tracing output, tagged with
//! the policy's digest. Policies have no stdout or stderr worth using: those
//! streams are captured only to explain a crash.

use crate::bindings::keygate::policy::host::{self, Level};

/// Log at trace level.
pub fn trace(message: &str) {
    emit(Level::Trace, message);
}

/// Log at debug level.
pub fn debug(message: &str) {
    emit(Level::Debug, message);
}

/// Log at info level.
pub fn info(message: &str) {
    emit(Level::Info, message);
}

/// Log at warn level.
pub fn warn(message: &str) {
    emit(Level::Warn, message);
}

/// Log at error level.
pub fn error(message: &str) {
    emit(Level::Error, message);
}

#[cfg(target_family = "wasm")]
fn emit(level: Level, message: &str) {
    host::log(level, message);
}

// Off Wasm there is no keygate host to log to: native unit tests of a policy
// print to stderr instead.
#[cfg(not(target_family = "wasm"))]
fn emit(level: Level, message: &str) {
    let _ = host::log;
    eprintln!("policy {level:?}: {message}");
}
