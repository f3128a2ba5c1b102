# Meshscope build. `make demo` and `make test` do all set-up on a fresh Debian
# machine with Go (see README.md). Parts keep their own targets in the *.mk
# files included below; this file only holds what spans them.

GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS

.PHONY: all build binaries demo test test-go lint deps bench bench-quick clean help

all: build

help:
	@echo "make demo          run the server, demo services with proxies and load; prints the UI URL"
	@echo "make test          install test dependencies, then run every test"
	@echo "make build         build bin/meshscope and bin/meshscope-proxy (and the UI bundle)"
	@echo "make bench         run every benchmark (WHAT=proxy|collector|topology|query|ui|clickhouse for one)"
	@echo "make bench-quick   a short sanity run of the benchmarks (< 2 minutes)"

# Targets the parts add to: TEST_DEPS are installed before tests run,
# TEST_EXTRA run after the Go tests, BUILD_DEPS run before the Go build.
TEST_DEPS  :=
TEST_EXTRA :=
BUILD_DEPS :=

include ui/ui.mk
include bench/bench.mk
include collector/tracestore/clickhouse/clickhouse.mk

build: $(BUILD_DEPS) binaries

binaries:
	$(GO) build -o $(BIN)/meshscope ./cmd/meshscope
	$(GO) build -o $(BIN)/meshscope-proxy ./cmd/meshscope-proxy

demo: build
	$(BIN)/meshscope demo

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './ui/node_modules/*')); \
	if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

test: deps build lint test-go $(TEST_EXTRA)

deps: $(TEST_DEPS)

# -p 1 keeps the heavy packages (TSDB, e2e) from fighting over 2 cores.
test-go:
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN) ui/node_modules
