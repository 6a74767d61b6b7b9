#!/usr/bin/env bash
# keygate's benchmark suite, keygate and OpenSSH sshd side by side.
#
#   bash scripts/bench.sh           quick mode (a few minutes on 2 cores)
#   bash scripts/bench.sh --full    full mode
#   bash scripts/bench.sh --smoke   seconds; checks that the suite runs (CI)
#
# Installs what it needs (the wasm32-wasip2 target, Debian's openssh-client
# and openssh-server), raises the open-files limit for this run only, runs
# the Criterion decision benchmark, then the end-to-end suite, which prints
# a markdown table and writes it to bench/results.md (smoke: to target/).
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-}"
case "$mode" in
    ""|--quick) mode=""; criterion=(--warm-up-time 2 --measurement-time 5) ;;
    --full) criterion=(--warm-up-time 3 --measurement-time 15) ;;
    --smoke) criterion=(--warm-up-time 0.2 --measurement-time 0.5) ;;
    *) echo "usage: $0 [--quick|--full|--smoke]" >&2; exit 2 ;;
esac

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssh-client openssh-server
fi

# Each benchmark worker holds a connection and two listeners on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -n 200000 2>/dev/null || true

cargo build --release --locked -p keygate -p keygate-bench
cargo bench --locked -p keygate-bench --bench decision -- "${criterion[@]}"
out=bench/results.md
[ "$mode" = "--smoke" ] && out=target/bench-smoke.md
target/release/keygate-bench $mode --out "$out"
