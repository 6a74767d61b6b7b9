//! Reload time and reloads under handshake load.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keygate_bench::dataset;

use super::{Setup, median};
use crate::Scale;
use crate::client;

/// Reload figures.
#[derive(Debug, Clone)]
pub struct ReloadRun {
    pub keys: usize,
    pub keygate_ms: f64,
    pub native_ms: f64,
    pub burst_reloads: usize,
    pub burst_handshakes: usize,
    pub burst_failures: usize,
}

fn http_post(addr: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    write!(stream, "POST {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Reload time for 100,000 keys against a native load, then reloads under
/// handshake load.
pub async fn reload(setup: &Setup, scale: &Scale) -> anyhow::Result<ReloadRun> {
    let (teams, per_team) = (10_000, 10);
    let yaml = setup.dir.path().join("teams.yml");
    let text = dataset::teams_yaml(teams, per_team);
    std::fs::write(&yaml, &text)?;
    let keygate = setup.keygate(Some(&yaml), &["--no-watch"])?;
    let admin = keygate.admin.context("keygate has an admin address")?;
    let mut keygate_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let code = tokio::task::spawn_blocking(move || http_post(admin, "/reload")).await??;
        anyhow::ensure!(code == 200, "reload failed with HTTP {code}");
        keygate_times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let input = keygate_policy_sdk::Input {
        name: format!("team-authorized-keys-file:{}", yaml.display()),
        data: text.into_bytes(),
    };
    let mut native_times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let loaded = keygate_policy_yaml_teams::Index::load(std::slice::from_ref(&input));
        anyhow::ensure!(loaded.is_ok(), "native load failed");
        native_times.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(loaded);
    }
    let (keygate_ms, native_ms) = (median(keygate_times), median(native_times));
    eprintln!("  100,000 keys: keygate reload {keygate_ms:.0} ms, native load {native_ms:.0} ms");

    // Reloads under handshake load: the bench key is global in every
    // version, so every handshake must succeed.
    let small = [dataset::teams_yaml(10, 2), dataset::teams_yaml(20, 2)];
    std::fs::write(&yaml, &small[0])?;
    http_post(admin, "/reload")?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let config = client::config();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (config, key, user, addr, stop) = (
            config.clone(),
            setup.key.clone(),
            setup.user.clone(),
            keygate.ssh,
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0usize, 0usize);
            while !stop.load(Ordering::SeqCst) {
                match client::handshake(config.clone(), addr, &user, &key, "land-worker").await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        eprintln!("  handshake failed during reloads: {e:#}");
                        failed += 1;
                    }
                }
            }
            (ok, failed)
        }));
    }
    let reloads = scale.reloads;
    let yaml_path = yaml.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        for i in 0..reloads {
            std::fs::write(&yaml_path, &small[i % 2])?;
            let code = http_post(admin, "/reload")?;
            anyhow::ensure!(code == 200, "reload {i} failed with HTTP {code}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })
    .await??;
    stop.store(true, Ordering::SeqCst);
    let (mut handshakes, mut failures) = (0, 0);
    for c in clients {
        let (ok, failed) = c.await?;
        handshakes += ok + failed;
        failures += failed;
    }
    eprintln!("  {reloads} reloads under load: {handshakes} handshakes, {failures} failed");
    Ok(ReloadRun {
        keys: (teams * per_team) as usize,
        keygate_ms,
        native_ms,
        burst_reloads: reloads,
        burst_handshakes: handshakes,
        burst_failures: failures,
    })
}
