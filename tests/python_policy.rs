//! The Python example policy, `policies/python-allowlist`: built by its own
//! script with componentize-py, then loaded through the real `keygate`
//! binary. It shows that the policy contract does not depend on Rust.
//!
//! The build installs componentize-py from PyPI on its first run (into
//! `target/python-venv`) and takes about a minute; later runs reuse the
//! component unless its sources changed. Loading it compiles an ~18 MB
//! component, about 9 s on two cores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::{TempDir, keygate, run};

/// Build the component once for every test here and return its path. A
/// failed build fails the test with the script's output.
fn built_policy() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let wasm = repo().join("target/policies/python-allowlist.wasm");
        let mut build = Command::new("bash");
        build.arg(example().join("build.sh")).arg(&wasm);
        let out = run(build, b"", Duration::from_secs(900));
        assert!(out.status.success(), "build.sh failed:\n{}", text(&out));
        wasm
    })
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example() -> PathBuf {
    repo().join("policies/python-allowlist")
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `keygate ARGS --policy WASM --policy-input INPUT`, run to completion.
fn keygate_with(args: &[&str], input: &Path) -> Output {
    let mut cmd = keygate();
    cmd.args(args)
        .arg("--policy")
        .arg(built_policy())
        .arg("--policy-input")
        .arg(input);
    run(cmd, b"", Duration::from_secs(300))
}

#[test]
fn python_policy_passes_its_shipped_cases() {
    let cases = example().join("testdata/cases.yaml");
    let cases = cases.to_str().unwrap();
    let out = keygate_with(
        &["policy", "test", cases],
        &example().join("allowlist.json"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("pass  only global keys act for all teams"),
        "{}",
        text(&out)
    );
    assert_eq!(
        stdout.lines().last(),
        Some("10 passed, 0 failed"),
        "{}",
        text(&out)
    );
}

#[test]
fn python_policy_reports_its_load_and_names_bad_input() {
    let out = keygate_with(&["check"], &example().join("allowlist.json"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        stdout.contains("teams: 2 (3 team fingerprints)"),
        "{stdout}"
    );
    assert!(stdout.contains("global fingerprints: 1"), "{stdout}");
    // The `host.log` import reaches keygate's log.
    assert!(stderr.contains("python-allowlist loaded"), "{stderr}");

    let dir = TempDir::new().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"main\": [SHA256:x]\n}\n").unwrap();
    let out = keygate_with(&["check"], &bad);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let expected = format!("policy-input:{}:2:12: invalid JSON", bad.display());
    assert!(stdout.contains(&expected), "{}", text(&out));
}
