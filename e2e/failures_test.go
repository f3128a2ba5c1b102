//go:build unix

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyForwardsWhenCollectorDown: with nothing listening at the
// collector address, traffic still flows and the proxy counts the telemetry
// it dropped on its /metrics.
func TestProxyForwardsWhenCollectorDown(t *testing.T) {
	backendApp := startApp(t)
	addrs := freeAddrs(t, 2)
	inbound, deadCollector := addrs[0], addrs[1]
	p, admin := startProxy(t, "proxy-no-collector",
		"--service", "lonely", "--inbound", inbound+"="+backendApp.addr, "--collector", deadCollector)
	for i := range 50 {
		code, body := send(t, inbound, fmt.Sprintf("/x/%d", i), "")
		if code != 200 || !strings.Contains(body, "hello from the backend") {
			t.Fatalf("request %d with the collector down: status %d, body %q", i, code, body)
		}
	}
	poll(t, 60*time.Second, "meshscope_proxy_telemetry_dropped_total > 0", func() (bool, string) {
		v, found, err := scrape("http://"+admin+"/metrics", "meshscope_proxy_telemetry_dropped_total")
		if err != nil {
			return false, err.Error()
		}
		return found && v > 0, fmt.Sprintf("found=%v value=%g", found, v)
	}, p)
	// Golden metrics are still recorded locally.
	v, _, err := scrape("http://"+admin+"/metrics", "mesh_requests_total", `direction="inbound"`, `destination_service="lonely"`)
	if err != nil || v < 50 {
		t.Errorf("mesh_requests_total{direction=inbound,destination_service=lonely} = %g (%v), want >= 50", v, err)
	}
	if code, _ := send(t, inbound, "/after", ""); code != 200 {
		t.Errorf("proxy stopped forwarding: status %d", code)
	}
}

// runToExit runs bin and returns its combined output and exit error; it fails
// the test if the binary does not exit within 30 s.
func runToExit(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not exit within 30s; output:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return string(out), err
}

func TestBadFlagsAndKeysAreNamed(t *testing.T) {
	server, proxy := binaries(t)
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("bogus_key_xyz: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	tests := []struct {
		name string
		bin  string
		args []string
		want string // must appear in the output
	}{
		{"proxy unknown flag", proxy, []string{"--service", "a", "--no-such-flag"}, "no-such-flag"},
		{"proxy bad inbound", proxy, []string{"--service", "a", "--inbound", "nonsense"}, "inbound"},
		{"proxy bad upstream", proxy, []string{"--service", "a", "--upstream", "127.0.0.1:0=nowhere"}, "upstream"},
		{"proxy bad mode", proxy, []string{"--service", "a", "--mode", "sideways"}, "mode"},
		{"proxy unknown config key", proxy, []string{"--config", badConfig}, "bogus_key_xyz"},
		{"server unknown flag", server, []string{"server", "--data", data, "--no-such-flag"}, "no-such-flag"},
		{"server bad http address", server, []string{"server", "--data", data, "--http", "not-an-address"}, "http"},
		{"server unknown config key", server, []string{"server", "--data", data, "--config", badConfig}, "bogus_key_xyz"},
		{"demo bad rate", server, []string{"demo", "--data", data, "--rate", "fast"}, "rate"},
		{"demo unknown flag", server, []string{"demo", "--data", data, "--no-such-flag"}, "no-such-flag"},
		{"unknown subcommand", server, []string{"no-such-command"}, "no-such-command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runToExit(t, tt.bin, tt.args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("exit: %v, want a non-zero exit; output:\n%s", err, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not name %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
				t.Errorf("crashed instead of a clear error:\n%s", out)
			}
		})
	}
}

func TestPortInUseIsNamed(t *testing.T) {
	server, proxy := binaries(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	b := busy.Addr().String()
	free := func() string { return freeAddrs(t, 1)[0] }
	tests := []struct {
		name string
		bin  string
		args func() []string
	}{
		{"server http", server, func() []string {
			return []string{"server", "--data", t.TempDir(), "--http", b, "--otlp-grpc", free(), "--otlp-http", free()}
		}},
		{"server otlp-grpc", server, func() []string {
			return []string{"server", "--data", t.TempDir(), "--http", free(), "--otlp-grpc", b, "--otlp-http", free()}
		}},
		{"server otlp-http", server, func() []string {
			return []string{"server", "--data", t.TempDir(), "--http", free(), "--otlp-grpc", free(), "--otlp-http", b}
		}},
		{"demo http", server, func() []string {
			return []string{"demo", "--data", t.TempDir(), "--http", b, "--duration", "1s"}
		}},
		{"proxy admin", proxy, func() []string {
			return []string{"--service", "a", "--admin", b, "--inbound", free() + "=" + free()}
		}},
		{"proxy inbound", proxy, func() []string {
			return []string{"--service", "a", "--admin", free(), "--inbound", b + "=" + free()}
		}},
		{"proxy upstream", proxy, func() []string {
			return []string{"--service", "a", "--admin", free(), "--upstream", b + "=other@" + free()}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runToExit(t, tt.bin, tt.args()...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("exit: %v, want a non-zero exit; output:\n%s", err, out)
			}
			if !strings.Contains(out, b) {
				t.Errorf("output does not name the busy address %s:\n%s", b, out)
			}
		})
	}
}
