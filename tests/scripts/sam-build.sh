#!/usr/bin/env bash
# `sam build` as a deployer runs it (README, "Deploying with AWS SAM"): SAM's rust-cargolambda builder runs
# `cargo lambda build --release --arm64 --bin <function>` in each function's CodeUri. Checks that every
# function built holds one arm64 executable `bootstrap` whose zip (as `sam deploy` uploads it) is within the
# size budget, and prints the sizes.
#
# Usage: tests/scripts/sam-build.sh [LogicalId ...]   (default: every function; .ci/run builds SystemFunction)
#        LAMBDA_ZIP_BUDGET_BYTES overrides the budget (default 6 MiB).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/messenger-ci-target}"
BUDGET="${LAMBDA_ZIP_BUDGET_BYTES:-$((6 * 1024 * 1024))}"

tests/scripts/lambda-build.sh --tools
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}"
if [ ! -x "$CACHE/messenger-ci-venv/bin/sam" ]; then
    echo "==> installing aws-sam-cli into $CACHE/messenger-ci-venv"
    python3 -m venv "$CACHE/messenger-ci-venv"
    "$CACHE/messenger-ci-venv/bin/pip" install --quiet --upgrade pip
    "$CACHE/messenger-ci-venv/bin/pip" install --quiet cfn-lint aws-sam-cli
fi
export PATH="$CACHE/messenger-lambda-venv/bin:$CACHE/messenger-ci-venv/bin:$PATH" SAM_CLI_TELEMETRY=0

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
echo "==> sam build --beta-features $*"
sam build --beta-features --build-dir "$build" "$@" >"$build.log" 2>&1 || { cat "$build.log" >&2; rm -f "$build.log"; exit 1; }
rm -f "$build.log"

python3 - "$build" "$BUDGET" <<'PY'
import io, os, sys, zipfile
build, budget = sys.argv[1], int(sys.argv[2])
status, seen = 0, 0
for name in sorted(os.listdir(build)):
    path = os.path.join(build, name, "bootstrap")
    if not os.path.isfile(path):
        continue
    seen += 1
    head = open(path, "rb").read(20)
    if head[:4] != b"\x7fELF" or int.from_bytes(head[18:20], "little") != 183 or not os.access(path, os.X_OK):
        print(f"sam-build: {name}/bootstrap is not an arm64 ELF executable", file=sys.stderr)
        status = 1
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    size = len(packed.getvalue())
    print(f"sam-build: {name:<22} bootstrap {os.path.getsize(path):>9} bytes, zipped {size:>8} bytes ({size / 1048576:.2f} MiB)")
    if size > budget:
        print(f"sam-build: {name} is over the budget of {budget} bytes", file=sys.stderr)
        status = 1
if seen == 0:
    print("sam-build: sam built no function", file=sys.stderr)
    status = 1
sys.exit(status)
PY
