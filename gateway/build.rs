//! Builds the policy components this crate embeds or tests against.
//!
//! The default policy (`policies/yaml-teams`) is compiled to a
//! `wasm32-wasip2` component and embedded in the `keygate` binary, so keygate
//! needs no policy file to run. The example policy `policies/team-rules` and
//! the fault-injection policy used by the tests are built in the same cargo
//! invocation, once, so the tests can load them and the example cannot rot. The nested build uses its own
//! target directory, so it never waits on the outer build's lock.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a build script reports failure by panicking"
)]

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PACKAGES: &[&str] = &[
    "keygate-policy-yaml-teams",
    "keygate-policy-team-rules",
    "keygate-policy-faulty",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("gateway/ sits in the workspace root")
        .to_owned();
    for dir in ["policy-sdk", "policies", "tests/policies", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    ensure_target();
    let target_dir = root.join("target").join("policies");
    build_policies(&root, &target_dir);

    let out = target_dir.join(TARGET).join("policy");
    println!("cargo:rustc-env=KEYGATE_POLICY_DIR={}", out.display());
}

/// Install the Wasm target through rustup when it is missing, so that a
/// fresh checkout builds with nothing added by hand.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc).args(["--print", "sysroot"]).output();
    let installed = sysroot.ok().is_some_and(|o| {
        let root = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        Path::new(&root).join("lib/rustlib").join(TARGET).exists()
    });
    if installed {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed");
    }
}

fn build_policies(root: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--profile",
            "policy",
            "--target",
            TARGET,
            "--target-dir",
        ])
        .arg(target_dir);
    for package in PACKAGES {
        cmd.args(["-p", package]);
    }
    // The outer build's settings are for the host target and its tools:
    // clippy's wrapper, coverage flags and the like must not leak into the
    // Wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the policy components");
    if !status.success() {
        panic!("building the policy components for {TARGET} failed");
    }
}
