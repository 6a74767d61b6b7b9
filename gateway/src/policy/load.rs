//! Loading a policy from its source and inputs, the one path shared by
//! startup, `check`, `policy eval` and every reload.

use std::sync::Arc;

use super::runtime::Digest;
use super::{InputFile, LoadError, LoadedPolicy, PolicyInputs, PolicyRuntime, PolicySource};

/// Read the module and inputs, compile (unless `previous` already holds the
/// same module), and start the instances. Nothing is shared with
/// `previous` but the compiled code, so a failure leaves it untouched.
pub fn load_policy(
    runtime: &PolicyRuntime,
    source: &PolicySource,
    inputs: &PolicyInputs,
    previous: Option<&LoadedPolicy>,
) -> Result<LoadedPolicy, LoadError> {
    let bytes = source.read()?;
    let digest = Digest::of(&bytes);
    let compiled = match previous {
        Some(p) if p.digest() == digest && p.source() == source => p.compiled().clone(),
        _ => Arc::new(runtime.compile(source, &bytes)?),
    };
    let files: Vec<InputFile> = inputs.read()?;
    LoadedPolicy::load(compiled, runtime.limits(), files)
}
