//! The measured sections. Each starts its own servers and stops them.

mod handshake;
mod memory;
mod reload;
mod rollout;
mod tunnel;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use anyhow::Context as _;
use russh::keys::PrivateKey;

use crate::procs::{self, Server};

pub use handshake::{HandshakeRun, KEYGATE_HANDSHAKE_FACTOR, handshakes};
pub use memory::{MemoryRun, memory};
pub use reload::{ReloadRun, reload};
pub use rollout::{RolloutRun, rollout};
pub use tunnel::{TunnelRun, tunnel};

/// Keys and files shared by every section.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub key: Arc<PrivateKey>,
    pub key_path: PathBuf,
    pub key_pub: String,
    pub user: String,
}

impl Setup {
    pub fn new() -> anyhow::Result<Setup> {
        let dir = tempfile::tempdir()?;
        let key_path = dir.path().join("client_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f"])
            .arg(&key_path)
            .status()
            .context("ssh-keygen (Debian's openssh-client) is needed")?;
        anyhow::ensure!(status.success(), "ssh-keygen failed");
        let key_pub = std::fs::read_to_string(key_path.with_extension("pub"))?
            .trim()
            .to_owned();
        let key = Arc::new(russh::keys::load_secret_key(&key_path, None)?);
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(whoami);
        std::fs::write(dir.path().join("global_keys"), format!("{key_pub}\n"))?;
        Ok(Setup {
            dir,
            key,
            key_path,
            key_pub,
            user,
        })
    }

    /// keygate's arguments: the bench key is global, plus `yaml` if given.
    pub(super) fn keygate_args(
        &self,
        yaml: Option<&std::path::Path>,
        extra: &[&str],
    ) -> Vec<String> {
        let mut args = vec![
            "--authorized-keys".to_owned(),
            self.dir.path().join("global_keys").display().to_string(),
        ];
        if let Some(yaml) = yaml {
            args.push("--team-authorized-keys-file".into());
            args.push(yaml.display().to_string());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    pub fn keygate(
        &self,
        yaml: Option<&std::path::Path>,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        procs::start_keygate(self.dir.path(), &self.keygate_args(yaml, extra))
    }

    pub fn sshd(&self) -> anyhow::Result<Server> {
        procs::start_sshd(self.dir.path(), &self.key_pub)
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "root".into())
}

/// The median of some measurements.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
