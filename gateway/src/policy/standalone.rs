//! One policy instance driven from the caller's thread, outside the pool.
//!
//! The gateway always decides through [`LoadedPolicy`](super::LoadedPolicy),
//! whose instances live on threads of their own. This type exists for
//! benchmarks that measure the policy call itself, without the hand-off
//! between threads. Do not use it on an async runtime's thread: a policy
//! that writes to stderr (a panic does) makes WASI block on that runtime.

use super::instance::{PolicyInstance, StartError};
use super::{CompiledPolicy, DecisionRequest, InputFile, LoadError, Outcome, PolicyLimits};

/// A single instance, after `init`.
pub struct Standalone {
    instance: PolicyInstance,
}

impl std::fmt::Debug for Standalone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Standalone").finish_non_exhaustive()
    }
}

impl Standalone {
    /// Instantiate `compiled` and run `init` on `inputs`.
    pub fn start(
        compiled: &CompiledPolicy,
        limits: &PolicyLimits,
        inputs: &[InputFile],
    ) -> Result<Standalone, LoadError> {
        let policy = compiled.source.clone();
        match PolicyInstance::start(compiled, limits, inputs) {
            Ok((instance, _)) => Ok(Standalone { instance }),
            Err(StartError::Rejected(message)) => Err(LoadError::Init { policy, message }),
            Err(StartError::Fault(fault)) => Err(LoadError::InitFault { policy, fault }),
        }
    }

    /// Ask the policy. After a fault the instance is unusable.
    pub fn authorize(&mut self, request: &DecisionRequest) -> Outcome {
        self.instance.authorize(request)
    }
}
