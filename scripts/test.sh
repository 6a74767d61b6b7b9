#!/usr/bin/env bash
# keygate's test command: installs what the tests need, then runs them all.
#
# Needs: the wasm32-wasip2 Rust target (policies are Wasm components),
# OpenSSH's client (`ssh`, `ssh-keygen`), which the end-to-end tests drive,
# and CPython 3 with venv or pip, with which the Python example policy's
# build (policies/python-allowlist/build.sh, run by its test) installs
# componentize-py.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "test.sh: installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2
fi

apt_install() {
    echo "test.sh: installing Debian's $*"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    apt_install openssh-client
fi

if ! command -v python3 >/dev/null ||
    ! { python3 -m pip --version || python3 -c 'import ensurepip'; } >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
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
