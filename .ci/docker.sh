#!/usr/bin/env bash
# A Docker engine for the Docker runtime's tests (crates/runtime/tests/docker).
#
#   .ci/docker.sh start   install docker.io and busybox-static if missing;
#                         start dockerd unless an engine already answers
#   .ci/docker.sh stop    stop the dockerd that `start` started (only that one)
#   .ci/docker.sh status  say whether an engine answers
#
# The engine gets no bridge, no iptables rules and no masquerading: hifi's
# containers use host networking only, and nothing may ever get a bridge or
# private-range address. Without an engine the tests skip (loudly).
set -euo pipefail

state="${HIFI_DOCKER_STATE:-/tmp/hifi-ci-docker}"
socket="/var/run/docker.sock"
pidfile="$state/dockerd.pid"
log="$state/dockerd.log"

answers() {
  # The engine's /_ping over its socket, bounded.
  [ -S "$socket" ] && curl -fsS --max-time 2 --unix-socket "$socket" http://localhost/_ping >/dev/null 2>&1
}

install() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  # A static busybox: the test images are FROM scratch.
  if ! file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
    need+=(busybox-static)
  fi
  command -v curl >/dev/null || need+=(curl)
  command -v file >/dev/null || need+=(file)
  if [ ${#need[@]} -gt 0 ]; then
    echo "docker.sh: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

start() {
  install
  if answers; then
    echo "docker.sh: an engine already answers at $socket; leaving it alone"
    return 0
  fi
  mkdir -p "$state"
  echo "docker.sh: starting dockerd (log: $log)"
  # setsid: its own session, so it is not in the caller's process group.
  setsid dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
    --host "unix://$socket" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 60); do
    if answers; then
      echo "docker.sh: dockerd $(cat "$pidfile") answers at $socket"
      return 0
    fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "docker.sh: dockerd exited; last lines of $log:" >&2
      tail -n 20 "$log" >&2 || true
      rm -f "$pidfile"
      return 1
    fi
    sleep 0.5
  done
  echo "docker.sh: dockerd did not answer within 30s; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  stop
  return 1
}

stop() {
  if [ ! -f "$pidfile" ]; then
    echo "docker.sh: no dockerd started by this script"
    return 0
  fi
  local pid
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "docker.sh: stopping dockerd $pid"
    kill -TERM "$pid"
    for _ in $(seq 1 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "docker.sh: dockerd $pid still runs after 30s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answers; then echo "docker.sh: an engine answers at $socket"; else echo "docker.sh: no engine at $socket"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
