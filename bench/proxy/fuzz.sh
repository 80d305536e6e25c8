#!/usr/bin/env bash
# Fuzz the HTTP/1 path's parsers (request heads, chunked bodies) with
# cargo-fuzz for a bounded time each, growing the kept corpus in
# crates/proxy/fuzz/corpus/. A bench script, not a test: needs nightly.
#
#   bash bench/proxy/fuzz.sh           # FUZZ_SECS=60 per target
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT/crates/proxy"
FUZZ_SECS=${FUZZ_SECS:-60}
rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install -q --locked cargo-fuzz
for target in head chunked; do
  echo "== $target (${FUZZ_SECS}s)"
  cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$FUZZ_SECS" -max_len=8192 -print_final_stats=1 2>&1 | tail -4
done
