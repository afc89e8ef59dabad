#!/usr/bin/env bash
# The window's checks: svelte-check (types), ESLint, then the component tests (Vitest).
# Ends with `ui: N passed; M failed`, counted into the suite's summary by .ci/test.
set -uo pipefail
cd "$(dirname "$0")"
failed=0
npm run --silent check || failed=$((failed + 1))
npm run --silent lint || failed=$((failed + 1))
report=$(mktemp)
trap 'rm -f "$report"' EXIT
npx vitest run --reporter=default --reporter=json --outputFile="$report" || true
read -r passed vfailed < <(python3 -c 'import json,sys
try:
    r = json.load(open(sys.argv[1])); print(r["numPassedTests"], r["numFailedTests"] + (0 if r["success"] or r["numFailedTests"] else 1))
except Exception:
    print(0, 1)' "$report")
echo "ui: $((passed + 2 - failed)) passed; $((vfailed + failed)) failed"
[ "$((vfailed + failed))" -eq 0 ]
