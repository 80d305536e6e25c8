#!/usr/bin/env bash
# Screenshots of the dashboard (board, pipeline, a live canary) in a real
# headless Chromium, written to docs/screenshots/ as PNGs (1400x1000).
#
#   bash bench/dashboard/screenshots.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
command -v chromedriver >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
cd "$top"
HIFI_SCREENSHOTS="$top/docs/screenshots" cargo test -q -p hifi-server --test tests \
  dashboard::showcase::screenshots -- --nocapture --test-threads=1
ls -l "$top/docs/screenshots"
