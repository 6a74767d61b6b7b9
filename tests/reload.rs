//! Hot reload against a running gateway: file changes, SIGHUP, policy
//! swaps, revocation, and decisions under a burst of reloads.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::russh_client::Client;
use crate::support::{
    Gateway, Key, TempDir, keygen, policy_wasm, teams_yaml, wait_until, worker_json, write_atomic,
};

const LONG: Duration = Duration::from_secs(20);

fn yaml_args(path: &Path) -> Vec<String> {
    vec![
        "--team-authorized-keys-file".into(),
        path.display().to_string(),
    ]
}

fn start(dir: &TempDir, args: &[String]) -> Gateway {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Gateway::start(dir.path(), &args)
}

fn registers(gw: &Gateway, key: &Key, name: &str, team: &str) -> bool {
    let out = gw.worker_command(key, "land-worker", &worker_json(name, Some(team)));
    // land-worker of an unknown worker authenticates, asks the policy, then
    // reports the worker missing: a cheap probe of "is this key allowed".
    String::from_utf8_lossy(&out.stderr).contains(&format!("no worker named {name}"))
}

#[test]
fn keys_added_and_removed_in_the_file_take_effect_without_a_signal() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    );
    let yaml = dir.path().join("teams.yml");
    std::fs::write(&yaml, teams_yaml(&[("t", &[&a])])).unwrap();
    let gw = start(&dir, &yaml_args(&yaml));
    assert!(!registers(&gw, &b, "probe", "t"));

    write_atomic(&yaml, &teams_yaml(&[("t", &[&a, &b])]));
    let mut worker = None;
    assert!(wait_until(LONG, || {
        let w = gw.spawn_worker(&b, &[], "forward-worker", &worker_json("wb", Some("t")));
        let ok = w.registered();
        if ok {
            worker = Some(w);
        }
        ok
    }));
    let mut worker = worker.unwrap();

    // Removing the key closes the live session and refuses new ones.
    write_atomic(&yaml, &teams_yaml(&[("t", &[&a])]));
    assert!(
        worker.exited_within(LONG).is_some(),
        "revoked worker still connected"
    );
    assert!(wait_until(LONG, || gw.worker_names().is_empty()));
    assert!(!registers(&gw, &b, "probe", "t"));
    assert!(gw.metric("keygate_revoked_sessions_total", "") >= 1.0);
    assert!(gw.metric("keygate_reload_total", r#"result="success""#) >= 2.0);
}

#[test]
fn kubernetes_configmap_swap_is_picked_up() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    );
    let mount = dir.path().join("config");
    std::fs::create_dir(&mount).unwrap();
    // The layout kubelet gives a ConfigMap volume.
    let first = mount.join("..2026_12_01_00_00_00.000000001");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("teams.yml"), teams_yaml(&[("t", &[&a])])).unwrap();
    std::os::unix::fs::symlink(first.file_name().unwrap(), mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/teams.yml", mount.join("teams.yml")).unwrap();
    let gw = start(&dir, &yaml_args(&mount.join("teams.yml")));
    assert!(registers(&gw, &a, "p", "t"));
    assert!(!registers(&gw, &b, "p", "t"));

    // kubelet's update: a new timestamped directory, then an atomic swap of
    // the `..data` symlink by rename.
    let second = mount.join("..2026_12_02_00_00_00.000000002");
    std::fs::create_dir(&second).unwrap();
    std::fs::write(second.join("teams.yml"), teams_yaml(&[("t", &[&b])])).unwrap();
    std::os::unix::fs::symlink(second.file_name().unwrap(), mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();
    assert!(wait_until(LONG, || registers(&gw, &b, "p", "t")));
    assert!(!registers(&gw, &a, "p", "t"));
}

#[test]
fn editor_rename_on_save_is_picked_up() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    );
    let yaml = dir.path().join("teams.yml");
    std::fs::write(&yaml, teams_yaml(&[("t", &[&a])])).unwrap();
    let gw = start(&dir, &yaml_args(&yaml));
    // As vim does: write a new file, move the old one away, move the new
    // one into place.
    let new = dir.path().join("4913");
    std::fs::write(&new, teams_yaml(&[("t", &[&a, &b])])).unwrap();
    std::fs::rename(&yaml, dir.path().join("teams.yml~")).unwrap();
    std::fs::rename(&new, &yaml).unwrap();
    assert!(wait_until(LONG, || registers(&gw, &b, "p", "t")));
}

#[test]
fn broken_inputs_keep_the_old_policy_until_fixed() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let yaml = dir.path().join("teams.yml");
    let good = teams_yaml(&[("t", &[&a])]);
    std::fs::write(&yaml, &good).unwrap();
    let module = dir.path().join("policy.wasm");
    std::fs::copy(policy_wasm("yaml_teams"), &module).unwrap();
    let mut args = yaml_args(&yaml);
    args.extend([
        "--policy".into(),
        module.display().to_string(),
        "--no-watch".into(),
    ]);
    let gw = start(&dir, &args);
    let digest = gw.status()["policy"]["digest"].as_str().unwrap().to_owned();

    std::fs::write(&yaml, "- team: t\n  ssh_keys:\n  - not-a-key\n").unwrap();
    gw.sighup();
    assert!(wait_until(LONG, || !gw.status()["last_error"].is_null()));
    let error = gw.status()["last_error"]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("teams.yml:3:"), "{error}");
    assert_eq!(gw.status()["policy"]["digest"], digest.as_str());
    assert!(registers(&gw, &a, "p", "t"), "old policy must keep serving");

    std::fs::write(&yaml, &good).unwrap();
    std::fs::write(&module, b"this is not wasm").unwrap();
    let (code, body) = gw.post("/reload");
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("not a WebAssembly file"), "{body}");
    assert!(registers(&gw, &a, "p", "t"));
    assert!(gw.metric("keygate_reload_total", r#"result="failure""#) >= 2.0);

    std::fs::copy(policy_wasm("yaml_teams"), &module).unwrap();
    gw.sighup();
    assert!(wait_until(LONG, || gw.status()["last_reload"]["result"] == "success"));
    assert!(registers(&gw, &a, "p", "t"));
}

#[test]
fn swapping_the_module_while_workers_are_connected() {
    let dir = TempDir::new().unwrap();
    let a = keygen(dir.path(), "a", "ed25519");
    let yaml = dir.path().join("teams.yml");
    std::fs::write(&yaml, teams_yaml(&[("t", &[&a])])).unwrap();
    let module = dir.path().join("policy.wasm");
    std::fs::copy(policy_wasm("yaml_teams"), &module).unwrap();
    let mut args = yaml_args(&yaml);
    args.extend(["--policy".into(), module.display().to_string()]);
    let gw = start(&dir, &args);
    let mut worker = gw.spawn_worker(&a, &[], "forward-worker", &worker_json("w", Some("t")));
    assert!(worker.registered());

    // The fault-injection policy, given the YAML as its mode, denies all.
    let faulty = std::fs::read(policy_wasm("faulty")).unwrap();
    write_atomic_bytes(&module, &faulty);
    assert!(
        worker.exited_within(LONG).is_some(),
        "deny-all policy must revoke the worker"
    );
    assert!(!registers(&gw, &a, "p", "t"));

    write_atomic_bytes(&module, &std::fs::read(policy_wasm("yaml_teams")).unwrap());
    assert!(wait_until(LONG, || registers(&gw, &a, "p", "t")));
    let worker = gw.spawn_worker(&a, &[], "forward-worker", &worker_json("w", Some("t")));
    assert!(worker.registered());
}

#[test]
fn revocation_can_be_turned_off() {
    let dir = TempDir::new().unwrap();
    let (a, b) = (
        keygen(dir.path(), "a", "ed25519"),
        keygen(dir.path(), "b", "ed25519"),
    );
    let yaml = dir.path().join("teams.yml");
    std::fs::write(&yaml, teams_yaml(&[("t", &[&a, &b])])).unwrap();
    let mut args = yaml_args(&yaml);
    args.push("--no-revoke-on-reload".into());
    let gw = start(&dir, &args);
    let mut worker = gw.spawn_worker(&b, &[], "forward-worker", &worker_json("wb", Some("t")));
    assert!(worker.registered());
    write_atomic(&yaml, &teams_yaml(&[("t", &[&a])]));
    assert!(wait_until(LONG, || !registers(&gw, &b, "p", "t")));
    assert!(worker.exited_within(Duration::from_secs(2)).is_none());
    assert_eq!(gw.worker_names(), ["wb"]);
}

fn write_atomic_bytes(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Which key set the file named, and when that changed: each entry is
/// (set, window start, window end); the switch happened inside the window.
type Timeline = Vec<(usize, Instant, Instant)>;

/// Whether `set` may have been the active one at some point in [from, to].
fn possibly_active(timeline: &Timeline, set: usize, from: Instant, to: Instant) -> bool {
    let mut active = timeline[0].0;
    for &(next, start, end) in &timeline[1..] {
        if end < from {
            active = next;
            continue;
        }
        if active == set || (start <= to && next == set) {
            return true;
        }
        if start > to {
            return false;
        }
        active = next;
    }
    active == set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_stay_right_through_a_hundred_reloads() {
    const CLIENTS: usize = 24;
    const RELOADS: usize = 100;
    let dir = TempDir::new().unwrap();
    let sets: Vec<Vec<Key>> = (0..2)
        .map(|s| {
            (0..3)
                .map(|i| keygen(dir.path(), &format!("set{s}-{i}"), "ed25519"))
                .collect()
        })
        .collect();
    let yaml = dir.path().join("teams.yml");
    let file_for = |set: usize| teams_yaml(&[("t", &sets[set].iter().collect::<Vec<_>>())]);
    std::fs::write(&yaml, file_for(0)).unwrap();
    let mut args = yaml_args(&yaml);
    args.push("--no-watch".into());
    let gw = Arc::new(start(&dir, &args));

    let now = Instant::now();
    let timeline: Arc<Mutex<Timeline>> = Arc::new(Mutex::new(vec![(0, now, now)]));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reloader = {
        let (gw, timeline, done, yaml) = (gw.clone(), timeline.clone(), done.clone(), yaml.clone());
        let files = [file_for(0), file_for(1)];
        std::thread::spawn(move || {
            for i in 1..=RELOADS {
                let set = i % 2;
                let start = Instant::now();
                std::fs::write(&yaml, &files[set]).unwrap();
                let (code, body) = gw.post("/reload");
                assert_eq!(code, 200, "{body}");
                timeline.lock().unwrap().push((set, start, Instant::now()));
                std::thread::sleep(Duration::from_millis(20));
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };

    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (addr, done) = (gw.ssh, done.clone());
        let keys: Vec<(usize, std::path::PathBuf)> = (0..2)
            .map(|s| (s, sets[s][c % 3].private.clone()))
            .collect();
        clients.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut round = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) && round < 200 {
                let (set, key) = &keys[round % 2];
                let start = Instant::now();
                let result = tokio::time::timeout(LONG, Client::connect(addr, key, "worker")).await;
                let end = Instant::now();
                results.push((*set, start, end, result.map(|r| r.map(|_| ()))));
                round += 1;
            }
            results
        }));
    }
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }
    reloader.join().unwrap();
    let timeline = timeline.lock().unwrap().clone();
    assert_eq!(timeline.len(), RELOADS + 1);

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (set, start, end, result) in &outcomes {
        match result {
            Ok(Ok(())) => {
                assert!(
                    possibly_active(&timeline, *set, *start, *end),
                    "set {set} allowed while inactive"
                );
                *counts.entry("allowed").or_default() += 1;
            }
            Ok(Err(e)) if e == "authentication failed" => {
                assert!(
                    possibly_active(&timeline, 1 - set, *start, *end),
                    "set {set} denied while active"
                );
                *counts.entry("denied").or_default() += 1;
            }
            Ok(Err(e)) => panic!("connection failed for another reason: {e}"),
            Err(_) => panic!("handshake timed out"),
        }
    }
    eprintln!(
        "{} handshakes across {RELOADS} reloads: {counts:?}",
        outcomes.len()
    );
    assert!(
        counts.get("allowed").copied().unwrap_or(0) > 0
            && counts.get("denied").copied().unwrap_or(0) > 0
    );
    let gw = Arc::try_unwrap(gw).ok().unwrap();
    assert_eq!(
        gw.metric("keygate_reload_total", r#"result="success""#),
        RELOADS as f64
    );
}
