//! Memory per connected worker.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use super::Setup;
use crate::Scale;
use crate::client;
use crate::procs::{self};

/// Memory figures, in KiB.
#[derive(Debug, Clone)]
pub struct MemoryRun {
    pub keygate: Vec<(usize, f64)>,
    pub sshd_workers: usize,
    pub sshd_per_worker: f64,
}

async fn hold_many(
    setup: &Setup,
    addr: SocketAddr,
    count: usize,
    register: bool,
) -> anyhow::Result<Vec<client::HeldWorker>> {
    let config = client::config();
    let gate = Arc::new(Semaphore::new(48));
    let mut tasks = Vec::new();
    for i in 0..count {
        let (config, key, user, gate) = (
            config.clone(),
            setup.key.clone(),
            setup.user.clone(),
            gate.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let name = format!("worker-{i}");
            let hold = client::hold_worker(config, addr, &user, &key, &name, register);
            tokio::time::timeout(Duration::from_secs(60), hold)
                .await
                .context("worker connection timed out")?
        }));
    }
    let mut held = Vec::with_capacity(count);
    for task in tasks {
        held.push(task.await??);
    }
    Ok(held)
}

/// The soft limit on open files, as `scripts/bench.sh` raised it.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(1024)
}

/// Memory per connected worker: keygate at each size, sshd at its size.
pub async fn memory(setup: &Setup, scale: &Scale) -> anyhow::Result<MemoryRun> {
    let mut keygate_figures = Vec::new();
    // keygate holds three descriptors per worker (the connection and two
    // tunnel listeners) and this process one; stay inside the limit.
    let limit = open_files_limit();
    let fit = limit.saturating_sub(500) / 3;
    for &wanted in &scale.workers {
        let count = wanted.min(fit);
        if count < wanted {
            eprintln!(
                "  {wanted} workers need {} descriptors; the limit is {limit}: measuring {count}",
                wanted * 3
            );
        }
        let keygate = setup.keygate(None, &["--max-startups", "1000", "--max-forwards", "2"])?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = procs::pss_kib(keygate.child.id());
        let held = hold_many(setup, keygate.ssh, count, true).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = procs::pss_kib(keygate.child.id());
        let per = (after.saturating_sub(before)) as f64 / count as f64;
        eprintln!(
            "  keygate, {count} workers: {before} KiB idle, {after} KiB held, {per:.1} KiB each"
        );
        keygate_figures.push((count, per));
        drop(held);
    }
    let sshd = setup.sshd()?;
    let before = procs::tree_pss_kib(sshd.child.id());
    let count = scale.sshd_workers;
    let held = hold_many(setup, sshd.ssh, count, false).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tree = procs::process_tree(sshd.child.id());
    let after = procs::tree_pss_kib(sshd.child.id());
    let sshd_per_worker = (after.saturating_sub(before)) as f64 / count as f64;
    eprintln!(
        "  sshd, {count} connections: {} processes, {after} KiB, {sshd_per_worker:.1} KiB each",
        tree.len()
    );
    drop(held);
    Ok(MemoryRun {
        keygate: keygate_figures,
        sshd_workers: count,
        sshd_per_worker,
    })
}
