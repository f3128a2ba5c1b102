package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/cli"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/internal/golden"
	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/query/promapi"
	"github.com/meshscope/meshscope/query/red"
	"github.com/meshscope/meshscope/topology"
)

// TestMain pins the local time zone so that the golden files, which show
// local times, do not depend on the machine's zone.
func TestMain(m *testing.M) {
	time.Local = time.FixedZone("CET", 3600)
	os.Exit(m.Run())
}

// sampleGraph stands in for the topology package's /api/mesh/graph.
func sampleGraph() topology.Graph {
	return topology.Graph{
		At: fixture.Now, Window: "1m", View: "service",
		Nodes: []topology.Node{
			{ID: "user", Service: "user", Kind: topology.KindUser, Mode: topology.ModeNone, Health: topology.HealthNoData},
			{ID: "web", Service: "web", Kind: topology.KindService, Mode: topology.ModeObserve, Health: topology.HealthHealthy, Stats: topology.Stats{RPS: 10}},
			{ID: "payments", Service: "payments", Kind: topology.KindService, Mode: topology.ModeEnforce, Health: topology.HealthDegraded, Stats: topology.Stats{RPS: 1, ErrorRate: 0.02}},
			{ID: "inventory", Service: "inventory", Kind: topology.KindUnmeshed, Mode: topology.ModeNone, Health: topology.HealthHealthy},
			{ID: "postgres", Service: "postgres", Kind: topology.KindDatabase, Mode: topology.ModeNone, Health: topology.HealthHealthy},
		},
		Edges: []topology.Edge{
			{ID: "user->web", Source: "user", Target: "web", Health: topology.HealthHealthy, SeenBy: "destination", Stats: topology.Stats{RPS: 10, P50Ms: 7.8, P95Ms: 75, P99Ms: 95}},
			{ID: "web->payments", Source: "web", Target: "payments", Health: topology.HealthDegraded, SeenBy: "both", Stats: topology.Stats{RPS: 1, ErrorRate: 0.02, P50Ms: 38.9, P95Ms: 750, P99Ms: 950}},
			{ID: "web->inventory", Source: "web", Target: "inventory", Health: topology.HealthHealthy, SeenBy: "source", Stats: topology.Stats{RPS: 3, P50Ms: 1.75, P95Ms: 2.4, P99Ms: 2.5}},
			{ID: "inventory->postgres", Source: "inventory", Target: "postgres", Health: topology.HealthHealthy, SeenBy: "spans", Stats: topology.Stats{RPS: 3, P50Ms: 0.4, P95Ms: 1.1, P99Ms: 1.9}},
		},
		Coverage: topology.Coverage{Services: 3, MeshedServices: 2, ServiceFraction: 0.67, Edges: 4, UnmeshedServices: []string{"inventory"}},
	}
}

func newServer(t *testing.T, traces *fixture.Traces, now time.Time) *httptest.Server {
	t.Helper()
	db := fixture.TSDB(t)
	var api *meshapi.API
	opts := meshapi.Options{Now: func() time.Time { return now }}
	src := red.Source{Engine: fixture.Engine(), Queryable: db}
	if traces != nil {
		api = meshapi.New(opts, src, fixture.RED(t, db), traces)
	} else {
		api = meshapi.New(opts, src, fixture.RED(t, db), nil)
	}
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	promapi.New(promapi.Options{Now: func() time.Time { return now }}, fixture.Engine(), db).RegisterRoutes(mux)
	mux.HandleFunc("GET /api/mesh/graph", func(w http.ResponseWriter, r *http.Request) {
		if v := r.URL.Query().Get("view"); v != "" && v != "service" {
			http.Error(w, `{"error":"only the service view in this fake"}`, http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(sampleGraph())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func run(srv *httptest.Server, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	if srv != nil {
		args = append(args, "--server", srv.URL)
	}
	code := cli.Run(context.Background(), args[0], args[1:], &stdout, &stderr)
	out, errOut := stdout.String(), stderr.String()
	if srv != nil {
		out = strings.ReplaceAll(out, srv.URL, "SERVER")
		errOut = strings.ReplaceAll(errOut, srv.URL, "SERVER")
	}
	return code, out, errOut
}

func TestCommandsGolden(t *testing.T) {
	srv := newServer(t, fixture.SampleTraces(), fixture.Now)
	t1 := fixture.TraceID(1).String()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"stat", []string{"stat"}, 0},
		{"stat_window", []string{"stat", "--window", "5m"}, 0},
		{"stat_service_arg", []string{"stat", "--service", "payments"}, 0},
		{"stat_edges", []string{"stat", "--edges"}, 0},
		{"stat_edges_from", []string{"stat", "--edges", "--from", "web"}, 0},
		{"stat_versions", []string{"stat", "--versions", "--service", "catalog"}, 0},
		{"stat_json", []string{"stat", "-o", "json"}, 0},
		{"stat_bad_output", []string{"stat", "-o", "yaml"}, 2},
		{"stat_bad_window", []string{"stat", "--window", "forever"}, 1},
		{"stat_bad_flag", []string{"stat", "--colour"}, 2},
		{"stat_unknown_service", []string{"stat", "nosuchsvc"}, 1},
		{"stat_unknown_service_flag", []string{"stat", "--service", "paymnets", "-o", "json"}, 1},
		{"stat_edges_unknown_from", []string{"stat", "--edges", "--from", "nosuchsvc"}, 1},
		{"stat_versions_unknown", []string{"stat", "--versions", "nosuchsvc"}, 1},
		{"top_once", []string{"top", "--once"}, 0},
		{"top_once_limit", []string{"top", "--once", "--limit", "2", "--service", "catalog"}, 0},
		{"top_once_utc", []string{"top", "--once", "--utc", "--limit", "1"}, 0},
		{"traces", []string{"traces", "--lookback", "24h"}, 0},
		{"traces_filtered", []string{"traces", "--lookback", "24h", "--service", "payments", "--status", "error"}, 0},
		{"traces_attr", []string{"traces", "--lookback", "24h", "--attr", "http.response.status_code=200", "--min-duration", "100ms"}, 0},
		{"traces_json", []string{"traces", "--lookback", "24h", "--limit", "1", "-o", "json"}, 0},
		{"traces_none", []string{"traces", "--lookback", "24h", "--service", "nobody"}, 0},
		{"traces_bad_status", []string{"traces", "--status", "meh"}, 1},
		{"traces_utc", []string{"traces", "--lookback", "24h", "--utc"}, 0},
		{"traces_get", []string{"traces", "get", t1}, 0},
		{"traces_get_utc", []string{"traces", "get", "--utc", t1}, 0},
		{"traces_get_nested", []string{"traces", "get", fixture.TraceID(3).String(), "--width", "40"}, 0},
		{"traces_get_json", []string{"traces", "get", fixture.TraceID(2).String(), "-o", "json"}, 0},
		{"traces_get_unknown", []string{"traces", "get", "ffff"}, 1},
		{"traces_get_no_id", []string{"traces", "get"}, 2},
		{"graph", []string{"graph"}, 0},
		{"graph_dot", []string{"graph", "-o", "dot"}, 0},
		{"graph_json", []string{"graph", "--output", "json"}, 0},
		{"graph_server_error", []string{"graph", "--view", "version"}, 1},
		{"check", []string{"check"}, 0},
		{"check_json", []string{"check", "-o", "json"}, 0},
		{"check_min_proxies", []string{"check", "--min-proxies", "6"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(srv, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			golden.Assert(t, "cli_"+tc.name, fmt.Appendf(nil, "$ meshscope %s\nexit %d\n--- stdout\n%s--- stderr\n%s", strings.Join(tc.args, " "), code, out, errOut))
		})
	}
}

// TestFlagsAnyPosition runs the same commands with the flags before, between
// and after the positional arguments: every order gives the same output.
func TestFlagsAnyPosition(t *testing.T) {
	srv := newServer(t, fixture.SampleTraces(), fixture.Now)
	t1 := fixture.TraceID(1).String()
	for _, orders := range [][][]string{
		{
			{"traces", "get", t1, "--server", srv.URL, "--width", "40"},
			{"traces", "--server", srv.URL, "get", t1, "--width", "40"},
			{"traces", "--server", srv.URL, "--width=40", "get", t1},
			{"traces", "--utc=false", "--width", "40", "get", "--server", srv.URL, t1},
		},
		{
			{"stat", "payments", "--server", srv.URL, "--window", "5m"},
			{"stat", "--server", srv.URL, "payments", "--window", "5m"},
			{"stat", "--window", "5m", "--server", srv.URL, "payments"},
		},
		{
			{"traces", "--lookback", "24h", "--server", srv.URL, "--service", "payments"},
			{"traces", "--server", srv.URL, "--service", "payments", "--lookback", "24h"},
		},
	} {
		var want string
		for i, args := range orders {
			var stdout, stderr bytes.Buffer
			code := cli.Run(context.Background(), args[0], args[1:], &stdout, &stderr)
			if code != cli.ExitOK {
				t.Errorf("%q: exit %d: %s", args, code, stderr.String())
				continue
			}
			if i == 0 {
				want = stdout.String()
			} else if stdout.String() != want {
				t.Errorf("%q printed\n%s\nwant (as %q)\n%s", args, stdout.String(), orders[0], want)
			}
		}
	}
}

// TestStatKnownButIdle: a service the server knows but that had no traffic
// in the window is not an error.
func TestStatKnownButIdle(t *testing.T) {
	srv := newServer(t, fixture.SampleTraces(), fixture.Now.Add(time.Hour))
	code, _, errOut := run(srv, "stat", "payments")
	if code != cli.ExitOK || !strings.Contains(errOut, "no traffic in the window") {
		t.Fatalf("exit %d stderr %q, want 0 and \"no traffic in the window\"", code, errOut)
	}
}

func TestCheckProblems(t *testing.T) {
	tests := []struct {
		name   string
		traces *fixture.Traces
		now    time.Time
		want   string
	}{
		{"trace store failing", &fixture.Traces{Err: errors.New("disk on fire")}, fixture.Now, "× traces store: disk on fire"},
		{"no proxies", fixture.SampleTraces(), fixture.Now.Add(time.Hour), "× 0 proxies reporting in the last 2m (want at least 1)"},
		{"no trace store", nil, fixture.Now, "× traces store is not configured"},
		{"trace store damaged", &fixture.Traces{Spans: fixture.SampleTraces().Spans, Damaged: tracestore.Damage{Regions: 1, Bytes: 700, Where: []string{"seg-0000000002.log@8+700"}}}, fixture.Now,
			"× traces store answers; damaged data: 1 damaged region(s), 700 bytes skipped at open (seg-0000000002.log@8+700)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.traces, tc.now)
			code, out, _ := run(srv, "check")
			if code != cli.ExitFailure {
				t.Errorf("exit %d, want %d", code, cli.ExitFailure)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

func TestServerUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	for _, cmd := range []string{"stat", "top", "traces", "graph", "check"} {
		var stdout, stderr bytes.Buffer
		args := []string{"--server", url, "--timeout", "2s"}
		if cmd == "top" {
			args = append(args, "--once")
		}
		code := cli.Run(context.Background(), cmd, args, &stdout, &stderr)
		if code != cli.ExitFailure {
			t.Errorf("%s: exit %d, want %d", cmd, code, cli.ExitFailure)
		}
		if !strings.Contains(stdout.String()+stderr.String(), "cannot reach the server") {
			t.Errorf("%s: no reachability error in %q / %q", cmd, stdout.String(), stderr.String())
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"nope"},
		{"stat", "--server", "ftp://x"},
		{"stat", "--edges", "--versions"},
		{"top", "--limit", "0"},
		{"top", "--interval", "1ms"},
		{"traces", "extra"},
		{"traces", "get", "a", "b"},
		{"traces", "--server", "http://127.0.0.1:1", "get"},
		{"stat", "a", "b"},
		{"stat", "--window"},
		{"graph", "--view", "pods"},
		{"check", "--min-proxies", "-1"},
	} {
		code, _, errOut := run(nil, args...)
		if code != cli.ExitUsage || errOut == "" {
			t.Errorf("%v: exit %d stderr %q, want exit %d with a message", args, code, errOut, cli.ExitUsage)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTopLive runs the refreshing view until it has drawn two frames, then
// cancels it as Ctrl-C would.
func TestTopLive(t *testing.T) {
	srv := newServer(t, fixture.SampleTraces(), fixture.Now)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, "top", []string{"--server", srv.URL, "--interval", "500ms"}, &out, &errOut)
	}()
	giveUp := time.After(60 * time.Second) // a hang guard, not a timing assertion
	for strings.Count(out.String(), "busiest routes") < 2 {
		select {
		case code := <-done:
			t.Fatalf("top exited early with %d: %s", code, errOut.String())
		case <-giveUp:
			t.Fatalf("no second frame; output so far:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("exit %d after cancel", code)
	}
	if !strings.HasPrefix(out.String(), "\x1b[H\x1b[2J") {
		t.Errorf("live view does not clear the screen first: %q", out.String()[:20])
	}
}

func TestFormatTime(t *testing.T) {
	at := time.Date(2026, 1, 1, 11, 59, 0, 123_456_789, time.UTC)
	for _, tc := range []struct {
		loc  *time.Location
		want string
	}{
		{time.UTC, "2026-01-01 11:59:00.123 UTC"},
		{time.Local, "2026-01-01 12:59:00.123 CET"}, // TestMain's zone
		{time.FixedZone("", -5*3600-30*60), "2026-01-01 06:29:00.123 -0530"},
	} {
		if got := cli.FormatTime(at, tc.loc); got != tc.want {
			t.Errorf("FormatTime in %v = %q, want %q", tc.loc, got, tc.want)
		}
	}
}
