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

step "done"
