#!/usr/bin/env bash
# Runs the full-stack suite against a real libSQL server (sqld), each test stack in a namespace of its
# own, as AWS deployments talk to a remote database. Uses $SQLD, else ~/.cache/sqld/sqld; without either
# it says so and exits 0 (build one with build-sqld.sh, see the README).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SQLD="${SQLD:-$HOME/.cache/sqld/sqld}"
if [ ! -x "$SQLD" ]; then
    echo "==> sqld not found (SQLD unset and no ~/.cache/sqld/sqld): the suite against a libSQL server is NOT run"
    exit 0
fi

HTTP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
DATA=$(mktemp -d)
# Every test stack gets a namespace of its own, and the suite makes over 200: sqld keeps at most
# --max-active-namespaces of them open (default 100) and closes others as it sees fit. Keep them all open.
"$SQLD" --db-path "$DATA/db" --http-listen-addr "127.0.0.1:$HTTP_PORT" --admin-listen-addr "127.0.0.1:$ADMIN_PORT" \
    --enable-namespaces --max-active-namespaces 2000 >"$DATA/sqld.log" 2>&1 &
SQLD_PID=$!
trap 'kill "$SQLD_PID" 2>/dev/null || true; wait "$SQLD_PID" 2>/dev/null || true; rm -rf "$DATA"' EXIT

wait_for_health "http://127.0.0.1:$HTTP_PORT" "$DATA/sqld.log"

echo "==> full-stack suite against sqld ($SQLD) on 127.0.0.1:$HTTP_PORT"
# The stacks' log (warnings and errors only) goes to a file; when a test fails its last lines say which
# statement the database refused, or why.
status=0
TEST_DATABASE_URL="http://127.0.0.1:$HTTP_PORT" TEST_SQLD_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT" \
    TEST_LOG_FILE="$DATA/stacks.log" RUST_LOG="${RUST_LOG:-warn}" \
    cargo test -p messenger-tests --test api || status=$?
if [ "$status" -ne 0 ]; then
    echo "==> the stacks' last 40 warnings and errors, each with its first cause (backtraces left out)"
    awk '/^[0-9T:.-]+Z +(WARN|ERROR) / { if (line != "") print line; line = substr($0, 1, 400); want = 0; next }
         /^Caused by:/ { want = 1; next }
         want && NF { line = line "  <- " substr($0, 1, 300); want = 0 }
         END { if (line != "") print line }' "$DATA/stacks.log" 2>/dev/null | tail -n 40 || true
    echo "==> sqld's log (last 30 lines)"
    tail -n 30 "$DATA/sqld.log" || true
fi
exit "$status"
