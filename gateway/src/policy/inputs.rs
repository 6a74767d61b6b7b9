//! Where a policy and its input documents come from.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Digest;
use crate::domain::Team;

/// Where the policy module comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// The YAML team policy built into the binary.
    Embedded,
    /// A component file given with `--policy`.
    File(PathBuf),
}

impl PolicySource {
    /// The module's bytes.
    pub fn read(&self) -> Result<Arc<[u8]>, InputError> {
        match self {
            PolicySource::Embedded => Ok(Arc::from(super::EMBEDDED_POLICY)),
            PolicySource::File(path) => read_file(path).map(Arc::from),
        }
    }
}

impl fmt::Display for PolicySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySource::Embedded => f.write_str("embedded yaml-teams"),
            PolicySource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The input documents the operator configured, by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyInputs {
    /// `--authorized-keys`: keys valid for every team.
    pub authorized_keys: Option<PathBuf>,
    /// `--team-authorized-keys TEAM:FILE`, repeatable.
    pub team_authorized_keys: Vec<(Team, PathBuf)>,
    /// `--team-authorized-keys-file`: the YAML team-key list.
    pub team_keys_file: Option<PathBuf>,
    /// `--policy-input FILE`, repeatable: documents for a custom policy.
    pub policy_inputs: Vec<PathBuf>,
}

/// One input document, read.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The name the policy sees: the flag's name, then the path (and team).
    pub name: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents.
    pub data: Vec<u8>,
    /// SHA-256 of the contents.
    pub digest: Digest,
}

/// An input that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("failed to read {}; {error}", path.display())]
pub struct InputError {
    path: PathBuf,
    error: std::io::Error,
}

/// Inputs are refused past this size: a policy input is a key list, and a
/// bigger file is a mistake (a wrong path, a log file) that would otherwise
/// be copied into every policy instance.
pub const MAX_INPUT_BYTES: u64 = 256 << 20;

fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    let wrap = |error| InputError {
        path: path.to_owned(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(wrap)?;
    if meta.len() > MAX_INPUT_BYTES {
        let msg = format!(
            "file is {} bytes, over the {MAX_INPUT_BYTES}-byte limit",
            meta.len()
        );
        return Err(wrap(std::io::Error::other(msg)));
    }
    std::fs::read(path).map_err(wrap)
}

impl PolicyInputs {
    /// Every configured path, for watching.
    pub fn paths(&self) -> Vec<PathBuf> {
        let teams = self.team_authorized_keys.iter().map(|(_, p)| p.clone());
        self.authorized_keys
            .iter()
            .cloned()
            .chain(teams)
            .chain(self.team_keys_file.clone())
            .chain(self.policy_inputs.iter().cloned())
            .collect()
    }

    /// Read every input. Any unreadable file fails the whole read.
    pub fn read(&self) -> Result<Vec<InputFile>, InputError> {
        let mut named: Vec<(String, &Path)> = Vec::new();
        if let Some(path) = &self.authorized_keys {
            named.push((format!("authorized-keys:{}", path.display()), path));
        }
        for (team, path) in &self.team_authorized_keys {
            named.push((
                format!("team-authorized-keys:{team}:{}", path.display()),
                path,
            ));
        }
        if let Some(path) = &self.team_keys_file {
            named.push((
                format!("team-authorized-keys-file:{}", path.display()),
                path,
            ));
        }
        for path in &self.policy_inputs {
            named.push((format!("policy-input:{}", path.display()), path));
        }
        named
            .into_iter()
            .map(|(name, path)| {
                let data = read_file(path)?;
                let digest = Digest::of(&data);
                Ok(InputFile {
                    name,
                    path: path.to_owned(),
                    data,
                    digest,
                })
            })
            .collect()
    }
}
