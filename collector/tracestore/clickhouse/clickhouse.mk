# ClickHouse store targets (owned by collector/tracestore/clickhouse/).
#
# chdb-deps installs the in-process ClickHouse engine (libchdb.so from the npm
# package @chdb/lib-linux-x64-gnu, pinned by .chdb/package-lock.json) into
# collector/tracestore/clickhouse/.chdb/node_modules (git-ignored).
# test-clickhouse runs the store's tests that need it (build tag chdb):
# the conformance suite, migrations and the cluster DDL on the real engine.
# MESHSCOPE_TEST_CLICKHOUSE_DSN=clickhouse://... adds the wire tests against a
# real server; an installed Debian clickhouse-server adds the refusal test.

CHDB_DIR := collector/tracestore/clickhouse/.chdb
CHDB_LIB := $(CURDIR)/$(CHDB_DIR)/node_modules/@chdb/lib-linux-x64-gnu/libchdb.so

.PHONY: chdb-deps test-clickhouse

chdb-deps: $(CHDB_LIB)

$(CHDB_LIB): $(CHDB_DIR)/package.json $(CHDB_DIR)/package-lock.json
	cd $(CHDB_DIR) && npm ci --no-audit --no-fund
	touch $@

test-clickhouse: chdb-deps
	MESHSCOPE_CHDB_LIB=$(CHDB_LIB) $(GO) test -count=1 -timeout 10m -tags chdb ./collector/tracestore/clickhouse/...

TEST_DEPS  += chdb-deps
TEST_EXTRA += test-clickhouse

# The benchmark (bench/clickhouse, make bench WHAT=clickhouse) runs on the same engine.
bench-deps: chdb-deps

# Optional (needs root): Debian's clickhouse-server 18.16, the real old server the
# version-refusal test starts when it is installed (its service is not started).
.PHONY: clickhouse-debian-server
clickhouse-debian-server:
	@dpkg-query -W -f='$${Status}' clickhouse-server 2>/dev/null | grep -q 'install ok installed' || { \
	  policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; policy=1; fi; \
	  apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends clickhouse-server; rc=$$?; \
	  if [ -n "$$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc; }
