#!/usr/bin/env bash
# Installs versitygw, the S3-compatible gateway the internal/storage/s3 tests
# run against (posix backend in a temp dir, 127.0.0.1 only).
#
#   scripts/install-test-s3.sh [BIN_DIR]
#
# BIN_DIR defaults to $(go env GOPATH)/bin. Idempotent: when BIN_DIR/versitygw
# already reports the pinned version, nothing is built.
set -euo pipefail

VERSION=v1.8.0
BIN_DIR=${1:-$(go env GOPATH)/bin}
mkdir -p "$BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd)

if [ -x "$BIN_DIR/versitygw" ]; then
	have=$(go version -m "$BIN_DIR/versitygw" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/versity/versitygw" {print $3}')
	if [ "$have" = "$VERSION" ]; then
		echo "versitygw $VERSION already in $BIN_DIR"
		exit 0
	fi
fi

start=$(date +%s)
GOBIN="$BIN_DIR" go install "github.com/versity/versitygw/cmd/versitygw@$VERSION"
echo "installed versitygw $VERSION in $BIN_DIR in $(($(date +%s) - start))s"
