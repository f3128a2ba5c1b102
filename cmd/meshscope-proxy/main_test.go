package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "proxy.yaml")
	if err := os.WriteFile(file, []byte(`
service: from-file
version: v7
inbound:
  - listen: 127.0.0.1:4143
    app: 127.0.0.1:8080
upstreams:
  - listen: 127.0.0.1:4140
    service: catalog
    addrs: [127.0.0.1:9001, 127.0.0.1:9002]
route_templates: ["/api/items/{id}"]
drain_timeout: 3s
telemetry:
  collector: 127.0.0.1:4317
  sample_ratio: 0.5
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c proxy.Config)
		wantErr string
	}{
		{name: "flags only", args: []string{"--service", "web", "--inbound", "127.0.0.1:1=127.0.0.1:2",
			"--upstream", "127.0.0.1:3=cart@127.0.0.1:4,127.0.0.1:5", "--upstream", "127.0.0.1:6=pay@127.0.0.1:7",
			"--collector", "127.0.0.1:4317", "--mode", "enforce", "--drain-timeout", "2s", "--route-template", "/a/{b}"},
			check: func(t *testing.T, c proxy.Config) {
				if c.Service != "web" || c.Version != "v1" || c.Mode != "enforce" || c.Admin != "127.0.0.1:4191" {
					t.Errorf("got %+v", c)
				}
				if len(c.Upstreams) != 2 || c.Upstreams[0].Service != "cart" || len(c.Upstreams[0].Addrs) != 2 {
					t.Errorf("upstreams %+v", c.Upstreams)
				}
				if c.Inbound[0].App != "127.0.0.1:2" || time.Duration(c.DrainTimeout) != 2*time.Second || c.Telemetry.Collector != "127.0.0.1:4317" {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "file then flags override", args: []string{"--config", file, "--service", "web", "--upstream", "127.0.0.1:1=x@127.0.0.1:2"},
			check: func(t *testing.T, c proxy.Config) {
				if c.Service != "web" || c.Version != "v7" || len(c.Upstreams) != 1 || c.Upstreams[0].Service != "x" {
					t.Errorf("got %+v", c)
				}
				if len(c.Inbound) != 1 || c.Telemetry.SampleRatio != 0.5 || time.Duration(c.DrainTimeout) != 3*time.Second {
					t.Errorf("file values lost: %+v", c)
				}
			}},
		{name: "opaque override", args: []string{"--service", "db", "--inbound", "127.0.0.1:1=127.0.0.1:2", "--opaque", "127.0.0.1:1"},
			check: func(t *testing.T, c proxy.Config) {
				if c.Inbound[0].Protocol != proxy.ProtocolOpaque {
					t.Errorf("got %+v", c.Inbound)
				}
			}},
		{name: "service and version from the environment", args: []string{"--inbound", "127.0.0.1:1=127.0.0.1:2"},
			env: map[string]string{"MESHSCOPE_SERVICE": "catalog", "MESHSCOPE_VERSION": "v3"},
			check: func(t *testing.T, c proxy.Config) {
				if c.Service != "catalog" || c.Version != "v3" {
					t.Errorf("service/version = %s/%s, want catalog/v3 from the environment", c.Service, c.Version)
				}
			}},
		{name: "empty environment is unset", args: []string{"--service", "web", "--inbound", "127.0.0.1:1=127.0.0.1:2"},
			env: map[string]string{"MESHSCOPE_SERVICE": "", "MESHSCOPE_VERSION": ""},
			check: func(t *testing.T, c proxy.Config) {
				if c.Service != "web" || c.Version != "v1" {
					t.Errorf("service/version = %s/%s, want web/v1", c.Service, c.Version)
				}
			}},
		{name: "file and flags win over the environment", args: []string{"--config", file, "--service", "web"},
			env: map[string]string{"MESHSCOPE_SERVICE": "catalog", "MESHSCOPE_VERSION": "v3"},
			check: func(t *testing.T, c proxy.Config) {
				if c.Service != "web" || c.Version != "v7" {
					t.Errorf("service/version = %s/%s, want web (flag) / v7 (file)", c.Service, c.Version)
				}
			}},
		{name: "bad service from the environment", args: []string{"--inbound", "127.0.0.1:1=127.0.0.1:2"},
			env: map[string]string{"MESHSCOPE_SERVICE": "no spaces"}, wantErr: "service (--service)"},
		{name: "missing service", args: []string{"--inbound", "127.0.0.1:1=127.0.0.1:2"}, wantErr: "service (--service): required"},
		{name: "bad upstream", args: []string{"--service", "a", "--upstream", "nope"}, wantErr: "-upstream: want LISTEN=SERVICE@ADDR"},
		{name: "bad mode", args: []string{"--service", "a", "--inbound", "127.0.0.1:1=127.0.0.1:2", "--mode", "audit"}, wantErr: "mode (--mode): must be observe or enforce"},
		{name: "unknown flag", args: []string{"--servce", "a"}, wantErr: "servce"},
		{name: "no listeners", args: []string{"--service", "a"}, wantErr: "no listeners"},
		{name: "bad template", args: []string{"--service", "a", "--inbound", "127.0.0.1:1=127.0.0.1:2", "--route-template", "/a/x{y}"}, wantErr: "route_templates[0]"},
		{name: "opaque unknown listener", args: []string{"--service", "a", "--inbound", "127.0.0.1:1=127.0.0.1:2", "--opaque", "127.0.0.1:9"}, wantErr: "--opaque 127.0.0.1:9"},
		{name: "bad duration", args: []string{"--service", "a", "--drain-timeout", "soon"}, wantErr: "drain-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, _, err := parseConfig(tt.args, &stderr, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error()+stderr.String(), tt.wantErr) {
					t.Fatalf("err = %v (stderr %q), want it to mention %q", err, stderr.String(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestPprofFlag(t *testing.T) {
	base := []string{"--service", "web", "--inbound", "127.0.0.1:1=127.0.0.1:2"}
	tests := []struct {
		name, value, want, wantErr string
	}{
		{name: "off by default", want: ""},
		{name: "loopback", value: "127.0.0.1:6060", want: "127.0.0.1:6060"},
		{name: "localhost", value: "localhost:6060", want: "localhost:6060"},
		{name: "ipv6 loopback", value: "[::1]:6060", want: "[::1]:6060"},
		{name: "all interfaces refused", value: ":6060", wantErr: "host must be loopback"},
		{name: "remote refused", value: "10.0.0.1:6060", wantErr: "host must be loopback"},
		{name: "no port", value: "127.0.0.1", wantErr: "want a loopback HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := base
			if tt.value != "" {
				args = append(append([]string{}, base...), "--pprof", tt.value)
			}
			var stderr bytes.Buffer
			_, got, err := parseConfig(args, &stderr, func(string) string { return "" })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("pprof = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPprofServer serves a real profile index from the opt-in listener.
func TestPprofServer(t *testing.T) {
	srv, err := pprofServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	resp, err := http.Get("http://" + srv.Listener.Addr().String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile:") {
		t.Errorf("status %d, body %.200q", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}
