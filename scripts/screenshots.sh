#!/usr/bin/env bash
# Regenerates docs/screenshots/ (one PNG per dashboard page, and the grant
# page on a phone) and docs/screenshots/timings.txt (each page's first
# render, from navigation to ready, in milliseconds) by running the browser
# test that visits every page, in Debian's headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/docs/screenshots"
mkdir -p "$out"
GRANTLOG_SCREENSHOTS="$out" cargo test -p tests --test e2e --locked \
    dashboard::every_page_renders_for_an_admin_and_on_a_phone -- --nocapture
ls -l "$out"
cat "$out/timings.txt"
