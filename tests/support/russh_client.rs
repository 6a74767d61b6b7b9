//! A russh SSH client, the second real client the tests speak through.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, load_secret_key};
use russh::{Channel, ChannelMsg};

/// Accepts any host key: tests run against a gateway they just started.
pub struct TrustingClient;

impl client::Handler for TrustingClient {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// An authenticated russh connection.
pub struct Client {
    handle: Handle<TrustingClient>,
}

/// What a command printed and how it ended.
#[derive(Debug, Default)]
pub struct Exec {
    /// stdout so far.
    pub stdout: String,
    /// stderr so far.
    pub stderr: String,
    /// Exit status, if the command ended.
    pub status: Option<u32>,
}

impl Client {
    /// Connect and authenticate with the key at `key`. `Err` carries why.
    pub async fn connect(
        addr: std::net::SocketAddr,
        key: &Path,
        user: &str,
    ) -> Result<Client, String> {
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        let mut handle = client::connect(config, addr, TrustingClient)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let key = load_secret_key(key, None).map_err(|e| format!("key: {e}"))?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| e.to_string())?
            .flatten();
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
            .map_err(|e| format!("auth: {e}"))?;
        if !result.success() {
            return Err("authentication failed".into());
        }
        Ok(Client { handle })
    }

    /// Open a session and start `command` with `stdin` (then EOF).
    pub async fn start(&self, command: &str, stdin: &[u8]) -> Channel<client::Msg> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .expect("open session");
        channel.exec(true, command).await.expect("exec");
        channel.data(stdin).await.expect("stdin");
        channel.eof().await.expect("eof");
        channel
    }

    /// Run `command` until it exits, or until stdout contains `until`, or
    /// `limit` passes.
    pub async fn exec(
        &self,
        command: &str,
        stdin: &[u8],
        until: Option<&str>,
        limit: Duration,
    ) -> Exec {
        let mut channel = self.start(command, stdin).await;
        let mut out = Exec::default();
        let _ = tokio::time::timeout(limit, async {
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        out.stdout.push_str(&String::from_utf8_lossy(&data))
                    }
                    ChannelMsg::ExtendedData { data, .. } => {
                        out.stderr.push_str(&String::from_utf8_lossy(&data))
                    }
                    ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                    ChannelMsg::Close => break,
                    _ => {}
                }
                if until.is_some_and(|u| out.stdout.contains(u)) {
                    break;
                }
            }
        })
        .await;
        out
    }

    /// Whether the connection is still open.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}
