#!/usr/bin/env bash
# Compose benchmark: one environment from 50 cards touching 20 services on a
# repository with 2,000 commits. Measures the first ("cold") composition —
# 50 merges, 20 exports and builds — and a composition when nothing changed.
#
#   bash bench/compose/run.sh            # prints the table
#   bash bench/compose/run.sh --record   # also rewrites its section of bench/RESULTS.md
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
COMMITS=${COMMITS:-2000} SERVICES=${SERVICES:-20} CARDS=${CARDS:-50} RUNS=${RUNS:-10}

if ! command -v hyperfine >/dev/null; then
  apt-get update -qq && apt-get install -y -qq hyperfine >/dev/null
fi
cargo build --release --quiet --manifest-path "$top/Cargo.toml"
hifi="$top/target/release/hifi"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
repo="$work/repo"
git init -q -b main "$repo"
cd "$repo"
python3 "$here/gen_repo.py" "$COMMITS" "$SERVICES" "$CARDS" | git fast-import --quiet
git checkout -q main
{
  printf '[project]\nname = "bench"\nbase = "main"\n\n'
  for s in $(seq -f '%02g' 0 $((SERVICES - 1))); do
    printf '[[service]]\nname = "svc%s"\npath = "services/svc%s"\nbuild = "true"\nrun = "python3 app.py"\nhealth = "/healthz"\nroute = "/svc%s"\n\n' "$s" "$s" "$s"
  done
  printf '[[environment]]\nname = "dev"\nport = 8100\ncards_from = "In Dev"\n'
} > hifi.toml
for c in $(seq -f '%02g' 0 $((CARDS - 1))); do
  "$hifi" card add "CARD-$c" --branch "card/$c" >/dev/null 2>&1
  "$hifi" card move "CARD-$c" in-dev >/dev/null
done
"$hifi" compose dev >/dev/null 2>&1   # check it composes before timing it

reset='git update-ref -d refs/heads/hifi/env/dev; rm -rf .hifi/artifacts'
hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/cold.json" --prepare "$reset" \
  -n cold "$hifi compose dev" >/dev/null 2>&1
hyperfine --runs "$RUNS" --warmup 2 --export-json "$work/warm.json" \
  -n unchanged "$hifi compose dev" >/dev/null 2>&1

table=$(python3 - "$work/cold.json" "$work/warm.json" <<'PY'
import json, sys
labels = {"cold": ("cold (every card merged, every service built)", "< 2 s"), "unchanged": ("nothing changed", "< 0.3 s")}
print("| composition | median | min | max | target |")
print("|---|---|---|---|---|")
for path in sys.argv[1:]:
    r = json.load(open(path))["results"][0]
    label, target = labels[r["command"]]
    print(f"| {label} | {r['median']*1000:.0f} ms | {r['min']*1000:.0f} ms | {r['max']*1000:.0f} ms | {target} |")
PY
)
echo "Compose: $CARDS cards, $SERVICES services, $COMMITS commits, $RUNS runs each ($(nproc) cores)"
echo "$table"

if [ "${1:-}" = "--record" ]; then
  python3 - "$top/bench/RESULTS.md" "$table" "$CARDS" "$SERVICES" "$COMMITS" <<'PY'
import sys, re, datetime
path, table, cards, services, commits = sys.argv[1:]
section = (f"## Compose\n\n`bash bench/compose/run.sh --record` — one environment composed from {cards} cards "
           f"touching {services} services on a repository with {commits} commits (hyperfine, "
           f"{datetime.date.today()}, 2 cores).\n\n{table}\n")
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmark results\n\nLatest figures of each benchmark in `bench/`, with the command that produced them.\n"
if "## Compose\n" in text:
    text = re.sub(r"## Compose\n.*?(?=\n## |\Z)", section.rstrip("\n") + "\n", text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text)
PY
fi
