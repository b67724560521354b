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

.PHONY: run build test fuzz bench clients

run:
	$(GO) run ./cmd/berth serve

build:
	$(GO) build -o bin/berth ./cmd/berth

# Every test: vet, unit, spec, storage contract, real-client end-to-end and
# crash tests; then the spec tests and the whole end-to-end suite (real
# clients included) again on the S3 backend (versitygw); then each fuzz
# target briefly.
test: clients
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...
	BERTH_TEST_STORE=s3 $(GO) test -count=1 -timeout 30m ./internal/registry/ ./test/e2e/
	$(MAKE) fuzz

# The pinned command-line clients the end-to-end tests drive (crane, oras,
# regctl, cosign, skopeo, podman), the S3 server the S3 backend is tested
# against (versitygw), the Redis the shared-state and two-replica tests
# start (redis-server) and the Chromium the web UI test drives; skipped
# quickly when already installed.
clients:
	bash scripts/install-test-clients.sh "$$($(GO) env GOPATH)/bin"
	bash scripts/install-test-s3.sh "$$($(GO) env GOPATH)/bin"
	bash scripts/install-test-redis.sh
	bash scripts/install-test-browser.sh

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) run ./cmd/berth-bench
