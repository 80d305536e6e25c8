#!/usr/bin/env bash
# Team server benchmark, against `hifi up` serving [server] on loopback:
#  1. GET /api/v1/environments, 50 concurrent clients (wrk): throughput, p99;
#  2. POST /api/v1/cards/{id}/move, 50 concurrent clients, each request a
#     real move recorded with its event in one SQLite transaction;
#  3. the time from a card move (POST) to its event on an open SSE stream.
#
#   bash bench/api/run.sh                 # release build, 15 s per wrk run
#   DURATION=5s CARDS=50 bash bench/api/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
DURATION=${DURATION:-15s} CARDS=${CARDS:-50} MOVES=${MOVES:-200}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ -z "${HIFI:-}" ]; then
  cargo build --release --quiet --bin hifi --manifest-path "$top/Cargo.toml"
  HIFI="$top/target/release/hifi"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
repo="$work/repo"
cleanup() { "$HIFI" -C "$repo" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(free_port)
mkdir -p "$repo/services/api"
cd "$repo"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git init -q -b main
git config user.name bench && git config user.email bench@localhost
printf 'print("api")\n' > services/api/app.py
cat > hifi.toml <<TOML
[project]
name = "bench"

[[service]]
name = "api"
path = "services/api"
run = "python3 app.py"
health = "/healthz"
route = "/"

[[environment]]
name = "dev"
port = $(free_port)
cards_from = "In Dev"

[[environment]]
name = "uat"
port = $(free_port)
cards_from = "In Test"

[[environment]]
name = "prod"
port = $(free_port)
promote_from = "uat"
approvals = 1

[server]
listen = "127.0.0.1:$port"
TOML
printf '.hifi/\n' > .gitignore
git add -A && git commit -q -m bench
token=$("$HIFI" token create bench --role admin)
for i in $(seq 1 "$CARDS"); do "$HIFI" card add "B-$i" --branch "feature/b-$i" >/dev/null 2>&1; done
"$HIFI" up --detach >/dev/null
url="http://127.0.0.1:$port"

echo "== GET /api/v1/environments, 50 clients, $DURATION"
wrk -t2 -c50 -d"$DURATION" --latency -H "Authorization: Bearer $token" "$url/api/v1/environments" | tee "$work/get.txt"

cat > "$work/move.lua" <<LUA
-- Each request moves one of $CARDS cards to the other of two stages.
local n = 0
request = function()
  n = n + 1
  local card = (n % $CARDS) + 1
  local stage = (math.floor(n / $CARDS) % 2 == 0) and "in-dev" or "ready-for-dev"
  return wrk.format("POST", "/api/v1/cards/B-" .. card .. "/move",
    {["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json"},
    '{"stage": "' .. stage .. '"}')
end
LUA
echo "== POST /api/v1/cards/{id}/move, 50 clients, $DURATION"
wrk -t2 -c50 -d"$DURATION" --latency -s "$work/move.lua" "$url" | tee "$work/move.txt"

echo "== card move -> SSE event, $MOVES moves, one at a time"
python3 "$here/sse_latency.py" "$url" "$token" "$MOVES" "$CARDS"
