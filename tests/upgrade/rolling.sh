#!/usr/bin/env bash
# A rolling upgrade of a running cluster from the previous release to this checkout, under a
# steady write load (docs/reliability.md, "Upgrades", has the last result):
#
#   bash tests/upgrade/rolling.sh [PREVIOUS_COMMIT]
#
# Builds the previous release from its commit (default: the one its fixtures were made by,
# tests/fixtures/upgrade/*/RELEASE_COMMIT, the newest release) in a git worktree with its own
# target folder, and this checkout; then tests/upgrade/rolling.py runs three voters of the
# previous release and upgrades them one at a time. Everything on 127.0.0.1, in a temporary
# folder. Not part of `.ci/test` (two builds of the whole workspace): run it before a release.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
release=$(ls -d tests/fixtures/upgrade/*/ | sort -V | tail -1)
commit=${1:-$(cat "$release/RELEASE_COMMIT")}
prev=$root/target/upgrade/previous
if [ ! -d "$prev/.git" ] && [ ! -f "$prev/.git" ]; then
  git worktree add --detach "$prev" "$commit" >/dev/null
else
  git -C "$prev" checkout --quiet --detach "$commit"
fi
echo "building the previous release ($commit)"
(cd "$prev" && CARGO_TARGET_DIR=$root/target/upgrade/target cargo build --locked --bins --quiet)
echo "building this checkout ($(git rev-parse --short=12 HEAD))"
cargo build --locked --bins --quiet
python3 tests/upgrade/rolling.py "$root/target/upgrade/target/debug" "$root/target/debug"
