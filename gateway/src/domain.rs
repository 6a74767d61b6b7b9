//! The gateway's vocabulary: the same words in flags, logs, metrics, JSON
//! and code.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use keygate_policy_sdk::keys::{KeyError, PublicKeyData};
use serde::Serialize;

/// A team name, as workers claim it and policies grant it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Team(Arc<str>);

impl Team {
    /// A team from its name.
    pub fn new(name: &str) -> Team {
        Team(Arc::from(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Team {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A worker's name, unique in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct WorkerName(Arc<str>);

impl WorkerName {
    /// A worker name.
    pub fn new(name: &str) -> WorkerName {
        WorkerName(Arc::from(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key's `SHA256:` fingerprint, the only form of a key keygate logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(Arc<str>);

impl Fingerprint {
    /// The fingerprint text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public key as policies see it: algorithm, fingerprint and the one-line
/// OpenSSH form. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdentity {
    algorithm: Arc<str>,
    fingerprint: Fingerprint,
    openssh: Arc<str>,
}

impl KeyIdentity {
    /// From `ALGORITHM BASE64 [COMMENT]` text, as in a `.pub` file.
    pub fn from_openssh(text: &str) -> Result<KeyIdentity, KeyError> {
        let data = PublicKeyData::parse(text)?;
        Ok(KeyIdentity {
            algorithm: Arc::from(data.algorithm()),
            fingerprint: Fingerprint(Arc::from(data.fingerprint())),
            openssh: Arc::from(data.to_openssh()),
        })
    }

    /// From a key russh has parsed (and, on the auth path, verified).
    pub fn from_ssh(key: &russh::keys::PublicKey) -> Result<KeyIdentity, KeyError> {
        let text = key
            .to_openssh()
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        KeyIdentity::from_openssh(&text)
    }

    /// Algorithm name, e.g. `ssh-ed25519`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The `SHA256:` fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    /// `ALGORITHM BASE64`, without comment.
    pub fn openssh(&self) -> &str {
        &self.openssh
    }
}

/// A client's address as policies and logs see it: IPv4-mapped IPv6
/// addresses are shown as the IPv4 address they carry.
pub fn client_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}
