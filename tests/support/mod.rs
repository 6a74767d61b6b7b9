//! Helpers shared by every integration test: keys, a running gateway, SSH
//! and HTTP clients. All network traffic stays on loopback, and every wait
//! is bounded.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod russh_client;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;

/// The `keygate` binary under test. Its compiled-module cache is kept under
/// the build's target directory, not in the user's home.
pub fn keygate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.env(
        "KEYGATE_POLICY_CACHE",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("policy-cache"),
    );
    cmd
}

/// A policy component built by the gateway's build script:
/// `yaml_teams`, `team_rules` or `faulty`.
pub fn policy_wasm(name: &str) -> PathBuf {
    Path::new(env!("KEYGATE_POLICY_DIR")).join(format!("keygate_policy_{name}.wasm"))
}

/// A key pair made with ssh-keygen.
#[derive(Debug, Clone)]
pub struct Key {
    /// Private key file, for `ssh -i`.
    pub private: PathBuf,
    /// Public key file.
    pub public: PathBuf,
    /// The public key line.
    pub line: String,
}

/// Make a key pair of `kind` (`ed25519`, `ecdsa`, `rsa`) named `name` in `dir`.
pub fn keygen(dir: &Path, name: &str, kind: &str) -> Key {
    let private = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&private)
        .status()
        .expect("ssh-keygen must be installed (Debian's openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    let public = private.with_extension("pub");
    let line = std::fs::read_to_string(&public).unwrap().trim().to_owned();
    Key {
        private,
        public,
        line,
    }
}

/// A YAML team-key file body: `teams` of (team, keys).
pub fn teams_yaml(teams: &[(&str, &[&Key])]) -> String {
    let mut out = String::new();
    for (team, keys) in teams {
        out.push_str(&format!("- team: {team}\n  ssh_keys:\n"));
        for key in *keys {
            out.push_str(&format!("  - {}\n", key.line));
        }
    }
    out
}

/// Write `contents` to `path` atomically (write a temporary file, rename).
pub fn write_atomic(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Poll `check` every 50 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a command with `stdin`, killing it after `limit`.
pub fn run(mut cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A `keygate serve` process on loopback ports, stopped when dropped.
pub struct Gateway {
    child: Child,
    /// The SSH listener.
    pub ssh: SocketAddr,
    /// The admin API.
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Gateway {
    /// Start `keygate serve` with `args` (policy inputs and such). The
    /// host key lives in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Gateway {
        let mut cmd = keygate();
        cmd.args([
            "--log-format",
            "json",
            "--log",
            "keygate=debug,info",
            "serve",
        ])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--host-key")
        .arg(dir.join("host_key"))
        .args(["--heartbeat-interval", "200ms"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start keygate serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("keygate: {line}");
                    continue;
                };
                if event["message"] == "listening" {
                    let _ = tx.send((event["ssh.addr"].clone(), event["admin.addr"].clone()));
                }
                sink.lock().unwrap().push(event);
            }
        });
        let Ok((ssh, admin)) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("keygate serve did not start: {:?}", logs.lock().unwrap());
        };
        let ssh = ssh.as_str().unwrap().parse().unwrap();
        let admin = admin.as_str().unwrap().parse().unwrap();
        Gateway {
            child,
            ssh,
            admin,
            logs,
        }
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGHUP.
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Log events so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.lock().unwrap().clone()
    }

    /// Wait for a log event matching `check`.
    pub fn wait_for_log(
        &self,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> bool {
        wait_until(limit, || self.logs.lock().unwrap().iter().any(&check))
    }

    /// Count log events whose message is `message`.
    pub fn count_logs(&self, message: &str) -> usize {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["message"] == message)
            .count()
    }

    /// `GET path` on the admin API: (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        http(self.admin, "GET", path)
    }

    /// `POST path` on the admin API: (status, body).
    pub fn post(&self, path: &str) -> (u16, String) {
        http(self.admin, "POST", path)
    }

    /// `GET /api/v1/workers` (optionally for one team), parsed.
    pub fn workers(&self, team: Option<&str>) -> Vec<serde_json::Value> {
        let path = match team {
            Some(t) => format!("/api/v1/workers?team={t}"),
            None => "/api/v1/workers".to_owned(),
        };
        let (status, body) = self.get(&path);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Names of registered workers.
    pub fn worker_names(&self) -> Vec<String> {
        self.workers(None)
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `GET /status`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.get("/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A metric's value, summed over label sets that contain `labels`.
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// An `ssh` command to this gateway with `key`, ready for arguments.
    pub fn ssh(&self, key: &Key) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(["-p", &self.ssh.port().to_string(), "-i"])
            .arg(&key.private)
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .args(["-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"])
            .args(["-o", "ConnectTimeout=10", "-o", "ExitOnForwardFailure=yes"]);
        cmd
    }

    /// Run a worker command over OpenSSH: `command` with `json` on stdin.
    pub fn worker_command(&self, key: &Key, command: &str, json: &str) -> Output {
        let mut cmd = self.ssh(key);
        cmd.arg("worker@127.0.0.1").arg(command);
        run(cmd, json.as_bytes(), Duration::from_secs(20))
    }

    /// Start a long-lived `forward-worker` over OpenSSH, with extra ssh
    /// arguments (such as `-R`). Its stdout lines arrive on the receiver.
    pub fn spawn_worker(&self, key: &Key, extra: &[&str], command: &str, json: &str) -> Worker {
        let mut cmd = self.ssh(key);
        cmd.args(extra).arg("worker@127.0.0.1").arg(command);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(json.as_bytes()).unwrap();
        drop(stdin);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker { child, lines: rx }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for event in self.logs.lock().unwrap().iter() {
                eprintln!("keygate log: {event}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A worker process (OpenSSH `ssh` running `forward-worker`).
pub struct Worker {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Worker {
    /// Wait for the next stdout line.
    pub fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// Wait until the worker prints `{"event":"registered"}`.
    pub fn registered(&self) -> bool {
        self.next_line(Duration::from_secs(20))
            .is_some_and(|l| l.contains("registered"))
    }

    /// Whether the ssh process has exited, waiting up to `limit`.
    pub fn exited_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the worker wrote on stderr (after it exits).
    pub fn stderr(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut out);
        }
        out
    }

    /// Stop the worker's ssh process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A minimal HTTP/1.0 request; returns (status, body).
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: keygate\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A worker JSON payload.
pub fn worker_json(name: &str, team: Option<&str>) -> String {
    serde_json::json!({
        "name": name,
        "team": team.unwrap_or(""),
        "platform": "linux",
        "tags": ["test"],
        "addr": "10.0.0.1:7777",
        "baggageclaim_url": "http://10.0.0.1:7788",
        "version": "2.5",
    })
    .to_string()
}

/// A TCP echo server on loopback; runs until the test process exits.
pub fn echo_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut reader = stream.try_clone().unwrap();
                let mut writer = stream;
                let _ = std::io::copy(&mut reader, &mut writer);
            });
        }
    });
    addr
}
