# UI targets (owned by ui/). The front end lives in ui/web (npm, lockfile
# committed); esbuild bundles it into ui/dist, which the Go package ui embeds.
# Browser tests drive Debian's Chromium through playwright-core (no browser
# download).

NPM      ?= npm
CHROMIUM ?= /usr/bin/chromium
UI_SRC   := $(shell find ui/web/src -type f 2>/dev/null) ui/web/build.mjs
# node's test runner, one file at a time. Node 20 applies --test-timeout to
# each whole file: a file still running after 20 minutes (the browser file
# takes 1-3) fails, and --test-force-exit ends the runner once the tests are
# done even if a crashed browser left a handle open, so a stuck browser
# cannot hold up make test.
NODE_TEST ?= node --test --test-concurrency=1 --test-timeout=1200000 --test-force-exit

.PHONY: ui-build ui-deps ui-test ui-test-demo ui-screenshots ui-bench

BUILD_DEPS += ui-build
TEST_DEPS  += ui-deps
TEST_APT   += chromium
TEST_EXTRA += ui-test

# npm ci only when the lockfile changed (npm writes node_modules/.package-lock.json).
ui/web/node_modules/.package-lock.json: ui/web/package-lock.json ui/web/package.json
	@command -v node >/dev/null || { echo "ui: node is missing (Node.js >= 18 and npm are needed to build the UI; on Debian: apt-get install -y nodejs npm)"; exit 1; }
	cd ui/web && $(NPM) ci --no-audit --no-fund
	@touch $@

ui/dist/index.html: ui/web/node_modules/.package-lock.json $(UI_SRC)
	cd ui/web && node build.mjs

ui-build: ui/dist/index.html

# bench/ui measures the embedded bundle: make bench builds it first.
bench-deps: ui-build

# Debian's chromium for the browser tests (root Makefile's apt-install).
ui-deps:
	$(call apt-install,chromium)

# Browser tests: first against the fixture server (recorded API shapes, plus
# a 5,000-span trace and a 1,500-node mesh), then, when bin/meshscope exists
# (make test builds it first), the same tests against a real
# `bin/meshscope demo` on free ports.
ui-test: ui-build ui-deps
	cd ui/web && CHROMIUM=$(CHROMIUM) MESHSCOPE_UI_TARGET=fixture $(NODE_TEST) test/*.test.mjs
	@if [ -x $(BIN)/meshscope ]; then \
	  echo "ui-test: browser tests against $(BIN)/meshscope demo"; \
	  cd ui/web && CHROMIUM=$(CHROMIUM) MESHSCOPE_UI_TARGET=demo MESHSCOPE_BIN=$(CURDIR)/$(BIN)/meshscope $(NODE_TEST) test/ui.test.mjs; \
	else echo "ui-test: $(BIN)/meshscope not built; skipped the browser tests against the demo (make build)"; fi

# Only the browser tests against the real demo (rebuilds first).
ui-test-demo: ui-deps
	$(MAKE) build
	cd ui/web && CHROMIUM=$(CHROMIUM) MESHSCOPE_UI_TARGET=demo MESHSCOPE_BIN=$(CURDIR)/$(BIN)/meshscope $(NODE_TEST) test/ui.test.mjs

# Copies one screenshot per page from the last browser test run into docs/.
ui-screenshots:
	@test -f ui/test-artifacts/topology.png || { echo "ui-screenshots: run make ui-test first"; exit 1; }
	mkdir -p docs/screenshots
	cp ui/test-artifacts/topology.png ui/test-artifacts/topology-node-panel.png ui/test-artifacts/topology-policies.png ui/test-artifacts/services.png \
	   ui/test-artifacts/traces-search.png ui/test-artifacts/trace-waterfall.png docs/screenshots/
