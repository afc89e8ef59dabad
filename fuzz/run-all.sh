#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds (default 30); one line per target.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
status=0
for t in rest_query cid multiaddr service_json state_import rpc_message; do
  if cargo +nightly fuzz run "$t" -- -max_total_time="$secs" >"/tmp/fuzz-$t.log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "/tmp/fuzz-$t.log" | tail -1)
    echo "fuzz $t: ok ($runs in ${secs}s)"
  else
    echo "fuzz $t: FAILED (see /tmp/fuzz-$t.log)"; status=1
  fi
done
exit "$status"
