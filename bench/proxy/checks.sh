#!/usr/bin/env bash
# External conformance checks of hifi's proxy, for CI (bounded: a few
# minutes; exits non-zero on any finding):
#   1. smugglex (crates.io) scans a listener for request smuggling: 0 findings;
#   2. the Autobahn WebSocket cases (kosoku, PyPI, fuzzingclient) against an
#      echo backend, directly and through the proxy: every case must get the
#      same verdict through the proxy as directly;
#   3. a real gRPC client and server (grpcio, PyPI) through the proxy with
#      protocol "grpc": calls echo, a failing call answers INTERNAL, and the
#      proxy counts exactly that one as an error of the slot.
#
#   bash bench/proxy/checks.sh        # TOOLS=dir to keep installed tools (default: $CARGO_HOME/bin)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
HERE=bench/proxy/checks
BACK=19601 WSB=19602 GRPCB=19603 HTTP=18601 WS=18602 GRPC=18603

need=()
for tool in nginx curl python3; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v smugglex >/dev/null || cargo install -q --locked smugglex --version 0.4.0
python3 -c "import kosoku, grpc" 2>/dev/null || python3 -m pip install -q kosoku==0.1.0 grpcio

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q -p hifi-proxy --example bench-proxy --example bench-ws
BIN=$CARGO_TARGET_DIR/release/examples

WORK=$(mktemp -d /tmp/hifi-proxy-checks.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/backend.pid" ] && kill "$(cat "$WORK/backend.pid")" 2>/dev/null || true
  sleep 0.2
}
trap cleanup EXIT
# shellcheck source=bench/proxy/lib.sh
. bench/proxy/lib.sh
FAILED=0
fail() { echo "FINDING: $*"; FAILED=1; }

# ---- backends and the proxy -------------------------------------------------
backend $BACK 1 ok
"$BIN/bench-ws" server --listen 127.0.0.1:$WSB &
PIDS+=($!)
python3 $HERE/grpc_check.py serve $GRPCB &
PIDS+=($!)
"$BIN/bench-proxy" --state-dir "$WORK/state" --admin "$WORK/admin.sock" --workers 2 &
PIDS+=($!)
for p in $BACK $WSB $GRPCB; do wait_port $p; done
for _ in $(seq 1 100); do [ -S "$WORK/admin.sock" ] && break; sleep 0.1; done
put() { # env listen internal backend [protocol]
  local proto=${5:+,\"protocol\":\"$5\"}
  curl -fsS --unix-socket "$WORK/admin.sock" -X PUT http://hifi/tables/"$1" --data-binary \
    "{\"env\":\"$1\",\"listen\":\"127.0.0.1:$2\",\"services\":[{\"name\":\"app\",\"route\":\"/\",\"internal_listen\":\"127.0.0.1:$3\",\"active\":{\"slot\":\"blue\",\"backends\":[\"127.0.0.1:$4\"]}$proto}]}" >/dev/null
}
put http $HTTP $((HTTP + 100)) $BACK
put ws $WS $((WS + 100)) $WSB
put grpc $GRPC $((GRPC + 100)) $GRPCB grpc
for p in $HTTP $WS $GRPC; do wait_port $p; done

# ---- 1. smuggling -------------------------------------------------------------
echo "== smugglex"
timeout 300 smugglex --no-color -t 5 --checks cl-te,te-cl,te-te,h2c,cl-edge,cl-0,0-cl,parser-discrepancy --json -o "$WORK/smugglex.json" \
  "http://127.0.0.1:$HTTP/" >"$WORK/smugglex.txt" 2>&1 || true
python3 - "$WORK/smugglex.json" <<'PY' || fail "smugglex reported request smuggling (see its output above)"
import json, sys
data = json.load(open(sys.argv[1]))
def walk(x):
    if isinstance(x, dict):
        if x.get("vulnerable") is True:
            yield x
        for v in x.values():
            yield from walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from walk(v)
found = list(walk(data))
ran = [c.get("check_type") for r in data.get("results", []) for c in r.get("checks", [])]
print(f"smugglex: {len(ran)} checks ({', '.join(map(str, ran))}), {len(found)} findings")
if len(ran) < 5:
    print("smugglex ran fewer checks than asked")
    sys.exit(1)
for f in found:
    print("  ", {k: f.get(k) for k in ("check", "check_type", "payload_index", "status")})
sys.exit(1 if found else 0)
PY
[ -s "$WORK/smugglex.json" ] || fail "smugglex wrote no report: $(tail -5 "$WORK/smugglex.txt")"

# ---- 2. Autobahn WebSocket cases ----------------------------------------------
echo "== Autobahn (kosoku fuzzingclient), directly and through the proxy"
(cd "$WORK" && timeout 300 kosoku -m fuzzingclient -p 4 -o "$WORK/ws-direct" 127.0.0.1:$WSB >"$WORK/ws-direct.log" 2>&1) || true
(cd "$WORK" && timeout 300 kosoku -m fuzzingclient -p 4 -o "$WORK/ws-proxy" 127.0.0.1:$WS >"$WORK/ws-proxy.log" 2>&1) || true
python3 - "$WORK/ws-direct" "$WORK/ws-proxy" <<'PY' || fail "Autobahn cases differ through the proxy"
import glob, json, os, sys
def verdicts(d):
    out = {}
    for f in glob.glob(os.path.join(d, "*.json")):
        r = json.load(open(f))
        if "id" in r:
            out[r["id"]] = (r.get("behavior"), r.get("behaviorClose"))
    return out
direct, proxied = verdicts(sys.argv[1]), verdicts(sys.argv[2])
if not direct or len(direct) != len(proxied):
    print(f"cases: {len(direct)} direct, {len(proxied)} through the proxy")
    sys.exit(1)
diff = {c: (direct[c], proxied.get(c)) for c in direct if direct[c] != proxied.get(c)}
ok = sum(1 for v in proxied.values() if v[0] == "OK")
print(f"autobahn: {len(proxied)} cases, {ok} OK through the proxy, {len(diff)} differ from direct")
for c, (a, b) in sorted(diff.items())[:20]:
    print(f"  {c}: direct {a}, proxied {b}")
sys.exit(1 if diff else 0)
PY

# ---- 3. gRPC --------------------------------------------------------------------
echo "== gRPC (grpcio) through the proxy"
timeout 60 python3 $HERE/grpc_check.py call 127.0.0.1:$GRPC 20 || fail "gRPC through the proxy"
sleep 0.2
stats=$(curl -fsS --unix-socket "$WORK/admin.sock" "http://hifi/stats?env=grpc&slot=blue")
echo "proxy stats: $stats"
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if (s["requests"], s["errors"]) == (21, 1) else 1)' "$stats" \
  || fail "the proxy should count 21 gRPC calls with 1 error"

if [ "$FAILED" = 0 ]; then echo "proxy checks: 3 passed, 0 failed"; else echo "proxy checks: failed"; fi
exit "$FAILED"
