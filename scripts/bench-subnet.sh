#!/usr/bin/env bash
# Multi-node subnet benchmark (issue 4): starts `cairn start --nodes N` from
# the release build on loopback, measures the finalization rate of the idle
# subnet from node 0's /metrics, then drives v4 updates (counter `inc`) at
# node 0 with `cairn bench load` and reports throughput and latency.
#
#   scripts/bench-subnet.sh NODES [LINK_DELAY_MS] [CONNECTIONS]
#
# Build first: cargo build --release -p cairn-cli
set -euo pipefail
nodes=${1:?usage: bench-subnet.sh NODES [LINK_DELAY_MS] [CONNECTIONS]}
delay=${2:-0}
conns=${3:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
cairn=$root/target/release/cairn
dir=$(mktemp -d /tmp/cairn-bench-subnet.XXXXXX)
port=${BENCH_PORT:-5400}
"$cairn" start --nodes "$nodes" --port "$port" --data-dir "$dir/net" --link-delay-ms "$delay" --log-level warn \
  >"$dir/start.out" 2>&1 &
supervisor=$!
cleanup() { kill -TERM "$supervisor" 2>/dev/null || true; wait "$supervisor" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
for _ in $(seq 1 600); do
  h=$(metric "$port" cairn_certified_height || true)
  [ -n "$h" ] && [ "${h%.*}" -gt 0 ] && break
  sleep 0.1
done
sleep 2
f0=$(metric "$port" cairn_finalized_height); t0=$(date +%s.%N)
sleep 10
f1=$(metric "$port" cairn_finalized_height); t1=$(date +%s.%N)
rate=$(awk -v a="$f0" -v b="$f1" -v s="$t0" -v e="$t1" "BEGIN { print (b - a) / (e - s) }")
printf 'nodes=%s link_delay_ms=%s idle: %.1f finalized blocks/s (%.0f ms per block)\n' \
  "$nodes" "$delay" "$rate" "$(awk -v r="$rate" "BEGIN { print 1000 / r }")"
canister=$("$cairn" bench setup --url "http://127.0.0.1:$port")
"$cairn" bench load --url "http://127.0.0.1:$port" --canister "$canister" --kind update --mode raw \
  -c "$conns" --duration 10 --warmup 3 --runs ${RUNS:-3}
f2=$(metric "$port" cairn_finalized_height); sleep 5; f3=$(metric "$port" cairn_finalized_height)
printf "after load: %.1f finalized blocks/s\n" "$(awk -v a="$f2" -v b="$f3" "BEGIN { print (b - a) / 5 }")"
