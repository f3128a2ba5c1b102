package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommandErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown command", []string{"serve"}, 2, `unknown command "serve"`},
		{"unknown flag", []string{"server", "--htp", ":1"}, 2, "-htp"},
		{"bad duration", []string{"server", "--trace-retention", "forever"}, 2, "-trace-retention"},
		{"bad size", []string{"server", "--trace-max-bytes", "lots"}, 2, "-trace-max-bytes"},
		{"unknown config key", []string{"server", "--config", writeConfig(t, "http: 127.0.0.1:0\ncollector:\n  otlp_grcp: x\n")}, 2, "field otlp_grcp not found"},
		{"bad trace store", []string{"server", "--trace-store", "s3"}, 2, `traces.store: "s3" is not a trace store`},
		{"bad log level", []string{"server", "--log-level", "loud"}, 2, "log_level"},
		{"clickhouse without dsn", []string{"server", "--trace-store", "clickhouse"}, 2, "traces.clickhouse"},
		{"version extra arg", []string{"version", "x"}, 2, `unexpected argument "x"`},
		{"bad metrics store", []string{"server", "--metrics-store", "s3"}, 2, `metrics.store (--metrics-store): "s3"`},
		{"remote metrics without write url", []string{"server", "--metrics-store", "remote", "--prometheus-url", "http://p:9090"}, 2, "--remote-write-url"},
		{"remote metrics without read side", []string{"server", "--metrics-store", "remote", "--remote-write-url", "http://p:9090/api/v1/write"}, 2, "--prometheus-url"},
		{"remote metrics with edge aggregates", []string{"server", "--metrics-store", "remote", "--remote-write-url", "http://p/api/v1/write", "--prometheus-url", "http://p",
			"--config", writeConfig(t, "topology:\n  edge_aggregates: true\n")}, 2, "topology.edge_aggregates: must be false with --metrics-store remote"},
		{"bad state store", []string{"server", "--state-store", "zk"}, 2, `control: state_store: "zk" is not a state store`},
		{"etcd without endpoints", []string{"server", "--state-store", "etcd"}, 2, "control: etcd: endpoints: at least one etcd endpoint is needed (--etcd-endpoints A,B,C)"},
		{"empty etcd endpoint", []string{"server", "--etcd-endpoints", "http://a:2379,,http://b:2379"}, 2, "-etcd-endpoints"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runArgs(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(stderr, tt.wantErr) {
				t.Fatalf("code %d stderr %q; want code %d and %q", code, stderr, tt.wantCode, tt.wantErr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runArgs(t, "version")
	if code != 0 || !strings.HasPrefix(out, "meshscope ") {
		t.Fatalf("code %d out %q", code, out)
	}
}

func TestServerPortInUseNamesFlagAndAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	code, _, stderr := runArgs(t, "server", "--data", t.TempDir(), "--http", addr, "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "--http "+addr) || !strings.Contains(stderr, "address already in use") {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
	code, _, stderr = runArgs(t, "server", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--otlp-grpc", addr, "--otlp-http", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "--otlp-grpc") || !strings.Contains(stderr, addr) {
		t.Fatalf("code %d stderr %q", code, stderr)
	}
}

func TestServerConfigFileAndFlags(t *testing.T) {
	path := writeConfig(t, `
data: /var/lib/meshscope
http: 0.0.0.0:9000
traces:
  embedded:
    retention: 48h
metrics:
  retention: 720h
`)
	var errb bytes.Buffer
	cfg, err := parseServerConfig([]string{"--config", path, "--http", "127.0.0.1:9001", "--metrics-retention", "2d"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.resolved()
	if cfg.HTTP != "127.0.0.1:9001" {
		t.Errorf("http = %s, flag must win over file", cfg.HTTP)
	}
	if cfg.Data != "/var/lib/meshscope" || cfg.Traces.Embedded.Dir != "/var/lib/meshscope/traces" || cfg.Metrics.Dir != "/var/lib/meshscope/metrics" {
		t.Errorf("dirs: data %s traces %s metrics %s", cfg.Data, cfg.Traces.Embedded.Dir, cfg.Metrics.Dir)
	}
	if cfg.Traces.Embedded.Retention != 48*time.Hour {
		t.Errorf("trace retention = %v, want 48h from the file", cfg.Traces.Embedded.Retention)
	}
	if cfg.Metrics.Retention != 48*time.Hour {
		t.Errorf("metrics retention = %v, want 2d from the flag", cfg.Metrics.Retention)
	}
	if cfg.Collector.OTLPGRPC != "127.0.0.1:4317" {
		t.Errorf("otlp grpc default lost: %s", cfg.Collector.OTLPGRPC)
	}
}

// TestRemoteMetricsStoreDefaults: with --metrics-store remote the WAL gets
// its own directory, the server label names host and port, and the
// per-server edge aggregates are off.
func TestRemoteMetricsStoreDefaults(t *testing.T) {
	var errb bytes.Buffer
	cfg, err := parseServerConfig([]string{"--data", "/d", "--http", "127.0.0.1:7171", "--metrics-store", "remote",
		"--remote-write-url", "http://p:9090/api/v1/write", "--prometheus-url", "http://p:9090"}, &errb)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.resolved()
	if cfg.Metrics.Dir != "/d/metrics-wal" || !strings.HasSuffix(cfg.Metrics.Remote.Server, ":7171") || *cfg.Topology.EdgeAggregates {
		t.Errorf("dir %s server label %q edge aggregates %v", cfg.Metrics.Dir, cfg.Metrics.Remote.Server, *cfg.Topology.EdgeAggregates)
	}
}

// The example in deploy/ must stay loadable: strict decoding fails on any
// key that no longer exists.
func TestExampleServerConfigLoads(t *testing.T) {
	var errb bytes.Buffer
	cfg, err := parseServerConfig([]string{"--config", "../../deploy/server.yaml"}, &errb)
	if err != nil {
		t.Fatalf("deploy/server.yaml: %v", err)
	}
	def := defaultServerConfig()
	if cfg.HTTP != def.HTTP || cfg.Collector.OTLPGRPC != def.Collector.OTLPGRPC || cfg.Traces.Embedded.Retention != 168*time.Hour || cfg.Metrics.Retention != 360*time.Hour {
		t.Fatalf("example config differs from the documented defaults: %+v", cfg)
	}
}
