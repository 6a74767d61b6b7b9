#!/usr/bin/env bash
# Build the Python allowlist policy into a keygate policy component.
#
#   policies/python-allowlist/build.sh [OUT.wasm]
#
# Default output: target/policies/python-allowlist.wasm under the repository
# root. Needs CPython 3.11 or newer with pip; the pinned componentize-py
# (requirements.txt) is installed into a virtual environment at
# target/python-venv, made once and reused. Nothing is rebuilt when the
# output is newer than app.py, the WIT contract, the pin and this script.
# The component is written to a temporary file and renamed into place, so
# a running keygate that watches OUT never sees half a file.
#
# Set PYTHON to choose the interpreter (default: python3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$root/target/policies/python-allowlist.wasm}"
python="${PYTHON:-python3}"
venv="$root/target/python-venv"
wit="$root/policy-sdk/wit"
requirements="$here/requirements.txt"
stamp="$venv/keygate-requirements.txt"

say() { printf 'python-allowlist: %s\n' "$*" >&2; }

# Make OUT absolute, so that it means the same after we change directory.
case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac

# 1. Up to date? Then there is nothing to do.
sources=("$here/app.py" "$requirements" "$here/build.sh" "$wit")
if [ -f "$out" ] && [ -z "$(find "${sources[@]}" -newer "$out" -print -quit)" ]; then
    say "up to date: $out"
    exit 0
fi

# 2. The virtual environment with the pinned componentize-py.
make_venv() {
    say "creating a virtual environment in $venv"
    if "$python" -m venv "$venv" >/dev/null 2>&1; then
        return
    fi
    # Debian and Ubuntu ship `venv` without `ensurepip` unless python3-venv
    # is installed. Make the environment without pip and let the system's
    # pip install into it instead (pip >= 22.3 has `--python`).
    say "python -m venv failed (no ensurepip?); making it without pip and using the system pip"
    rm -rf "$venv"
    "$python" -m venv --without-pip "$venv"
    if ! "$python" -m pip --version >/dev/null 2>&1; then
        say "error: $python has neither ensurepip nor pip; install python3-venv or python3-pip"
        exit 1
    fi
}

pip_install() {
    if [ -x "$venv/bin/pip" ]; then
        "$venv/bin/pip" "$@"
    else
        "$python" -m pip --python "$venv/bin/python" "$@"
    fi
}

[ -x "$venv/bin/python" ] || make_venv
if ! cmp -s "$requirements" "$stamp"; then
    say "installing $(grep -v '^#' "$requirements") into $venv"
    pip_install install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$stamp"
fi

# 3. Build. componentize-py is given a directory holding app.py alone: it
# bundles what it finds there, and the guest interpreter writes bytecode
# beside the sources, which must not land in the source tree.
stage="$root/target/python-allowlist-src"
rm -rf "$stage"
mkdir -p "$stage" "$(dirname "$out")"
cp "$here/app.py" "$stage/"
tmp="$(mktemp "$out.tmp.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
say "building $out with $(grep -v '^#' "$requirements") (this takes a minute)"
(
    # An activated virtual environment would add its packages to the
    # component; only the build environment's are wanted.
    export VIRTUAL_ENV="$venv"
    "$venv/bin/componentize-py" --quiet -d "$wit" -w keygate-policy \
        componentize -p "$stage" app -o "$tmp"
)
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
say "built $out ($(wc -c <"$out") bytes)"
