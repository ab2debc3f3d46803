#!/usr/bin/env bash
# The functions as `cargo lambda` runs them: starts the local stack (for its database, S3 endpoint and
# @connections API) and `cargo lambda watch` against that data, calls one route of every HTTP function
# through `/lambda-url/<function>/...`, then sends every sample event of `events/` with `cargo lambda invoke`
# and checks the status each one should get. cargo-lambda comes from PyPI into a cache venv.
#
# Usage: tests/scripts/lambda-watch.sh            (from anywhere; picks free ports)
#        tests/scripts/lambda-watch.sh --serve    (only start the stack and `cargo lambda watch`, and wait)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/messenger-ci-target}"

cache_venv messenger-lambda-venv '[ -x "$VENV/bin/cargo-lambda" ]' 'cargo-lambda==1.9.2'
export PATH="$VENV/bin:$PATH"

PORT=${MESSENGER_PORT:-$(free_port)}
S3_PORT=${MESSENGER_S3_PORT:-$(free_port)}
if [ "${1:-}" = "--serve" ]; then WATCH_PORT=${WATCH_PORT:-9000}; else WATCH_PORT=${WATCH_PORT:-$(free_port)}; fi
work=$(mktemp -d)
data="$work/data"
stack_url="http://127.0.0.1:$PORT"
watch_url="http://127.0.0.1:$WATCH_PORT"

echo "==> building the local stack and the functions"
cargo build --quiet -p messenger-local --bins
cargo build --quiet --workspace --bins

BCRYPT_COST=4 "$CARGO_TARGET_DIR/debug/messenger-local" --port "$PORT" --s3-port "$S3_PORT" --data-dir "$data" \
    >"$work/stack.log" 2>&1 &
stack=$!
watch=
cleanup() {
    [ -n "$watch" ] && kill -TERM -- "-$watch" 2>/dev/null || true
    kill "$stack" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
wait_for_health "$stack_url" "$work/stack.log"

# The environment the local stack gives its functions, pointed at its data: a database file, which a function
# opens only with `shared`'s `embedded` feature (builds for AWS leave SQLite out).
echo "==> cargo lambda watch on $watch_url (the stack on $stack_url)"
JWT_SECRET=$(cat "$data/jwt_secret") ADMIN_SESSION_SECRET=$(cat "$data/admin_session_secret") DATABASE_URL="file:$data/messenger.db" S3_BUCKET=messenger \
S3_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=messenger-local \
AWS_SECRET_ACCESS_KEY=messenger-local-secret WS_ENDPOINT="$stack_url/ws" BCRYPT_COST=4 \
    setsid cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --features shared/embedded >"$work/watch.log" 2>&1 &
watch=$!
for _ in $(seq 600); do
    curl -sf -o /dev/null "$watch_url/lambda-url/system/health" && break
    sleep 0.5
done
curl -sf -o /dev/null "$watch_url/lambda-url/system/health" || { cat "$work/watch.log" >&2; exit 1; }

if [ "${1:-}" = "--serve" ]; then
    echo "stack: $stack_url   cargo lambda watch: $watch_url/lambda-url/<function>/<path>   (Ctrl-C stops both)"
    wait "$watch"
    exit 0
fi

python3 - "$root" "$stack_url" "$watch_url" "$WATCH_PORT" "$work" <<'EOF'
import json, os, subprocess, sys, urllib.error, urllib.request

root, stack, watch, watch_port, work = sys.argv[1:]

def call(base, method, path, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            text = r.read()
            if not r.headers.get("content-type", "").startswith("application/json"):
                return r.status, text.decode(errors="replace")  # the admin panel's HTML
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")

def register(first, phone):
    status, body = call(stack, "POST", "/auth/register",
                        {"first_name": first, "last_name": "Watch", "phone": phone, "password": "watch password",
                         "public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"})
    assert status == 201, (status, body)
    return body

me = register("Main", "+15550180001")
peer = register("Peer", "+15550180002")  # user 2: the samples' peer (keys-exchange_key asks for its key)
assert peer["user_id"] == 2, peer
token = me["access_token"]
failures = []

# One route of every HTTP function, through the function URL path cargo lambda serves.
routes = {
    "auth": ("POST", "/auth/login", {"phone": "+15550180001", "password": "watch password"}, None, 200),
    "users": ("GET", "/me", None, token, 200),
    "system": ("GET", "/health", None, None, 200),
    "chats": ("GET", "/chats/active", None, token, 200),
    "files": ("POST", "/uploads/presign", {"size": 10, "content_type": "image/png"}, token, 200),
    "themes": ("GET", "/users/me/themes", None, token, 200),
    "contacts": ("PUT", f"/contacts/{peer['user_id']}/local-name", {"local_name": "Friend"}, token, 200),
    "keys": ("GET", "/keys/count", None, token, 200),
    "admin": ("GET", "/admin/login", None, None, 200),
}
_, spec = call(stack, "GET", "/openapi.json")
http_functions = {tag for ops in spec["paths"].values() for op in ops.values() for tag in op["tags"]}
missing = http_functions - routes.keys()
if missing:
    failures.append(f"no route tried for HTTP functions {sorted(missing)}")
for function, (method, path, body, auth, expected) in sorted(routes.items()):
    status, answer = call(watch, method, f"/lambda-url/{function}{path}", body, auth)
    print(f"lambda-url {function:9} {method} {path}: {status}")
    if status != expected:
        failures.append(f"{function} {method} {path}: {status}, expected {expected}: {answer}")

# Every sample event, with what it should get: the samples carry made-up ids, keys and passwords.
expected = {
    "admin-dashboard": 303,  # no session cookie: to the sign-in form
    "auth-change_password": 403,  # the sample's current password is not this user's
    "auth-login": 401,  # nor is its phone registered
    "auth-register": 201,
    "chats-ack_welcome": 404,  # no welcome for this device
    "chats-commit_group": 404,  # runs before chats-create_group: no group 1 yet
    "chats-create_group": 201,
    "chats-delete_message": 404,
    "chats-leave_group": 204,  # the group chats-create_group made (id 1): its only member leaves, it is gone
    "chats-list_commits": 404,  # ... and its commits with it
    "chats-list_group_messages": 404,  # ... and its messages
    "chats-rename_group": 404,  # ... so renaming it finds no group
    "keys-delete_device": 404,
    "keys-upload_key_packages": 409,  # the device has no identity keys (keys-upload_keys' made-up ones fail)
    "keys-upload_keys": 422,  # made-up keys do not verify
    "themes-create_theme": 201,
    "themes-delete_theme": 204,
    "themes-update_theme": 404,
    "users-delete_account": 204,  # with the password it was registered with
}
functions = ["ws-disconnect", "ws-connect", "ws-message", "auth", "users", "system", "chats", "files",
             "themes", "contacts", "keys", "admin"]
events = sorted(f[:-5] for f in os.listdir(f"{root}/events") if f.endswith(".json"))
# Deleting the account ends the token: last.
events.sort(key=lambda n: n == "users-delete_account")
for name in events:
    function = next(f for f in functions if name.startswith(f + "-"))
    text = open(f"{root}/events/{name}.json").read().replace("EXAMPLE_TOKEN", token)
    path = f"{work}/{name}.json"
    open(path, "w").write(text)
    run = subprocess.run(["cargo", "lambda", "invoke", function, "-A", "127.0.0.1", "-P", watch_port, "-F", path,
                          "-o", "json"], capture_output=True, text=True, timeout=300)
    try:
        status = json.loads(run.stdout)["statusCode"]
    except (ValueError, KeyError):
        failures.append(f"{name}: no response: {run.stdout[-300:]} {run.stderr[-300:]}")
        continue
    want = expected.get(name, 200)
    print(f"invoke {function:13} {name}: {status}")
    if status != want:
        failures.append(f"{name}: {status}, expected {want}: {run.stdout[-300:]}")

if failures:
    sys.exit("lambda-watch: FAILED\n" + "\n".join(failures))
print(f"lambda-watch: {len(routes)} function URLs and {len(events)} events answered as expected")
EOF
