#!/usr/bin/env bash
# `sam build` as a deployer runs it (README, "Deploying with AWS SAM"): SAM's rust-cargolambda builder runs
# `cargo lambda build --release --arm64 --bin <function>` in each function's CodeUri. Checks that every
# function built holds one arm64 executable `bootstrap` whose zip (as `sam deploy` uploads it) is within the
# size budget, and prints the sizes.
#
# Usage: tests/scripts/sam-build.sh [LogicalId ...]   (default: every function; .ci/run builds SystemFunction)
#        LAMBDA_ZIP_BUDGET_BYTES overrides the budget (default 6 MiB).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/messenger-ci-target}"
BUDGET="${LAMBDA_ZIP_BUDGET_BYTES:-$((6 * 1024 * 1024))}"

tests/scripts/lambda-build.sh --tools
cache_venv messenger-ci-venv '[ -x "$VENV/bin/cfn-lint" ] && [ -x "$VENV/bin/sam" ]' cfn-lint aws-sam-cli
export PATH="${XDG_CACHE_HOME:-$HOME/.cache}/messenger-lambda-venv/bin:$VENV/bin:$PATH" SAM_CLI_TELEMETRY=0

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
echo "==> sam build --beta-features $*"
sam build --beta-features --build-dir "$build" "$@" >"$build.log" 2>&1 || { cat "$build.log" >&2; rm -f "$build.log"; exit 1; }
rm -f "$build.log"

packages=()
for dir in "$build"/*/; do
    if [ -e "$dir/bootstrap" ]; then packages+=("$(basename "$dir")=$dir"); fi
done
python3 "$root/tests/scripts/check-bootstrap.py" sam-build "$BUDGET" "${packages[@]}"
