# Shared by the proxy's bench scripts (sourced, not run).
#
# Every proxy measured runs in a session of its own: nginx and HAProxy
# `setsid` when they daemonize, hifi's local runtime starts its proxy in a
# new session, and the scripts start bench-proxy under `setsid`. It matters:
# where the kernel shares CPU fairly between sessions (autogroup,
# /proc/sys/kernel/sched_autogroup_enabled), a proxy left in the script's
# session splits one share with wrk, and on a 2-core machine that alone
# cost hifi 11 % of its req/s and 9 % more CPU per request (pinned.sh, in
# the same rounds: 87.6k and 10.40 us in the script's session, 98.8k and
# 9.55 us in its own).

# Bounded wait for a port on 127.0.0.1 to accept connections.
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 never opened" >&2; return 1
}

# An nginx backend answering every request with 200 "$3", run from $WORK
# (its pid in $WORK/backend.pid): backend PORT WORKERS BODY [CPU]. With CPU,
# it runs pinned there.
backend() {
  cat >"$WORK/backend.conf" <<CONF
worker_processes $2;
pid $WORK/backend.pid;
error_log $WORK/backend-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server { listen 127.0.0.1:$1; location / { return 200 "$3\n"; } }
}
CONF
  if [ -n "${4:-}" ]; then
    taskset -c "$4" nginx -c "$WORK/backend.conf"
  else
    nginx -c "$WORK/backend.conf"
  fi
  wait_port "$1"
}

# A scratch directory in WORK, and on exit the end of every process listed
# in PIDS or in a $WORK/*.pid file: workdir NAME.
workdir() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap stop_all EXIT
}
stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
  sleep 0.3
}
