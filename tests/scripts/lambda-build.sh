#!/usr/bin/env bash
# Builds functions as AWS runs them: `cargo lambda build --release --arm64` (cargo-lambda and zig from PyPI,
# into a cache venv; the aarch64 standard library through rustup), zipped as Lambda takes them, and checks
# each bootstrap.zip against the size budget. Lambda's own limit for a directly uploaded zip is 50 MB; the
# budget here is what keeps cold starts and deploys quick.
#
# Usage: tests/scripts/lambda-build.sh [function ...]   (default: system; `--all` builds every function;
#        `--tools` only installs cargo-lambda, zig and the aarch64 target, for tests/scripts/sam-build.sh)
#        LAMBDA_ZIP_BUDGET_BYTES overrides the budget (default 6 MiB, what every function fits in).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/messenger-ci-target}"
BUDGET="${LAMBDA_ZIP_BUDGET_BYTES:-$((6 * 1024 * 1024))}"

cache_venv messenger-lambda-venv '[ -x "$VENV/bin/cargo-lambda" ] && "$VENV/bin/python" -m ziglang version' \
    'cargo-lambda==1.9.2' 'ziglang==0.17.1'
export PATH="$VENV/bin:$PATH"
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    echo "==> rustup target add aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
fi

[ "${1:-}" != "--tools" ] || exit 0

# Each function by its package (a package is named as its binary): `--workspace` would also select the local
# stack and the tests, and so build every function with the features they ask for (the embedded SQLite).
if [ "${1:-}" = "--all" ]; then
    functions=$(python3 -c 'import re,sys; print(" ".join(re.findall(r"Binary: (\S+)", open("template.yaml").read())))')
else
    functions="${*:-system}"
fi
packages=()
for f in $functions; do packages+=(-p "$f"); done

echo "==> cargo lambda build --release --arm64 --output-format zip ${packages[*]}"
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"

# The zip must hold exactly the executable Lambda's provided.al2023 runtime starts.
packages=()
for f in $functions; do packages+=("$f=$CARGO_TARGET_DIR/lambda/$f/bootstrap.zip"); done
exec python3 "$root/tests/scripts/check-bootstrap.py" lambda-build "$BUDGET" "${packages[@]}"
