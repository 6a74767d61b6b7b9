//! The SSH front: accepts connections, enforces the pre-authentication
//! limits, and hands each connection to its [`handler`].
//!
//! Limits, in sshd's terms:
//! - LoginGraceTime: a connection that has not authenticated within
//!   `--login-grace-time` is closed.
//! - MaxAuthTries: russh closes a connection after `--max-auth-tries`
//!   failed attempts.
//! - MaxStartups: at most `--max-startups` connections may be
//!   unauthenticated at once. When the table is full the oldest one is
//!   closed to admit the newcomer: idle or slow clients cannot keep workers
//!   out, though a flood faster than a worker's handshake can still delay
//!   it. Rate-limit such floods in front of keygate.

mod command;
mod connection;
mod forward;
mod handler;
pub mod host_key;
mod session;
mod startups;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use russh::server::Config;
use russh::{MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::domain::client_ip;
use crate::gateway::Gateway;
use connection::Connection;
use handler::ConnectionHandler;
use startups::{StartupEnd, Startups};

/// Connection limits before and after authentication.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to authenticate.
    pub login_grace_time: Duration,
    /// Failed authentication attempts before disconnecting.
    pub max_auth_tries: usize,
    /// Unauthenticated connections at once.
    pub max_startups: usize,
    /// Keepalive interval; `None` disables.
    pub keepalive_interval: Option<Duration>,
    /// Unanswered keepalives before closing.
    pub keepalive_count: usize,
    /// Close after this long without traffic; `None` disables.
    pub idle_timeout: Option<Duration>,
}

/// russh's configuration for keygate.
pub fn config(keys: Vec<russh::keys::PrivateKey>, limits: &Limits) -> Config {
    Config {
        server_id: russh::SshId::Standard(
            format!("SSH-2.0-keygate_{}", env!("CARGO_PKG_VERSION")).into(),
        ),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // Public-key probing tells a client whether a key is acceptable by
        // design (RFC 4252), so delaying rejections protects nothing.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys,
        max_auth_attempts: limits.max_auth_tries,
        inactivity_timeout: limits.idle_timeout,
        keepalive_interval: limits.keepalive_interval,
        keepalive_max: limits.keepalive_count,
        ..Config::default()
    }
}

/// Accept connections on `listener` forever.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    config: Arc<Config>,
    limits: Limits,
) {
    let startups = Arc::new(Startups::new(limits.max_startups));
    let ids = AtomicU64::new(1);
    gateway.set_listening();
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors; back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Handshakes are a string of small request-response messages:
        // Nagle's algorithm would hold each back for a delayed ACK.
        if let Err(e) = socket.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("conn", conn.id = id, client.addr = %peer);
        let accepted = Accepted {
            gateway: gateway.clone(),
            config: config.clone(),
            startups: startups.clone(),
            grace: limits.login_grace_time,
        };
        tokio::spawn(
            accepted
                .run(id, socket, peer, span.clone())
                .instrument(span),
        );
    }
}

struct Accepted {
    gateway: Arc<Gateway>,
    config: Arc<Config>,
    startups: Arc<Startups>,
    grace: Duration,
}

impl Accepted {
    async fn run(self, id: u64, socket: TcpStream, peer: SocketAddr, span: tracing::Span) {
        let metrics = &self.gateway.metrics;
        metrics.connection_opened();
        tracing::debug!("connection accepted");
        let conn = Arc::new(Connection::new(
            id,
            self.gateway.clone(),
            client_ip(peer.ip()),
            span,
        ));
        let (authenticated_tx, authenticated_rx) = oneshot::channel();
        let handler = ConnectionHandler::new(conn, authenticated_tx);
        let slot = self.startups.admit(id);
        let preauth = slot.wait(authenticated_rx, self.grace);
        tokio::pin!(preauth);

        let result = tokio::select! {
            session = russh::server::run_stream(self.config.clone(), socket, handler) => session,
            end = &mut preauth => {
                self.preauth_ended(end);
                metrics.connection_closed();
                return;
            }
        };
        let session = match result {
            Ok(session) => session,
            Err(e) => {
                tracing::debug!(error = %e, "handshake failed");
                metrics.connection_closed();
                return;
            }
        };
        let handle = session.handle();
        tokio::pin!(session);
        tokio::select! {
            result = &mut session => {
                log_end(result);
                metrics.connection_closed();
                return;
            }
            end = &mut preauth => {
                if end != StartupEnd::Authenticated {
                    self.preauth_ended(end);
                    let _ = handle.disconnect(russh::Disconnect::ByApplication, end.reason().into(), String::new()).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut session).await;
                    metrics.connection_closed();
                    return;
                }
            }
        }
        log_end(session.await);
        metrics.connection_closed();
    }

    fn preauth_ended(&self, end: StartupEnd) {
        match end {
            StartupEnd::GraceTime => {
                self.gateway.metrics.preauth_dropped("grace_time");
                tracing::info!("closing: not authenticated within the login grace time");
            }
            StartupEnd::Evicted => {
                self.gateway.metrics.preauth_dropped("max_startups");
                tracing::info!(
                    "closing: oldest unauthenticated connection, dropped to admit a new one"
                );
            }
            StartupEnd::Authenticated | StartupEnd::Closed => {}
        }
    }
}

fn log_end(result: Result<(), russh::Error>) {
    match result {
        Ok(()) => tracing::debug!("connection closed"),
        Err(e) => tracing::debug!(error = %e, "connection ended"),
    }
}
