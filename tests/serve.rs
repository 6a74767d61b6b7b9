//! `keygate serve` against real SSH clients: OpenSSH's `ssh` and russh.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::russh_client::Client;
use crate::support::{
    Gateway, Key, TempDir, echo_server, keygen, teams_yaml, wait_until, worker_json,
};

const LONG: Duration = Duration::from_secs(20);

struct Setup {
    dir: TempDir,
    a: Key,
    b: Key,
    global: Key,
    stranger: Key,
}

fn setup() -> Setup {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let b = keygen(dir.path(), "b", "ecdsa");
    let global = keygen(dir.path(), "global", "rsa");
    let stranger = keygen(dir.path(), "stranger", "ed25519");
    std::fs::write(
        dir.path().join("teams.yml"),
        teams_yaml(&[("team-a", &[&a]), ("team-b", &[&b])]),
    )
    .unwrap();
    std::fs::write(dir.path().join("global_keys"), &global.line).unwrap();
    Setup {
        dir,
        a,
        b,
        global,
        stranger,
    }
}

fn start(s: &Setup, extra: &[&str]) -> Gateway {
    let teams = s.dir.path().join("teams.yml");
    let global = s.dir.path().join("global_keys");
    let mut args = vec![
        "--team-authorized-keys-file",
        teams.to_str().unwrap(),
        "--authorized-keys",
        global.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Gateway::start(s.dir.path(), &args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn team_key_registers_for_its_team_only() {
    let s = setup();
    let gw = start(&s, &[]);
    let worker = gw.spawn_worker(
        &s.a,
        &[],
        "forward-worker",
        &worker_json("wa", Some("team-a")),
    );
    assert!(worker.registered());
    assert!(
        worker
            .next_line(LONG)
            .is_some_and(|l| l == r#"{"event":"heartbeated"}"#)
    );
    let workers = gw.workers(Some("team-a"));
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0]["name"], "wa");
    assert_eq!(workers[0]["state"], "running");
    assert_eq!(workers[0]["platform"], "linux");
    let fingerprint = s.a.line.clone();
    assert!(
        workers[0]["key_fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("SHA256:"),
        "{fingerprint}"
    );
    assert!(gw.workers(Some("team-b")).is_empty());

    let out = gw.worker_command(&s.a, "forward-worker", &worker_json("wb", Some("team-b")));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("keygate: key SHA256:")
            && err.contains("is not authorized for team team-b"),
        "{err}"
    );
    assert!(!gw.worker_names().contains(&"wb".to_owned()));
    assert!(
        gw.metric(
            "keygate_decisions_total",
            r#"action="register",result="deny""#
        ) >= 1.0
    );
}

#[test]
fn global_key_registers_for_any_team_and_all_teams() {
    let s = setup();
    let gw = start(&s, &[]);
    let w1 = gw.spawn_worker(
        &s.global,
        &[],
        "forward-worker",
        &worker_json("g1", Some("team-b")),
    );
    let w2 = gw.spawn_worker(&s.global, &[], "forward-worker", &worker_json("g2", None));
    assert!(w1.registered() && w2.registered());
    let names = gw.worker_names();
    assert!(
        names.contains(&"g1".to_owned()) && names.contains(&"g2".to_owned()),
        "{names:?}"
    );
    // Only global keys may register for all teams.
    let out = gw.worker_command(&s.b, "forward-worker", &worker_json("b-global", None));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a global key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unknown_key_fails_authentication() {
    let s = setup();
    let gw = start(&s, &[]);
    let out = gw.worker_command(
        &s.stranger,
        "forward-worker",
        &worker_json("x", Some("team-a")),
    );
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("Permission denied (publickey)"),
        "{}",
        stderr(&out)
    );
    assert!(
        gw.metric(
            "keygate_decisions_total",
            r#"action="connect",result="deny""#
        ) >= 1.0
    );
}

#[test]
fn teams_cannot_touch_each_others_workers() {
    let s = setup();
    let gw = start(&s, &[]);
    let worker = gw.spawn_worker(
        &s.a,
        &[],
        "forward-worker",
        &worker_json("wa", Some("team-a")),
    );
    assert!(worker.registered());
    // Team b's key claims the worker is team b's: the registered team counts.
    for command in ["land-worker", "retire-worker", "delete-worker"] {
        let out = gw.worker_command(&s.b, command, &worker_json("wa", Some("team-b")));
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(
            stderr(&out).contains("not authorized for team team-a"),
            "{command}: {}",
            stderr(&out)
        );
    }
    assert_eq!(gw.workers(None)[0]["state"], "running");

    let out = gw.worker_command(&s.a, "land-worker", &worker_json("wa", Some("team-a")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(gw.workers(None)[0]["state"], "landing");
    let out = gw.worker_command(&s.a, "retire-worker", &worker_json("wa", Some("team-a")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(gw.workers(None)[0]["state"], "retiring");
    let out = gw.worker_command(&s.a, "delete-worker", &worker_json("wa", Some("team-a")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(gw.worker_names().is_empty());
    let out = gw.worker_command(&s.a, "land-worker", &worker_json("nobody", Some("team-a")));
    assert!(
        stderr(&out).contains("no worker named nobody"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reverse_tunnel_reaches_the_worker() {
    let s = setup();
    let gw = start(&s, &[]);
    let echo = echo_server();
    let forward = format!("127.0.0.1:7777:127.0.0.1:{}", echo.port());
    let bc_forward = format!("127.0.0.1:7788:127.0.0.1:{}", echo.port());
    let mut worker = gw.spawn_worker(
        &s.a,
        &["-R", &forward, "-R", &bc_forward],
        "forward-worker --garden 127.0.0.1:7777 --baggageclaim 127.0.0.1:7788",
        &worker_json("tunnelled", Some("team-a")),
    );
    assert!(worker.registered());
    let record = gw.workers(None).remove(0);
    let addr: std::net::SocketAddr = record["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 7777);
    let bc = record["baggageclaim_url"].as_str().unwrap();
    assert!(
        bc.starts_with("http://127.0.0.1:") && !bc.ends_with(":7788"),
        "{bc}"
    );
    assert_eq!(gw.metric("keygate_tunnels_open", ""), 2.0);

    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(LONG)).unwrap();
    conn.write_all(b"hello through keygate\n").unwrap();
    let mut buf = [0u8; 22];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello through keygate\n");
    drop(conn);

    worker.kill();
    assert!(wait_until(LONG, || gw.worker_names().is_empty()));
    assert!(
        wait_until(LONG, || TcpStream::connect(addr).is_err()),
        "tunnel listener still open"
    );
    assert!(wait_until(LONG, || gw.metric("keygate_tunnels_open", "") == 0.0));
}

#[test]
fn forward_worker_needs_the_named_tunnel() {
    let s = setup();
    let gw = start(&s, &[]);
    let out = gw.worker_command(
        &s.a,
        "forward-worker --garden 127.0.0.1:7777",
        &worker_json("w", Some("team-a")),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no reverse tunnel for --garden 127.0.0.1:7777"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn shells_and_unknown_commands_are_refused_with_a_reason() {
    let s = setup();
    let gw = start(&s, &[]);
    let out = gw.worker_command(&s.a, "bash -c id", "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("keygate: unknown command `bash`"),
        "{}",
        stderr(&out)
    );
    let mut cmd = gw.ssh(&s.a);
    cmd.args(["-T", "worker@127.0.0.1"]);
    let out = crate::support::run(cmd, b"", LONG);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no shell here"), "{}", stderr(&out));
    let out = gw.worker_command(&s.a, "forward-worker", "{not json");
    assert!(
        stderr(&out).contains("invalid worker JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn rsa_sha1_signatures_are_refused_unless_allowed() {
    let s = setup();
    let sha1 = [
        "-o",
        "PubkeyAcceptedAlgorithms=ssh-rsa",
        "-o",
        "HostKeyAlgorithms=ssh-ed25519",
    ];
    let attempt = |gw: &Gateway| {
        let mut cmd = gw.ssh(&s.global);
        cmd.args(sha1).arg("worker@127.0.0.1").arg("forward-worker");
        crate::support::run(cmd, worker_json("r", Some("team-a")).as_bytes(), LONG)
    };
    let gw = start(&s, &[]);
    assert_eq!(attempt(&gw).status.code(), Some(255));
    // The same key signing with SHA-2 is fine.
    let mut worker = gw.spawn_worker(
        &s.global,
        &[],
        "forward-worker",
        &worker_json("r2", Some("team-a")),
    );
    assert!(worker.registered());
    worker.kill();
    drop(gw);
    let gw = start(&s, &["--allow-ssh-rsa-sha1"]);
    let mut cmd = gw.ssh(&s.global);
    cmd.args(sha1).arg("worker@127.0.0.1").arg("land-worker");
    let out = crate::support::run(cmd, worker_json("none", Some("team-a")).as_bytes(), LONG);
    // Authenticated: the command itself runs (and finds no such worker).
    assert!(
        stderr(&out).contains("no worker named none"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn idle_unauthenticated_connections_cannot_lock_workers_out() {
    let s = setup();
    let gw = start(&s, &["--max-startups", "10", "--login-grace-time", "60s"]);
    let mut idle = Vec::new();
    for i in 0..60 {
        let mut conn = TcpStream::connect(gw.ssh).unwrap();
        if i % 2 == 0 {
            // Half of them get as far as sending a version line.
            let _ = conn.write_all(b"SSH-2.0-idle\r\n");
        }
        idle.push(conn);
    }
    let worker = gw.spawn_worker(
        &s.a,
        &[],
        "forward-worker",
        &worker_json("survivor", Some("team-a")),
    );
    assert!(worker.registered());
    assert!(gw.metric("keygate_preauth_dropped_total", r#"reason="max_startups""#) >= 50.0);
}

#[test]
fn login_grace_time_closes_silent_connections() {
    let s = setup();
    let gw = start(&s, &["--login-grace-time", "1s"]);
    let mut conn = TcpStream::connect(gw.ssh).unwrap();
    conn.set_read_timeout(Some(LONG)).unwrap();
    let mut buf = Vec::new();
    let started = std::time::Instant::now();
    let _ = conn.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "connection stayed open"
    );
    assert!(String::from_utf8_lossy(&buf).starts_with("SSH-2.0-keygate"));
    assert!(wait_until(LONG, || gw.metric(
        "keygate_preauth_dropped_total",
        r#"reason="grace_time""#
    ) >= 1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn russh_client_registers_and_sees_refusals() {
    let s = setup();
    let gw = start(&s, &[]);
    let client = Client::connect(gw.ssh, &s.b.private, "worker")
        .await
        .unwrap();
    let payload = worker_json("russh-worker", Some("team-b"));
    let registered = client
        .exec(
            "forward-worker",
            payload.as_bytes(),
            Some("registered"),
            LONG,
        )
        .await;
    assert_eq!(registered.stdout.trim(), r#"{"event":"registered"}"#);
    let names = tokio::task::spawn_blocking(move || (gw.worker_names(), gw))
        .await
        .unwrap();
    assert_eq!(names.0, ["russh-worker"]);
    let refused = client.exec("sweep-containers", b"{}", None, LONG).await;
    assert_eq!(refused.status, Some(1));
    assert!(
        refused.stderr.contains("not supported by keygate"),
        "{}",
        refused.stderr
    );

    let denied = Client::connect(names.1.ssh, &s.stranger.private, "worker").await;
    assert!(denied.is_err());
}
