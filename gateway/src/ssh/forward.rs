//! Reverse tunnels (`tcpip-forward`): a listener on the gateway per request,
//! each inbound connection relayed to the worker over a `forwarded-tcpip`
//! channel.
//!
//! Listeners bind `--forward-bind` on a port the OS chooses, whatever
//! address and port the client asked for; the client's request only names
//! the tunnel. The relay copies bytes both ways until either side closes.

use std::net::SocketAddr;
use std::sync::Arc;

use russh::server::Handle;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument as _;

use super::connection::{Connection, Forward};
use crate::gateway::Gateway;

/// Open a tunnel for `address:port`. On success `port` holds the port to
/// report back when the client asked for port 0.
pub async fn open(conn: &Connection, handle: Handle, address: &str, port: &mut u32) -> bool {
    let gateway = &conn.gateway;
    let max = gateway.config.max_forwards;
    if conn.forwards().len() >= max {
        tracing::info!(
            address,
            port = *port,
            max,
            "tcpip-forward refused: tunnel limit reached"
        );
        return false;
    }
    let listener = match TcpListener::bind((gateway.config.forward_bind, 0)).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(address, error = %e, "tcpip-forward failed: cannot bind");
            return false;
        }
    };
    let Ok(bound) = listener.local_addr() else {
        return false;
    };
    let requested_port = *port;
    let channel_port = if requested_port == 0 {
        u32::from(bound.port())
    } else {
        requested_port
    };
    let relay = Relay {
        gateway: gateway.clone(),
        handle,
        address: address.to_owned(),
        port: channel_port,
    };
    let task = tokio::spawn(relay.accept_loop(listener).instrument(conn.span.clone()));
    let mut forwards = conn.forwards();
    if forwards.len() >= max {
        task.abort();
        return false;
    }
    forwards.push(Forward {
        address: address.to_owned(),
        requested_port,
        bound,
        task,
    });
    drop(forwards);
    gateway.metrics.tunnels(1);
    if requested_port == 0 {
        *port = channel_port;
    }
    tracing::info!(address, requested_port, bound = %bound, "reverse tunnel open");
    true
}

/// Close the tunnel the client opened as `address:port`.
pub fn cancel(conn: &Connection, address: &str, port: u32) -> bool {
    let mut forwards = conn.forwards();
    let Some(index) = forwards.iter().position(|f| f.matches(address, port)) else {
        return false;
    };
    let forward = forwards.swap_remove(index);
    drop(forwards);
    forward.task.abort();
    conn.gateway.metrics.tunnels(-1);
    tracing::info!(address, port, bound = %forward.bound, "reverse tunnel closed");
    true
}

/// The gateway-side address of the tunnel a worker names as `host:port`.
pub fn lookup(conn: &Connection, spec: &str) -> Option<SocketAddr> {
    let (host, port) = spec.rsplit_once(':')?;
    let port: u32 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    conn.forwards()
        .iter()
        .find(|f| f.matches(host, port))
        .map(|f| f.bound)
}

const RELAY_BUFFER: usize = 32 << 10;

struct Relay {
    gateway: Arc<Gateway>,
    handle: Handle,
    address: String,
    port: u32,
}

impl Relay {
    async fn accept_loop(self, listener: TcpListener) {
        let relay = Arc::new(self);
        loop {
            match listener.accept().await {
                Ok((socket, origin)) => {
                    let relay = relay.clone();
                    tokio::spawn(
                        async move { relay.relay(socket, origin).await }.in_current_span(),
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tunnel accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn relay(&self, mut socket: TcpStream, origin: SocketAddr) {
        let opened = self
            .handle
            .channel_open_forwarded_tcpip(
                &self.address,
                self.port,
                origin.ip().to_string(),
                u32::from(origin.port()),
            )
            .await;
        let channel = match opened {
            Ok(channel) => channel,
            Err(e) => {
                tracing::debug!(error = %e, %origin, "worker refused a forwarded-tcpip channel");
                return;
            }
        };
        let metrics = &self.gateway.metrics;
        metrics.tunnel_connections(1);
        let mut stream = channel.into_stream();
        // Buffers the size of an SSH packet's payload: fewer, fuller packets.
        match tokio::io::copy_bidirectional_with_sizes(
            &mut socket,
            &mut stream,
            RELAY_BUFFER,
            RELAY_BUFFER,
        )
        .await
        {
            Ok((to_worker, from_worker)) => metrics.relayed(to_worker, from_worker),
            Err(e) => tracing::debug!(error = %e, %origin, "tunnel relay ended with an error"),
        }
        metrics.tunnel_connections(-1);
    }
}
