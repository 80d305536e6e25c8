#!/usr/bin/env bash
# Schemathesis against the team server's own OpenAPI document: a project
# in a temp dir, `hifi up` serving [server] on a free loopback port, an
# admin token, and every operation fuzzed (positive and negative data).
# Passes when no answer is a 5xx and every answer matches the document
# (status code, content type, body schema).
#
#   bash .ci/schemathesis.sh            # builds hifi (debug) first
#   HIFI=target/release/hifi bash .ci/schemathesis.sh
#   MAX_EXAMPLES=100 bash .ci/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi

if [ -z "${HIFI:-}" ]; then
  cargo build --quiet --bin hifi
  HIFI="$root/target/debug/hifi"
fi
HIFI=$(realpath "$HIFI")

work=$(mktemp -d)
cleanup() {
  "$HIFI" -C "$work/shop" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
port=$(free_port)
dev_port=$(free_port)
prod_port=$(free_port)

mkdir -p "$work/shop/services/api"
cd "$work/shop"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git init -q -b main
git config user.name "Schemathesis"
git config user.email "schemathesis@example.com"
cat > services/api/app.py <<'PY'
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
PY
cat > hifi.toml <<TOML
[project]
name = "shop"

[[service]]
name = "api"
path = "services/api"
run = "python3 app.py"
health = "/healthz"
route = "/"

[[environment]]
name = "dev"
port = $dev_port
cards_from = "In Dev"

[[environment]]
name = "prod"
port = $prod_port
promote_from = "dev"
four_eyes = true

[server]
listen = "127.0.0.1:$port"
TOML
printf '.hifi/\n' > .gitignore
git add -A && git commit -q -m "shop"
git checkout -q -b feature/a && echo a > services/api/a.txt && git add -A && git commit -q -m a && git checkout -q main

token=$("$HIFI" token create schemathesis-admin --role admin)
"$HIFI" card add A-1 --branch feature/a --title "A card" >/dev/null
"$HIFI" card move A-1 in-dev >/dev/null
"$HIFI" compose dev >/dev/null 2>&1
"$HIFI" up --detach >/dev/null

cd "$root"
# /events streams for ever: it is tested over real HTTP in the server's
# tests, not here.
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --exclude-path /api/v1/events \
  --max-examples "${MAX_EXAMPLES:-30}" \
  --seed "${SEED:-20240601}" \
  --request-timeout 60 \
  --workers 1 \
  --no-color \
  --output-sanitize true
