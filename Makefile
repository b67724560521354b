# berth: the two commands a fresh machine needs are `make run` and `make test`.
GO ?= go
# A count, not a duration: with a duration, go1.26's fuzz coordinator can fail
# a target with a bare "context deadline exceeded" and no crasher when its
# deadline races a busy worker (golang/go#75804, fixed in go1.27). A count has
# no deadline. 50000 executions take ~4 s (the fast targets) to ~35 s
# (policy compilation) on 2 cores.
FUZZTIME ?= 50000x
# The test clients are installed into GOPATH/bin: make sure the tests find them.
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: run build test lint fuzz bench clients

run:
	$(GO) run ./cmd/berth serve

build:
	$(GO) build -o bin/berth ./cmd/berth
	$(GO) build -o bin/berth-credential-provider ./cmd/berth-credential-provider
	$(GO) build -o bin/docker-credential-berth ./cmd/docker-credential-berth

# Every test: vet and staticcheck, unit, spec, storage contract, real-client
# end-to-end and crash tests; then the spec tests and the whole end-to-end
# suite (real clients included) again on the S3 backend (versitygw); then each
# fuzz target briefly. The end-to-end, browser and client tests are their own
# module (test/go.mod, replacing the product module with this checkout), so
# the product module requires only what the binaries link: every step runs
# in both modules.
test: clients lint
	$(GO) test -count=1 -timeout 30m ./...
	cd test && $(GO) test -count=1 -timeout 30m ./...
	BERTH_TEST_STORE=s3 $(GO) test -count=1 -timeout 30m ./internal/registry/
	cd test && BERTH_TEST_STORE=s3 $(GO) test -count=1 -timeout 30m ./e2e/
	$(MAKE) fuzz

# go vet and staticcheck on both modules, and on the berthtest build of
# cmd/berth (the binary the end-to-end tests run: one test hook more).
lint:
	$(GO) vet ./...
	$(GO) vet -tags berthtest ./cmd/berth
	cd test && $(GO) vet ./...
	staticcheck ./...
	staticcheck -tags berthtest ./cmd/berth
	cd test && staticcheck ./...

# The pinned command-line clients the end-to-end tests drive (crane, oras,
# regctl, cosign, skopeo, podman), the S3 server the S3 backend is tested
# against (versitygw), the Redis the shared-state and two-replica tests
# start (redis-server), the strace the commit-kill test runs berth under, the Chromium the web UI test drives and the
# staticcheck `make lint` runs; skipped quickly when already installed.
clients:
	bash scripts/install-test-clients.sh "$$($(GO) env GOPATH)/bin"
	bash scripts/install-test-s3.sh "$$($(GO) env GOPATH)/bin"
	bash scripts/install-test-redis.sh
	bash scripts/install-test-strace.sh
	bash scripts/install-test-browser.sh
	bash scripts/install-lint.sh "$$($(GO) env GOPATH)/bin"

# Every fuzz target of both modules.
fuzz:
	@set -e; for mod in . test; do \
	  for pkg in $$(cd $$mod && $(GO) list ./...); do \
	    for f in $$(cd $$mod && $(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	      echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	      (cd $$mod && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg); \
	    done; \
	  done; \
	done

bench:
	$(GO) run ./cmd/berth-bench

.PHONY: release image

# Release binaries (docs/deploy/binary.md): static, stripped, reproducible,
# stamped with the version, the commit and its date, for linux and darwin on
# amd64 and arm64, with SHA256SUMS, into dist/. The list of binaries is in
# scripts/release.sh.
release:
	rm -rf dist
	GO=$(GO) bash scripts/release.sh dist

# The container image without a Docker engine (docs/deploy/image.md): the
# linux release binaries, then test/cmd/berth-image writes the multi-platform
# index (linux/amd64, linux/arm64) as an OCI image layout into dist/image;
# IMAGE=REGISTRY/REPOSITORY:TAG pushes it too (IMAGE_INSECURE=1: plain HTTP).
# The Dockerfile builds the same image with Docker.
image:
	GO=$(GO) bash scripts/release.sh dist linux/amd64 linux/arm64
	cd test && $(GO) run ./cmd/berth-image -root .. -bin ../dist -o ../dist/image $(if $(IMAGE),-push $(IMAGE)) $(if $(IMAGE_INSECURE),-insecure)
