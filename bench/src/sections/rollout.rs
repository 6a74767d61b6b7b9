//! What rolling a policy out costs on the handshake path: keygate alone
//! against keygate with a shadow policy and an audit log, side by side.

use std::path::PathBuf;

use anyhow::Context as _;

use super::Setup;
use super::handshake::{KEYGATE_HANDSHAKE_FACTOR, run_handshakes};
use crate::Scale;

/// Concurrency of the comparison.
const CLIENTS: usize = 16;
/// Runs of each configuration, alternating; the median is reported.
const ROUNDS: usize = 3;

/// The two configurations, measured alternately.
#[derive(Debug, Clone)]
pub struct RolloutRun {
    pub count: usize,
    pub plain_rate: f64,
    pub plain_cpu_ms: f64,
    pub rollout_rate: f64,
    pub rollout_cpu_ms: f64,
    /// Audit lines the gateway wrote, against the decisions it made.
    pub audit_lines: usize,
    pub decisions: usize,
}

/// The default policy as a file, for use as the shadow: the same rules, so
/// every decision is compared and none disagrees.
fn shadow_module() -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/policies/wasm32-wasip2/policy/keygate_policy_yaml_teams.wasm");
    path.canonicalize()
        .with_context(|| format!("{} not built; run `cargo build --release`", path.display()))
}

pub async fn rollout(setup: &Setup, scale: &Scale) -> anyhow::Result<RolloutRun> {
    let shadow = shadow_module()?;
    let audit = setup.dir.path().join("audit.jsonl");
    let plain = setup.keygate(None, &["--max-startups", "1000"])?;
    let rollout = setup.keygate(
        None,
        &[
            "--max-startups",
            "1000",
            "--shadow-policy",
            shadow.to_str().context("path is not UTF-8")?,
            "--audit-log",
            audit.to_str().context("path is not UTF-8")?,
        ],
    )?;
    let count = scale.handshakes[1].1 * KEYGATE_HANDSHAKE_FACTOR;
    let (mut plain_runs, mut rollout_runs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        plain_runs.push(run_handshakes(setup, &plain, "land-worker", CLIENTS, count).await?);
        rollout_runs.push(run_handshakes(setup, &rollout, "land-worker", CLIENTS, count).await?);
    }
    let (plain_rate, plain_cpu_ms) = medians(plain_runs);
    let (rollout_rate, rollout_cpu_ms) = medians(rollout_runs);
    eprintln!(
        "  {CLIENTS} clients: plain {plain_rate:.0}/s ({plain_cpu_ms:.3} ms CPU each), \
         shadow + audit {rollout_rate:.0}/s ({rollout_cpu_ms:.3} ms CPU each)"
    );
    // Each handshake is a connect and a land decision; wait for the writer.
    let decisions = count * ROUNDS * 2;
    let mut audit_lines = 0;
    for _ in 0..50 {
        audit_lines = std::fs::read_to_string(&audit)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if audit_lines >= decisions {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(RolloutRun {
        count,
        plain_rate,
        plain_cpu_ms,
        rollout_rate,
        rollout_cpu_ms,
        audit_lines,
        decisions,
    })
}

fn medians(runs: Vec<(f64, f64)>) -> (f64, f64) {
    let (rates, cpus): (Vec<f64>, Vec<f64>) = runs.into_iter().unzip();
    (super::median(rates), super::median(cpus))
}
