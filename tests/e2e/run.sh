#!/usr/bin/env bash
# Runs the desktop end-to-end test: builds the app, then starts Xvfb, a D-Bus session and
# tauri-driver (WebKitWebDriver), all on this machine, and drives the app with Selenium.
# Screenshots of every view land in ${SHOTS:-target/e2e-shots}.
#
#   run.sh            the app and its peers on this machine's loopback (desktop_e2e.py)
#   run.sh multihost  the app on test host A, headless peers on hosts B and C: network
#                     namespaces on a bridge, made and removed here (multihost_e2e.py; root)
#
# E2E_PROFILE=release drives the release build (the bench's figures).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
mode=${1:-single}
export PATH="$HOME/.cargo/bin:$PATH"
if [ "$mode" = multihost ] && { [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; }; then
  echo "SKIPPED: the multi-host desktop test needs root and iproute2 (CI runs it)"
  exit 0
fi
profile=${E2E_PROFILE:-debug}
release=()
[ "$profile" = release ] && release=(--release)
cargo build --locked "${release[@]}" --bins
[ -d ui/node_modules ] || npm ci --prefix ui --no-audit --no-fund --loglevel=error
npm run --prefix ui --silent build >/dev/null
cargo build --locked "${release[@]}" --features desktop --bin ipfs-cluster-desktop
command -v tauri-driver >/dev/null || cargo install --locked tauri-driver@2.1.0
python3 -c 'import selenium' 2>/dev/null || python3 -m pip install --quiet 'selenium>=4.20,<5'

work=$(mktemp -d)
export SHOTS=${SHOTS:-$root/target/e2e-shots$([ "$mode" = multihost ] && echo /multihost)}
mkdir -p "$SHOTS"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
display=":$((90 + RANDOM % 100))"
pids=()
namespaces=()
bridge=
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "$work" 2>/dev/null || true
  # The test hosts go once nothing runs in them.
  for ns in "${namespaces[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  [ -n "$bridge" ] && ip link del "$bridge" 2>/dev/null || true
  # Logs next to the screenshots, for whoever reads a failure.
  mkdir -p "$SHOTS/logs"
  find "$work" -name '*.log' -not -path '*/ipfs/*' -exec cp {} "$SHOTS/logs/" \; 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
pids+=($!)
export DISPLAY=$display
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

# The app's peer: its own folder, HOME and loopback-only ports (CLUSTER_* overrides).
export HOME="$work/home" IPFS_CLUSTER_PATH="$work/app-peer"
mkdir -p "$HOME"
ipfs_port=$(free_port); rest_port=$(free_port); swarm_port=$(free_port); driver_port=$(free_port)
# WebKitWebDriver's own port too (its default, 4445, is taken by any other run at the same time).
native_port=$(free_port)
export CLUSTER_IPFSHTTP_NODEMULTIADDRESS="/ip4/127.0.0.1/tcp/$ipfs_port"
export CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/$rest_port"
export CLUSTER_LISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/$swarm_port"
script=desktop_e2e.py
in_host=()
if [ "$mode" = multihost ]; then
  # Three hosts on a bridge of their own, on a /24 no interface here is on (as
  # tests/src/netns.rs makes them): A (the app), B and C (headless peers). The bridge is
  # their only way out, and it leads nowhere else.
  used=$(ip -4 addr)
  third=
  for k in $(seq 0 199); do
    t=$((16 + ($$ + k) % 200))
    case "$used" in *"10.214.$t."*) ;; *) third=$t; break ;; esac
  done
  [ -n "$third" ] || { echo "no free test subnet"; exit 1; }
  tag=$(printf '%x%x' $(($$ % 65535)) $((RANDOM % 256)))
  ip link add "iebr$tag" type bridge
  bridge="iebr$tag"
  ip addr add "10.214.$third.254/24" dev "$bridge"
  ip link set "$bridge" up
  hosts=
  for i in 0 1 2; do
    ns="ie${tag}h$i" addr="10.214.$third.$((i + 1))"
    ip netns add "$ns"
    namespaces+=("$ns")
    ip link add "ie${tag}v$i" type veth peer name "ie${tag}p$i"
    ip link set "ie${tag}p$i" netns "$ns"
    ip link set "ie${tag}v$i" master "$bridge"
    ip link set "ie${tag}v$i" up
    ip -n "$ns" addr add "$addr/24" dev "ie${tag}p$i"
    ip -n "$ns" link set "ie${tag}p$i" up
    ip -n "$ns" link set lo up
    hosts="$hosts $ns=$addr"
  done
  export HOSTS="${hosts# }"
  # The app's peer listens for its cluster on host A's interface; its built-in IPFS node is
  # in the LAN mode users get.
  export CLUSTER_LISTENMULTIADDRESS="/ip4/0.0.0.0/tcp/$swarm_port"
  export IPFS_CLUSTER_IPFS_NETWORK=lan
  in_host=(ip netns exec "${namespaces[0]}")
  script=multihost_e2e.py
fi
# The IPFS proxy and the pinning service on ports the OS picks (the test does not use them).
export CLUSTER_IPFSPROXY_LISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/0"
export CLUSTER_IPFSPROXY_NODEMULTIADDRESS="/ip4/127.0.0.1/tcp/$ipfs_port"
export CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS="/ip4/127.0.0.1/tcp/0"
# The built-in IPFS node the app starts stays on loopback too (users get the LAN mode).
[ "$mode" = multihost ] || export IPFS_CLUSTER_IPFS_NETWORK=loopback
export IPFS_API="127.0.0.1:$ipfs_port" REST_API="127.0.0.1:$rest_port"
export APP="$root/target/$profile/ipfs-cluster-desktop" BIN="$root/target/$profile" WORK="$work"
export WEBDRIVER="http://127.0.0.1:$driver_port"
# "Open in browser" goes through xdg-open to $BROWSER: here a script that notes the address.
printf '#!/bin/sh\necho "$1" >> "%s/opened-urls"\n' "$work" >"$work/browser.sh"
chmod +x "$work/browser.sh"
export BROWSER="$work/browser.sh"
# The built-in IPFS nodes (the app's, started by the app) also answer `ls`, for the test.
export IPFS_LOCAL_NODE_TEST_API=true

# A real Secret Service in the session (gnome-keyring, unlocked as a login would): the app
# keeps its cluster secret there, and the test reads it back with secret-tool.
# In multihost mode all of it runs on host A (the X display is reached through its socket file).
export SCRIPT=$script
"${in_host[@]}" dbus-run-session -- bash -c '
  printf e2e-login | gnome-keyring-daemon --unlock --components=secrets >"$WORK/keyring.env"
  # Every call to the desktop notification service, as the session bus carries it.
  dbus-monitor --session "type='"'"'method_call'"'"',interface='"'"'org.freedesktop.Notifications'"'"'" \
    >"$WORK/notifications.log" 2>&1 & monitor=$!
  tauri-driver --port '"$driver_port"' --native-port '"$native_port"' >"$WORK/tauri-driver.log" 2>&1 & driver=$!
  # The app logs to its log files too (under $HOME), which land beside the screenshots.
  python3 "tests/e2e/$SCRIPT"; rc=$?
  # Nothing of the session outlives it (tauri-driver would keep its WebKitWebDriver).
  kill $driver $monitor 2>/dev/null
  pkill -f "^gnome-keyring-daemon" 2>/dev/null
  exit $rc
'
