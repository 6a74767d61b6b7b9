//! The team-rules example policy, `policies/team-rules`, through the real
//! `keygate`: its shipped cases under `keygate policy test`, a faulty rules
//! file under `keygate check`, and OpenSSH workers under `keygate serve`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{Gateway, Key, TempDir, keygate, keygen, policy_wasm, run, worker_json};

fn testdata(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/team-rules/testdata")
        .join(file)
}

/// `keygate ARGS --policy TEAM-RULES --policy-input INPUT`: exit code,
/// stdout and stderr.
fn keygate_with(args: &[&str], input: &Path) -> (i32, String, String) {
    let mut cmd = keygate();
    cmd.args(args)
        .arg("--policy")
        .arg(policy_wasm("team_rules"))
        .arg("--policy-input")
        .arg(input);
    let out = run(cmd, b"", Duration::from_secs(120));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn team_rules_pass_their_shipped_cases() {
    let (code, stdout, stderr) = keygate_with(
        &["policy", "test", testdata("cases.yaml").to_str().unwrap()],
        &testdata("rules.yml"),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("pass  from its expiry date on the key is refused"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("24 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn team_rules_faults_fail_the_load_with_every_line() {
    let dir = TempDir::new().unwrap();
    let rules = dir.path().join("rules.yml");
    let alice = std::fs::read_to_string(testdata("alice.pub")).unwrap();
    std::fs::write(
        &rules,
        format!(
            "keys:\n- key: {}\n  owner: alice\n  expires: 2027-13-01\n  teams: [main]\n\
             - key: {}\n  owner: oncall\n  global: true\nteams:\n  main: {{workers: [\"main-[1]\"]}}\n",
            alice.trim(),
            std::fs::read_to_string(testdata("ops.pub")).unwrap().trim(),
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = keygate_with(&["check"], &rules);
    assert_ne!(code, 0, "{stdout}");
    // `keygate check` reports on stdout; either stream will do here.
    let output = stdout + &stderr;
    let path = rules.display();
    for fault in [
        format!("{path}:4: `expires`: invalid date `2027-13-01`"),
        format!("{path}:6: a global key needs `networks:`"),
        format!("{path}:10: worker pattern `main-[1]` of team main holds '['"),
    ] {
        assert!(output.contains(&fault), "{fault}\n{output}");
    }
}

/// A gateway serving the team-rules policy with one team key for `main`
/// (workers `main-*`), one global key for loopback and one global key for
/// 10.0.0.0/8 only.
struct Setup {
    /// Declared first so that it stops before the directory goes.
    gw: Gateway,
    team: Key,
    local: Key,
    remote: Key,
    _dir: TempDir,
}

fn serve() -> Setup {
    let dir = TempDir::new().unwrap();
    let team = keygen(dir.path(), "team", "ed25519");
    let local = keygen(dir.path(), "local", "ed25519");
    let remote = keygen(dir.path(), "remote", "ecdsa");
    let rules = dir.path().join("rules.yml");
    std::fs::write(
        &rules,
        format!(
            "keys:\n\
             - {{key: {}, owner: dev@example.com, teams: [main]}}\n\
             - {{key: {}, owner: ops, global: true, networks: [127.0.0.0/8]}}\n\
             - {{key: {}, owner: remote-ops, global: true, networks: [10.0.0.0/8]}}\n\
             teams:\n  main:\n    workers: [\"main-*\"]\n",
            team.line, local.line, remote.line
        ),
    )
    .unwrap();
    let wasm = policy_wasm("team_rules");
    let args = [
        "--policy",
        wasm.to_str().unwrap(),
        "--policy-input",
        rules.to_str().unwrap(),
    ];
    let gw = Gateway::start(dir.path(), &args);
    Setup {
        gw,
        team,
        local,
        remote,
        _dir: dir,
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn team_rules_admit_only_matching_worker_names() {
    let s = serve();
    let worker = s.gw.spawn_worker(
        &s.team,
        &[],
        "forward-worker",
        &worker_json("main-1", Some("main")),
    );
    assert!(worker.registered());
    assert!(s.gw.worker_names().contains(&"main-1".to_owned()));

    let out = s.gw.worker_command(
        &s.team,
        "forward-worker",
        &worker_json("rogue-1", Some("main")),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("worker `rogue-1` matches none of team main's worker patterns: main-*"),
        "{err}"
    );
    assert!(!s.gw.worker_names().contains(&"rogue-1".to_owned()));
}

#[test]
fn team_rules_bind_global_keys_to_their_networks() {
    let s = serve();
    let worker = s.gw.spawn_worker(
        &s.local,
        &[],
        "forward-worker",
        &worker_json("everywhere", None),
    );
    assert!(worker.registered());

    let out =
        s.gw.worker_command(&s.remote, "forward-worker", &worker_json("elsewhere", None));
    assert_eq!(out.status.code(), Some(255), "{}", stderr(&out));
    assert!(
        s.gw.wait_for_log(Duration::from_secs(10), |e| {
            e["message"] == "decision"
                && e["reason"].as_str().is_some_and(|r| {
                    r.starts_with("client address 127.0.0.1 is outside the networks of global key")
                        && r.ends_with("(owner remote-ops): 10.0.0.0/8")
                })
        }),
        "{:?}",
        s.gw.logs()
    );
}
