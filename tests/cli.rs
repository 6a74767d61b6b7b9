//! `keygate check` and `keygate policy eval`, run as a user would.

use std::time::Duration;

use crate::support::{TempDir, keygate, keygen, policy_wasm, run, teams_yaml};

fn output(cmd: std::process::Command) -> (i32, String, String) {
    let out = run(cmd, b"", Duration::from_secs(60));
    let code = out.status.code().unwrap_or(-1);
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_a_usable_configuration() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ecdsa"),
    );
    let yaml = dir.path().join("teams.yml");
    std::fs::write(
        &yaml,
        teams_yaml(&[("a", &[&a]), ("b", &[&b, &a]), ("a", &[&b])]),
    )
    .unwrap();
    let mut cmd = keygate();
    cmd.arg("check")
        .arg("--team-authorized-keys-file")
        .arg(&yaml);
    let (code, stdout, _) = output(cmd);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("policy: embedded yaml-teams (sha256 "),
        "{stdout}"
    );
    assert!(stdout.contains("teams: 2 (4 team keys)"), "{stdout}");
    assert!(stdout.contains("team a is listed again"), "{stdout}");
    assert!(stdout.contains("ok: configuration is usable"), "{stdout}");
}

#[test]
fn check_fails_on_bad_input_naming_the_line() {
    let dir = TempDir::new().unwrap();
    let yaml = dir.path().join("teams.yml");
    std::fs::write(
        &yaml,
        "- team: a\n  ssh_keys:\n  - ssh-ed25519 AAAA garbage\n",
    )
    .unwrap();
    let mut cmd = keygate();
    cmd.arg("check")
        .env("KEYGATE_TEAM_AUTHORIZED_KEYS_FILE", &yaml);
    let (code, stdout, _) = output(cmd);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("teams.yml:3: malformed key data"),
        "{stdout}"
    );
}

#[test]
fn eval_prints_the_decision_and_sets_the_exit_status() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let team_file = dir.path().join("a.keys");
    std::fs::write(&team_file, &a.line).unwrap();
    let eval = |team: &str| {
        let mut cmd = keygate();
        cmd.args([
            "policy", "eval", "--action", "register", "--team", team, "--key",
        ])
        .arg(&a.public)
        .arg("--team-authorized-keys")
        .arg(format!("main:{}", team_file.display()));
        output(cmd)
    };
    let (code, stdout, _) = eval("main");
    assert_eq!((code, stdout.trim()), (0, r#"{"decision":"allow"}"#));
    let (code, stdout, _) = eval("other");
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["decision"], "deny");
    assert!(
        json["reason"]
            .as_str()
            .unwrap()
            .contains("not authorized for team other"),
        "{stdout}"
    );
}

#[test]
fn eval_errors_exit_two() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let mut cmd = keygate();
    cmd.args([
        "policy",
        "eval",
        "--action",
        "connect",
        "--policy",
        "/nonexistent.wasm",
        "--key",
    ])
    .arg(&a.public);
    let (code, _, stderr) = output(cmd);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent.wasm"), "{stderr}");

    let mut cmd = keygate();
    cmd.args(["policy", "eval", "--action", "teleport", "--key"])
        .arg(&a.public);
    assert_eq!(output(cmd).0, 2);

    // A policy fault is a deny, reported as an error.
    let mode = dir.path().join("mode");
    std::fs::write(&mode, "trap").unwrap();
    let mut cmd = keygate();
    cmd.args(["policy", "eval", "--action", "connect", "--key"])
        .arg(&a.public)
        .arg("--policy")
        .arg(policy_wasm("faulty"))
        .arg("--authorized-keys")
        .arg(&mode);
    let (code, stdout, _) = output(cmd);
    assert_eq!(code, 2, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["decision"], "deny");
    assert!(
        json["fault"].as_str().unwrap().contains("trapped"),
        "{stdout}"
    );
}

fn testdata(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/yaml-teams/testdata")
        .join(file)
}

#[test]
fn policy_test_runs_the_shipped_cases() {
    let mut cmd = keygate();
    cmd.args(["policy", "test"])
        .arg(testdata("cases.yaml"))
        .arg("--team-authorized-keys-file")
        .arg(testdata("teams.yml"))
        .arg("--authorized-keys")
        .arg(testdata("global_keys"));
    let (code, stdout, stderr) = output(cmd);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("pass  from= refuses other addresses"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().last(),
        Some("11 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn policy_test_reports_failures_and_faults() {
    let dir = TempDir::new().unwrap();
    let cases = dir.path().join("cases.yaml");
    let key = std::fs::read_to_string(testdata("alice.pub")).unwrap();
    std::fs::write(
        &cases,
        format!(
            "- name: wrong expectation\n  action: register\n  team: data\n  key: {}\n  expect: allow\n\
             - name: right expectation, wrong reason\n  action: register\n  team: data\n  key: {}\n  expect: deny\n  reason: no such words\n\
             - action: connect\n  key: {}\n  expect: allow\n",
            testdata("alice.pub").display(),
            key.trim(),
            key.trim()
        ),
    )
    .unwrap();
    let mut cmd = keygate();
    cmd.args(["policy", "test"])
        .arg(&cases)
        .arg("--team-authorized-keys-file")
        .arg(testdata("teams.yml"));
    let (code, stdout, _) = output(cmd);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("FAIL  wrong expectation: expected allow, got deny"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  right expectation, wrong reason: denied, but the reason"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pass  case 3: connect (all teams)"),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 passed, 2 failed\n"), "{stdout}");

    // A policy fault fails a case even when it expects deny.
    let mode = dir.path().join("mode");
    std::fs::write(&mode, "trap").unwrap();
    std::fs::write(
        &cases,
        format!("- action: connect\n  key: {}\n  expect: deny\n", key.trim()),
    )
    .unwrap();
    let mut cmd = keygate();
    cmd.args(["policy", "test"])
        .arg(&cases)
        .arg("--policy")
        .arg(policy_wasm("faulty"))
        .arg("--authorized-keys")
        .arg(&mode);
    let (code, stdout, _) = output(cmd);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("the policy faulted"), "{stdout}");

    // A bad cases file is an error that names the case.
    std::fs::write(&cases, "- action: connect\n  expect: allow\n").unwrap();
    let mut cmd = keygate();
    cmd.args(["policy", "test"]).arg(&cases);
    let (code, _, stderr) = output(cmd);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("case 1") && stderr.contains("`key` is missing"),
        "{stderr}"
    );
}
