#!/usr/bin/env bash
# Runs the full-stack suite with RUST_LOG=debug, every log line of the test process (the stacks, their
# functions, the gateway, the S3 endpoint and the clients) into one file, while the harness records every
# token, password, phone number and message content the tests send or receive (tests/lib.rs, `secrets`).
# Fails if any recorded value appears in the log, and if the log is not the debug log of a whole run.
#
# Usage: tests/scripts/log-secrets.sh   (from anywhere; reuses the test build)
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/messenger-ci-target}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$work/suite.log"
secrets="$work/secrets"

echo "==> full-stack suite with RUST_LOG=debug, log in $log"
TEST_LOG_FILE="$log" TEST_SECRETS_FILE="$secrets" RUST_LOG=debug cargo test -q -p messenger-tests --test api

python3 - "$log" "$secrets" <<'EOF'
import sys
log_path, secrets_path = sys.argv[1], sys.argv[2]
log = open(log_path, encoding="utf-8", errors="replace").read()
secrets = sorted({s for s in open(secrets_path, encoding="utf-8", errors="replace").read().split("\n") if s})
lines = log.count("\n")
requests = log.count(" http method=")
debug = log.count(" DEBUG ")
print(f"log-secrets: {lines} log lines ({debug} at debug, {requests} requests), {len(secrets)} recorded values")
# The check means nothing unless the log is a debug log of a real run with real secrets in it.
if requests < 1000 or debug < 1000 or len(secrets) < 500:
    sys.exit("log-secrets: the log or the recorded values are too small for the check to mean anything")
import re
# A phone's digits inside a longer run of digits (say a float's, latency_ms=0.45155599999999996) are chance,
# not the phone: digits count only as a whole run. The runs are collected once (a search per phone with
# look-arounds took minutes over this log).
runs = {}
for m in re.finditer(r"[0-9]+", log):
    runs.setdefault(m.group(), m.start())
def where(s):
    if s.isdigit():
        return runs.get(s, -1)
    return log.find(s)
leaks = [(s, at) for s in secrets if (at := where(s)) >= 0]
if leaks:
    for s, at in leaks[:20]:
        line = log[log.rfind("\n", 0, at) + 1 : log.find("\n", at)]
        print(f"LEAK: {s[:12]}... in: {line[:300]}", file=sys.stderr)
    sys.exit(f"log-secrets: {len(leaks)} recorded values appear in the log")
print("log-secrets: no token, password, phone number or message content in the log")
EOF
