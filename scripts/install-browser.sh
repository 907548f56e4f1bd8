#!/usr/bin/env bash
# The labelling tool's browser test drives Debian's Chromium (Playwright's own browser
# download is neither wanted nor possible offline). Install it when missing and we may.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    exit 0
fi
echo "note: no Chromium and no way to install it here (needs root and apt-get);" \
     "the browser test will be skipped (set BEARID_CHROMIUM to a Chromium binary to run it)" >&2
