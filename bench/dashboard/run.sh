#!/usr/bin/env bash
# The dashboard's first load, measured in a real headless Chromium: a team
# server on loopback with 200 cards over the default workflow's 8 stages and
# 10 environments; a viewer signed in loads `/#/board` five times. Printed:
# the bytes shipped (page, script, stylesheet and the API's JSON, as the
# browser's Resource Timing counts them, headers included) and the median
# time from the navigation's start to the board drawn (a `performance`
# mark the script sets once the board is in the page).
#
#   bash bench/dashboard/run.sh             # release build of the test binary
#   PROFILE=dev bash bench/dashboard/run.sh # debug build (faster to build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
command -v chromedriver >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
release=(--release)
[ "${PROFILE:-release}" = dev ] && release=()
cd "$top"
cargo test "${release[@]}" -q -p hifi-server --test tests dashboard::showcase::first_load \
  -- --ignored --nocapture --test-threads=1 2>&1 | grep -v '^$' | grep -Ev '^(running|test |\.)'
