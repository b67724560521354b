#!/usr/bin/env bash
# Release binaries: static (CGO_ENABLED=0), stripped (-s -w), reproducible
# (-trimpath, -buildvcs=false, every stamp derived from the commit) builds of
# every released command for each OS/ARCH, with SHA256SUMS.
#
#   scripts/release.sh OUTDIR [OS/ARCH ...]   build (default: the four release platforms)
#   scripts/release.sh --list                 print the binaries a release contains
#
# OUTDIR gets OS_ARCH/BINARY for each platform, SHA256SUMS (sha256sum -c
# checks it from OUTDIR) and release.env (VERSION, COMMIT, DATE, EPOCH: what
# the image build labels the image with). Make runs it (make release, make
# image) and so does the Dockerfile; docs/deploy/binary.md.
#
# The stamps (berth version prints them), each overridable from the environment:
#   VERSION            git describe --tags --always --dirty, else "dev"
#   COMMIT             git rev-parse HEAD, else "unknown"
#   SOURCE_DATE_EPOCH  the commit's date (git log -1 --format=%ct), else 0
# Nothing depends on the time of the build, the checkout's path or the
# builder's time zone, so two builds of one commit are byte for byte the same
# (TestReleaseReproducible).
set -euo pipefail

# The released commands: the one list the release, the image (the daemonless
# build and the Dockerfile, both through this script) and their tests read.
# A command whose cmd/ directory does not exist in this checkout is left out
# with a warning (docker-credential-berth arrives with `berth login`).
BINARIES="berth berth-credential-provider docker-credential-berth"
PLATFORMS_DEFAULT="linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bins=()
for b in $BINARIES; do
	if [ -d "cmd/$b" ]; then
		bins+=("$b")
	else
		echo "release: cmd/$b does not exist here: left out" >&2
	fi
done

if [ "${1:-}" = "--list" ]; then
	printf '%s\n' "${bins[@]}"
	exit 0
fi
if [ $# -lt 1 ]; then
	echo "usage: scripts/release.sh OUTDIR [OS/ARCH ...] | --list" >&2
	exit 2
fi
out=$1
shift
platforms=("$@")
if [ ${#platforms[@]} -eq 0 ]; then
	read -r -a platforms <<<"$PLATFORMS_DEFAULT"
fi

git_or() { # git_or DEFAULT ARGS...: git's answer, or DEFAULT outside a git checkout
	local def=$1
	shift
	git "$@" 2>/dev/null || echo "$def"
}
version=${VERSION:-$(git_or dev describe --tags --always --dirty)}
commit=${COMMIT:-$(git_or unknown rev-parse HEAD)}
epoch=${SOURCE_DATE_EPOCH:-$(git_or 0 log -1 --format=%ct)}
date=$(TZ=UTC date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || TZ=UTC date -u -r "$epoch" +%Y-%m-%dT%H:%M:%SZ)

mkdir -p "$out"
for p in "${platforms[@]}"; do
	goos=${p%/*}
	goarch=${p#*/}
	dir="$out/${goos}_${goarch}"
	mkdir -p "$dir"
	for b in "${bins[@]}"; do
		echo "release: $p $b $version" >&2
		# -X of a variable a command does not declare is ignored by the linker.
		CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOFLAGS= \
			${GO:-go} build -trimpath -buildvcs=false \
			-ldflags "-s -w -buildid= -X main.version=$version -X main.commit=$commit -X main.date=$date" \
			-o "$dir/$b" "./cmd/$b"
	done
done

cat >"$out/release.env" <<EOF
VERSION=$version
COMMIT=$commit
DATE=$date
EPOCH=$epoch
EOF

# SHA256SUMS over every binary in OUTDIR (also those of earlier runs into it).
(cd "$out" && find . -mindepth 2 -maxdepth 2 -type f -path './*_*/*' | sed 's|^\./||' | LC_ALL=C sort |
	xargs sha256sum >SHA256SUMS)
echo "release: $out/SHA256SUMS" >&2
