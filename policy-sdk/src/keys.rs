//! OpenSSH public keys and `authorized_keys` lines.
//!
//! Keys are compared by algorithm and key data ([`PublicKeyData`]), never by
//! their text: the same key appears with different comments and spacing in
//! different files. [`parse_authorized_keys`] reads a whole file and keeps
//! each line's number, so a policy can point the operator at the faulty line.
//!
//! Of the options OpenSSH allows before a key, two are honoured and checked
//! by [`KeyOptions::check`]:
//!
//! - `from="pattern,..."`: the client address must match. Patterns are IP
//!   addresses, CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) and wildcards over
//!   the address text (`192.168.1.*`); a pattern prefixed with `!` denies.
//!   Host names are accepted but, since a policy resolves no names, match
//!   only as text against the address; a warning says so.
//! - `expiry-time="YYYYMMDD[HHMM[SS]][Z]"`: the key stops working at that
//!   instant. keygate reads the time as UTC whether or not it ends in `Z`
//!   (OpenSSH reads it as the server's local time without `Z`).
//!
//! Options that only restrict what keygate never grants (`no-pty`,
//! `no-agent-forwarding`, `no-X11-forwarding`, `no-user-rc` and their
//! positive forms, `no-touch-required`) are accepted with a warning.
//! `restrict` is accepted only together with `port-forwarding`, because
//! workers need reverse tunnels. Options keygate cannot enforce, such as
//! `command=`, `permitlisten=` or `no-port-forwarding`, are errors: ignoring
//! them would give the key more than its owner wrote down.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};

mod line;
mod options;

pub use line::{
    AuthorizedKey, AuthorizedKeys, LineProblem, parse_authorized_key, parse_authorized_keys,
};
pub use options::{KeyOptions, parse_expiry};

/// A public key reduced to what identifies it: its algorithm and key data.
/// Two keys are the same key exactly when these are equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKeyData {
    algorithm: String,
    blob: Vec<u8>,
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The text has no key in it.
    Missing,
    /// The algorithm name is not one keygate accepts.
    UnknownAlgorithm(String),
    /// The algorithm is known but not accepted, with the reason.
    Unsupported(String),
    /// The key data is not valid base64.
    BadBase64,
    /// The key data does not have the structure its algorithm requires.
    Malformed(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Missing => write!(f, "no public key found"),
            KeyError::UnknownAlgorithm(a) => write!(f, "unknown key type `{a}`"),
            KeyError::Unsupported(why) => write!(f, "{why}"),
            KeyError::BadBase64 => write!(f, "key data is not valid base64"),
            KeyError::Malformed(why) => write!(f, "malformed key data; {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

const PLAIN_ALGORITHMS: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Whether `word` names a key type, plain or otherwise, so that a line's
/// first word can be told apart from an options list.
pub(crate) fn is_key_type(word: &str) -> bool {
    PLAIN_ALGORITHMS.contains(&word) || word == "ssh-dss" || word.ends_with("-cert-v01@openssh.com")
}

impl PublicKeyData {
    /// Parse `ALGORITHM BASE64 [COMMENT]`, the form of `.pub` files and of
    /// the key part of an `authorized_keys` line.
    pub fn parse(text: &str) -> Result<PublicKeyData, KeyError> {
        let mut words = text.split_ascii_whitespace();
        let algorithm = words.next().ok_or(KeyError::Missing)?;
        let data = words.next().ok_or(KeyError::Missing)?;
        PublicKeyData::from_parts(algorithm, data)
    }

    /// Build from an algorithm name and base64 key data, checking that the
    /// data is a well-formed key of that algorithm.
    pub fn from_parts(algorithm: &str, base64: &str) -> Result<PublicKeyData, KeyError> {
        if algorithm == "ssh-dss" {
            return Err(KeyError::Unsupported("DSA keys are not supported".into()));
        }
        if algorithm.ends_with("-cert-v01@openssh.com") {
            return Err(KeyError::Unsupported(
                "certificates are not accepted in key lists; list the plain key".into(),
            ));
        }
        if !PLAIN_ALGORITHMS.contains(&algorithm) {
            return Err(KeyError::UnknownAlgorithm(algorithm.to_owned()));
        }
        let blob = STANDARD.decode(base64).map_err(|_| KeyError::BadBase64)?;
        validate_blob(algorithm, &blob)?;
        Ok(PublicKeyData {
            algorithm: algorithm.to_owned(),
            blob,
        })
    }

    /// The algorithm name, e.g. `ssh-ed25519`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The key in SSH wire format.
    pub fn blob(&self) -> &[u8] {
        &self.blob
    }

    /// `SHA256:` fingerprint, as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint_sha256(&self.blob)
    }

    /// One-line OpenSSH form without comment: `ALGORITHM BASE64`.
    pub fn to_openssh(&self) -> String {
        format!("{} {}", self.algorithm, STANDARD.encode(&self.blob))
    }
}

impl fmt::Debug for PublicKeyData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.algorithm, self.fingerprint())
    }
}

/// `SHA256:` fingerprint of a key in SSH wire format.
pub fn fingerprint_sha256(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// Reads SSH wire-format fields (RFC 4251 `string` and `mpint`).
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn string(&mut self, what: &str) -> Result<&'a [u8], KeyError> {
        let malformed = || KeyError::Malformed(format!("truncated {what}"));
        let (len, rest) = self.0.split_first_chunk::<4>().ok_or_else(malformed)?;
        let len = u32::from_be_bytes(*len) as usize;
        if len > rest.len() {
            return Err(malformed());
        }
        let (field, rest) = rest.split_at(len);
        self.0 = rest;
        Ok(field)
    }

    fn end(&self) -> Result<(), KeyError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(KeyError::Malformed(format!(
                "{} unexpected trailing bytes",
                self.0.len()
            )))
        }
    }
}

fn validate_blob(algorithm: &str, blob: &[u8]) -> Result<(), KeyError> {
    let mut wire = Wire(blob);
    let inner = wire.string("key type")?;
    if inner != algorithm.as_bytes() {
        let inner = String::from_utf8_lossy(inner);
        return Err(KeyError::Malformed(format!(
            "data is a `{inner}` key but the line says `{algorithm}`"
        )));
    }
    match algorithm {
        "ssh-ed25519" | "sk-ssh-ed25519@openssh.com" => {
            expect_len(wire.string("ed25519 key")?, 32, "ed25519 key")?;
        }
        "ssh-rsa" => {
            wire.string("RSA exponent")?;
            let modulus = wire.string("RSA modulus")?;
            let bits = mpint_bits(modulus);
            if bits < 1024 {
                return Err(KeyError::Unsupported(format!(
                    "RSA key of {bits} bits is too short; 1024 bits at least"
                )));
            }
        }
        _ => {
            let curve = wire.string("curve name")?;
            let (name, point_len) = match curve {
                b"nistp256" => ("nistp256", 65),
                b"nistp384" => ("nistp384", 97),
                b"nistp521" => ("nistp521", 133),
                _ => return Err(KeyError::Malformed("unknown curve".into())),
            };
            if !algorithm.contains(name) {
                return Err(KeyError::Malformed(format!(
                    "curve {name} does not match {algorithm}"
                )));
            }
            expect_len(wire.string("curve point")?, point_len, "curve point")?;
        }
    }
    if algorithm.starts_with("sk-") {
        wire.string("security key application")?;
    }
    wire.end()
}

fn expect_len(field: &[u8], len: usize, what: &str) -> Result<(), KeyError> {
    if field.len() == len {
        Ok(())
    } else {
        Err(KeyError::Malformed(format!(
            "{what} is {} bytes, expected {len}",
            field.len()
        )))
    }
}

fn mpint_bits(mpint: &[u8]) -> usize {
    let digits: Vec<u8> = mpint.iter().copied().skip_while(|b| *b == 0).collect();
    match digits.first() {
        Some(top) => digits.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests;
