package main

import (
	"strings"
	"testing"
	"time"
)

// TestServerStatusRedactsSecrets: /api/v1/status/config and /flags show the
// effective configuration but never the ClickHouse password.
func TestServerStatusRedactsSecrets(t *testing.T) {
	cfg := defaultServerConfig()
	cfg.Traces.ClickHouse.DSN = "clickhouse://meshscope:hunter2@db:9000/traces"
	cfg.Query.Timeout = 90 * time.Second
	st := serverStatus(cfg, time.Unix(0, 0))
	if strings.Contains(st.ConfigYAML, "hunter2") || strings.Contains(st.Flags["clickhouse-dsn"], "hunter2") {
		t.Fatalf("password leaked: flags %v\nconfig:\n%s", st.Flags, st.ConfigYAML)
	}
	if !strings.Contains(st.Flags["clickhouse-dsn"], "meshscope:<secret>@db:9000") {
		t.Errorf("clickhouse-dsn flag = %q", st.Flags["clickhouse-dsn"])
	}
	if st.Flags["query-timeout"] != "1m30s" || st.Flags["query-max-length"] != "262144" || st.StorageRetention != "15d" {
		t.Errorf("flags %v retention %q", st.Flags, st.StorageRetention)
	}
	if !strings.Contains(st.ConfigYAML, "timeout: 1m30s") {
		t.Errorf("config YAML lacks the effective query timeout:\n%s", st.ConfigYAML)
	}
}
