//! Throughput through a reverse tunnel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use super::{Setup, median};
use crate::Scale;

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
        let (keygate_rate, sshd_rate, direct) = (median(k), median(s), median(d));
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
