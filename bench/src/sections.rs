//! The measured sections. Each starts its own servers and stops them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use russh::keys::PrivateKey;
use tokio::sync::Semaphore;

use crate::Scale;
use crate::client;
use crate::procs::{self, Server};
use keygate_bench::dataset;

/// Keys and files shared by every section.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub key: Arc<PrivateKey>,
    pub key_path: PathBuf,
    pub key_pub: String,
    pub user: String,
}

impl Setup {
    pub fn new() -> anyhow::Result<Setup> {
        let dir = tempfile::tempdir()?;
        let key_path = dir.path().join("client_key");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f"])
            .arg(&key_path)
            .status()
            .context("ssh-keygen (Debian's openssh-client) is needed")?;
        anyhow::ensure!(status.success(), "ssh-keygen failed");
        let key_pub = std::fs::read_to_string(key_path.with_extension("pub"))?
            .trim()
            .to_owned();
        let key = Arc::new(russh::keys::load_secret_key(&key_path, None)?);
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| whoami());
        std::fs::write(dir.path().join("global_keys"), format!("{key_pub}\n"))?;
        Ok(Setup {
            dir,
            key,
            key_path,
            key_pub,
            user,
        })
    }

    /// keygate's arguments: the bench key is global, plus `yaml` if given.
    fn keygate_args(&self, yaml: Option<&std::path::Path>, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--authorized-keys".to_owned(),
            self.dir.path().join("global_keys").display().to_string(),
        ];
        if let Some(yaml) = yaml {
            args.push("--team-authorized-keys-file".into());
            args.push(yaml.display().to_string());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    pub fn keygate(
        &self,
        yaml: Option<&std::path::Path>,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        procs::start_keygate(self.dir.path(), &self.keygate_args(yaml, extra))
    }

    pub fn sshd(&self) -> anyhow::Result<Server> {
        procs::start_sshd(self.dir.path(), &self.key_pub)
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "root".into())
}

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

async fn run_handshakes(
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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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

/// Tunnel throughput, bytes per second, for one cipher.
#[derive(Debug, Clone)]
pub struct TunnelRun {
    /// `None`: the OpenSSH client's default choice.
    pub cipher: Option<&'static str>,
    pub bytes: u64,
    pub keygate: f64,
    pub sshd: f64,
    pub direct: f64,
}

/// A sink on loopback that reads everything and reports each stream's
/// byte count.
fn sink() -> anyhow::Result<(SocketAddr, std::sync::mpsc::Receiver<u64>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = vec![0u8; 256 << 10];
                let mut total = 0u64;
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
                let _ = tx.send(total);
            });
        }
    });
    Ok((addr, rx))
}

/// Push `bytes` into `target`; seconds until the sink has them all.
fn push(
    target: SocketAddr,
    bytes: u64,
    done: &std::sync::mpsc::Receiver<u64>,
) -> anyhow::Result<f64> {
    let chunk = vec![0x5au8; 256 << 10];
    let started = Instant::now();
    let mut stream = TcpStream::connect(target)?;
    let mut sent = 0u64;
    while sent < bytes {
        let n = chunk.len().min((bytes - sent) as usize);
        stream.write_all(&chunk[..n])?;
        sent += n as u64;
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    let received = done.recv_timeout(Duration::from_secs(300))?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        received == bytes,
        "sink received {received} of {bytes} bytes"
    );
    Ok(elapsed)
}

/// `ssh -N -R 127.0.0.1:0:SINK` to `server`; returns the gateway-side port.
fn reverse_tunnel(
    setup: &Setup,
    server: SocketAddr,
    sink: SocketAddr,
    cipher: Option<&str>,
) -> anyhow::Result<(std::process::Child, u16)> {
    let mut child = Command::new("ssh")
        .args(["-N", "-p", &server.port().to_string(), "-i"])
        .arg(&setup.key_path)
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ExitOnForwardFailure=yes",
            "-o",
            "KexAlgorithms=curve25519-sha256",
        ])
        .args(
            cipher
                .map(|c| ["-c", c])
                .unwrap_or_default()
                .iter()
                .filter(|a| !a.is_empty()),
        )
        .arg("-R")
        .arg(format!("127.0.0.1:0:{sink}"))
        .arg(format!("{}@127.0.0.1", setup.user))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let Some(Ok(line)) = lines.next() else {
            let _ = child.kill();
            bail!("ssh exited before allocating a port");
        };
        if let Some(rest) = line.strip_prefix("Allocated port ") {
            let port = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .context("bad port line")?;
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, port));
        }
    }
}

/// Rounds of each tunnel measurement; the median is reported. The servers
/// alternate within each round, so a noisy neighbour hits both alike.
const TUNNEL_ROUNDS: usize = 3;

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Throughput through a reverse tunnel, keygate against sshd, with a
/// direct loopback copy as the ceiling: with the OpenSSH client's default
/// cipher (chacha20-poly1305 against both servers) and with AES-256-GCM.
pub fn tunnel(setup: &Setup, scale: &Scale) -> anyhow::Result<Vec<TunnelRun>> {
    let bytes = scale.tunnel_bytes;
    let (sink_addr, done) = sink()?;
    let keygate = setup.keygate(None, &[])?;
    let sshd = setup.sshd()?;
    let mut runs = Vec::new();
    for cipher in [None, Some("aes256-gcm@openssh.com")] {
        let (mut k_child, k_port) = reverse_tunnel(setup, keygate.ssh, sink_addr, cipher)?;
        let (mut s_child, s_port) = reverse_tunnel(setup, sshd.ssh, sink_addr, cipher)?;
        let (mut k, mut s, mut d) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..TUNNEL_ROUNDS {
            d.push(bytes as f64 / push(sink_addr, bytes, &done)?);
            k.push(bytes as f64 / push(SocketAddr::from(([127, 0, 0, 1], k_port)), bytes, &done)?);
            s.push(bytes as f64 / push(SocketAddr::from(([127, 0, 0, 1], s_port)), bytes, &done)?);
        }
        let _ = k_child.kill();
        let _ = s_child.kill();
        let (keygate_rate, sshd_rate, direct) = (median_of(k), median_of(s), median_of(d));
        let mib = |r: f64| r / (1 << 20) as f64;
        eprintln!(
            "  {} MiB, cipher {}: keygate {:.0} MiB/s, sshd {:.0} MiB/s, direct {:.0} MiB/s (medians of {TUNNEL_ROUNDS})",
            bytes >> 20,
            cipher.unwrap_or("default"),
            mib(keygate_rate),
            mib(sshd_rate),
            mib(direct)
        );
        runs.push(TunnelRun {
            cipher,
            bytes,
            keygate: keygate_rate,
            sshd: sshd_rate,
            direct,
        });
    }
    Ok(runs)
}
