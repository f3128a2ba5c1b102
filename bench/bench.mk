# Benchmark targets (owned by bench/). See bench/README.md.
#
#   make bench                 run every part bench/*/main.go, then render docs/BENCHMARKS.md
#   make bench WHAT=proxy      run one part (WHAT may list several: WHAT="proxy collector")
#   make bench-quick           every part with -quick (a sanity run, about 15 minutes), then render
#   make bench-render          only re-render docs/BENCHMARKS.md from bench/results/*.json
#   make bench-deps            install the tools the benchmarks compare against
#
# Parts are discovered: any folder bench/<part>/ with a main.go, except render
# and proxycpu (a by-hand tool for comparing proxy builds; it writes no results).
# A part needing extra tools adds a prerequisite to bench-deps in its own .mk:
#   bench-deps: my-bench-tools

.PHONY: bench-deps bench-render bench-apt

BENCH_PARTS := $(filter-out render proxycpu,$(patsubst bench/%/main.go,%,$(wildcard bench/*/main.go)))
WHAT        ?=
BENCH_RUN   := $(if $(strip $(WHAT)),$(WHAT),$(BENCH_PARTS))
BENCH_ARGS  ?=
# Debian packages of the comparators (nginx, HAProxy, Caddy for the proxy).
BENCH_APT   := nginx haproxy caddy
# etcd (Debian etcd-server): the shared control state of bench/scaleout.
BENCH_APT   += etcd-server
# prometheus: the shared metrics store of bench/scalemetrics.
BENCH_APT   += prometheus

# bench-run-parts runs every part of BENCH_RUN with flags $(1), recording the make
# command $(2) in each result, then renders; it fails at the end if any part failed.
define bench-run-parts
	@failed=""; begin=$$(date +%s); for p in $(BENCH_RUN); do \
	  if [ ! -f bench/$$p/main.go ]; then echo "bench: no part bench/$$p/main.go (parts: $(BENCH_PARTS))"; exit 2; fi; \
	  echo "== bench $$p $(1)"; start=$$(date +%s); \
	  if BENCH_COMMAND="$(2) WHAT=$$p" $(GO) run ./bench/$$p $(1) $(BENCH_ARGS); then \
	    echo "== bench $$p done in $$(( $$(date +%s) - start )) s"; \
	  else echo "== bench $$p FAILED"; failed="$$failed $$p"; fi; \
	done; \
	$(GO) run ./bench/render; \
	echo "== bench: $(words $(BENCH_RUN)) part(s) in $$(( $$(date +%s) - begin )) s"; \
	if [ -n "$$failed" ]; then echo "bench: failed parts:$$failed"; exit 1; fi
endef

bench: bench-deps
	$(call bench-run-parts,,make bench)

bench-quick: bench-deps
	$(call bench-run-parts,-quick,make bench-quick)

bench-render:
	$(GO) run ./bench/render

bench-deps: bench-apt

# Installs missing comparator packages (needs root, as on the CI and
# developer machines). Services are not started: the benchmarks run the
# binaries themselves as foreground processes on loopback ports.
bench-apt:
	$(call apt-install,$(BENCH_APT))
