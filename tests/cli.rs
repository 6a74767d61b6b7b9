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
