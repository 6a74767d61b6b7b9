//! Handshake rates against both servers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::Setup;
use crate::Scale;
use crate::client;
use crate::procs::{self, Server};

/// One handshake run.
#[derive(Debug, Clone)]
pub struct HandshakeRun {
    pub concurrency: usize,
    pub count: usize,
    pub keygate_rate: f64,
    pub sshd_rate: f64,
    pub keygate_cpu_ms: f64,
    pub sshd_cpu_ms: f64,
}

pub(super) async fn run_handshakes(
    setup: &Setup,
    server: &Server,
    command: &str,
    concurrency: usize,
    count: usize,
) -> anyhow::Result<(f64, f64)> {
    let config = client::config();
    let remaining = Arc::new(AtomicUsize::new(count));
    let cpu_before = procs::cpu_seconds(server.child.id());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (config, remaining, key, user) = (
            config.clone(),
            remaining.clone(),
            setup.key.clone(),
            setup.user.clone(),
        );
        let (addr, command) = (server.ssh, command.to_owned());
        tasks.push(tokio::spawn(async move {
            while remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                client::handshake(config.clone(), addr, &user, &key, &command).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // sshd's per-connection processes are counted once reaped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = procs::cpu_seconds(server.child.id()) - cpu_before;
    Ok((count as f64 / elapsed, cpu / count as f64 * 1000.0))
}

/// keygate runs this many times the handshakes sshd runs at each setting.
pub const KEYGATE_HANDSHAKE_FACTOR: usize = 10;

/// Handshake rates, keygate and sshd alternating at each concurrency.
pub async fn handshakes(setup: &Setup, scale: &Scale) -> anyhow::Result<Vec<HandshakeRun>> {
    let keygate = setup.keygate(None, &["--max-startups", "1000"])?;
    let sshd = setup.sshd()?;
    let mut runs = Vec::new();
    for &(concurrency, count) in &scale.handshakes {
        // keygate is far faster: more handshakes give it a measurable run.
        let keygate_count = count * KEYGATE_HANDSHAKE_FACTOR;
        let (keygate_rate, keygate_cpu_ms) =
            run_handshakes(setup, &keygate, "land-worker", concurrency, keygate_count).await?;
        let (sshd_rate, sshd_cpu_ms) =
            run_handshakes(setup, &sshd, "true", concurrency, count).await?;
        eprintln!(
            "  {concurrency:>2} clients: keygate {keygate_rate:.0}/s ({keygate_cpu_ms:.2} ms CPU each), sshd {sshd_rate:.1}/s ({sshd_cpu_ms:.2} ms CPU each)"
        );
        runs.push(HandshakeRun {
            concurrency,
            count,
            keygate_rate,
            sshd_rate,
            keygate_cpu_ms,
            sshd_cpu_ms,
        });
    }
    Ok(runs)
}
