//! Per-connection state shared by the SSH handler, its session channels and
//! its tunnel listeners; dropping it is the connection's clean-up.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::JoinHandle;

use crate::domain::KeyIdentity;
use crate::gateway::Gateway;

/// Who a connection authenticated as. Only ever built from a key whose
/// signature russh verified.
#[derive(Debug)]
pub struct Auth {
    /// SSH user name.
    pub user: String,
    /// The verified key.
    pub key: KeyIdentity,
}

/// One reverse tunnel: a listener on the gateway relaying to the worker.
#[derive(Debug)]
pub struct Forward {
    /// The bind address the client asked for (`tcpip-forward`).
    pub address: String,
    /// The port the client asked for; 0 means "any".
    pub requested_port: u32,
    /// Where the gateway actually listens.
    pub bound: SocketAddr,
    pub(crate) task: JoinHandle<()>,
}

impl Forward {
    /// Whether `address:port` (as a worker's `--garden` flag names it)
    /// means this tunnel. Either the requested or the bound port matches.
    pub fn matches(&self, address: &str, port: u32) -> bool {
        self.address == address
            && (self.requested_port == port || u32::from(self.bound.port()) == port)
    }
}

/// State of one SSH connection.
#[derive(Debug)]
pub struct Connection {
    /// Connection id, as in the logs.
    pub id: u64,
    /// The shared gateway.
    pub gateway: Arc<Gateway>,
    /// The client's address.
    pub client: IpAddr,
    /// The span its logs go to.
    pub span: tracing::Span,
    forwards: Mutex<Vec<Forward>>,
}

impl Connection {
    /// A new connection's state.
    pub fn new(id: u64, gateway: Arc<Gateway>, client: IpAddr, span: tracing::Span) -> Connection {
        Connection {
            id,
            gateway,
            client,
            span,
            forwards: Mutex::new(Vec::new()),
        }
    }

    /// The connection's tunnels.
    pub fn forwards(&self) -> MutexGuard<'_, Vec<Forward>> {
        self.forwards.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let forwards = std::mem::take(&mut *self.forwards());
        for forward in &forwards {
            forward.task.abort();
        }
        self.gateway.metrics.tunnels(-(forwards.len() as i64));
        let removed = self.gateway.registry.remove_connection(self.id);
        self.gateway.session_ended(self.id);
        if removed > 0 || !forwards.is_empty() {
            tracing::info!(
                parent: &self.span,
                workers = removed,
                tunnels = forwards.len(),
                "connection closed; its workers and tunnels are gone"
            );
        }
    }
}
