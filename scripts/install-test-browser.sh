#!/usr/bin/env bash
# Installs Debian's Chromium, which the web UI's end-to-end test drives
# headless through chromedp (test/e2e/ui_test.go). No browser is downloaded
# at test time.
#
#   scripts/install-test-browser.sh
#
# Idempotent: when /usr/bin/chromium exists, nothing is installed.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
	echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-browser: apt-get not found; install Chromium at /usr/bin/chromium yourself" >&2
	exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "installed $(/usr/bin/chromium --version 2>/dev/null) in $(($(date +%s) - start))s"
