//! The servers under test: `keygate serve` and OpenSSH's `sshd`, each
//! started on a loopback port with its own files in a temporary directory,
//! and the /proc readings taken of them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub ssh: SocketAddr,
    pub admin: Option<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `keygate` binary next to this one.
pub fn keygate_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("keygate");
    if !bin.exists() {
        bail!(
            "{} not found; build it with `cargo build --release`",
            bin.display()
        );
    }
    Ok(bin)
}

/// Start `keygate serve` on loopback with `args`.
pub fn start_keygate(dir: &Path, args: &[String]) -> anyhow::Result<Server> {
    let mut child = Command::new(keygate_bin()?)
        .args([
            "--log-format",
            "json",
            "--log",
            "warn,keygate::commands=info",
            "serve",
        ])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--host-key")
        .arg(dir.join("keygate_host_key"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to start keygate")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let (ssh, admin) = loop {
        let Some(Ok(line)) = lines.next() else {
            bail!("keygate exited before listening")
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["message"] == "listening" {
            let ssh: SocketAddr = event["ssh.addr"].as_str().unwrap_or_default().parse()?;
            let admin: SocketAddr = event["admin.addr"].as_str().unwrap_or_default().parse()?;
            break (ssh, admin);
        }
    };
    // Keep draining stderr so the gateway never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(Server {
        child,
        ssh,
        admin: Some(admin),
    })
}

/// Start OpenSSH's sshd on a free loopback port, accepting `client_pub`
/// for the current user, with curve25519-sha256 and an ed25519 host key.
pub fn start_sshd(dir: &Path, client_pub: &str) -> anyhow::Result<Server> {
    let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let sshd =
        sshd.context("sshd not found; install Debian's openssh-server (scripts/bench.sh does)")?;
    let host_key = dir.join("sshd_host_ed25519_key");
    if !host_key.exists() {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()?;
        anyhow::ensure!(status.success(), "ssh-keygen failed");
    }
    let authorized = dir.join("sshd_authorized_keys");
    std::fs::write(&authorized, format!("{client_pub}\n"))?;
    let port = free_port()?;
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nKexAlgorithms curve25519-sha256\n\
             HostKeyAlgorithms ssh-ed25519\nAllowTcpForwarding yes\nMaxStartups 5000\nMaxSessions 10\n\
             UseDNS no\nPrintMotd no\nLogLevel ERROR\n",
            host_key.display(),
            dir.join("sshd.pid").display(),
            authorized.display()
        ),
    )?;
    std::fs::create_dir_all("/run/sshd").ok();
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start sshd")?;
    let ssh: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(ssh).is_ok() {
            return Ok(Server {
                child,
                ssh,
                admin: None,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("sshd did not start listening on {ssh}")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds used by `pid` and its reaped children.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // utime, stime, cutime, cstime are fields 14-17; `rest` starts at field 3.
    let sum: f64 = fields.get(11..15).map_or(0.0, |f| f.iter().sum());
    sum / clock_ticks()
}

/// Proportional set size of `pid`, in KiB.
pub fn pss_kib(pid: u32) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return 0;
    };
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// `pid` and every process descended from it.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1)?.parse().ok());
            if let Some(ppid) = ppid {
                parents.push((child, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while let Some(&p) = tree.get(i) {
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// Total PSS of a process tree, in KiB.
pub fn tree_pss_kib(pid: u32) -> u64 {
    process_tree(pid).into_iter().map(pss_kib).sum()
}
