#!/usr/bin/env bash
# Runs `messenger-bench` against a fresh local stack, both release builds, on this machine: the way the
# README's Performance figures are measured.
#
# Usage: bench/local.sh [scenario and options of messenger-bench]     (default: all)
#        e.g. bench/local.sh open --rates 1000,2000 --svg /tmp/open.svg
#
# The stack runs on a temporary data directory with the deployed defaults except the limits a load test
# must lift (messages, sign-ups, logins and connections per user or address); its log goes to
# $BENCH_LOG (default: a file in the temporary directory, printed at the end). The bench reports its own
# CPU and the stack's, so a driver-bound figure shows as such.
#
# SEED_USERS=100000 SEED_MESSAGES=10000000 bench/local.sh …   first fills the stack's database with that many
# accounts and messages (bench/seed.py), for the scale rows: the same scenarios on a large database.
set -euo pipefail

. "$(dirname "$0")/../tests/scripts/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

# Every function binary only for the scenarios that exec them (cold start); the others need the stack, the
# bench and (to seed) migrate, which rebuild much faster after a change to the shared crate.
case "${1:-all}" in
    cold-start | all) build=(--workspace --bins) ;;
    *) build=(-p messenger-local -p messenger-bench -p migrate) ;;
esac
echo "==> cargo build --release ${build[*]}" >&2
cargo build --quiet --release "${build[@]}"

PORT=${MESSENGER_PORT:-$(free_port)}
S3_PORT=${MESSENGER_S3_PORT:-$(free_port)}
work=$(mktemp -d)
log=${BENCH_LOG:-$work/stack.log}
url="http://127.0.0.1:$PORT"

if [ -n "${SEED_USERS:-}${SEED_MESSAGES:-}" ]; then
    mkdir -p "$work/data"
    echo "==> migrate and seed $work/data/messenger.db" >&2
    env -i PATH="$PATH" DATABASE_URL="file:$work/data/messenger.db" S3_BUCKET=messenger AWS_REGION=us-east-1 \
        JWT_SECRET="bench-seed-$(printf '0123456789abcdef%.0s' 1 2 3 4)" "$CARGO_TARGET_DIR/release/migrate" >/dev/null
    python3 "$root/bench/seed.py" "$work/data/messenger.db" --users "${SEED_USERS:-100000}" \
        --messages "${SEED_MESSAGES:-10000000}"
fi

RATE_LIMIT_SEARCH=1000000000/1 RATE_LIMIT_SEND_MESSAGE=1000000000/1 RATE_LIMIT_WS_FRAMES=1000000000/1 RATE_LIMIT_REGISTER_IP=1000000/3600 RATE_LIMIT_LOGIN_IP=1000000/900 \
RATE_LIMIT_LOGIN_ACCOUNT_IP=1000000/900 RATE_LIMIT_CONNECT=1000000/60 RATE_LIMIT_REST_WRITE=1000000000/1 RATE_LIMIT_REST_READ=1000000000/1 \
    "$CARGO_TARGET_DIR/release/messenger-local" --port "$PORT" --s3-port "$S3_PORT" --data-dir "$work/data" \
    >"$log" 2>&1 &
stack=$!
cleanup() {
    kill "$stack" 2>/dev/null || true
    wait "$stack" 2>/dev/null || true
    [ -n "${BENCH_LOG:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
wait_for_health "$url" "$log"
sleep 1
echo "idle RSS of the stack: $(awk '/VmRSS/ {print $2, $3}' "/proc/$stack/status")" >&2

[ $# -gt 0 ] || set -- all
"$CARGO_TARGET_DIR/release/messenger-bench" --url "$url" --server-pid "$stack" "$@"
echo "RSS of the stack after the run: $(awk '/VmRSS/ {print $2, $3}' "/proc/$stack/status")" >&2
