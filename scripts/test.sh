#!/usr/bin/env bash
# keygate's test command: installs what the tests need, then runs them all.
#
# Needs: the wasm32-wasip2 Rust target (policies are Wasm components) and
# OpenSSH's client (`ssh`, `ssh-keygen`), which the end-to-end tests drive.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "test.sh: installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    echo "test.sh: installing Debian's openssh-client"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssh-client
fi

# Run every test, then close with one line totalling all the test binaries'
# results, so the outcome reads at a glance after dozens of result lines.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace --locked "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
