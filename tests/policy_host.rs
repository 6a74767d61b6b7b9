//! The policy host, driven through keygate's library API with the real
//! policy components.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use keygate::domain::{KeyIdentity, Team, WorkerName};
use keygate::policy::{
    Action, DecisionRequest, LoadError, LoadedPolicy, Outcome, PolicyFault, PolicyInputs,
    PolicyLimits, PolicyRuntime, PolicySource, load_policy,
};

use crate::support::{Key, TempDir, keygen, policy_wasm, teams_yaml};

fn runtime() -> PolicyRuntime {
    let limits = PolicyLimits {
        decision_timeout: Duration::from_millis(200),
        init_timeout: Duration::from_secs(2),
        memory_bytes: 64 << 20,
        instances: 2,
        queue: 64,
    };
    PolicyRuntime::new(limits).unwrap()
}

fn yaml_inputs(dir: &TempDir, yaml: &str) -> PolicyInputs {
    let path = dir.path().join("teams.yml");
    std::fs::write(&path, yaml).unwrap();
    PolicyInputs {
        team_keys_file: Some(path),
        ..Default::default()
    }
}

fn request(action: Action, team: Option<&str>, key: &str) -> DecisionRequest {
    DecisionRequest {
        action,
        team: team.map(Team::new),
        user: "worker".into(),
        key: KeyIdentity::from_openssh(key).unwrap(),
        client: "127.0.0.1".parse().unwrap(),
        worker: Some(WorkerName::new("w1")),
        time: SystemTime::now(),
    }
}

fn decide(policy: &LoadedPolicy, action: Action, team: Option<&str>, key: &Key) -> Outcome {
    policy.decide_blocking(request(action, team, &key.line))
}

#[test]
fn embedded_policy_decides_across_teams() {
    let dir = TempDir::new().unwrap();
    let (a, b, g) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ecdsa"),
        keygen(dir.path(), "g", "rsa"),
    );
    let mut inputs = yaml_inputs(
        &dir,
        &teams_yaml(&[("team-a", &[&a, &b]), ("team-b", &[&b])]),
    );
    let global = dir.path().join("global_keys");
    std::fs::write(&global, format!("# global\n{}\n", g.line)).unwrap();
    inputs.authorized_keys = Some(global);
    let policy = load_policy(&runtime(), &PolicySource::Embedded, &inputs, None).unwrap();

    assert_eq!(decide(&policy, Action::Connect, None, &a), Outcome::Allow);
    assert_eq!(
        decide(&policy, Action::Register, Some("team-a"), &a),
        Outcome::Allow
    );
    let Outcome::Deny(reason) = decide(&policy, Action::Register, Some("team-b"), &a) else {
        panic!()
    };
    assert!(
        reason.contains("not authorized for team team-b"),
        "{reason}"
    );
    assert_eq!(
        decide(&policy, Action::Register, Some("team-b"), &b),
        Outcome::Allow
    );
    assert!(!decide(&policy, Action::Register, None, &b).is_allow());
    for team in [Some("team-a"), Some("team-b"), Some("nobody"), None] {
        assert_eq!(
            decide(&policy, Action::Register, team, &g),
            Outcome::Allow,
            "{team:?}"
        );
    }
    let stranger = keygen(dir.path(), "stranger", "ed25519");
    assert!(!decide(&policy, Action::Connect, None, &stranger).is_allow());
    assert!(
        policy.summary.iter().any(|l| l == "teams: 2 (3 team keys)"),
        "{:?}",
        policy.summary
    );
}

#[test]
fn key_options_are_enforced_inside_the_module() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let yaml = format!(
        "- team: t\n  ssh_keys:\n  - from=\"10.0.0.0/8,!10.9.9.9\",expiry-time=\"20300101Z\" {}\n",
        a.line
    );
    let policy = load_policy(
        &runtime(),
        &PolicySource::Embedded,
        &yaml_inputs(&dir, &yaml),
        None,
    )
    .unwrap();
    let at = |addr: &str, secs: u64| {
        let mut r = request(Action::Register, Some("t"), &a.line);
        r.client = addr.parse().unwrap();
        r.time = UNIX_EPOCH + Duration::from_secs(secs);
        policy.decide_blocking(r)
    };
    let before_expiry = 1_800_000_000;
    assert_eq!(at("10.1.2.3", before_expiry), Outcome::Allow);
    assert!(!at("10.9.9.9", before_expiry).is_allow());
    assert!(!at("127.0.0.1", before_expiry).is_allow());
    let Outcome::Deny(reason) = at("10.1.2.3", 1_893_456_000) else {
        panic!()
    };
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn bad_inputs_fail_the_load_naming_file_and_line() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let yaml = format!(
        "- team: t\n  ssh_keys:\n  - {}\n  - ssh-ed25519 AAAAtruncated\n- team: \"\"\n",
        a.line
    );
    let err = load_policy(
        &runtime(),
        &PolicySource::Embedded,
        &yaml_inputs(&dir, &yaml),
        None,
    )
    .unwrap_err();
    let LoadError::Init { message, .. } = &err else {
        panic!("{err}")
    };
    assert!(message.contains("teams.yml:4:"), "{message}");
    assert!(
        message.contains("teams.yml:5: empty team name"),
        "{message}"
    );

    let missing = PolicyInputs {
        authorized_keys: Some(dir.path().join("nope")),
        ..Default::default()
    };
    let err = load_policy(&runtime(), &PolicySource::Embedded, &missing, None).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

/// A syntactically valid ed25519 key derived from `n`.
fn synthetic_key(n: u32) -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(&n.to_be_bytes());
    key[4..8].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
    blob.extend_from_slice(&key);
    format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(blob)
    )
}

#[test]
fn ten_thousand_teams_and_a_hundred_thousand_keys() {
    let dir = TempDir::new().unwrap();
    let mut yaml = String::with_capacity(10 << 20);
    for team in 0..10_000u32 {
        yaml.push_str(&format!("- team: team-{team}\n  ssh_keys:\n"));
        for k in 0..10 {
            yaml.push_str(&format!(
                "  - {} key-{team}-{k}\n",
                synthetic_key(team * 10 + k)
            ));
        }
    }
    let inputs = yaml_inputs(&dir, &yaml);
    let limits = PolicyLimits {
        init_timeout: Duration::from_secs(60),
        memory_bytes: 512 << 20,
        ..PolicyLimits::default()
    };
    let runtime = PolicyRuntime::new(limits).unwrap();
    let started = Instant::now();
    let policy = load_policy(&runtime, &PolicySource::Embedded, &inputs, None).unwrap();
    eprintln!(
        "100,000 keys loaded in {:?} (init {:?})",
        started.elapsed(),
        policy.init_time
    );
    assert!(
        policy
            .summary
            .iter()
            .any(|l| l == "teams: 10000 (100000 team keys)"),
        "{:?}",
        policy.summary
    );
    for (team, key) in [(0, 0), (5_432, 54_329), (9_999, 99_990)] {
        let team_name = format!("team-{team}");
        let r = |t: &str| {
            policy.decide_blocking(request(Action::Register, Some(t), &synthetic_key(key)))
        };
        assert_eq!(r(&team_name), Outcome::Allow, "key {key} in {team_name}");
        assert!(!r("team-1").is_allow() || team == 1);
    }
    let unknown = policy.decide_blocking(request(Action::Connect, None, &synthetic_key(100_000)));
    assert!(!unknown.is_allow());
}

fn faulty(mode: &str, runtime: &PolicyRuntime) -> Result<LoadedPolicy, LoadError> {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("mode");
    std::fs::write(&path, mode).unwrap();
    let inputs = PolicyInputs {
        authorized_keys: Some(path),
        ..Default::default()
    };
    load_policy(
        runtime,
        &PolicySource::File(policy_wasm("faulty")),
        &inputs,
        None,
    )
}

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINF4cdaNFl+Uhb11GUEeH5KI4Gh/LfZMvRQWJSlIRpai";

#[test]
fn faults_are_denied_and_the_host_keeps_serving() {
    // The memory hog gets a small cap and a long deadline, so that it hits
    // the cap first even on a loaded machine; the loop gets a short one.
    let hog_runtime = PolicyRuntime::new(PolicyLimits {
        decision_timeout: Duration::from_secs(10),
        memory_bytes: 16 << 20,
        ..PolicyLimits::default()
    })
    .unwrap();
    let runtime = runtime();
    for (mode, kind, runtime) in [
        ("trap-team:bad", "trap", &runtime),
        ("loop-team:bad", "timeout", &runtime),
        ("hog-team:bad", "memory", &hog_runtime),
    ] {
        let policy = faulty(mode, runtime).unwrap();
        for round in 0..3 {
            let started = Instant::now();
            let outcome = policy.decide_blocking(request(Action::Register, Some("bad"), KEY));
            let elapsed = started.elapsed();
            let Outcome::Fault(fault) = &outcome else {
                panic!("{mode}: expected a fault, got {outcome:?}")
            };
            assert_eq!(fault.kind(), kind, "{mode}: {fault}");
            assert!(
                elapsed < Duration::from_secs(3),
                "{mode}: fault took {elapsed:?}"
            );
            // The same policy still answers other requests, on every round.
            let good = policy.decide_blocking(request(Action::Register, Some("good"), KEY));
            assert_eq!(good, Outcome::Allow, "{mode} round {round}");
        }
        assert_eq!(policy.faults(), 3, "{mode}");
    }
}

#[test]
fn trap_reports_the_panic_message() {
    let policy = faulty("trap", &runtime()).unwrap();
    let Outcome::Fault(PolicyFault::Trap(detail)) =
        policy.decide_blocking(request(Action::Connect, None, KEY))
    else {
        panic!()
    };
    assert!(detail.contains("trap requested"), "{detail}");
}

#[test]
fn init_faults_fail_the_load() {
    let runtime = runtime();
    let err = faulty("init-error", &runtime).unwrap_err();
    assert!(
        matches!(&err, LoadError::Init { message, .. } if message.contains("init error requested")),
        "{err}"
    );
    let err = faulty("init-trap", &runtime).unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::InitFault {
                fault: PolicyFault::Trap(_),
                ..
            }
        ),
        "{err}"
    );
    let started = Instant::now();
    let err = faulty("init-loop", &runtime).unwrap_err();
    assert!(
        matches!(
            &err,
            LoadError::InitFault {
                fault: PolicyFault::Timeout(_),
                ..
            }
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn modules_that_are_not_policies_are_refused() {
    let dir = TempDir::new().unwrap();
    let runtime = runtime();
    let load = |bytes: &[u8]| {
        let path = dir.path().join("policy.wasm");
        std::fs::write(&path, bytes).unwrap();
        load_policy(
            &runtime,
            &PolicySource::File(path),
            &PolicyInputs::default(),
            None,
        )
        .unwrap_err()
        .to_string()
    };
    let core = load(b"\0asm\x01\0\0\0");
    assert!(
        core.contains("core WebAssembly module, not a component"),
        "{core}"
    );
    let text = load(b"#!/bin/sh\necho hi\n");
    assert!(text.contains("not a WebAssembly file"), "{text}");
    // An empty component: valid, but it exports nothing.
    let empty = load(b"\0asm\x0d\0\x01\0");
    assert!(
        empty.contains("does not implement keygate:policy/keygate-policy@0.1.0"),
        "{empty}"
    );
    assert!(empty.contains("keygate:policy/policy@0.1.0"), "{empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_decisions_are_all_answered() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let b = keygen(dir.path(), "b", "ed25519");
    let inputs = yaml_inputs(&dir, &teams_yaml(&[("a", &[&a]), ("b", &[&b])]));
    let runtime = PolicyRuntime::new(PolicyLimits {
        instances: 2,
        ..PolicyLimits::default()
    })
    .unwrap();
    let policy = Arc::new(load_policy(&runtime, &PolicySource::Embedded, &inputs, None).unwrap());
    let mut tasks = Vec::new();
    for i in 0..400 {
        let policy = policy.clone();
        let (key, team) = if i % 2 == 0 {
            (a.line.clone(), "a")
        } else {
            (b.line.clone(), "a")
        };
        tasks.push(tokio::spawn(async move {
            (
                i,
                policy
                    .decide(request(Action::Register, Some(team), &key))
                    .await,
            )
        }));
    }
    for task in tasks {
        let (i, outcome) = task.await.unwrap();
        assert_eq!(outcome.is_allow(), i % 2 == 0, "request {i}: {outcome:?}");
    }
}
