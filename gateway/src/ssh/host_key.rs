//! Host keys: loaded from disk, or generated on first start.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context as _;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey};

/// Load the key at `path`, or generate an ed25519 key there (mode 0600) if
/// the file does not exist.
pub fn load_or_generate(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        let key = russh::keys::load_secret_key(path, None)
            .with_context(|| format!("failed to load host key {}", path.display()))?;
        tracing::info!(
            path = %path.display(),
            key.fingerprint = %key.public_key().fingerprint(HashAlg::Sha256),
            algorithm = %key.algorithm(),
            "loaded host key"
        );
        return Ok(key);
    }
    let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
        .context("failed to generate an ed25519 host key")?;
    let pem = key
        .to_openssh(LineEnding::LF)
        .context("failed to encode the host key")?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create host key file {}", path.display()))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write host key file {}", path.display()))?;
    tracing::info!(
        path = %path.display(),
        key.fingerprint = %key.public_key().fingerprint(HashAlg::Sha256),
        "generated ed25519 host key"
    );
    Ok(key)
}
