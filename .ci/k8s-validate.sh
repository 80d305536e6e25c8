#!/usr/bin/env bash
# Validates every Kubernetes object `hifi manifests` renders, for a sample
# project, against the official schemas with kubernetes-validate --strict,
# for Kubernetes 1.31 and for the newest version it knows.
#
# The sample is real end to end: a project with two services whose images
# are built FROM scratch with a static busybox by the Docker engine and
# pushed to a registry on 127.0.0.1 (Debian's docker-registry), so the
# Deployments name their images by the registry's digest, exactly as
# `hifi compose` records them. It also checks that two renderings are
# byte for byte the same.
#
#   .ci/k8s-validate.sh            installs what is missing (apt, a venv
#                                  for kubernetes-validate), starts what it
#                                  needs, stops what it started
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

work="$(mktemp -d /tmp/hifi-k8s-validate.XXXXXX)"
registry_pid=""
docker_started=""
cleanup() {
  [ -n "${KEEP:-}" ] && { echo "kept $work"; return; }
  [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
  [ -n "$docker_started" ] && .ci/docker.sh stop || true
  rm -rf "$work"
}
trap cleanup EXIT

need=()
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "k8s-validate: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

venv="${HIFI_K8S_VALIDATE_VENV:-/tmp/hifi-kubernetes-validate}"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q kubernetes-validate
fi
validate="$venv/bin/kubernetes-validate"
newest="$("$validate" --help | sed -n 's/.*Defaults to \([0-9.]*\).*/\1/p' | head -1)"
[ -n "$newest" ] || { echo "k8s-validate: cannot tell the newest Kubernetes version kubernetes-validate knows"; exit 1; }

if ! .ci/docker.sh status >/dev/null 2>&1; then
  .ci/docker.sh start
  docker_started=1
fi

# A registry on loopback (Docker treats 127.0.0.0/8 registries as insecure,
# so plain HTTP is fine there).
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
YAML
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  curl -fsS --max-time 1 "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS --max-time 1 "http://127.0.0.1:$port/v2/" >/dev/null

cargo build --quiet --bin hifi
hifi="$root/target/debug/hifi"

# The sample project.
project="$work/shop"
mkdir -p "$project"
cd "$project"
git init -q -b main
git config user.name CI
git config user.email ci@example.com
git config commit.gpgSign false
for service in web api; do
  mkdir -p "services/$service/bin" "services/$service/www"
  cp /bin/busybox "services/$service/bin/busybox"
  ln -s busybox "services/$service/bin/sh"
  ln -s busybox "services/$service/bin/httpd"
  echo ok > "services/$service/www/healthz"
  cat > "services/$service/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY bin /bin
COPY www /www
CMD ["/bin/sh", "-c", "exec httpd -f -p 0.0.0.0:$PORT -h /www"]
DOCKERFILE
done
cat > hifi.toml <<TOML
[project]
name = "shop"

[registry]
url = "127.0.0.1:$port/shop"

[[service]]
name = "web"
path = "services/web"
run = "httpd -f -p 0.0.0.0:\$PORT -h /www"
health = "/healthz"
route = "/"
image = "Dockerfile"
replicas = 3

[[service]]
name = "api"
path = "services/api"
run = "httpd -f -p 0.0.0.0:\$PORT -h /www"
health = "/healthz"
route = "/api"
image = "Dockerfile"

[[environment]]
name = "dev"
port = 8100
cards_from = "In Dev"
runtime = "kubernetes"
[environment.vars]
GREETING = "hello"
PAYMENT_KEY = "\${SAMPLE_PAYMENT_KEY}"

[[environment]]
name = "prod"
port = 8500
promote_from = "dev"
strategy = "canary"
runtime = "kubernetes"
[environment.kubernetes]
context = "prod-cluster"
namespace = "shop-live"
expose = "LoadBalancer"
requests = { cpu = "250m", memory = "128Mi" }
limits = { cpu = "1", memory = "256Mi" }
TOML
echo ".hifi/" > .gitignore
git add -A
git commit -q -m "sample"
mkdir -p .hifi

"$hifi" compose dev
# A secret var: set here, it must still never be printed.
SAMPLE_PAYMENT_KEY=sk-must-not-be-printed "$hifi" manifests dev > "$work/dev.yaml"
"$hifi" manifests dev > "$work/dev-again.yaml"
if grep -q sk-must-not-be-printed "$work/dev.yaml"; then
  echo "k8s-validate: a secret var's value is in the manifests"; exit 1
fi
cmp "$work/dev.yaml" "$work/dev-again.yaml" || { echo "k8s-validate: two renderings of dev differ"; diff "$work/dev.yaml" "$work/dev-again.yaml"; exit 1; }
release="$("$hifi" --json releases | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])' 2>/dev/null || true)"
if [ -n "$release" ]; then
  "$hifi" manifests prod --release "$release" > "$work/prod.yaml"
else
  echo "k8s-validate: could not read a release id from hifi releases --json"; exit 1
fi
"$hifi" manifests dev --rbac > "$work/rbac.yaml"

objects="$(grep -c '^---$' "$work/dev.yaml" "$work/prod.yaml" "$work/rbac.yaml" | awk -F: '{s+=$2} END {print s}')"
kinds="$(grep -h '^kind: ' "$work/dev.yaml" "$work/prod.yaml" "$work/rbac.yaml" | sort | uniq -c | tr -s ' ' | paste -sd, -)"
"$venv/bin/python" - "$work/dev.yaml" "127.0.0.1:$port/shop/" <<'PY' || { echo "k8s-validate: the services' Deployments do not name their images by digest"; exit 1; }
import sys, yaml
images = [c["image"] for d in yaml.safe_load_all(open(sys.argv[1]))
          if d["kind"] == "Deployment" and d["metadata"]["name"] != "hifi-proxy"
          for c in d["spec"]["template"]["spec"]["containers"]]
print("k8s-validate: service images:", ", ".join(images))
assert images and all(i.startswith(sys.argv[2]) and "@sha256:" in i for i in images), images
PY
"$venv/bin/python" - "$work/dev.yaml" <<'PY' || { echo "k8s-validate: the secret var is not read from the slots' Secrets"; exit 1; }
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
refs = [e["valueFrom"]["secretKeyRef"] for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] != "hifi-proxy"
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c["env"] if e["name"] == "PAYMENT_KEY"]
assert refs and all(r["name"] in secrets and r["key"] == "PAYMENT_KEY" for r in refs), refs
assert all("data" not in s and s["metadata"]["annotations"]["hifi.dev/keys"] == "PAYMENT_KEY"
           for s in secrets.values()), secrets
print("k8s-validate: PAYMENT_KEY comes from", ", ".join(sorted(secrets)), "(printed without values)")
PY
"$venv/bin/python" - "$work/prod.yaml" <<'PY' || { echo "k8s-validate: prod's Deployments do not carry the configured resources"; exit 1; }
import sys, yaml
resources = [c.get("resources") for d in yaml.safe_load_all(open(sys.argv[1]))
             if d["kind"] == "Deployment" and d["metadata"]["name"] != "hifi-proxy"
             for c in d["spec"]["template"]["spec"]["containers"]]
want = {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
assert resources and all(r == want for r in resources), resources
print("k8s-validate: prod's service containers carry", want)
PY

for version in 1.31.0 "$newest"; do
  echo "k8s-validate: $objects objects ($kinds) against Kubernetes $version, strict"
  "$validate" --strict --quiet -k "$version" "$work/dev.yaml" "$work/prod.yaml" "$work/rbac.yaml"
done
echo "k8s-validate: every object hifi manifests rendered is valid for Kubernetes 1.31.0 and $newest"
