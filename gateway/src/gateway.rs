//! State shared by every connection: the active policy (and the shadow
//! policy, if any), the registry, the metrics, the audit log and the table
//! of live sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::audit::AuditLog;
use crate::domain::{KeyIdentity, Team};
use crate::metrics::Metrics;
use crate::policy::{DecisionRequest, LoadedPolicy, Outcome};
use crate::registry::Registry;
use crate::shadow::{self, Decided};

/// Settings of the worker protocol and tunnels.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address reverse-tunnel listeners bind.
    pub forward_bind: IpAddr,
    /// Address written into registered workers' addresses.
    pub peer_address: IpAddr,
    /// Tunnels one connection may hold.
    pub max_forwards: usize,
    /// Interval of heartbeat lines to registered workers.
    pub heartbeat_interval: Duration,
    /// Accept `ssh-rsa` (SHA-1) signatures.
    pub allow_ssh_rsa_sha1: bool,
}

/// An authenticated connection, as the revocation pass sees it.
#[derive(Debug, Clone)]
pub struct LiveSession {
    /// To disconnect it.
    pub handle: russh::server::Handle,
    /// The user name it authenticated as.
    pub user: String,
    /// The key it proved.
    pub key: KeyIdentity,
    /// Its client address.
    pub client: IpAddr,
}

/// Everything connections share.
pub struct Gateway {
    policy: ArcSwap<LoadedPolicy>,
    shadow: ArcSwapOption<LoadedPolicy>,
    audit: Option<AuditLog>,
    /// Registered workers.
    pub registry: Registry,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Protocol settings.
    pub config: GatewayConfig,
    sessions: Mutex<HashMap<u64, LiveSession>>,
    listening: AtomicBool,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway serving `policy`.
    pub fn new(policy: LoadedPolicy, config: GatewayConfig) -> Gateway {
        Gateway {
            policy: ArcSwap::from_pointee(policy),
            shadow: ArcSwapOption::empty(),
            audit: None,
            registry: Registry::default(),
            metrics: Arc::default(),
            config,
            sessions: Mutex::new(HashMap::new()),
            listening: AtomicBool::new(false),
        }
    }

    /// The active policy. Decisions hold on to the one they started with.
    pub fn policy(&self) -> Arc<LoadedPolicy> {
        self.policy.load_full()
    }

    /// Make `policy` the active one, atomically; returns the one it replaced.
    pub fn publish(&self, policy: LoadedPolicy) -> Arc<LoadedPolicy> {
        self.policy.swap(Arc::new(policy))
    }

    /// The shadow policy, if one is configured and loaded.
    pub fn shadow(&self) -> Option<Arc<LoadedPolicy>> {
        self.shadow.load_full()
    }

    /// Make `policy` the shadow policy, atomically.
    pub fn publish_shadow(&self, policy: LoadedPolicy) -> Option<Arc<LoadedPolicy>> {
        self.shadow.swap(Some(Arc::new(policy)))
    }

    /// Write a line per decision to `audit`.
    pub fn with_audit(mut self, audit: AuditLog) -> Gateway {
        self.audit = Some(audit);
        self
    }

    /// The audit log, if one is configured.
    pub fn audit(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// Ask the active policy on behalf of connection `conn`, and count and
    /// log the decision.
    pub async fn decide(&self, conn: u64, request: DecisionRequest) -> Outcome {
        self.decide_on(&self.policy(), conn, request).await
    }

    /// Ask `policy`, which the caller took from [`Gateway::policy`], and
    /// count and log the decision. The shadow policy, if any, is asked the
    /// same question afterwards, off the caller's path, and its answer only
    /// compared and recorded.
    pub async fn decide_on(
        &self,
        policy: &LoadedPolicy,
        conn: u64,
        request: DecisionRequest,
    ) -> Outcome {
        let shadow = self.shadow();
        let follow_up = (shadow.is_some() || self.audit.is_some()).then(|| request.clone());
        let action = request.action.clone();
        let team = request.team.clone();
        let fingerprint = request.key.fingerprint().clone();
        let worker = request.worker.clone();
        let started = Instant::now();
        let outcome = policy.decide(request).await;
        let latency = started.elapsed();
        if let Some(request) = follow_up {
            let decided = Decided {
                conn,
                request,
                outcome: outcome.clone(),
                policy: policy.digest(),
                latency,
            };
            shadow::follow_up(decided, shadow, self.audit.clone(), self.metrics.clone());
        }
        self.metrics.decision(&action, &outcome, latency);
        let team = team.as_ref().map_or("", Team::as_str);
        let worker = worker.as_ref().map_or("", |w| w.as_str());
        let digest = policy.digest().short();
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        match &outcome {
            Outcome::Allow => tracing::debug!(
                action = %action, team, worker, key.fingerprint = %fingerprint, decision = "allow",
                policy.digest = %digest, latency_us = micros, "decision"
            ),
            Outcome::Deny(reason) => tracing::info!(
                action = %action, team, worker, key.fingerprint = %fingerprint, decision = "deny",
                reason = %reason, policy.digest = %digest, latency_us = micros, "decision"
            ),
            Outcome::Fault(fault) => tracing::warn!(
                action = %action, team, worker, key.fingerprint = %fingerprint, decision = "deny",
                fault = %fault, policy.digest = %digest, latency_us = micros, "policy fault; denied"
            ),
        }
        outcome
    }

    /// Record an authenticated connection.
    pub fn session_started(&self, id: u64, session: LiveSession) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, session);
    }

    /// Forget a connection that ended.
    pub fn session_ended(&self, id: u64) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Every authenticated connection.
    pub fn sessions(&self) -> Vec<(u64, LiveSession)> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.iter().map(|(id, s)| (*id, s.clone())).collect()
    }

    /// Mark the SSH listener as up (for `/healthz`).
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::Relaxed);
    }

    /// Whether the SSH listener is up.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Whether a request for `action` may proceed: a helper for callers that
    /// only need the verdict and the reason.
    pub async fn allowed(&self, conn: u64, request: DecisionRequest) -> Result<(), String> {
        let action = request.action.clone();
        match self.decide(conn, request).await {
            Outcome::Allow => Ok(()),
            other => Err(other.reason().unwrap_or_else(|| format!("{action} denied"))),
        }
    }
}
