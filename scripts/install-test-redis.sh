#!/usr/bin/env bash
# Installs redis-server from Debian, the Redis the shared-state tests
# (internal/redisstate, test/e2e two-replica test) start on 127.0.0.1.
# The tests start and stop their own servers: this script starts none, and
# the package's own service is left alone.
#
#   scripts/install-test-redis.sh
#
# Idempotent: when redis-server is already on PATH nothing is installed.
# Debian 12 ships Redis 7.0 (pinned by the distribution release).
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
	echo "redis-server already installed: $(redis-server --version | awk '{print $3}')"
	exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-redis: no apt-get; install redis-server by hand" >&2
	exit 1
fi
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
if ! $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1; then
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
echo "installed $(redis-server --version | awk '{print $1, $3}') in $(($(date +%s) - start))s"
