#!/usr/bin/env bash
# Control-plane benchmark:
#  1. time from `hifi promote prep prod` until a keep-alive client sees the
#     new release, for a 5-service environment (blue-green prod), and the
#     requests that failed meanwhile;
#  2. the latency an idle control plane adds on the data path: wrk through
#     hifi's proxy to prod with the control plane running, then with it
#     killed (SIGKILL: the proxy and services live on), alternating.
#
#   bash bench/control/run.sh            # prints the tables
#   bash bench/control/run.sh --record   # also rewrites its section of bench/RESULTS.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-5} ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s}

for tool in wrk; do
  command -v "$tool" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
done
cargo build --release --quiet --manifest-path "$top/Cargo.toml"
hifi="$top/target/release/hifi"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
repo="$work/repo"
cleanup() { "$hifi" -C "$repo" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

git init -q -b main "$repo"
cd "$repo"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
services="s1 s2 s3 s4 s5"
{
  printf '[project]\nname = "bench"\n\n'
  for s in $services; do
    route="/$s"; [ "$s" = s1 ] && route="/"
    printf '[[service]]\nname = "%s"\npath = "services/%s"\nrun = "exec python3 app.py"\nhealth = "/healthz"\nroute = "%s"\n\n' "$s" "$s" "$route"
  done
  printf '[[environment]]\nname = "prep"\nport = %s\ncards_from = "Ready for Production"\nsoak = "1s"\n\n' "$(free_port)"
  printf '[[environment]]\nname = "prod"\nport = %s\npromote_from = "prep"\nstrategy = "blue-green"\nsoak = "1s"\n' "$(free_port)"
} > hifi.toml
prod_port=$(sed -n '/name = "prod"/{n;s/port = //p}' hifi.toml)
for s in $services; do mkdir -p "services/$s"; cp "$here/service.py" "services/$s/app.py"; echo v1 > "services/$s/VERSION"; done
printf '.hifi/\n' > .gitignore
git add -A && git commit -qm v1
git checkout -qb v2 && for s in $services; do echo v2 > "services/$s/VERSION"; done && git commit -qam v2 && git checkout -q main
"$hifi" card add V2 --branch v2 >/dev/null 2>&1
r1=$("$hifi" compose prep 2>/dev/null)
"$hifi" card move V2 ready-for-production >/dev/null
r2=$("$hifi" compose prep 2>/dev/null)
"$hifi" up --detach >/dev/null
for r in "$r1" "$r2"; do
  "$hifi" deploy prep --release "$r" --wait >/dev/null
  sleep 1.5   # soak: verified in prep
  "$hifi" approve prod --release "$r" >/dev/null
done

# prod's first release goes in before timing: a first deployment has no
# old release to switch from.
# (prep runs r2 now: the last one deployed above.)
"$hifi" promote prep prod --wait >/dev/null 2>&1

echo "Promotion: 5 services, blue-green prod, $RUNS promotions (each starts 5 python3 processes)"
times=()
fails=0
for i in $(seq 1 "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then r=$r1; v=v1; else r=$r2; v=v2; fi
  "$hifi" deploy prep --release "$r" --wait >/dev/null 2>&1 || true
  out=$(python3 "$here/switch_time.py" "http://127.0.0.1:$prod_port/" "$v" -- "$hifi" promote prep prod --wait) || { "$hifi" history prod | head -20; "$hifi" status; exit 1; }
  times+=("${out% *}"); fails=$((fails + ${out#* }))
  echo "  run $i: release $v visible after ${out% *} ms (failed requests: ${out#* })"
done
promo=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.0f ms median (min %.0f, max %.0f)", a[int((NR+1)/2)], a[1], a[NR]}')

echo "Idle control plane on the data path: wrk -t1 -c16 -d$DURATION to prod, $ROUNDS rounds each, alternating"
latency() {
  wrk -t1 -c16 -d"$DURATION" --latency "http://127.0.0.1:$prod_port/" | awk '
    /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
    END {print rps, p50, p99}'
}
up_rows=() down_rows=()
for round in $(seq 1 "$ROUNDS"); do
  up_rows+=("$(latency)")
  kill -9 "$(cat .hifi/up.lock)"; sleep 0.5
  down_rows+=("$(latency)")
  "$hifi" up --detach >/dev/null
done
median_col() { printf '%s\n' "$@" | awk -v c="$col" '{print $c}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
row() {
  local label=$1; shift
  col=1; rps=$(median_col "$@"); col=2; p50=$(median_col "$@"); col=3; p99=$(median_col "$@")
  echo "| $label | $rps | $p50 | $p99 |"
}
table=$(printf '| promotion to all traffic on the new release | failed requests |\n|---|---|\n| %s | %s |\n\n| data path | req/s | p50 | p99 |\n|---|---:|---:|---:|\n%s\n%s\n' \
  "$promo" "$fails" "$(row 'control plane running (idle)' "${up_rows[@]}")" "$(row 'control plane killed' "${down_rows[@]}")")
echo "$table"

if [ "${1:-}" = "--record" ]; then
  python3 - "$top/bench/RESULTS.md" "$table" "$RUNS" "$ROUNDS" "$DURATION" <<'PY'
import sys, re, datetime
path, table, runs, rounds, duration = sys.argv[1:]
section = (f"## Control plane\n\n`bash bench/control/run.sh --record` — {runs} promotions of a 5-service "
           f"environment (python3 services, blue-green prod), timed from the command until a keep-alive client "
           f"sees the new release; then wrk -t1 -c16 -d{duration} through the proxy with the control plane idle "
           f"and killed, {rounds} rounds each, medians ({datetime.date.today()}, 2 cores). An idle control "
           f"plane only reads its store and probes each instance once a second, so the two data-path rows "
           f"should differ by no more than run-to-run noise.\n\n{table}\n")
text = open(path).read() if __import__("os").path.exists(path) else "# Benchmark results\n"
if "## Control plane\n" in text:
    text = re.sub(r"## Control plane\n.*?(?=\n## |\Z)", section.rstrip("\n") + "\n", text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
fi
