//! Prometheus metrics, kept as plain counters and rendered as text on
//! `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::audit::AuditLog;
use crate::policy::{Action, Outcome};
use crate::registry::Registry;

/// Upper bounds of the decision latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.1,
    1.0,
];

/// A counter family keyed by label values.
#[derive(Default)]
struct Family(Mutex<BTreeMap<Vec<String>, u64>>);

impl Family {
    fn add(&self, labels: &[&str], n: u64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(labels.iter().map(|s| (*s).to_owned()).collect())
            .or_default() += n;
    }

    fn render(&self, out: &mut String, name: &str, help: &str, label_names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (values, count) in map.iter() {
            let _ = writeln!(out, "{name}{{{}}} {count}", labels(label_names, values));
        }
    }
}

fn labels(names: &[&str], values: &[String]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            format!(
                "{n}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every metric keygate exports.
#[derive(Default)]
pub struct Metrics {
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    decisions: Family,
    faults: Family,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_nanos: AtomicU64,
    tunnels_open: AtomicI64,
    tunnel_connections_open: AtomicI64,
    bytes_relayed: Family,
    preauth_dropped: Family,
    reloads: Family,
    revoked: AtomicU64,
    shadow_decisions: Family,
    shadow_disagreements: Family,
    shadow_reloads: Family,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A connection was dropped before authenticating; `reason` is
    /// `grace_time` or `max_startups`.
    pub fn preauth_dropped(&self, reason: &str) {
        self.preauth_dropped.add(&[reason], 1);
    }

    /// A policy decision was made.
    pub fn decision(&self, action: &Action, outcome: &Outcome, latency: Duration) {
        self.decisions.add(&[action.as_str(), outcome.label()], 1);
        if let Outcome::Fault(fault) = outcome {
            self.faults.add(&[fault.kind()], 1);
        }
        let secs = latency.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A reverse-tunnel listener opened (+1) or closed (-1).
    pub fn tunnels(&self, delta: i64) {
        self.tunnels_open.fetch_add(delta, Ordering::Relaxed);
    }

    /// A relayed connection through a tunnel opened (+1) or closed (-1).
    pub fn tunnel_connections(&self, delta: i64) {
        self.tunnel_connections_open
            .fetch_add(delta, Ordering::Relaxed);
    }

    /// Bytes relayed through tunnels: `to_worker` and `from_worker`.
    pub fn relayed(&self, to_worker: u64, from_worker: u64) {
        self.bytes_relayed.add(&["to_worker"], to_worker);
        self.bytes_relayed.add(&["from_worker"], from_worker);
    }

    /// A reload finished with `result` (`success` or `failure`).
    pub fn reload(&self, result: &str) {
        self.reloads.add(&[result], 1);
    }

    /// The shadow policy answered a request; `agrees` when its verdict is
    /// the active policy's.
    pub fn shadow_decision(&self, action: &Action, outcome: &Outcome, agrees: bool) {
        self.shadow_decisions
            .add(&[action.as_str(), outcome.label()], 1);
        if !agrees {
            self.shadow_disagreements.add(&[action.as_str()], 1);
        }
    }

    /// A shadow policy reload finished with `result`.
    pub fn shadow_reload(&self, result: &str) {
        self.shadow_reloads.add(&[result], 1);
    }

    /// Shadow decisions and disagreements so far, by action, for `/status`.
    pub fn shadow_counts(&self) -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
        let by_action = |family: &Family| {
            let map = family.0.lock().unwrap_or_else(|e| e.into_inner());
            let mut out = BTreeMap::new();
            for (labels, n) in map.iter() {
                if let Some(action) = labels.first() {
                    *out.entry(action.clone()).or_default() += n;
                }
            }
            out
        };
        (
            by_action(&self.shadow_decisions),
            by_action(&self.shadow_disagreements),
        )
    }

    /// A live session was closed because the policy no longer allows it.
    pub fn revoked(&self) {
        self.revoked.fetch_add(1, Ordering::Relaxed);
    }

    /// Render everything in the Prometheus text format.
    pub fn render(
        &self,
        registry: &Registry,
        policy_digest: &str,
        audit: Option<&AuditLog>,
    ) -> String {
        let mut out = String::new();
        gauge(
            &mut out,
            "keygate_connections_open",
            "SSH connections open.",
            self.connections_open.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "keygate_connections_total",
            "SSH connections accepted.",
            self.connections_total.load(Ordering::Relaxed),
        );
        self.preauth_dropped.render(
            &mut out,
            "keygate_preauth_dropped_total",
            "Connections dropped before authenticating.",
            &["reason"],
        );
        self.decisions.render(
            &mut out,
            "keygate_decisions_total",
            "Policy decisions by action and result (allow, deny, fault).",
            &["action", "result"],
        );
        self.faults.render(
            &mut out,
            "keygate_policy_faults_total",
            "Policy faults by kind; each was denied.",
            &["kind"],
        );
        self.render_latency(&mut out);
        let _ = writeln!(
            out,
            "# HELP keygate_workers Registered workers by team and state.\n# TYPE keygate_workers gauge"
        );
        for ((team, state), count) in registry.counts() {
            let _ = writeln!(
                out,
                "keygate_workers{{{}}} {count}",
                labels(&["team", "state"], &[team, state.to_owned()])
            );
        }
        gauge(
            &mut out,
            "keygate_tunnels_open",
            "Reverse-tunnel listeners open.",
            self.tunnels_open.load(Ordering::Relaxed),
        );
        gauge(
            &mut out,
            "keygate_tunnel_connections_open",
            "Connections being relayed through tunnels.",
            self.tunnel_connections_open.load(Ordering::Relaxed),
        );
        self.bytes_relayed.render(
            &mut out,
            "keygate_tunnel_bytes_total",
            "Bytes relayed through tunnels by direction.",
            &["direction"],
        );
        self.reloads.render(
            &mut out,
            "keygate_reload_total",
            "Policy reloads by result.",
            &["result"],
        );
        counter(
            &mut out,
            "keygate_revoked_sessions_total",
            "Live sessions closed after a reload denied them.",
            self.revoked.load(Ordering::Relaxed),
        );
        self.render_shadow(&mut out);
        if let Some(audit) = audit {
            counter(
                &mut out,
                "keygate_audit_lines_total",
                "Decision lines written to the audit log.",
                audit.written(),
            );
            counter(
                &mut out,
                "keygate_audit_dropped_total",
                "Decision lines dropped because the audit log writer was behind.",
                audit.dropped(),
            );
        }
        let _ = writeln!(
            out,
            "# HELP keygate_policy_info The active policy.\n# TYPE keygate_policy_info gauge"
        );
        let _ = writeln!(
            out,
            "keygate_policy_info{{{}}} 1",
            labels(&["digest"], &[policy_digest.to_owned()])
        );
        out
    }

    fn render_shadow(&self, out: &mut String) {
        self.shadow_decisions.render(
            out,
            "keygate_shadow_decisions_total",
            "Shadow policy answers by action and result; never enforced.",
            &["action", "result"],
        );
        self.shadow_disagreements.render(
            out,
            "keygate_shadow_disagreements_total",
            "Requests where the shadow policy's verdict differed from the active one's.",
            &["action"],
        );
        self.shadow_reloads.render(
            out,
            "keygate_shadow_reload_total",
            "Shadow policy reloads by result.",
            &["result"],
        );
    }

    fn render_latency(&self, out: &mut String) {
        let name = "keygate_decision_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to get a policy decision.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let sum = self.latency_sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}"
        );
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}
