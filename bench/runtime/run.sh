#!/usr/bin/env bash
# Runtime benchmark: containers against local processes, same services,
# same run.
#  1. time from `hifi deploy ENV` to all traffic on the new slot (blue-green,
#     `--wait` returns when the switch is done) for 5 services × 2 replicas,
#     on the local runtime and on the Docker runtime, alternating;
#  2. the image build time that reuse saves: the first composition builds
#     five images; a composition of a new commit that leaves the services
#     alone reuses them.
#
# Each service is Debian's static busybox serving files (`httpd`), run as a
# process by the local runtime and as a `FROM scratch` image by Docker, so
# the two differ only in the runtime.
#
#   bash bench/runtime/run.sh        # needs a Docker engine: .ci/docker.sh start
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
RUNS=${RUNS:-5}

file -L /bin/busybox | grep -q 'statically linked' || {
  echo "needs Debian's busybox-static (.ci/docker.sh start installs it)" >&2
  exit 1
}
"$top/.ci/docker.sh" status >/dev/null || {
  echo "needs a Docker engine: .ci/docker.sh start" >&2
  exit 1
}
[ -n "${SKIP_BUILD:-}" ] || cargo build --release --quiet --manifest-path "$top/Cargo.toml"
hifi="$top/target/release/hifi"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%3N; }
work=$(mktemp -d)
repo="$work/repo"
cleanup() { "$hifi" -C "$repo" down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

git init -q -b main "$repo"
cd "$repo"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
services="s1 s2 s3 s4 s5"

version() { # service, version: what it serves
  local dir="services/$1"
  printf '{"service": "%s", "version": "%s"}\n' "$1" "$2" >"$dir/www/version"
}

for s in $services; do
  dir="services/$s"
  mkdir -p "$dir/bin" "$dir/www"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in sh httpd; do ln -s busybox "$dir/bin/$applet"; done
  echo ok >"$dir/www/healthz"
  printf 'FROM scratch\nCOPY bin /bin\nCOPY www /www\nENV PATH=/bin\nCMD ["/bin/sh", "-c", "exec httpd -f -p 127.0.0.1:$PORT -h /www"]\n' >"$dir/Dockerfile"
  version "$s" v0
done
{
  printf '[project]\nname = "bench-runtime"\n\n'
  for s in $services; do
    route="/$s"; [ "$s" = s1 ] && route="/"
    printf '[[service]]\nname = "%s"\npath = "services/%s"\nrun = "exec bin/busybox httpd -f -p 127.0.0.1:$PORT -h www"\nhealth = "/healthz"\nroute = "%s"\nimage = "Dockerfile"\nreplicas = 2\n\n' "$s" "$s" "$route"
  done
  for env in local docker; do
    printf '[[environment]]\nname = "%s"\nport = %s\ncards_from = "In Dev"\nruntime = "%s"\nsoak = "1s"\ndrain = "1s"\n\n' "$env" "$(free_port)" "$env"
  done
} >hifi.toml
printf '.hifi/\n' >.gitignore
git add -A && git commit -qm "five busybox services"

# 2. Image builds: all five, then none when only the README changes.
t0=$(ms); "$hifi" compose local >/dev/null 2>&1; t1=$(ms)
first=$((t1 - t0))
echo "a new commit outside the services" >README && git add README && git commit -qm readme
t0=$(ms); "$hifi" compose docker >/dev/null 2>&1; t1=$(ms)
reused=$((t1 - t0))

"$hifi" up --detach >/dev/null
"$hifi" deploy local --wait >/dev/null
"$hifi" deploy docker --wait >/dev/null

# 1. Deployments of a new version of every service, alternating runtimes.
declare -a local_ms docker_ms
for i in $(seq 1 "$RUNS"); do
  for s in $services; do version "$s" "v$i"; done
  git add -A && git commit -qm "v$i"
  "$hifi" compose local >/dev/null 2>&1
  "$hifi" compose docker >/dev/null 2>&1
  for env in local docker; do
    t0=$(ms); "$hifi" deploy "$env" --wait >/dev/null; t1=$(ms)
    if [ "$env" = local ]; then local_ms+=($((t1 - t0))); else docker_ms+=($((t1 - t0))); fi
  done
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
min() { printf '%s\n' "$@" | sort -n | head -1; }
max() { printf '%s\n' "$@" | sort -n | tail -1; }
echo
echo "deploy → all traffic on the new slot, 5 services × 2 replicas, $RUNS runs each (ms):"
printf '| runtime | median | min | max | runs |\n|---|---:|---:|---:|---|\n'
printf '| local processes | %s | %s | %s | %s |\n' "$(median "${local_ms[@]}")" "$(min "${local_ms[@]}")" "$(max "${local_ms[@]}")" "${local_ms[*]}"
printf '| docker containers | %s | %s | %s | %s |\n' "$(median "${docker_ms[@]}")" "$(min "${docker_ms[@]}")" "$(max "${docker_ms[@]}")" "${docker_ms[*]}"
echo
echo "image builds (ms): first composition, 5 images built: $first; a new commit with the services unchanged, 5 images reused: $reused"
