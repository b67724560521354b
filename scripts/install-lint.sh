#!/usr/bin/env bash
# Installs the pinned staticcheck that `make test` runs on both modules (the
# product module at the root and the test module in test/). Idempotent: a
# staticcheck already installed at the pinned version is left alone.
#
#   scripts/install-lint.sh [BIN_DIR]      (default: $(go env GOPATH)/bin)
#
# v0.8.2 (honnef.co/go/tools) is the first release line that builds with and
# understands go1.26; about 1 min cold on the 2-core machine.
set -euo pipefail

STATICCHECK_VERSION=v0.8.2 # honnef.co/go/tools

BIN_DIR=${1:-$(go env GOPATH)/bin}
mkdir -p "$BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd)

have=""
if [ -x "$BIN_DIR/staticcheck" ]; then
  have=$(go version -m "$BIN_DIR/staticcheck" 2>/dev/null | awk '$1 == "mod" { print $3; exit }')
fi
if [ "$have" = "$STATICCHECK_VERSION" ]; then
  echo "install-lint: staticcheck $STATICCHECK_VERSION already in $BIN_DIR" >&2
  exit 0
fi
echo "install-lint: installing staticcheck $STATICCHECK_VERSION (have: ${have:-none})" >&2
GOBIN="$BIN_DIR" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
