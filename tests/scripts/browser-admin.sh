#!/usr/bin/env bash
# The operator panel in a real headless Chromium: installs Debian's chromium (when missing) and
# playwright-core (npm, pinned by tests/browser/package-lock.json), starts a fresh local stack, and runs
# tests/browser/admin.test.mjs against it. Screenshots land in $ARTIFACTS (default target/browser-artifacts).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export ARTIFACTS="${ARTIFACTS:-$CARGO_TARGET_DIR/browser-artifacts}"

if ! command -v chromium >/dev/null; then
    echo "==> installing Debian's chromium"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null
fi
CHROMIUM="${CHROMIUM:-$(command -v chromium)}"
export CHROMIUM

echo "==> playwright-core (npm ci)"
(cd tests/browser && npm ci --no-audit --no-fund --silent)

echo "==> building the local stack"
cargo build --quiet -p messenger-local --bins
PORT=$(free_port)
S3_PORT=$(free_port)
work=$(mktemp -d)
export DATA_DIR="$work/data" MESSENGER_LOCAL="$CARGO_TARGET_DIR/debug/messenger-local"
export BASE_URL="http://127.0.0.1:$PORT"
BCRYPT_COST=4 "$MESSENGER_LOCAL" --port "$PORT" --s3-port "$S3_PORT" --data-dir "$DATA_DIR" >"$work/stack.log" 2>&1 &
stack=$!
trap 'kill "$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true; rm -rf "$work"' EXIT
wait_for_health "$BASE_URL" "$work/stack.log"

echo "==> browser tests ($CHROMIUM) against $BASE_URL; screenshots in $ARTIFACTS"
rm -rf "$ARTIFACTS"
if ! (cd tests/browser && node --experimental-websocket --no-warnings --test --test-concurrency=1 admin.test.mjs); then
    echo "--- stack log" >&2
    tail -n 40 "$work/stack.log" >&2
    exit 1
fi
for shot in dashboard user-banned audit hostile-name; do
    [ -s "$ARTIFACTS/$shot.png" ] || { echo "missing screenshot $shot.png" >&2; exit 1; }
done
