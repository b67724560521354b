#!/usr/bin/env bash
# Installs the pinned registry command-line clients that test/e2e/clients_test.go
# drives against a real berth process. Idempotent: a tool already installed at
# the pinned version is left alone.
#
#   scripts/install-test-clients.sh [BIN_DIR]      (default: $(go env GOPATH)/bin)
#
# Go tools (crane, oras, regctl, helm, cosign) are built from the Go module proxy
# with the local Go toolchain and put in BIN_DIR. skopeo and podman come from
# Debian's apt and land in /usr/bin. Switches (environment):
#   INSTALL_COSIGN=0   skip cosign (the slowest build, about 2.5 min cold)
#   INSTALL_PODMAN=0   skip podman
#   SKIP_APT=1         skip skopeo and podman
# Cold-cache install times on the 2-core machine (Go 1.26) are in
# docs/clients.md.
set -euo pipefail

CRANE_VERSION=v0.22.1  # github.com/google/go-containerregistry
ORAS_VERSION=v1.3.3    # oras.land/oras
REGCTL_VERSION=v0.11.7 # github.com/regclient/regclient
COSIGN_VERSION=v2.6.5  # github.com/sigstore/cosign/v2
HELM_VERSION=v3.22.0   # helm.sh/helm/v3
# Debian bookworm's versions; a newer Debian revision is accepted with a warning.
SKOPEO_DEB_VERSION=1.9.3
PODMAN_DEB_VERSION=4.3.1

INSTALL_COSIGN=${INSTALL_COSIGN:-1}
INSTALL_PODMAN=${INSTALL_PODMAN:-1}

BIN_DIR=${1:-$(go env GOPATH)/bin}
mkdir -p "$BIN_DIR"
BIN_DIR=$(cd "$BIN_DIR" && pwd)

log() { printf 'install-test-clients: %s\n' "$*" >&2; }

# go_module_version BIN prints the version of the main module BIN was built
# from (empty when BIN is missing or not a Go binary).
go_module_version() {
  [ -x "$1" ] || return 0
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" { print $3; exit }'
}

# go_tool NAME MODULE PACKAGE VERSION installs PACKAGE@VERSION as BIN_DIR/NAME.
go_tool() {
  local name=$1 module=$2 pkg=$3 version=$4
  local bin="$BIN_DIR/$name" have
  have=$(go_module_version "$bin")
  if [ "$have" = "$version" ]; then
    log "$name $version already in $BIN_DIR"
    return 0
  fi
  log "installing $name $version (have: ${have:-none})"
  local start=$SECONDS
  if ! GOBIN="$BIN_DIR" go install "$pkg@$version"; then
    # `go install pkg@version` also asks the proxy for the module's version
    # list (deprecation check); some proxies refuse that for some modules
    # (403). Building the package from a throwaway module that requires
    # exactly that version gives the same binary without the list.
    log "go install $pkg@$version failed; building it from a temporary module"
    local tmp
    tmp=$(mktemp -d)
    (
      cd "$tmp"
      go mod init berth-test-clients >/dev/null 2>&1
      go get "$pkg@$version" 2>get.log || { cat get.log >&2; exit 1; }
      GOBIN="$BIN_DIR" go install "$pkg"
    )
    rm -rf "$tmp"
  fi
  have=$(go_module_version "$bin")
  if [ "$have" != "$version" ]; then
    log "$name: installed binary reports module $module ${have:-?}, want $version"
    return 1
  fi
  log "$name $version installed in $((SECONDS - start))s"
}

# apt_tool NAME WANT_VERSION installs Debian package NAME.
apt_tool() {
  local pkg=$1 want=$2 have
  have=$(dpkg-query -W -f='${Status} ${Version}' "$pkg" 2>/dev/null | awk '$3 == "installed" { print $4 }')
  if [ -n "$have" ]; then
    case $have in
      "$want"*) log "$pkg $have already installed" ;;
      *) log "warning: $pkg $have installed, docs/clients.md was written against $want" ;;
    esac
    return 0
  fi
  local sudo=
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else
      log "not root and no sudo: install $pkg $want yourself"
      return 1
    fi
  fi
  local start=$SECONDS
  # apt-get update only when the package lists do not know the package.
  if ! apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    $sudo apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$pkg" >/dev/null
  have=$(dpkg-query -W -f='${Version}' "$pkg")
  case $have in
    "$want"*) ;;
    *) log "warning: apt installed $pkg $have, docs/clients.md was written against $want" ;;
  esac
  log "$pkg $have installed in $((SECONDS - start))s"
}

go_tool crane github.com/google/go-containerregistry github.com/google/go-containerregistry/cmd/crane "$CRANE_VERSION"
go_tool oras oras.land/oras oras.land/oras/cmd/oras "$ORAS_VERSION"
go_tool regctl github.com/regclient/regclient github.com/regclient/regclient/cmd/regctl "$REGCTL_VERSION"
go_tool helm helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
if [ "$INSTALL_COSIGN" = 1 ]; then
  go_tool cosign github.com/sigstore/cosign/v2 github.com/sigstore/cosign/v2/cmd/cosign "$COSIGN_VERSION"
fi
if [ "${SKIP_APT:-0}" != 1 ]; then
  apt_tool skopeo "$SKOPEO_DEB_VERSION"
  if [ "$INSTALL_PODMAN" = 1 ]; then
    apt_tool podman "$PODMAN_DEB_VERSION"
  fi
fi
log "done; make sure $BIN_DIR is on PATH"
