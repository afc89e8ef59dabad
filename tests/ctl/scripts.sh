#!/usr/bin/env bash
# ipfs-cluster-ctl as scripts use it: `--enc json | jq`, `-Q` for one CID, exit codes.
# Run by tests/tests/ctl_scripts.rs with CTL (the binary), HOST (the peer's REST API
# multiaddr), WORK (a scratch folder) and MISSING (a CID no IPFS node has).
set -euo pipefail

ctl() { "$CTL" --host "$HOST" "$@"; }

# Runs "$@" and checks that it exits with $1.
expect_exit() {
  local want=$1
  shift
  set +e
  "$@" >"$WORK/out" 2>"$WORK/err"
  local got=$?
  set -e
  if [ "$got" -ne "$want" ]; then
    echo "expected exit $want, got $got: $*" >&2
    cat "$WORK/out" "$WORK/err" >&2
    exit 1
  fi
}

step() { echo "--- $*" >&2; }

step version
ctl --enc json version | jq -e '.version | test("^[0-9]+\\.[0-9]+")' >/dev/null

step "add one file, -Q prints only the root"
echo "hello from a script" >"$WORK/a.txt"
root=$(ctl add -Q --name greeting "$WORK/a.txt")
[ "$(echo "$root" | wc -l)" -eq 1 ]
ctl --enc json pin ls | jq -r .cid | grep -qx "$root"
ctl --enc json pin ls "$root" | jq -e '.name == "greeting"' >/dev/null

step "add a folder: -r needed, -q lists every node, hidden files skipped"
mkdir -p "$WORK/dir/sub"
echo one >"$WORK/dir/one.txt"
echo two >"$WORK/dir/sub/two.txt"
echo secret >"$WORK/dir/.hidden"
expect_exit 1 ctl add "$WORK/dir"
grep -q "use -r" "$WORK/err"
ctl add -r -q --wait --wait-timeout 1m "$WORK/dir" >"$WORK/cids"
[ "$(wc -l <"$WORK/cids")" -eq 4 ]   # one.txt, sub/two.txt, sub, dir
dir_root=$(tail -n 1 "$WORK/cids")
ctl --enc json status "$dir_root" | jq -e '[.peer_map[].status] | all(. == "pinned")' >/dev/null
ctl add -r "$WORK/dir" | grep -q "^added $dir_root dir\$"

step "one JSON object per item: jq reads each"
[ "$(ctl --enc json pin ls | jq -s length)" -eq 2 ]
ctl --enc json status | jq -r .cid | sort >"$WORK/status"
[ "$(wc -l <"$WORK/status")" -eq 2 ]

step "pin add with --expire-in, --no-status prints the pin"
ctl --enc json pin add "$IDENTITY" --expire-in 1h --no-status | jq -e '.expire_at != null' >/dev/null

step "pin update: the new CID takes the old pin's options"
ctl --enc json pin update "$root" "$IDENTITY2" --no-status | jq -e --arg root "$root" '.pin_update == $root' >/dev/null
ctl --enc json pin ls "$IDENTITY2" | jq -e '.name == "greeting"' >/dev/null

step "exit codes: 2 for an error answer, 1 for a failed call, 62 for a wait that gave up"
expect_exit 2 ctl pin add not-a-cid
grep -q "An error occurred" "$WORK/err"
expect_exit 2 ctl pin ls "$MISSING"
expect_exit 1 "$CTL" --host /ip4/127.0.0.1/tcp/1 id
expect_exit 62 ctl pin add "$MISSING" --wait --wait-timeout 1s

step "health graph is a dot graph; ipfs gc answers for every peer"
ctl health graph | head -n 1 | grep -q '^digraph cluster {'
ctl --enc json health graph | jq -e '.cluster_to_ipfs | length == 1' >/dev/null
ctl --enc json ipfs gc | jq -e '.peer | startswith("12D3Koo")' >/dev/null

step "pin rm"
ctl pin rm "$root" --no-status >/dev/null
expect_exit 2 ctl pin ls "$root"
echo "all ctl script checks passed" >&2
