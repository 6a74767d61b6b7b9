//! The load generator's SSH client (russh), set up as both servers are:
//! curve25519-sha256 and an ed25519 key.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use russh::client::{self, Handle, Msg};
use russh::keys::{Algorithm, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, Preferred, kex};

/// Trusts any host key: the servers were started by this process.
pub struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// The client configuration used against both servers.
pub fn config() -> Arc<client::Config> {
    Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(120)),
        nodelay: true,
        preferred: Preferred {
            kex: Cow::Owned(vec![kex::CURVE25519]),
            key: Cow::Owned(vec![Algorithm::Ed25519]),
            ..Preferred::default()
        },
        ..client::Config::default()
    })
}

/// Connect and authenticate.
pub async fn connect(
    config: Arc<client::Config>,
    addr: SocketAddr,
    user: &str,
    key: &Arc<PrivateKey>,
) -> anyhow::Result<Handle<Trusting>> {
    let mut handle = client::connect(config, addr, Trusting)
        .await
        .context("connect")?;
    let auth = handle
        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key.clone(), None))
        .await?;
    if !auth.success() {
        bail!("authentication failed");
    }
    Ok(handle)
}

/// Run `command` with `stdin` and wait for its exit status.
pub async fn exec(handle: &Handle<Trusting>, command: &str, stdin: &[u8]) -> anyhow::Result<u32> {
    let mut channel = handle.channel_open_session().await?;
    channel.exec(true, command).await?;
    channel.data(stdin).await?;
    channel.eof().await?;
    while let Some(msg) = channel.wait().await {
        if let ChannelMsg::ExitStatus { exit_status } = msg {
            return Ok(exit_status);
        }
    }
    bail!("channel closed without an exit status")
}

/// One full handshake: connect, kex, auth, one exec, close.
pub async fn handshake(
    config: Arc<client::Config>,
    addr: SocketAddr,
    user: &str,
    key: &Arc<PrivateKey>,
    command: &str,
) -> anyhow::Result<()> {
    let handle = connect(config, addr, user, key).await?;
    exec(&handle, command, br#"{"name":"bench"}"#).await?;
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
    Ok(())
}

/// A connection holding two reverse tunnels and an open session channel:
/// a registered worker for keygate (when `register` is set), the same
/// resources without a command for sshd.
pub struct HeldWorker {
    pub _handle: Handle<Trusting>,
    pub _channel: Channel<Msg>,
}

/// Open a worker connection as described on [`HeldWorker`].
pub async fn hold_worker(
    config: Arc<client::Config>,
    addr: SocketAddr,
    user: &str,
    key: &Arc<PrivateKey>,
    name: &str,
    register: bool,
) -> anyhow::Result<HeldWorker> {
    let handle = connect(config, addr, user, key).await?;
    let garden = handle.tcpip_forward("127.0.0.1", 0).await?;
    let baggageclaim = handle.tcpip_forward("127.0.0.1", 0).await?;
    let mut channel = handle.channel_open_session().await?;
    if register {
        let command = format!(
            "forward-worker --garden 127.0.0.1:{garden} --baggageclaim 127.0.0.1:{baggageclaim}"
        );
        channel.exec(true, command).await?;
        let json = format!(r#"{{"name":"{name}","team":"bench","platform":"linux"}}"#);
        channel.data(json.as_bytes()).await?;
        channel.eof().await?;
        loop {
            match channel.wait().await {
                Some(ChannelMsg::Data { data })
                    if data.starts_with(b"{\"event\":\"registered\"}") =>
                {
                    break;
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    bail!("forward-worker exited with {exit_status}")
                }
                None => bail!("channel closed before registration"),
                _ => {}
            }
        }
    }
    Ok(HeldWorker {
        _handle: handle,
        _channel: channel,
    })
}
