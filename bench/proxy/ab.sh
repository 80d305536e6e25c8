#!/usr/bin/env bash
# Paired comparison of two bench-proxy binaries (e.g. before/after a change)
# on this noisy shared machine: both run at once behind the same nginx
# backend, and wrk alternates between them, ROUNDS times each.
#
#   bash bench/proxy/ab.sh OLD/bench-proxy NEW/bench-proxy   # ROUNDS=5 DURATION=5s CONNS=64 WORKERS=2
#
# WORKERS_A / WORKERS_B override WORKERS for one side (same binary twice
# compares worker counts); ARGS_A / ARGS_B add bench-proxy arguments.
#
# Prints one line per run and the median req/s and p99 of each side.
set -euo pipefail
A=$1 B=$2
ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-5s} CONNS=${CONNS:-64} WORKERS=${WORKERS:-2}
WORKERS_A=${WORKERS_A:-$WORKERS} WORKERS_B=${WORKERS_B:-$WORKERS}
BACK=19201 PA=18180 PB=18181
WORK=$(mktemp -d /tmp/hifi-ab.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/backend.pid" ] && kill "$(cat "$WORK/backend.pid")" 2>/dev/null || true
  sleep 0.3
}
trap cleanup EXIT
# shellcheck source=bench/proxy/lib.sh
. "$(dirname "$0")/lib.sh"
backend $BACK 2 blue
declare -A PID
start() { # name bin port workers [args]
  # shellcheck disable=SC2086
  setsid "$2" --state-dir "$WORK/$1-state" --admin "$WORK/$1.sock" --workers "$4" ${5:-} &
  PIDS+=($!)
  PID[$1]=$!
  for _ in $(seq 1 100); do [ -S "$WORK/$1.sock" ] && break; sleep 0.1; done
  printf '{"env":"ab","listen":"127.0.0.1:%s","services":[{"name":"app","route":"/","internal_listen":"127.0.0.1:%s","active":{"slot":"blue","backends":["127.0.0.1:%s"]}}]}' \
    "$3" "$(($3 + 100))" "$BACK" >"$WORK/$1.json"
  curl -fsS --unix-socket "$WORK/$1.sock" -X PUT --data-binary @"$WORK/$1.json" http://hifi/tables/ab >/dev/null
  wait_port "$3"
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$3/" >/dev/null 2>&1 # warm-up
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
start a "$A" $PA "$WORKERS_A" "${ARGS_A:-}"
start b "$B" $PB "$WORKERS_B" "${ARGS_B:-}"
for i in $(seq 1 "$ROUNDS"); do
  for side in a b; do
    port=$PA; [ $side = b ] && port=$PB
    t0=$(cpu_ticks "${PID[$side]}")
    wrk -t1 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port/" >"$WORK/$side-$i.txt" 2>&1
    t1=$(cpu_ticks "${PID[$side]}")
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/$side-$i.txt")
    reqs=$(awk '/requests in/ {print $1}' "$WORK/$side-$i.txt")
    # CPU time of the proxy per request (user+system), in microseconds: less
    # sensitive to the machine's other load than req/s.
    cpu_us=$(awk -v t="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    p99=$(awk '$1=="99%" {print $2}' "$WORK/$side-$i.txt")
    non2xx=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/$side-$i.txt" | tr '\n' ' ')
    echo "round $i $side rps=$rps p99=$p99 cpu/req=${cpu_us}us $non2xx"
    echo "$rps $p99 $cpu_us" >>"$WORK/$side.all"
  done
done
median() { # file column
  awk -v c="$2" '{v=$c; if (v ~ /ms$/) v=v+0; else if (v ~ /us$/) v=(v+0)/1000; else if (v ~ /s$/) v=(v+0)*1000; print v}' "$1" \
    | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
for side in a b; do
  echo "median $side: req/s $(median "$WORK/$side.all" 1) p99 $(median "$WORK/$side.all" 2) ms, cpu/req $(median "$WORK/$side.all" 3) us"
done
