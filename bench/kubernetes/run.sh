#!/usr/bin/env bash
# API calls hifi makes to the Kubernetes API server per deployment and while
# idle, counted by the fake API server of the tests (no cluster runs here):
# the controller deploys three releases to a Kubernetes environment of N
# services (each shape is SERVICESxREPLICAS) and the fake counts every
# request. Prints a markdown table (bench/RESULTS.md, "Kubernetes").
#
#   bench/kubernetes/run.sh                 the default shapes
#   HIFI_BENCH_SHAPES=20x1,40x1 bench/kubernetes/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --quiet -p hifi-controller --test tests -- --ignored --nocapture \
  kubernetes::api_calls_per_deployment_and_per_reconcile 2>&1 | grep '^|'
