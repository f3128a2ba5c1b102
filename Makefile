# Meshscope build. `make demo` and `make test` do all set-up on a fresh Debian
# machine with Go (see README.md). Parts keep their own targets in the *.mk
# files included below; this file only holds what spans them.

GO      ?= go
BIN     := bin
GOFLAGS ?=
export GOFLAGS

.PHONY: all build binaries demo test test-go test-apt lint deps bench bench-quick clean help

all: build

help:
	@echo "make demo          run the server, demo services with proxies and load; prints the UI URL"
	@echo "make test          install test dependencies, then run every test"
	@echo "make build         build bin/meshscope and bin/meshscope-proxy (and the UI bundle)"
	@echo "make bench         run every benchmark (WHAT=proxy|collector|topology|query|ui|clickhouse for one)"
	@echo "make bench-quick   a short sanity run of every benchmark part (about 15 minutes)"

# Targets the parts add to: TEST_DEPS are installed before tests run,
# TEST_EXTRA run after the Go tests, BUILD_DEPS run before the Go build,
# TEST_APT are Debian packages the tests need (installed in one apt-get run).
TEST_DEPS  := test-apt
TEST_EXTRA :=
BUILD_DEPS :=
# promtool (package prometheus) checks the Prometheus-compatible API and the
# generated SLO rules; prometheus-alertmanager receives alerts in tests.
TEST_APT   := prometheus prometheus-alertmanager
# nginx (nginx-light) is the reference the proxy's smuggling corpus runs against.
TEST_APT   += nginx-light
# openssl s_client checks the ingress gateway's certificate per SNI host (e2e/gateway_test.go)
# and the mesh mTLS chain and SPIFFE ID (e2e TestMTLS).
TEST_APT   += openssl
# etcd-server: a 3-member etcd cluster on loopback holds the shared control state (e2e TestScaleOutEtcd, control/etcdstate).
TEST_APT   += etcd-server

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/meshscope/meshscope/cmd/internal/buildinfo.version=$(VERSION)

# apt-install installs the Debian packages in $(1) that are missing, in one
# apt-get run, without starting their services. Needs root; otherwise it
# prints the command to run and fails.
define apt-install
	@missing=""; for pkg in $(1); do \
	  dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "run: sudo apt-get install -y$$missing"; exit 1; fi; \
	  policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy=1; fi; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing; rc=$$?; \
	  if [ -n "$$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  exit $$rc; \
	fi
endef

include ui/ui.mk
include bench/bench.mk
include collector/tracestore/clickhouse/clickhouse.mk

build: $(BUILD_DEPS) binaries

binaries:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/meshscope ./cmd/meshscope
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/meshscope-proxy ./cmd/meshscope-proxy

demo: build
	$(BIN)/meshscope demo --scenario $(or $(DEMO_SCENARIO),canary)

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path '*/node_modules/*')); \
	if [ -n "$$bad" ]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

test: deps build lint test-go $(TEST_EXTRA)

deps: $(TEST_DEPS)

test-apt:
	$(call apt-install,$(TEST_APT))

test-go:
	MESHSCOPE_E2E_BIN=$(abspath $(BIN)) $(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN) ui/web/node_modules ui/dist/*.js ui/dist/*.css ui/dist/*.html
