#!/usr/bin/env bash
# The proxies' cost per request with a core of their own.
# A benchmark, never a test: numbers depend on the machine.
#
#   bash bench/proxy/pinned.sh   # ROUNDS=4 DURATION=5s BASELINE=<older bench-proxy>
#
# `run.sh` measures the proxies as a single machine runs them, sharing its
# two cores with the client and the backend; there every send wakes a
# process on the same cores, and who gets preempted when shapes the figures
# as much as the proxy's own work. Here each proxy runs alone on CPU 0 with
# one worker (hifi `--workers 1`, nginx `worker_processes 1`, HAProxy
# `nbthread 1`), and the client (wrk -t1 -c64) and the backend (nginx
# `return 200`, one worker) on CPU 1. Saturated, a proxy's req/s is the
# inverse of its CPU time per request, so this compares the proxies' own
# efficiency, as on a machine where the proxy has its core.
#
# ROUNDS rounds, the proxies taking turns; medians reported (CPU/req: the
# proxy's user + system time per request, from /proc). BASELINE=path adds a
# "hifi-before" row for that bench-proxy binary, measured in the same rounds.
# Prints a markdown table; needs taskset and at least two CPUs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-5s}
BASELINE=${BASELINE:-}
BACK=19301 HIFI=18380 BEFORE=18370 NGINX=18381 HAPROXY=18382

need=()
for tool in nginx haproxy wrk taskset; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]/taskset/util-linux}" >/dev/null
fi
[ "$(nproc)" -ge 2 ] || { echo "pinned.sh needs two CPUs" >&2; exit 1; }

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q -p hifi-proxy --example bench-proxy
BIN=$CARGO_TARGET_DIR/release/examples/bench-proxy

# shellcheck source=bench/proxy/lib.sh
. "$ROOT/bench/proxy/lib.sh"
workdir hifi-pinned
backend $BACK 1 blue 1

cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  upstream app { server 127.0.0.1:$BACK; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
taskset -c 0 nginx -c "$WORK/nginx.conf"
wait_port $NGINX

cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY
  default_backend be
backend be
  server blue 127.0.0.1:$BACK
CONF
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -D -p "$WORK/haproxy.pid"
wait_port $HAPROXY

hifi() { # binary name port: one worker on CPU 0, routing / to the backend
  setsid taskset -c 0 "$1" --state-dir "$WORK/$2-state" --admin "$WORK/$2.sock" --workers 1 &
  PIDS+=($!)
  echo $! >"$WORK/$2.proc"
  for _ in $(seq 1 100); do [ -S "$WORK/$2.sock" ] && break; sleep 0.1; done
  printf '{"env":"bench","listen":"127.0.0.1:%s","services":[{"name":"app","route":"/","internal_listen":"127.0.0.1:%s","active":{"slot":"blue","backends":["127.0.0.1:%s"]}}]}' \
    "$3" "$(($3 + 5))" "$BACK" >"$WORK/$2.json"
  curl -fsS --unix-socket "$WORK/$2.sock" -X PUT --data-binary @"$WORK/$2.json" http://hifi/tables/bench >/dev/null
  wait_port "$3"
}
hifi "$BIN" hifi $HIFI
PATHS=("hifi:$HIFI:$(cat "$WORK/hifi.proc")")
if [ -n "$BASELINE" ]; then
  hifi "$BASELINE" before $BEFORE
  PATHS=("hifi-before:$BEFORE:$(cat "$WORK/before.proc")" "${PATHS[@]}")
fi
# nginx's worker (not its master) and HAProxy's one process serve the traffic.
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
PATHS+=("nginx:$NGINX:$NGINX_WORKER" "haproxy:$HAPROXY:$(cat "$WORK/haproxy.pid")")

ticks() { # user + system clock ticks of every thread of a process
  local t=0 f
  for f in /proc/"$1"/task/*/stat; do
    # Fields after the command's closing parenthesis: utime is the 12th, stime the 13th.
    read -r -a s <<<"$(sed 's/.*) //' "$f")"
    t=$((t + s[11] + s[12]))
  done
  echo "$t"
}
HZ=$(getconf CLK_TCK)

for round in $(seq 1 "$ROUNDS"); do
  for p in "${PATHS[@]}"; do
    IFS=: read -r name port pid <<<"$p"
    c0=$(ticks "$pid")
    out=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" --latency "http://127.0.0.1:$port/")
    c1=$(ticks "$pid")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errs=$(awk '/Non-2xx|Socket errors/ {e = 1} END {print e + 0}' <<<"$out")
    cpu=$(awk -v t=$((c1 - c0)) -v n="$n" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "$name $rps $p99 $cpu $errs" >>"$WORK/results"
    echo "round $round: $name $rps req/s, p99 $p99, $cpu us of CPU per request" >&2
  done
done

echo
echo "| proxy (one core of its own) | req/s | p99 | CPU/req | runs with errors |"
echo "|---|---:|---:|---:|---:|"
for p in "${PATHS[@]}"; do
  name=${p%%:*}
  awk -v n="$name" '
    function median(a, k,   i, j, t) {
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    }
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; return v * 1000 }
    $1 == n { k++; r[k] = $2; l[k] = ms($3); c[k] = $4; e += $5 }
    END { printf "| %s | %.0f | %.2fms | %.2f us | %d |\n", n, median(r, k), median(l, k), median(c, k), e }
  ' "$WORK/results"
done
