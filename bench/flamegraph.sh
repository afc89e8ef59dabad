#!/usr/bin/env bash
# A flamegraph of the three cluster peers while 64 clients pin (the throughput figure), with
# perf and inferno (`cargo install inferno`). Writes $OUT (default bench/flamegraph-64-clients-after.svg).
# Needs a release build (the README command) and perf (apt-get install linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/flamegraph-64-clients-after.svg}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
BENCH_CLIENTS=64 BENCH_PINS=30000 target/release/cluster-bench --only throughput >"$tmp/bench.log" 2>&1 &
bench=$!
# Wait until the three peers run and the clients are busy.
for _ in $(seq 120); do
  [ "$(pgrep -fc 'ipfs-cluster-service.*daemon' || true)" -ge 3 ] && break
  sleep 1
done
sleep 15
pids=$(pgrep -f 'ipfs-cluster-service.*daemon' | paste -sd, -)
perf record -F 199 --call-graph dwarf,16384 -p "$pids" -o "$tmp/perf.data" -- sleep 8 >/dev/null 2>&1
wait "$bench" || true
perf script -i "$tmp/perf.data" 2>/dev/null | inferno-collapse-perf >"$tmp/folded"
cp "$tmp/folded" "${FOLDED:-/dev/null}"
inferno-flamegraph --title "3 peers, 64 clients pinning" <"$tmp/folded" >"$out"
echo "written: $out"
