//go:build unix

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// TestPrometheusStatusAPI calls the Prometheus status endpoints of a real
// server with client_golang's API client (Targets, TargetsMetadata,
// Runtimeinfo, Flags, Config, TSDB, WalReplay, AlertManagers), checks gzip
// answers, and sends a 1.5 MB `up+up+...` expression, which must be refused
// at once with a 400 naming the limit.
func TestPrometheusStatusAPI(t *testing.T) {
	s := startServer(t)
	c, err := api.NewClient(api.Config{Address: "http://" + s.http})
	if err != nil {
		t.Fatal(err)
	}
	p := promv1.NewAPI(c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := p.Targets(ctx); err != nil {
		t.Errorf("Targets: %v", err)
	}
	if _, err := p.TargetsMetadata(ctx, "", "", ""); err != nil {
		t.Errorf("TargetsMetadata: %v", err)
	}
	if ri, err := p.Runtimeinfo(ctx); err != nil || ri.StartTime.IsZero() || ri.StorageRetention != "15d" {
		t.Errorf("Runtimeinfo: %+v %v", ri, err)
	}
	if flags, err := p.Flags(ctx); err != nil || flags["http"] != s.http || flags["query-max-nodes"] != "10000" {
		t.Errorf("Flags: %v %v", flags, err)
	}
	if cfg, err := p.Config(ctx); err != nil || !strings.Contains(cfg.YAML, "http: "+s.http) {
		t.Errorf("Config: %+v %v", cfg, err)
	}
	// The server stores its own metrics in its TSDB: the head is not empty.
	poll(t, 90*time.Second, "TSDB head series", func() (bool, string) {
		ts, err := p.TSDB(ctx)
		if err != nil {
			return false, err.Error()
		}
		return ts.HeadStats.NumSeries > 0 && ts.HeadStats.ChunkCount > 0 && len(ts.SeriesCountByMetricName) > 0, fmt.Sprintf("%+v", ts.HeadStats)
	}, s.proc)
	if w, err := p.WalReplay(ctx); err != nil || w.Current != w.Max {
		t.Errorf("WalReplay: %+v %v", w, err)
	}
	if _, err := p.AlertManagers(ctx); err != nil {
		t.Errorf("AlertManagers: %v", err)
	}

	req, _ := http.NewRequest("GET", s.url("/api/v1/status/tsdb"), nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("no gzip answer: %v", resp.Header)
	}

	huge := "up" + strings.Repeat("+up", 500_000)
	resp, err = (&http.Client{Timeout: 2 * time.Minute}).PostForm(s.url("/api/v1/query"), url.Values{"query": {huge}})
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Status, ErrorType, Error string }
	err = json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusBadRequest || env.ErrorType != "bad_data" || !strings.Contains(env.Error, "--query-max-length") {
		t.Errorf("1.5 MB expression: %d %+v %v", resp.StatusCode, env, err)
	}
}

// TestClientExitCodes runs the client commands of the real binary against a
// real server: flags before or after `traces get`, and an unknown service
// name that exits 1 naming the known services.
func TestClientExitCodes(t *testing.T) {
	s := startServer(t)
	bin, _ := binaries(t)
	srv := "http://" + s.http
	// One proxy reports, so the server knows the service "shop".
	reportProxy(t, s, "shop")
	poll(t, 60*time.Second, "service shop known", func() (bool, string) {
		code, out, errOut := runClient(t, bin, "stat", "shop", "--server", srv)
		return code == 0, fmt.Sprintf("exit %d: %s%s", code, out, errOut)
	}, s.proc)

	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"stat", "nosuchsvc", "--server", srv}, 1, `unknown service "nosuchsvc"; known services: shop`},
		{[]string{"stat", "--server", srv, "--window", "5m", "nosuchsvc"}, 1, "known services: shop"},
		{[]string{"stat", "--server", srv, "shop"}, 0, ""},
		{[]string{"traces", "--server", srv, "get", "0123456789abcdef0123456789abcdef"}, 1, "server answered 404"},
		{[]string{"traces", "get", "0123456789abcdef0123456789abcdef", "--server", srv}, 1, "server answered 404"},
		{[]string{"traces", "--server", srv, "--lookback", "5m", "--utc"}, 0, "no traces match"},
		{[]string{"traces", "--server", srv, "get"}, 2, "want exactly one trace id"},
	} {
		code, _, errOut := runClient(t, bin, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.inStderr) {
			t.Errorf("meshscope %s: exit %d stderr %q; want exit %d and %q", strings.Join(tc.args, " "), code, errOut, tc.code, tc.inStderr)
		}
	}
}

func runClient(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee) && ctx.Err() == nil:
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("meshscope %s: %v", strings.Join(args, " "), err)
	return 0, "", ""
}

// reportProxy sends one meshscope_proxy_info point over OTLP/HTTP JSON, as a
// proxy of service does.
func reportProxy(t *testing.T, s *server, service string) {
	t.Helper()
	now := fmt.Sprint(time.Now().UnixNano())
	body := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"` + service + `"}}]},
	  "scopeMetrics":[{"metrics":[{"name":"meshscope_proxy_info","gauge":{"dataPoints":[{"asDouble":1,"timeUnixNano":"` + now + `",
	  "attributes":[{"key":"service","value":{"stringValue":"` + service + `"}},{"key":"version","value":{"stringValue":"v1"}},{"key":"mode","value":{"stringValue":"observe"}}]}]}}]}]}]}`
	resp, err := httpClient.Post("http://"+s.otlpHTTP+"/v1/metrics", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("OTLP metrics export: status %d", resp.StatusCode)
	}
}
