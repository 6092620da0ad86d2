#!/usr/bin/env bash
# Installs what Cairn's build and tests need on a fresh machine. Idempotent:
# every step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '[setup] %s\n' "$*"; }

# 1. The wasm32 target for the Rust test canisters (test-canisters/rust).
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "rust target wasm32-unknown-unknown: already installed"
else
    step "rust target wasm32-unknown-unknown: installing (rustup target add)"
    rustup target add wasm32-unknown-unknown
fi

# 2. The Motoko compiler (npm package `motoko`, pinned in package-lock.json).
if ! command -v npm >/dev/null 2>&1; then
    step "ERROR: node/npm not found; install Node.js >= 18 (e.g. apt-get install nodejs npm)" >&2
    exit 1
fi
if [ -f test-canisters/motoko/node_modules/motoko/package.json ]; then
    step "motoko (npm): already installed in test-canisters/motoko/node_modules"
else
    step "motoko (npm): npm ci in test-canisters/motoko"
    (cd test-canisters/motoko && npm ci --no-audit --no-fund)
fi

# 3. Crates of the test-canister workspace (so later builds need no network).
step "cargo fetch for test-canisters/Cargo.toml"
cargo fetch --locked --manifest-path test-canisters/Cargo.toml --target wasm32-unknown-unknown

# 4. The JS agent for the client smoke test (tests/js: `@icp-sdk/core`, pinned in
#    package-lock.json). Reinstalled when the lock file changes.
if [ -f tests/js/node_modules/@icp-sdk/core/package.json ] \
    && cmp -s tests/js/package-lock.json tests/js/node_modules/.cairn-package-lock.json; then
    step "@icp-sdk/core (npm): already installed in tests/js/node_modules"
else
    step "@icp-sdk/core (npm): npm ci in tests/js"
    (cd tests/js && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.cairn-package-lock.json)
fi

# 5. ic-py for the client smoke test, in a venv at tests/python/.venv (pinned in
#    tests/python/requirements.txt). Reinstalled when the requirements change.
venv=tests/python/.venv
if [ -x "$venv/bin/python" ] && cmp -s tests/python/requirements.txt "$venv/.cairn-requirements.txt"; then
    step "ic-py (pip): already installed in $venv"
else
    python=""
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
            python="$candidate"
            break
        fi
    done
    if [ -z "$python" ]; then
        step "ERROR: no python3 >= 3.9 found; install Python 3 with venv and pip (e.g. apt-get install python3-venv)" >&2
        exit 1
    fi
    step "ic-py (pip): creating $venv with $python and installing tests/python/requirements.txt"
    rm -rf "$venv"
    "$python" -m venv "$venv" || {
        step "ERROR: '$python -m venv' failed; install the venv module (e.g. apt-get install python3-venv)" >&2
        rm -rf "$venv"
        exit 1
    }
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q -r tests/python/requirements.txt
    cp tests/python/requirements.txt "$venv/.cairn-requirements.txt"
fi

step "done"
