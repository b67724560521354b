#!/usr/bin/env bash
# Installs strace from Debian: test/e2e's TestCommitKilledAtEachStep starts
# berth under strace to SIGKILL it at each rename of an upload's commit.
# (The test skips where strace is missing or ptrace is not allowed.)
#
#   scripts/install-test-strace.sh
#
# Idempotent: when strace is already on PATH nothing is installed. Debian 12
# ships strace 6.1 (pinned by the distribution release).
set -euo pipefail

if command -v strace >/dev/null 2>&1; then
	echo "strace already installed: $(strace -V | head -1)"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-strace: no apt-get; install strace by hand" >&2
	exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if ! $SUDO apt-get install -y -qq --no-install-recommends strace >/dev/null 2>&1; then
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends strace >/dev/null
fi
echo "installed $(strace -V | head -1) in $(($(date +%s) - start))s"
