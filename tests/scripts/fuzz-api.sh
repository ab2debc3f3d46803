#!/usr/bin/env bash
# Schema-driven fuzzing of the whole HTTP API: schemathesis (PyPI) reads the running local stack's
# /openapi.json and sends generated requests, valid and invalid, to every operation, authenticated as a
# seeded user who has a peer, messages, a theme, a contact name and an upload. It fails on any response with
# status >= 500 and on any response whose status, content type or body does not conform to the schema.
# The stack's own access log counts what it served: at least FUZZ_MIN_REQUESTS (default 10 000) requests,
# none answered >= 500, and the stack still alive at the end.
#
# Usage: tests/scripts/fuzz-api.sh   (from anywhere; picks free ports; FUZZ_SEED and FUZZ_EXAMPLES tune it)
set -euo pipefail

. "$(dirname "$0")/lib.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/messenger-ci-target}"
SEED="${FUZZ_SEED:-20261203}"
EXAMPLES="${FUZZ_EXAMPLES:-300}"
MIN_REQUESTS="${FUZZ_MIN_REQUESTS:-10000}"

cache_venv messenger-fuzz-venv '[ -x "$VENV/bin/schemathesis" ] && "$VENV/bin/python" -c "import websockets"' \
    'schemathesis==4.32.5' 'websockets==17.4'
# CPython 3.11's "AST constructor recursion depth mismatch" (gh-106905) can fail ast.parse deep in a stack.
# Hypothesis parses its own source there only to describe a lambda for a repr: a description that fails is
# "<unknown>" instead of an error of the run (a .pth line runs at every start of the venv's Python).
site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cat > "$site/messenger_lambda_description.py" <<'EOF_PY'
from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description
EOF_PY
echo "import messenger_lambda_description" > "$site/messenger_lambda_description.pth"

echo "==> building the local stack"
cargo build --quiet -p messenger-local
stack_bin="$CARGO_TARGET_DIR/debug/messenger-local"

PORT=$(free_port)
S3_PORT=$(free_port)
work=$(mktemp -d)
base="http://127.0.0.1:$PORT"

# Limits would turn most of the run into 429s: lift them all, so requests reach the handlers.
for name in LOGIN_ACCOUNT_IP LOGIN_ACCOUNT LOGIN_IP REGISTER_IP SEARCH DIRECTORY USERNAME_CHANGE PASSWORD_CHANGE \
            SEND_MESSAGE TYPING WS_FRAMES CONNECT KEY_UPLOAD CLAIM CLAIM_DEVICE CLAIM_TARGET UPLOAD REST_WRITE REST_READ; do
    export "RATE_LIMIT_$name=1000000/1"
done
BCRYPT_COST=4 RUST_LOG=info "$stack_bin" --port "$PORT" --s3-port "$S3_PORT" --data-dir "$work/data" \
    >"$work/stack.log" 2>&1 &
stack=$!
cleanup() {
    kill "$stack" 2>/dev/null || true
    wait "$stack" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
wait_for_health "$base" "$work/stack.log"

echo "==> seeding a user with a peer, messages, a theme, a contact name and an upload"
TOKEN=$("$VENV/bin/python" - "$base" <<'EOF'
import asyncio, json, sys, urllib.request, uuid
import websockets

base = sys.argv[1]

def call(method, path, body=None, token=None, raw=None, content_type="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None

def register(first, phone):
    body = {"first_name": first, "last_name": "Fuzz", "phone": phone, "password": "fuzzing password"}
    return call("POST", "/auth/register", body)

me = register("Main", "+15550170001")
peer = register("Peer", "+15550170002")
token, peer_token = me["access_token"], peer["access_token"]
call("PUT", "/users/me/username?new_username=fuzz_main", token=token)
call("PUT", f"/contacts/{peer['user_id']}/local-name", {"local_name": "Friend"}, token=token)
colour = "4286336511"
call("POST", "/users/me/themes", {"name": "Night", "primary_color": colour, "background_color": colour,
     "bubble_color_me": colour, "bubble_color_other": colour, "text_color": colour,
     "secondary_text_color": colour, "brightness": "dark"}, token=token)
png = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")
boundary = "fuzzboundary"
multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
             f"Content-Type: image/png\r\n\r\n").encode() + png + f"\r\n--{boundary}--\r\n".encode()
upload = call("POST", "/upload", token=token, raw=multipart, content_type=f"multipart/form-data; boundary={boundary}")

async def chat():
    ws_base = base.replace("http://", "ws://") + "/ws"
    async with websockets.connect(f"{ws_base}?token={token}") as a, \
               websockets.connect(f"{ws_base}?token={peer_token}") as b:
        async def send(ws, to, content, **extra):
            await ws.send(json.dumps({"action": "send_message", "receiver_id": to, "encrypted_content": content,
                                      "client_msg_id": uuid.uuid4().hex, **extra}))
            while True:
                event = json.loads(await ws.recv())
                if event["event"] == "message_sent":
                    return
                if event["event"] == "error":
                    raise SystemExit(f"seeding failed: {event}")
        for i in range(10):
            await send(a, peer["user_id"], f"ciphertext {i}")
            await send(b, me["user_id"], f"reply {i}")
        await send(a, peer["user_id"], "a picture", message_type="image", media_url=upload["key"])

asyncio.run(chat())
print(token)
EOF
)

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
run() {
    "$VENV/bin/schemathesis" run "$base/openapi.json" -H "Authorization: Bearer $TOKEN" --checks "$checks" \
        --seed "$SEED" --workers 2 --request-timeout 30 --no-color --suppress-health-check all "$@"
}
# Deleting the caller's device or account ends its token: those two go last, after everything else.
echo "==> schemathesis: every operation but delete_device and delete_account ($EXAMPLES examples each, seed $SEED)"
run --max-examples "$EXAMPLES" --exclude-operation-id delete_device --exclude-operation-id delete_account
echo "==> schemathesis: delete_device, then delete_account"
run --max-examples 50 --include-operation-id delete_device
run --max-examples 50 --include-operation-id delete_account

kill -0 "$stack" || { echo "fuzz-api: the stack died" >&2; tail -50 "$work/stack.log" >&2; exit 1; }
python3 - "$work/stack.log" "$MIN_REQUESTS" <<'EOF'
import collections, re, sys
log, minimum = sys.argv[1], int(sys.argv[2])
statuses = collections.Counter()
failed = []
for line in open(log, errors="replace"):
    m = re.search(r"\bhttp method=(\S+) path=(\S+) status=(\d+)", line)
    if m:
        status = int(m.group(3))
        statuses[status] += 1
        if status >= 500:
            failed.append(line.strip())
    if "panicked" in line:
        failed.append(line.strip())
total = sum(statuses.values())
print(f"fuzz-api: the stack served {total} requests: " +
      ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
if failed:
    sys.exit("fuzz-api: server errors or panics:\n" + "\n".join(failed[:20]))
if total < minimum:
    sys.exit(f"fuzz-api: only {total} requests, fewer than {minimum}")
EOF
echo "fuzz-api: passed"
