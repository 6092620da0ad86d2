#!/usr/bin/env bash
# The project's test command: installs what the tests need (idempotent), then
# runs the whole test suite. CI runs exactly this (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Tests start replicas and drive real clients; the slow multi-node tests are
# part of the suite, not ignored.
cargo test --workspace --locked "$@"
