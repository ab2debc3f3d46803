#!/usr/bin/env bash
# Runs the README's walkthrough as a new user would: every ```sh block preceded by a `<!-- walkthrough -->`
# line, in order, in one shell, against a fresh stack on a fresh data directory. Any failing command fails
# the run (curl fails on HTTP errors here, with the body shown), and the background jobs the blocks start
# (the stack, `messenger listen`) must still be alive at the end. Everything they started is stopped.
#
# Usage: tests/scripts/readme-walkthrough.sh   (from anywhere; needs ports 3000 and 3001 free)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

for port in 3000 3001; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "readme-walkthrough: port $port is in use; the walkthrough needs 3000 and 3001" >&2
        exit 1
    fi
done

work=$(mktemp -d)
script="$work/walkthrough.sh"
python3 - "$root/README.md" >"$script" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"^<!-- walkthrough -->\n```sh\n(.*?)^```", text, flags=re.M | re.S)
if not blocks:
    sys.exit("readme-walkthrough: no <!-- walkthrough --> blocks in README.md")
print("curl() { command curl --fail-with-body \"$@\"; }")
for i, block in enumerate(blocks, 1):
    print(f"echo '--- walkthrough block {i}' >&2")
    print(block)
# The background jobs (the stack, the listener) must have survived the whole walkthrough.
print('for job in $(jobs -p); do kill -0 "$job" || { echo "a background job died" >&2; exit 1; }; done')
print("echo '--- walkthrough ran to the end' >&2")
EOF

# A fresh stack: its own data directory (the blocks run `cargo run -p messenger-local`, which reads it here).
export MESSENGER_DATA_DIR="$work/data"
unset RATE_LIMIT_REGISTER_IP MESSENGER_HOME MESSENGER_PASSPHRASE

# Own process group, so the stack and the listener the blocks leave running can be stopped together.
setsid bash -euo pipefail -x "$script" &
group=$!
cleanup() {
    kill -TERM -- "-$group" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$group" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
if wait "$group"; then
    echo "readme-walkthrough: every block ran"
else
    rc=$?
    echo "readme-walkthrough: FAILED (exit $rc)" >&2
    exit "$rc"
fi
