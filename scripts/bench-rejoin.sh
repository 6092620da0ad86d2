#!/usr/bin/env bash
# Resumability benchmark (issue 5): a 4-node subnet (release build, default
# 500-height intervals) runs while node 3 is stopped for MISSED heights;
# node 0's data directory is measured every 1,000 heights (disk use must stay
# flat); then node 3 restarts and the time until it certifies the subnet's
# height again is reported (it rejoins by catch-up package + state sync).
#
#   scripts/bench-rejoin.sh [MISSED=10000]
#
# Build first: cargo build --release -p cairn-cli
set -euo pipefail
missed=${1:-10000}
root=$(cd "$(dirname "$0")/.." && pwd)
cairn=$root/target/release/cairn
dir=$(mktemp -d /tmp/cairn-bench-rejoin.XXXXXX)
port=${BENCH_PORT:-5500}
"$cairn" init --nodes 4 --port "$port" --data-dir "$dir/net" >/dev/null
pids=()
run_node() { "$cairn" node --config "$dir/net/node-$1/node.json" --log-level warn >>"$dir/node-$1.log" 2>&1 & pids[$1]=$!; }
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for i in 0 1 2 3; do run_node "$i"; done
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
height() { local h; h=$(metric "$1" cairn_certified_height || true); echo "${h%.*}"; }
until [ -n "$(height $((port + 3)))" ] && [ "$(height $((port + 3)))" -gt 5 ]; do sleep 0.2; done
kill -TERM "${pids[3]}"; wait "${pids[3]}" 2>/dev/null || true
start=$(height "$port")
echo "node 3 stopped at height $start"
next=$((start + 1000))
t0=$(date +%s)
while :; do
  h=$(height "$port")
  if [ "$h" -ge "$next" ]; then
    printf 'height %6d: node 0 data dir %s KiB (%s s)\n' "$h" "$(du -sk "$dir/net/node-0" | cut -f1)" $(( $(date +%s) - t0 ))
    next=$((next + 1000))
  fi
  [ "$h" -ge $((start + missed)) ] && break
  sleep 1
done
t1=$(date +%s.%N)
run_node 3
until [ -n "$(height $((port + 3)))" ] && [ "$(height $((port + 3)))" -ge $(( $(height "$port") - 2 )) ]; do sleep 0.1; done
t2=$(date +%s.%N)
printf 'node 3 missed %d heights and rejoined in %.1f s (state syncs: %s, blocks executed since restart: %s)\n' \
  "$(( $(height "$port") - start ))" "$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')" \
  "$(metric $((port + 3)) cairn_state_syncs_total)" "$(metric $((port + 3)) cairn_blocks_total)"
