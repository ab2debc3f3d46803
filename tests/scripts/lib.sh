# Sourced by the scripts of this folder, .ci/run and bench/local.sh: what they all do the same way.
# After `. tests/scripts/lib.sh`, $root is the repository and the working directory; CARGO_TARGET_DIR is
# left to each script (the CI cache or ./target).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

# A TCP port on 127.0.0.1 that nothing listens on now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# cache_venv NAME CHECK PACKAGE...: points VENV at the Python venv NAME in the cache directory and, unless
# the shell condition CHECK holds (it may use $VENV), creates it and installs the PACKAGEs with pip.
cache_venv() {
    local check=$2
    VENV="${XDG_CACHE_HOME:-$HOME/.cache}/$1"
    shift 2
    if ! eval "$check" >/dev/null 2>&1; then
        echo "==> installing $* into $VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet "$@"
    fi
}

# wait_for_health URL [LOG]: waits up to 10 s for URL/health to answer 2xx; if it never does, prints LOG
# (the server's output) and fails.
wait_for_health() {
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$1/health" && return 0
        sleep 0.1
    done
    [ -z "${2:-}" ] || cat "$2" >&2
    echo "$1/health did not answer within 10 s" >&2
    return 1
}
