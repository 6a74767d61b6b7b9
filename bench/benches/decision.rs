//! Decision cost: the embedded Wasm YAML policy against native Rust doing
//! the same work, over 10,000 teams and 100,000 keys.
//!
//! - `wasm_call`: one `authorize` call into the policy component on this
//!   thread (lowering the request, the guest's lookup, lifting the answer).
//! - `wasm_gateway`: a decision as the gateway makes it, through the pool
//!   of instance threads (the call plus the hand-off between threads).
//! - `native_policy`: the same policy crate compiled natively and called
//!   directly: the same rule, the same code, no Wasm.
//! - `native_hashmap`: the bare rule as a HashMap lookup from key data to
//!   teams, after parsing the request's key.
//! - `python_call`: one `authorize` call into `policies/python-allowlist`,
//!   the same rule written in Python (componentize-py), over an allowlist of
//!   the same 100,000 keys' fingerprints. It runs only when that component
//!   has been built with `policies/python-allowlist/build.sh`; otherwise it
//!   is skipped with a notice.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails by panicking"
)]

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::path::Path;
use std::time::{Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use keygate::domain::{KeyIdentity, Team, WorkerName};
use keygate::policy::{
    Action, DecisionRequest, InputFile, PolicyInputs, PolicyLimits, PolicyRuntime, PolicySource,
    Standalone, load_policy,
};
use keygate_bench::dataset;
use keygate_policy_sdk::keys::PublicKeyData;

const TEAMS: u32 = 10_000;
const PER_TEAM: u32 = 10;
const HIT_TEAM: u32 = 5_432;

fn hit_key() -> String {
    dataset::key(HIT_TEAM * PER_TEAM + 9)
}

fn miss_key() -> String {
    dataset::key(TEAMS * PER_TEAM + 1)
}

fn request(action: Action, team: Option<&str>, key: &str) -> DecisionRequest {
    DecisionRequest {
        action,
        team: team.map(Team::new),
        user: "worker".into(),
        key: KeyIdentity::from_openssh(key).unwrap(),
        client: "127.0.0.1".parse().unwrap(),
        worker: Some(WorkerName::new("worker-1")),
        time: SystemTime::now(),
    }
}

fn wit_request(
    action: keygate_policy_sdk::Action,
    team: Option<&str>,
    key: &str,
) -> keygate_policy_sdk::Request {
    let mut r = keygate_policy_sdk::testing::request(action, team, key);
    r.worker = Some("worker-1".into());
    r
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("teams.yml");
    std::fs::write(&path, dataset::teams_yaml(TEAMS, PER_TEAM)).unwrap();
    let inputs = PolicyInputs {
        team_keys_file: Some(path),
        ..Default::default()
    };
    let files: Vec<InputFile> = inputs.read().unwrap();
    let hit_team = format!("team-{HIT_TEAM}");

    let limits = PolicyLimits {
        instances: 1,
        ..PolicyLimits::default()
    };
    let runtime = PolicyRuntime::new(limits.clone()).unwrap();
    let compiled = runtime
        .compile(&PolicySource::Embedded, keygate::policy::EMBEDDED_POLICY)
        .unwrap();
    let mut standalone = Standalone::start(&compiled, &limits, &files).unwrap();
    let hit = request(Action::Register, Some(&hit_team), &hit_key());
    let miss = request(Action::Connect, None, &miss_key());
    assert!(standalone.authorize(&hit).is_allow());
    assert!(!standalone.authorize(&miss).is_allow());
    c.bench_function("wasm_call/hit", |b| {
        b.iter(|| black_box(standalone.authorize(black_box(&hit))))
    });
    c.bench_function("wasm_call/miss", |b| {
        b.iter(|| black_box(standalone.authorize(black_box(&miss))))
    });

    // The floor of any policy call: a policy that allows everything, so
    // the figure is the component boundary alone (lowering the request,
    // the call, lifting the answer).
    let mode = dir.path().join("mode");
    std::fs::write(&mode, "allow-all").unwrap();
    let floor_inputs = PolicyInputs {
        authorized_keys: Some(mode),
        ..Default::default()
    };
    let faulty = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/policies/wasm32-wasip2/policy/keygate_policy_faulty.wasm");
    if let Ok(bytes) = std::fs::read(&faulty) {
        let floor_compiled = runtime
            .compile(&PolicySource::File(faulty), &bytes)
            .unwrap();
        let mut floor =
            Standalone::start(&floor_compiled, &limits, &floor_inputs.read().unwrap()).unwrap();
        assert!(floor.authorize(&hit).is_allow());
        c.bench_function("wasm_call/floor", |b| {
            b.iter(|| black_box(floor.authorize(black_box(&hit))))
        });
    }

    python_call(c, &runtime, &limits, dir.path(), &hit_team);

    let small = dir.path().join("small.yml");
    std::fs::write(&small, dataset::teams_yaml(2, 2)).unwrap();
    let small_files = PolicyInputs {
        team_keys_file: Some(small),
        ..Default::default()
    }
    .read()
    .unwrap();
    c.bench_function("instantiate_and_init/4_keys", |b| {
        b.iter(|| black_box(Standalone::start(&compiled, &limits, &small_files).unwrap()))
    });

    let pooled = load_policy(&runtime, &PolicySource::Embedded, &inputs, None).unwrap();
    c.bench_function("wasm_gateway/hit", |b| {
        b.iter(|| black_box(pooled.decide_blocking(hit.clone())))
    });
    c.bench_function("wasm_gateway/miss", |b| {
        b.iter(|| black_box(pooled.decide_blocking(miss.clone())))
    });

    let wit_inputs: Vec<keygate_policy_sdk::Input> = files
        .iter()
        .map(|f| keygate_policy_sdk::Input {
            name: f.name.clone(),
            data: f.data.clone(),
        })
        .collect();
    let (native, _) = keygate_policy_yaml_teams::Index::load(&wit_inputs).unwrap();
    let native_hit = wit_request(
        keygate_policy_sdk::Action::Register,
        Some(&hit_team),
        &hit_key(),
    );
    let native_miss = wit_request(keygate_policy_sdk::Action::Connect, None, &miss_key());
    assert!(native.authorize(&native_hit).is_allow());
    c.bench_function("native_policy/hit", |b| {
        b.iter(|| black_box(native.authorize(black_box(&native_hit))))
    });
    c.bench_function("native_policy/miss", |b| {
        b.iter(|| black_box(native.authorize(black_box(&native_miss))))
    });

    let mut map: HashMap<PublicKeyData, HashSet<String>> = HashMap::new();
    for team in 0..TEAMS {
        for k in 0..PER_TEAM {
            let key = PublicKeyData::parse(&dataset::key(team * PER_TEAM + k)).unwrap();
            map.entry(key).or_default().insert(format!("team-{team}"));
        }
    }
    let lookup = |openssh: &str, team: Option<&str>| -> bool {
        let Ok(key) = PublicKeyData::parse(openssh) else {
            return false;
        };
        match (map.get(&key), team) {
            (Some(teams), Some(team)) => teams.contains(team),
            (Some(_), None) => true,
            (None, _) => false,
        }
    };
    let (hit_text, miss_text) = (hit_key(), miss_key());
    assert!(lookup(&hit_text, Some(&hit_team)));
    c.bench_function("native_hashmap/hit", |b| {
        b.iter(|| black_box(lookup(black_box(&hit_text), black_box(Some(&hit_team)))))
    });
    c.bench_function("native_hashmap/miss", |b| {
        b.iter(|| black_box(lookup(black_box(&miss_text), None)))
    });
}

/// The Python allowlist policy on the same keys, when it has been built.
fn python_call(
    c: &mut Criterion,
    runtime: &PolicyRuntime,
    limits: &PolicyLimits,
    dir: &Path,
    hit_team: &str,
) {
    let wasm =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/policies/python-allowlist.wasm");
    let Ok(bytes) = std::fs::read(&wasm) else {
        println!(
            "skipping python_call: {} is not built (run policies/python-allowlist/build.sh)",
            wasm.display()
        );
        return;
    };
    let compiled = runtime.compile(&PolicySource::File(wasm), &bytes).unwrap();
    let path = dir.join("allowlist.json");
    std::fs::write(&path, allowlist_json()).unwrap();
    let files = PolicyInputs {
        policy_inputs: vec![path],
        ..Default::default()
    }
    .read()
    .unwrap();
    let started = Instant::now();
    let mut python = Standalone::start(&compiled, limits, &files).unwrap();
    println!(
        "python_call: compiled {} bytes in {} ms; instantiate and init on {} fingerprints \
         in {} ms",
        bytes.len(),
        compiled.compile_time.as_millis(),
        TEAMS * PER_TEAM,
        started.elapsed().as_millis()
    );
    let hit = request(Action::Register, Some(hit_team), &hit_key());
    let miss = request(Action::Connect, None, &miss_key());
    assert!(python.authorize(&hit).is_allow());
    assert!(!python.authorize(&miss).is_allow());
    c.bench_function("python_call/hit", |b| {
        b.iter(|| black_box(python.authorize(black_box(&hit))))
    });
    c.bench_function("python_call/miss", |b| {
        b.iter(|| black_box(python.authorize(black_box(&miss))))
    });
}

/// The data set as the Python policy's input: team names to fingerprints.
fn allowlist_json() -> String {
    let teams: serde_json::Map<String, serde_json::Value> = (0..TEAMS)
        .map(|team| {
            let fingerprints = (0..PER_TEAM)
                .map(|k| {
                    let key = KeyIdentity::from_openssh(&dataset::key(team * PER_TEAM + k));
                    serde_json::Value::from(key.unwrap().fingerprint().as_str())
                })
                .collect();
            (
                format!("team-{team}"),
                serde_json::Value::Array(fingerprints),
            )
        })
        .collect();
    serde_json::Value::Object(teams).to_string()
}

criterion_group!(decision, benches);
criterion_main!(decision);
