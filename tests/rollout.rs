//! Rolling a policy out safely: the shadow policy against live traffic,
//! the decision audit log, and the compiled-module cache.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{
    Gateway, Key, TempDir, keygate, keygen, policy_wasm, run, teams_yaml, wait_until, worker_json,
    write_atomic,
};

const LONG: Duration = Duration::from_secs(20);

fn fingerprint(key: &Key) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key.public)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_owned()
}

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A gateway on the YAML policy with `shadow` (a mode of the fault-injection
/// policy) as its shadow, writing its audit log to `audit`.
fn start_with_shadow(dir: &TempDir, members: &[&Key], mode: &Path, audit: &Path) -> Gateway {
    let yaml = dir.path().join("teams.yml");
    std::fs::write(&yaml, teams_yaml(&[("t", members)])).unwrap();
    let faulty = policy_wasm("faulty");
    let args = [
        "--team-authorized-keys-file",
        yaml.to_str().unwrap(),
        "--shadow-policy",
        faulty.to_str().unwrap(),
        "--shadow-policy-input",
        mode.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ];
    Gateway::start(dir.path(), &args)
}

#[test]
fn a_shadow_policy_is_compared_on_live_traffic_and_never_enforced() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    );
    let mode = dir.path().join("shadow-mode");
    std::fs::write(&mode, "deny-all").unwrap();
    let audit = dir.path().join("audit.log");
    let gw = start_with_shadow(&dir, &[&a], &mode, &audit);

    // The shadow denies everything, yet the active policy's allow stands.
    let mut worker = gw.spawn_worker(&a, &[], "forward-worker", &worker_json("w1", Some("t")));
    assert!(worker.registered(), "{}", worker.stderr());
    let disagreements = |action: &str| {
        gw.metric(
            "keygate_shadow_disagreements_total",
            &format!("action=\"{action}\""),
        )
    };
    assert!(wait_until(LONG, || disagreements("register") >= 1.0));
    assert!(disagreements("connect") >= 1.0);
    let logged = gw.wait_for_log(LONG, |e| {
        e["message"] == "shadow policy disagrees"
            && e["action"] == "register"
            && e["team"] == "t"
            && e["worker"] == "w1"
            && e["user"] == "worker"
            && e["client.ip"] == "127.0.0.1"
            && e["key.fingerprint"] == fingerprint(&a).as_str()
            && e["decision"] == "allow"
            && e["shadow.decision"] == "deny"
    });
    assert!(logged, "{:#?}", gw.logs());
    let status = gw.status();
    let shadow = &status["shadow"];
    assert_eq!(
        shadow["source"],
        policy_wasm("faulty").display().to_string()
    );
    assert!(
        shadow["disagreements"]["register"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        shadow["decisions"]["connect"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert_ne!(shadow["digest"], status["policy"]["digest"]);

    // The shadow reloads on a change to its input, like the active policy;
    // an allow-all shadow now agrees with every allow, and its allow for an
    // unknown key is counted but does not let that key in.
    write_atomic(&mode, "allow-all");
    assert!(wait_until(LONG, || {
        gw.metric("keygate_shadow_reload_total", r#"result="success""#) >= 1.0
    }));
    let before = disagreements("register");
    let out = gw.worker_command(&a, "land-worker", &worker_json("w1", Some("t")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let refused = gw.worker_command(&b, "land-worker", &worker_json("w1", Some("t")));
    assert!(!refused.status.success());
    assert!(wait_until(LONG, || {
        audit_lines(&audit)
            .iter()
            .any(|l| l["action"] == "land" && l["shadow"]["agrees"] == true)
    }));
    assert_eq!(disagreements("register"), before);
    assert!(wait_until(LONG, || {
        audit_lines(&audit).iter().any(|l| {
            l["key"] == fingerprint(&b).as_str()
                && l["decision"] == "deny"
                && l["shadow"]["decision"] == "allow"
                && l["shadow"]["agrees"] == false
        })
    }));
    worker.kill();
}

#[test]
fn a_broken_shadow_reload_keeps_the_old_shadow_and_the_active_policy() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let mode = dir.path().join("shadow-mode");
    std::fs::write(&mode, "allow-all").unwrap();
    let audit = dir.path().join("audit.log");
    let gw = start_with_shadow(&dir, &[&a], &mode, &audit);
    let digest = gw.status()["shadow"]["digest"].clone();

    write_atomic(&mode, "init-error");
    assert!(wait_until(LONG, || {
        gw.metric("keygate_shadow_reload_total", r#"result="failure""#) >= 1.0
    }));
    let status = gw.status();
    assert_eq!(status["shadow"]["digest"], digest);
    let error = status["shadow"]["last_error"]["error"].as_str().unwrap();
    assert!(error.contains("init error requested"), "{error}");
    assert!(status["last_error"].is_null(), "{status}");

    let out = gw.worker_command(&a, "land-worker", &worker_json("w", Some("t")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no worker named w"));
}

#[test]
fn the_audit_log_records_every_decision_and_follows_rotation() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    );
    let yaml = dir.path().join("teams.yml");
    std::fs::write(&yaml, teams_yaml(&[("t", &[&a])])).unwrap();
    let audit = dir.path().join("audit.log");
    let gw = Gateway::start(
        dir.path(),
        &[
            "--team-authorized-keys-file",
            yaml.to_str().unwrap(),
            "--audit-log",
            audit.to_str().unwrap(),
        ],
    );
    let out = gw.worker_command(&a, "land-worker", &worker_json("w1", Some("t")));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no worker named w1"));
    let refused = gw.worker_command(&a, "land-worker", &worker_json("w1", Some("other")));
    assert!(!refused.status.success());
    let _ = gw.worker_command(&b, "land-worker", &worker_json("w1", Some("t")));

    let found = |path: &Path, check: &dyn Fn(&serde_json::Value) -> bool| {
        wait_until(LONG, || audit_lines(path).iter().any(check))
    };
    let fa = fingerprint(&a);
    assert!(found(&audit, &|l| {
        l["action"] == "land"
            && l["team"] == "t"
            && l["worker"] == "w1"
            && l["key"] == fa.as_str()
            && l["decision"] == "allow"
            && l["reason"].is_null()
            && l["user"] == "worker"
            && l["client"] == "127.0.0.1"
            && l["conn"].is_u64()
            && l["latency_us"].is_u64()
            && l["policy"] == gw.status()["policy"]["digest"]
            && l["time"].as_str().is_some_and(|t| t.ends_with('Z'))
            && l.get("shadow").is_none()
    }));
    assert!(found(&audit, &|l| {
        l["team"] == "other"
            && l["decision"] == "deny"
            && l["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not authorized for team other"))
    }));
    let fb = fingerprint(&b);
    assert!(found(&audit, &|l| {
        l["action"] == "connect" && l["key"] == fb.as_str() && l["decision"] == "deny"
    }));
    // A connect decision is made when a key is offered, before it is
    // proven; the proof is its own line. b never proves anything.
    assert!(found(&audit, &|l| {
        l["event"] == "authenticated" && l["key"] == fa.as_str() && l["conn"].is_u64()
    }));
    assert!(
        !audit_lines(&audit)
            .iter()
            .any(|l| l["event"] == "authenticated" && l["key"] == fb.as_str())
    );
    // Keys appear only as fingerprints.
    let text = std::fs::read_to_string(&audit).unwrap();
    let blob = a.line.split_whitespace().nth(1).unwrap();
    assert!(!text.contains(blob));

    // Rotation by rename alone: the writer notices and starts a new file.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    assert!(wait_until(LONG, || audit.exists()));
    let _ = gw.worker_command(&a, "land-worker", &worker_json("w2", Some("t")));
    assert!(found(&audit, &|l| l["worker"] == "w2"));
    assert!(!audit_lines(&rotated).iter().any(|l| l["worker"] == "w2"));

    // Rotation by rename and SIGHUP.
    let rotated = dir.path().join("audit.log.2");
    std::fs::rename(&audit, &rotated).unwrap();
    gw.sighup();
    let _ = gw.worker_command(&a, "land-worker", &worker_json("w3", Some("t")));
    assert!(found(&audit, &|l| l["worker"] == "w3"));
    assert!(gw.metric("keygate_audit_lines_total", "") >= 4.0);
    assert_eq!(gw.metric("keygate_audit_dropped_total", ""), 0.0);
}

fn check_with_cache(cache: &Path) -> (bool, String, String) {
    let mut cmd = keygate();
    cmd.args(["--log-format", "json", "check", "--policy-cache"])
        .arg(cache);
    let out = run(cmd, b"", Duration::from_secs(60));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compiled_policies_are_cached_and_bad_entries_rebuilt() {
    let dir = TempDir::new().unwrap();
    let cache = dir.path().join("cache");

    let (ok, stdout, _) = check_with_cache(&cache);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("loaded: compiled in"), "{stdout}");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let digest = stdout.split("(sha256 ").nth(1).unwrap().get(..64).unwrap();
    let name = entry.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with(digest) && name.ends_with(".cwasm"),
        "{name}"
    );

    let (ok, stdout, _) = check_with_cache(&cache);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("compiled code from the cache"), "{stdout}");

    // A damaged entry is reported, ignored and written again.
    let mut bytes = std::fs::read(entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(entry, &bytes).unwrap();
    let (ok, stdout, stderr) = check_with_cache(&cache);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("loaded: compiled in"), "{stdout}");
    assert!(
        stderr.contains("ignored an invalid policy cache entry"),
        "{stderr}"
    );
    let (_, stdout, _) = check_with_cache(&cache);
    assert!(stdout.contains("compiled code from the cache"), "{stdout}");

    // A cache others could write to is refused, not trusted.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (ok, _, stderr) = check_with_cache(&cache);
    assert!(!ok);
    assert!(stderr.contains("writable by group or others"), "{stderr}");
    assert!(stderr.contains(cache.to_str().unwrap()), "{stderr}");
}
