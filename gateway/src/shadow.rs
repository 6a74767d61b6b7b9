//! What happens after a decision: the shadow policy's second opinion and
//! the audit log line.
//!
//! A shadow policy (`--shadow-policy`) is asked every question the active
//! policy is asked, after the active policy has answered and on a task of
//! its own, so it adds nothing to a worker's wait. Its answer is never
//! enforced. When it disagrees (one allows where the other refuses) the
//! whole request is logged and `keygate_shadow_disagreements_total{action}`
//! counts it; a shadow fault counts as a refusal, is logged, and is counted
//! as `result="fault"` in `keygate_shadow_decisions_total`. An operator watches these to learn what a new policy would
//! change before making it the active one.
//!
//! Only the verdict is compared: two denials with different reasons agree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::audit::{AuditLog, rfc3339};
use crate::domain::Team;
use crate::metrics::Metrics;
use crate::policy::{DecisionRequest, Digest, LoadedPolicy, Outcome};

/// A decision the active policy made, with everything needed to record it.
#[derive(Debug)]
pub struct Decided {
    /// The connection it was made for.
    pub conn: u64,
    /// The question.
    pub request: DecisionRequest,
    /// The active policy's answer.
    pub outcome: Outcome,
    /// The active policy's digest.
    pub policy: Digest,
    /// How long the active policy took.
    pub latency: Duration,
}

/// The shadow policy's answer to the same question.
#[derive(Debug)]
struct ShadowAnswer {
    outcome: Outcome,
    policy: Digest,
    latency: Duration,
}

/// Ask the shadow policy (if any) and write the audit line (if any). With a
/// shadow this runs on a task of its own; without one, the line is queued
/// at once.
pub fn follow_up(
    decided: Decided,
    shadow: Option<Arc<LoadedPolicy>>,
    audit: Option<AuditLog>,
    metrics: Arc<Metrics>,
) {
    let Some(shadow) = shadow else {
        if let Some(audit) = audit {
            audit.record(&audit_line(&decided, None));
        }
        return;
    };
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = shadow.decide(decided.request.clone()).await;
        let answer = ShadowAnswer {
            outcome,
            policy: shadow.digest(),
            latency: started.elapsed(),
        };
        compare(&decided, &answer, &metrics);
        if let Some(audit) = audit {
            audit.record(&audit_line(&decided, Some(&answer)));
        }
    });
}

/// Count the shadow's answer and log it if it disagrees.
fn compare(decided: &Decided, answer: &ShadowAnswer, metrics: &Metrics) {
    let action = &decided.request.action;
    let agrees = decided.outcome.is_allow() == answer.outcome.is_allow();
    metrics.shadow_decision(action, &answer.outcome, agrees);
    if let Outcome::Fault(fault) = &answer.outcome {
        tracing::warn!(%fault, policy.digest = %answer.policy.short(), "shadow policy fault");
    }
    if agrees {
        return;
    }
    let request = &decided.request;
    tracing::info!(
        conn.id = decided.conn,
        client.ip = %request.client,
        user = request.user.as_str(),
        action = %action,
        team = team_str(request.team.as_ref()),
        worker = request.worker.as_ref().map_or("", |w| w.as_str()),
        key.fingerprint = %request.key.fingerprint(),
        decision = decided.outcome.label(),
        reason = decided.outcome.reason().unwrap_or_default(),
        policy.digest = %decided.policy.short(),
        shadow.decision = answer.outcome.label(),
        shadow.reason = answer.outcome.reason().unwrap_or_default(),
        shadow.digest = %answer.policy.short(),
        "shadow policy disagrees"
    );
}

fn team_str(team: Option<&Team>) -> &str {
    team.map_or("", Team::as_str)
}

/// One audit log line. Empty team and worker are `null`; the key appears
/// only as its fingerprint.
fn audit_line(decided: &Decided, shadow: Option<&ShadowAnswer>) -> Value {
    let request = &decided.request;
    let mut line = json!({
        "time": rfc3339(request.time),
        "conn": decided.conn,
        "client": request.client.to_string(),
        "user": request.user,
        "action": request.action.as_str(),
        "team": request.team.as_ref().map(Team::as_str),
        "worker": request.worker.as_ref().map(|w| w.as_str()),
        "key": request.key.fingerprint().to_string(),
        "decision": decided.outcome.label(),
        "reason": decided.outcome.reason(),
        "policy": decided.policy.to_string(),
        "latency_us": micros(decided.latency),
    });
    if let Some(shadow) = shadow
        && let Some(fields) = line.as_object_mut()
    {
        fields.insert(
            "shadow".into(),
            json!({
                "decision": shadow.outcome.label(),
                "reason": shadow.outcome.reason(),
                "policy": shadow.policy.to_string(),
                "latency_us": micros(shadow.latency),
                "agrees": decided.outcome.is_allow() == shadow.outcome.is_allow(),
            }),
        );
    }
    line
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)
}
