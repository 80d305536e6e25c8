#!/usr/bin/env bash
# Benchmark of hifi's proxy against nginx and HAProxy, all on loopback.
# A benchmark, never a test: numbers depend on the machine.
#
#   bash bench/proxy/run.sh            # DURATION=10s ROUNDS=3 HIFI_WORKERS=2 SWITCHES=100 by default
#
# Same backend for everyone (nginx `return 200` on 127.0.0.1:19101 "blue" and
# :19102 "green"), same client (wrk -t1 -c64 --latency). Measures:
#   1. throughput and latency: direct, through hifi, nginx (2 workers, upstream
#      keepalive) and HAProxy (2 threads, http-reuse always), ROUNDS rounds
#      taking turns (so every path sees the same background load), medians
#      reported, with the proxy's own CPU time per request (user + system, all
#      its processes/threads; the least noisy figure on a shared machine);
#   2. switch under load (bench-switch, 4 keep-alive clients, SWITCHES flips):
#      time until keep-alive clients see the new slot and failed requests, for
#      hifi (admin table update), nginx (config rewrite + reload) and HAProxy
#      (runtime API over its unix socket);
#   3. hifi's resident memory at 256 connections (wrk -c256);
#   4. responses of 1 KiB and 64 KiB (one round of BODY_DURATION per path);
#   5. WebSocket echo throughput (bench-ws: 16 connections, 128-byte
#      messages, each waiting for its echo) against a bench-ws echo backend.
# BASELINE=path/to/older/bench-proxy adds a "hifi-before" row: that binary,
# same options, measured in the same rounds (before/after from one run);
# BASELINE_LABEL says in the recorded command what it was built from.
# PINGORA=path/to/a pingora-proxy binary taking `LISTEN UPSTREAM THREADS`
# (bench/proxy/pingora/) adds a "pingora" row to the throughput and body rows.
# Prints a table and writes it, with the command, into bench/RESULTS.md ("## Proxy").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DURATION=${DURATION:-10s}
# Two hifi worker threads (ProxyOptions::workers), like nginx's 2 workers and
# HAProxy's 2 threads; accepting, admin and health checks run on one more
# runtime thread. On this 2-core machine 2 workers beat 1 (paired runs:
# ~38k vs ~33k req/s).
HIFI_WORKERS=${HIFI_WORKERS:-2}
ROUNDS=${ROUNDS:-3}
SWITCHES=${SWITCHES:-100}
BODY_DURATION=${BODY_DURATION:-5s}
WS_SECS=${WS_SECS:-5}
BLUE=19101 GREEN=19102 WSB=19103 HIFI=18080 HIFI_INTERNAL=18090 NGINX=18081 HAPROXY=18082
BEFORE=18083 BEFORE_INTERNAL=18093 PINGORA_PORT=18084 ONE=18085 ONE_INTERNAL=18095
# ONE_WORKER=1 (default) adds a "hifi-1w" row: the same proxy with one worker
# thread (here mostly ~80 % of two workers' req/s, its p99 no steadier).
ONE_WORKER=${ONE_WORKER:-1}
BASELINE=${BASELINE:-}
PINGORA=${PINGORA:-}

need=()
for tool in nginx haproxy wrk; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
# SKIP_BUILD=1 uses binaries already built into $CARGO_TARGET_DIR.
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p hifi-proxy --example bench-proxy --example bench-switch --example bench-ws
BIN=$CARGO_TARGET_DIR/release/examples

# shellcheck source=bench/proxy/lib.sh
. "$ROOT/bench/proxy/lib.sh"
workdir hifi-proxy-bench

# ---- backend: nginx return 200 ----------------------------------------------
head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/1k"
head -c 65536 /dev/zero | tr '\0' 'a' >"$WORK/64k"
# nginx's workers run as an unprivileged user: let them read the files.
chmod 755 "$WORK"
chmod 644 "$WORK/1k" "$WORK/64k"
cat >"$WORK/backend.conf" <<CONF
worker_processes 2;
pid $WORK/backend.pid;
error_log $WORK/backend-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:$BLUE;  location / { return 200 "blue\n"; }
    location = /1k { default_type application/octet-stream; alias $WORK/1k; }
    location = /64k { default_type application/octet-stream; alias $WORK/64k; } }
  server { listen 127.0.0.1:$GREEN; location / { return 200 "green\n"; } }
}
CONF
nginx -c "$WORK/backend.conf"
wait_port $BLUE
"$BIN/bench-ws" server --listen 127.0.0.1:$WSB &
PIDS+=($!)
wait_port $WSB

# ---- nginx as proxy -----------------------------------------------------------
echo "upstream app { server 127.0.0.1:$BLUE; keepalive 64; }" >"$WORK/upstream.conf"
cat >"$WORK/nginx-proxy.conf" <<CONF
worker_processes 2;
pid $WORK/nginx-proxy.pid;
error_log $WORK/nginx-proxy-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  include $WORK/upstream.conf;
  upstream ws { server 127.0.0.1:$WSB; }
  server {
    listen 127.0.0.1:$NGINX;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    location /ws {
      proxy_pass http://ws;
      proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
    }
  }
}
CONF
nginx -c "$WORK/nginx-proxy.conf"
wait_port $NGINX

# ---- HAProxy ------------------------------------------------------------------
cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 2
  maxconn 8000
  stats socket $WORK/haproxy.sock mode 600 level admin
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
  timeout tunnel 60s
frontend fe
  bind 127.0.0.1:$HAPROXY
  acl is_ws path_beg /ws
  use_backend ws if is_ws
  default_backend be
backend ws
  server ws 127.0.0.1:$WSB
backend be
  server blue 127.0.0.1:$BLUE
  server green 127.0.0.1:$GREEN disabled
CONF
haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
wait_port $HAPROXY

# ---- hifi -----------------------------------------------------------------------
# Each hifi runs in a session of its own (see `setsid` in lib.sh), as nginx
# and HAProxy put themselves when they daemonize.
setsid "$BIN/bench-proxy" --state-dir "$WORK/hifi-state" --admin "$WORK/hifi.sock" --workers "$HIFI_WORKERS" &
HIFI_PID=$!
PIDS+=("$HIFI_PID")
for _ in $(seq 1 100); do [ -S "$WORK/hifi.sock" ] && break; sleep 0.1; done
WS_SERVICE=$(printf '{"name":"ws","route":"/ws","internal_listen":"127.0.0.1:%s","active":{"slot":"blue","backends":["127.0.0.1:%s"]}}' "$((HIFI_INTERNAL + 1))" "$WSB")
table() { # slot port
  printf '{"env":"bench","listen":"127.0.0.1:%s","services":[{"name":"app","route":"/","internal_listen":"127.0.0.1:%s","active":{"slot":"%s","backends":["127.0.0.1:%s"]}},%s]}' \
    "$HIFI" "$HIFI_INTERNAL" "$1" "$2" "$WS_SERVICE"
}
table blue $BLUE >"$WORK/table-blue.json"
table green $GREEN >"$WORK/table-green.json"
curl -fsS --unix-socket "$WORK/hifi.sock" -X PUT --data-binary @"$WORK/table-blue.json" http://hifi/tables/bench >/dev/null
wait_port $HIFI
PATHS=("direct:$BLUE" "hifi:$HIFI" "nginx:$NGINX" "haproxy:$HAPROXY")
BEFORE_PID=
if [ -n "$BASELINE" ]; then
  setsid "$BASELINE" --state-dir "$WORK/before-state" --admin "$WORK/before.sock" --workers "$HIFI_WORKERS" &
  BEFORE_PID=$!
  PIDS+=("$BEFORE_PID")
  for _ in $(seq 1 100); do [ -S "$WORK/before.sock" ] && break; sleep 0.1; done
  printf '{"env":"bench","listen":"127.0.0.1:%s","services":[{"name":"app","route":"/","internal_listen":"127.0.0.1:%s","active":{"slot":"blue","backends":["127.0.0.1:%s"]}},{"name":"ws","route":"/ws","internal_listen":"127.0.0.1:%s","active":{"slot":"blue","backends":["127.0.0.1:%s"]}}]}' \
    "$BEFORE" "$BEFORE_INTERNAL" "$BLUE" "$((BEFORE_INTERNAL + 1))" "$WSB" >"$WORK/table-before.json"
  curl -fsS --unix-socket "$WORK/before.sock" -X PUT --data-binary @"$WORK/table-before.json" http://hifi/tables/bench >/dev/null
  wait_port $BEFORE
  PATHS=("direct:$BLUE" "hifi-before:$BEFORE" "hifi:$HIFI" "nginx:$NGINX" "haproxy:$HAPROXY")
fi
ONE_PID=
if [ "$ONE_WORKER" = 1 ]; then
  setsid "$BIN/bench-proxy" --state-dir "$WORK/one-state" --admin "$WORK/one.sock" --workers 1 &
  ONE_PID=$!
  PIDS+=("$ONE_PID")
  for _ in $(seq 1 100); do [ -S "$WORK/one.sock" ] && break; sleep 0.1; done
  printf '{"env":"bench","listen":"127.0.0.1:%s","services":[{"name":"app","route":"/","internal_listen":"127.0.0.1:%s","active":{"slot":"blue","backends":["127.0.0.1:%s"]}}]}' \
    "$ONE" "$ONE_INTERNAL" "$BLUE" >"$WORK/table-one.json"
  curl -fsS --unix-socket "$WORK/one.sock" -X PUT --data-binary @"$WORK/table-one.json" http://hifi/tables/bench >/dev/null
  wait_port $ONE
  PATHS+=("hifi-1w:$ONE")
fi
PINGORA_PID=
if [ -n "$PINGORA" ]; then
  "$PINGORA" 127.0.0.1:$PINGORA_PORT 127.0.0.1:$BLUE "$HIFI_WORKERS" >"$WORK/pingora.log" 2>&1 &
  PINGORA_PID=$!
  PIDS+=("$PINGORA_PID")
  wait_port $PINGORA_PORT
  PATHS+=("pingora:$PINGORA_PORT")
fi

# ---- 1. throughput ----------------------------------------------------------------
run_wrk() { # name port connections [round]
  wrk -t1 -c"$3" -d"$DURATION" --latency "http://127.0.0.1:$2/" >"$WORK/wrk-$1${4:+-$4}.txt" 2>&1
}
to_ms() { # wrk duration (850.00us, 1.20ms, 1.01s) -> ms
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) ; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "?"; else print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ticks() { # CPU ticks (user + system) of processes and their children
  local t=0 p q
  for p in "$@"; do
    for q in "$p" $(pgrep -P "$p"); do
      t=$((t + $(awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)
one() { # file: req/s p50(ms) p99(ms) errors
  local f=$1 rps p50 p99 errs non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$f")
  p50=$(awk '$1=="50%" {print $2}' "$f")
  p99=$(awk '$1=="99%" {print $2}' "$f")
  errs=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' "$f")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$f")
  echo "${rps:-0} $(to_ms "${p50:-0}") $(to_ms "${p99:-0}") $(( ${errs:-0} + ${non2xx:-0} ))"
}
field() { # name: median req/s, p50, p99 over the rounds, total errors, median CPU us/request
  local n=$1 r
  for r in $(seq 1 "$ROUNDS"); do one "$WORK/wrk-$n-$r.txt"; done >"$WORK/$n.rounds"
  echo "$(awk '{print $1}' "$WORK/$n.rounds" | median) $(awk '{print $2}' "$WORK/$n.rounds" | median)ms" \
    "$(awk '{print $3}' "$WORK/$n.rounds" | median)ms $(awk '{s+=$4} END {print s}' "$WORK/$n.rounds")" \
    "$( [ -s "$WORK/$n.cpu" ] && median <"$WORK/$n.cpu" || echo -)"
}
pids_of() { # name -> the proxy's process ids
  case $1 in
    hifi) echo "$HIFI_PID" ;;
    hifi-before) echo "$BEFORE_PID" ;;
    pingora) echo "$PINGORA_PID" ;;
    hifi-1w) echo "$ONE_PID" ;;
    nginx) cat "$WORK/nginx-proxy.pid" ;;
    haproxy) cat "$WORK/haproxy.pid" ;;
    *) ;;
  esac
}
for r in $(seq 1 "$ROUNDS"); do
  for target in "${PATHS[@]}"; do
    name=${target%%:*} port=${target##*:}
    [ "$r" = 1 ] && wrk -t1 -c64 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
    pids=$(pids_of "$name")
    t0=$( [ -n "$pids" ] && ticks $pids || echo 0)
    run_wrk "$name" "$port" 64 "$r"
    t1=$( [ -n "$pids" ] && ticks $pids || echo 0)
    reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk-$name-$r.txt")
    [ -n "$pids" ] && awk -v t="$((t1 - t0))" -v hz="$HZ" -v n="${reqs:-1}" 'BEGIN {printf "%.1f\n", t / hz * 1e6 / n}' >>"$WORK/$name.cpu"
    echo "round $r $name: $(one "$WORK/wrk-$name-$r.txt")" >&2
  done
done

# ---- 2. switch under load -----------------------------------------------------------
"$BIN/bench-switch" --mode hifi --target 127.0.0.1:$HIFI --switches "$SWITCHES" \
  --admin "$WORK/hifi.sock" --env bench --table-blue "$WORK/table-blue.json" --table-green "$WORK/table-green.json" \
  >"$WORK/switch-hifi.txt"
"$BIN/bench-switch" --mode nginx --target 127.0.0.1:$NGINX --switches "$SWITCHES" \
  --nginx-conf "$WORK/nginx-proxy.conf" --nginx-upstream "$WORK/upstream.conf" \
  --blue 127.0.0.1:$BLUE --green 127.0.0.1:$GREEN >"$WORK/switch-nginx.txt"
"$BIN/bench-switch" --mode haproxy --target 127.0.0.1:$HAPROXY --switches "$SWITCHES" \
  --haproxy-sock "$WORK/haproxy.sock" >"$WORK/switch-haproxy.txt"
kv() { tr ' ' '\n' <"$WORK/switch-$1.txt" | awk -F= -v k="$2" '$1==k {print $2}'; }

# ---- 3. hifi memory at 256 connections -------------------------------------------------
rss() { awk -v k="$1:" '$1==k {print $2}' "/proc/$HIFI_PID/status"; }
RSS_IDLE=$(rss VmRSS)
wrk -t1 -c256 -d"$DURATION" "http://127.0.0.1:$HIFI/" >"$WORK/wrk-hifi-256.txt" 2>&1 &
WRK256=$!
sleep "$(( ${DURATION%s} * 7 / 10 ))"
RSS_LOAD=$(rss VmRSS)
wait "$WRK256"
RSS_HWM=$(rss VmHWM)

# ---- 4. bodies of 1 KiB and 64 KiB ---------------------------------------------------------
for size in 1k 64k; do
  for target in "${PATHS[@]}"; do
    name=${target%%:*} port=${target##*:}
    wrk -t1 -c64 -d"$BODY_DURATION" --latency "http://127.0.0.1:$port/$size" >"$WORK/body-$name-$size.txt" 2>&1
    echo "body $size $name: $(one "$WORK/body-$name-$size.txt")" >&2
  done
done
body_cell() { # name size -> "req/s (p99)"
  read -r rps _ p99 errs <<<"$(one "$WORK/body-$1-$2.txt")"
  if [ "${errs:-0}" = 0 ]; then echo "$rps (p99 ${p99}ms)"; else echo "$rps (p99 ${p99}ms, $errs errors)"; fi
}

# ---- 5. WebSocket echo throughput -----------------------------------------------------------
WS_PATHS=("direct:$WSB" "hifi:$HIFI" "nginx:$NGINX" "haproxy:$HAPROXY")
[ -n "$BASELINE" ] && WS_PATHS=("direct:$WSB" "hifi-before:$BEFORE" "hifi:$HIFI" "nginx:$NGINX" "haproxy:$HAPROXY")
for target in "${WS_PATHS[@]}"; do
  name=${target%%:*} port=${target##*:}
  "$BIN/bench-ws" client --target "127.0.0.1:$port" --conns 16 --secs "$WS_SECS" --size 128 >"$WORK/ws-$name.txt" 2>&1 || true
  echo "ws $name: $(cat "$WORK/ws-$name.txt")" >&2
done

# ---- report -------------------------------------------------------------------------------
CMD="bash bench/proxy/run.sh   # DURATION=$DURATION ROUNDS=$ROUNDS HIFI_WORKERS=$HIFI_WORKERS SWITCHES=$SWITCHES${BASELINE:+ BASELINE=<${BASELINE_LABEL:-an older bench-proxy}>}${PINGORA:+ PINGORA=<bench/proxy/pingora build>}"
{
  echo "## Proxy"
  echo
  echo "Command: \`$CMD\` on $(nproc) cores ($(uname -r)), $(date -u +%Y-%m-%d)."
  echo "Backend: nginx \`return 200\` on loopback; client: \`wrk -t1 -c64 -d$DURATION --latency\` (everything shares the same cores)."
  echo "$ROUNDS rounds, the paths taking turns in each; medians over the rounds (errors: total). CPU/req: the proxy's user + system CPU time per request."
  echo
  echo "| path | req/s | p50 | p99 | errors | CPU/req |"
  echo "|---|---:|---:|---:|---:|---:|"
  for target in "${PATHS[@]}"; do
    n=${target%%:*}
    read -r rps p50 p99 errs cpu <<<"$(field "$n")"
    [ "$cpu" = - ] || cpu="$cpu us"
    echo "| $n | $rps | $p50 | $p99 | $errs | $cpu |"
  done
  echo
  echo "Switch under load: $SWITCHES switches, 4 keep-alive clients; visible = from issuing the switch until the clients' responses come from the new slot (first client / all clients), p50 and max; failed = requests that got an error or non-2xx."
  echo
  echo "| proxy | switch command p50 | visible first p50 | visible first max | visible all p50 | visible all max | failed | reconnects |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for n in hifi nginx haproxy; do
    echo "| $n | $(kv $n command_ms_p50) ms | $(kv $n visible_first_ms_p50) ms | $(kv $n visible_first_ms_max) ms | $(kv $n visible_all_ms_p50) ms | $(kv $n visible_all_ms_max) ms | $(kv $n failed) | $(kv $n reconnects) |"
  done
  echo
  echo "Bodies: \`wrk -t1 -c64 -d$BODY_DURATION\` for a 1 KiB and a 64 KiB file from the nginx backend, one round per path: req/s (p99)."
  echo
  echo "| path | 1 KiB | 64 KiB |"
  echo "|---|---:|---:|"
  for target in "${PATHS[@]}"; do
    n=${target%%:*}
    echo "| $n | $(body_cell "$n" 1k) | $(body_cell "$n" 64k) |"
  done
  echo
  echo "WebSocket echo: bench-ws, 16 connections, 128-byte binary messages, each waiting for its echo, ${WS_SECS}s per path."
  echo
  echo "| path | messages/s | errors |"
  echo "|---|---:|---:|"
  for target in "${WS_PATHS[@]}"; do
    n=${target%%:*}
    echo "| $n | $(sed -n 's/.*msgs_per_sec=\([0-9]*\).*/\1/p' "$WORK/ws-$n.txt") | $(sed -n 's/.*errors=\([0-9]*\).*/\1/p' "$WORK/ws-$n.txt") |"
  done
  echo
  echo "hifi memory (wrk -c256): VmRSS idle $((RSS_IDLE / 1024)) MB, under load $((RSS_LOAD / 1024)) MB, peak (VmHWM) $((RSS_HWM / 1024)) MB; $(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk-hifi-256.txt") req/s at 256 connections."
  echo
  cat "$(dirname "$0")/NOTES.md"
} >"$WORK/section.md"
cat "$WORK/section.md"

RESULTS=bench/RESULTS.md
[ -f "$RESULTS" ] || printf '# Benchmark results\n\n' >"$RESULTS"
# Replace the "## Proxy" section (up to the next "## " heading), keep the rest.
python3 - "$RESULTS" "$WORK/section.md" <<'PY'
import sys
path, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n") + "\n"
lines = open(path).read().split("\n")
out, i, done = [], 0, False
while i < len(lines):
    if lines[i].strip() == "## Proxy":
        i += 1
        while i < len(lines) and not lines[i].startswith("## "):
            i += 1
        out.append(section)
        done = True
        continue
    out.append(lines[i])
    i += 1
text = "\n".join(out).rstrip("\n") + "\n"
if not done:
    text += "\n" + section
open(path, "w").write(text)
PY
echo "raw outputs in $WORK; section written to $RESULTS"
