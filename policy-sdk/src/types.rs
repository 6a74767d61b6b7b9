//! The contract's types, re-exported from the generated bindings, with the
//! helpers a policy needs most.

use std::net::IpAddr;

pub use crate::bindings::keygate::policy::types::{
    Action, Certificate, Decision, InitReport, Input, PublicKey, Request,
};

use crate::keys::{KeyError, PublicKeyData};

impl Action {
    /// The action's name as keygate writes it in logs and test cases:
    /// `connect`, `register`, `land`, `retire`, `delete`, or the name of an
    /// action this version of the contract does not know.
    pub fn name(&self) -> &str {
        match self {
            Action::Connect => "connect",
            Action::Register => "register",
            Action::Land => "land",
            Action::Retire => "retire",
            Action::Delete => "delete",
            Action::Other(name) => name,
        }
    }
}

impl Decision {
    /// A denial with the given reason.
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision::Deny(reason.into())
    }

    /// Whether this decision lets the request through.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

impl Request {
    /// The client's address, or `None` when keygate sent something that is
    /// not an IP address (it never does).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_addr.parse().ok()
    }

    /// The request's key as algorithm and key data, for comparison with keys
    /// a policy loaded.
    pub fn key_data(&self) -> Result<PublicKeyData, KeyError> {
        PublicKeyData::parse(&self.key.openssh)
    }
}

#[expect(
    clippy::derivable_impls,
    reason = "the type is generated; derives there apply to every type"
)]
impl Default for InitReport {
    fn default() -> Self {
        InitReport {
            summary: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl InitReport {
    /// Add a summary line, builder style.
    pub fn summary(mut self, line: impl Into<String>) -> Self {
        self.summary.push(line.into());
        self
    }

    /// Add a warning, builder style.
    pub fn warning(mut self, line: impl Into<String>) -> Self {
        self.warnings.push(line.into());
        self
    }
}
