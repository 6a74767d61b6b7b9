//! The policy host: compiles policy components, runs them sandboxed, and
//! turns their answers (or their failures) into decisions.
//!
//! A policy that answers "deny" has made a decision ([`Outcome::Deny`]); a
//! policy that traps, overruns its deadline or its memory cap has broken
//! ([`Outcome::Fault`]). Both refuse the request, but only the second is a
//! fault to alert on.

mod cache;
mod inputs;
mod instance;
mod load;
mod pool;
mod runtime;
mod standalone;

use std::fmt;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

pub use cache::ModuleCache;
pub use inputs::{InputFile, PolicyInputs, PolicySource};
pub use load::load_policy;
pub use pool::{LoadedInput, LoadedPolicy};
pub use runtime::{CompiledPolicy, Digest, LoadError, PolicyLimits, PolicyRuntime};
pub use standalone::Standalone;

use crate::domain::{KeyIdentity, Team, WorkerName};

/// The default policy, built from `policies/yaml-teams` and embedded here.
pub const EMBEDDED_POLICY: &[u8] = include_bytes!(concat!(
    env!("KEYGATE_POLICY_DIR"),
    "/keygate_policy_yaml_teams.wasm"
));

/// What a worker is trying to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// SSH public-key authentication.
    Connect,
    /// `forward-worker`.
    Register,
    /// `land-worker`.
    Land,
    /// `retire-worker`.
    Retire,
    /// `delete-worker`.
    Delete,
    /// An action a later keygate may add, sent as the contract's
    /// `other(NAME)`. The gateway never asks this; `policy eval` and
    /// `policy test` accept `other:NAME` so that authors can check that
    /// their policy denies what it does not know.
    Other(std::sync::Arc<str>),
}

impl Action {
    /// The action's name in flags, logs, metrics and test cases.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Connect => "connect",
            Action::Register => "register",
            Action::Land => "land",
            Action::Retire => "retire",
            Action::Delete => "delete",
            Action::Other(name) => name,
        }
    }

    /// Every action, for metrics that list them all.
    pub const ALL: [Action; 5] = [
        Action::Connect,
        Action::Register,
        Action::Land,
        Action::Retire,
        Action::Delete,
    ];
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Other(name) => write!(f, "other:{name}"),
            known => f.write_str(known.as_str()),
        }
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        if let Some(name) = s.strip_prefix("other:").filter(|n| !n.is_empty()) {
            return Ok(Action::Other(name.into()));
        }
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown action `{s}` (connect, register, land, retire, delete, or \
                     other:NAME for an action from a later contract)"
                )
            })
    }
}

/// One question for the policy.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// What is being attempted.
    pub action: Action,
    /// The claimed team; `None` is the global scope.
    pub team: Option<Team>,
    /// The SSH user name the client sent.
    pub user: String,
    /// The key that proved itself on this connection.
    pub key: KeyIdentity,
    /// The client's address.
    pub client: IpAddr,
    /// The worker concerned, where there is one.
    pub worker: Option<WorkerName>,
    /// When the request was made.
    pub time: SystemTime,
}

impl DecisionRequest {
    pub(crate) fn unix_time(&self) -> u64 {
        self.time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// How a policy broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFault {
    /// The guest trapped (a panic, an out-of-bounds access, ...).
    #[error("policy trapped; {0}")]
    Trap(String),
    /// The call ran past its deadline.
    #[error("policy exceeded its {0} ms deadline")]
    Timeout(u64),
    /// The guest tried to grow its memory past the cap.
    #[error("policy exceeded its memory cap of {0} MiB")]
    Memory(u64),
    /// No instance could take the call: every one is busy past the queue's
    /// bound, or the instance could not be rebuilt after an earlier fault.
    #[error("policy unavailable; {0}")]
    Unavailable(String),
}

impl PolicyFault {
    /// Short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyFault::Trap(_) => "trap",
            PolicyFault::Timeout(_) => "timeout",
            PolicyFault::Memory(_) => "memory",
            PolicyFault::Unavailable(_) => "unavailable",
        }
    }
}

/// The result of asking the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The policy allowed the request.
    Allow,
    /// The policy denied the request, for this reason.
    Deny(String),
    /// The policy broke; the request is denied (fail closed).
    Fault(PolicyFault),
}

impl Outcome {
    /// Whether the request may proceed. Only an explicit allow does.
    pub fn is_allow(&self) -> bool {
        matches!(self, Outcome::Allow)
    }

    /// `allow`, `deny` or `fault`, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny(_) => "deny",
            Outcome::Fault(_) => "fault",
        }
    }

    /// The reason to log and show the worker, if the request is refused.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Allow => None,
            Outcome::Deny(reason) => Some(reason.clone()),
            Outcome::Fault(fault) => {
                Some(format!("policy error ({}); request denied", fault.kind()))
            }
        }
    }
}
