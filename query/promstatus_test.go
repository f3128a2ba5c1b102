package query_test

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/meshscope/meshscope/query"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/promapi"
)

func newStatusServer(t *testing.T, cfg query.Config) *httptest.Server {
	t.Helper()
	st := promapi.Status{
		StartTime:        time.Now().Add(-time.Minute),
		Flags:            map[string]string{"http": "127.0.0.1:7070", "query-timeout": "2m"},
		ConfigYAML:       "http: 127.0.0.1:7070\n",
		StorageRetention: "15d",
	}
	api, err := query.New(cfg, fixture.Engine(), fixture.TSDB(t), fixture.SampleTraces(), nil, nil, nil, query.WithStatus(st))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestPrometheusClientStatusEndpoints calls every status endpoint through
// client_golang's API client, which fails on a non-JSON or non-success
// answer (Prometheus 3 answers all of them with 200 JSON).
func TestPrometheusClientStatusEndpoints(t *testing.T) {
	srv := newStatusServer(t, query.DefaultConfig())
	c, err := api.NewClient(api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := promv1.NewAPI(c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	targets, err := p.Targets(ctx)
	if err != nil || targets.Active == nil || len(targets.Active)+len(targets.Dropped) != 0 {
		t.Errorf("Targets: %+v, %v", targets, err)
	}
	md, err := p.TargetsMetadata(ctx, "", "mesh_requests_total", "")
	if err != nil || md == nil || len(md) != 0 {
		t.Errorf("TargetsMetadata: %+v, %v", md, err)
	}
	ri, err := p.Runtimeinfo(ctx)
	if err != nil || ri.StartTime.IsZero() || ri.GOMAXPROCS < 1 || ri.GoroutineCount < 1 || ri.StorageRetention != "15d" || ri.CWD == "" {
		t.Errorf("Runtimeinfo: %+v, %v", ri, err)
	}
	flags, err := p.Flags(ctx)
	if err != nil || flags["query-timeout"] != "2m" {
		t.Errorf("Flags: %v, %v", flags, err)
	}
	cfg, err := p.Config(ctx)
	if err != nil || !strings.Contains(cfg.YAML, "http: 127.0.0.1:7070") {
		t.Errorf("Config: %+v, %v", cfg, err)
	}
	ts, err := p.TSDB(ctx, promv1.WithLimit(100))
	if err != nil {
		t.Fatalf("TSDB: %v", err)
	}
	// The head statistics are the TSDB's own: they agree with PromQL over it.
	v, _, _, err := p.Query(ctx, `count({__name__=~".+"})`, fixture.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.String(); !strings.Contains(got, "=> "+itoa(ts.HeadStats.NumSeries)+" ") {
		t.Errorf("TSDB head has %d series, PromQL counts %s", ts.HeadStats.NumSeries, got)
	}
	if ts.HeadStats.ChunkCount < ts.HeadStats.NumSeries || int64(ts.HeadStats.MaxTime) != fixture.Now.UnixMilli() {
		t.Errorf("TSDB head stats: %+v", ts.HeadStats)
	}
	var names []string
	for _, s := range ts.SeriesCountByMetricName {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "mesh_requests_total") {
		t.Errorf("series by metric name: %v", names)
	}
	wal, err := p.WalReplay(ctx)
	if err != nil || wal.Current != wal.Max {
		t.Errorf("WalReplay: %+v, %v", wal, err)
	}
	ams, err := p.AlertManagers(ctx)
	if err != nil || ams.Active == nil || len(ams.Active)+len(ams.Dropped) != 0 {
		t.Errorf("AlertManagers: %+v, %v", ams, err)
	}
	// Kept as they were.
	if _, err := p.Rules(ctx, nil); err != nil {
		t.Errorf("Rules: %v", err)
	}
	if _, err := p.Alerts(ctx); err != nil {
		t.Errorf("Alerts: %v", err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestGzip checks that API answers are compressed when the client accepts
// gzip, and not otherwise, on every API family.
func TestGzip(t *testing.T) {
	srv := newStatusServer(t, query.DefaultConfig())
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	for _, path := range []string{
		"/api/v1/query?query=up",
		"/api/v1/status/tsdb",
		"/jaeger/api/services",
		"/api/mesh/services?window=1m",
	} {
		for _, accept := range []string{"gzip", ""} {
			req, _ := http.NewRequest("GET", srv.URL+path, nil)
			if accept != "" {
				req.Header.Set("Accept-Encoding", accept)
			}
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body io.Reader = resp.Body
			enc := resp.Header.Get("Content-Encoding")
			if enc != accept {
				t.Errorf("%s with Accept-Encoding %q: Content-Encoding %q", path, accept, enc)
			}
			if enc == "gzip" {
				zr, err := gzip.NewReader(resp.Body)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				body = zr
			}
			b, err := io.ReadAll(body)
			resp.Body.Close()
			if err != nil || !json.Valid(b) {
				t.Errorf("%s (%q): body is not JSON (%v): %.200s", path, accept, err, b)
			}
		}
	}
}

// TestQueryAdmission sends a 1.5 MB `up+up+...` expression (which took
// Prometheus' parser more than ten minutes) and a shorter one with too many
// nodes: both are refused with 400 bad_data naming the limit, before any
// parsing.
func TestQueryAdmission(t *testing.T) {
	srv := newStatusServer(t, query.DefaultConfig())
	huge := "up" + strings.Repeat("+up", 500_000)
	many := "up" + strings.Repeat("+up", query.DefaultMaxQueryNodes/2)
	cl := &http.Client{Timeout: 2 * time.Minute}
	for _, tc := range []struct {
		name, path, expr, want string
	}{
		{"query length", "/api/v1/query", huge, "max_query_length"},
		{"query_range length", "/api/v1/query_range", huge, "max_query_length"},
		{"query nodes", "/api/v1/query", many, "max_query_nodes"},
		{"format_query nodes", "/api/v1/format_query", many, "max_query_nodes"},
		{"parse_query nodes", "/api/v1/parse_query", many, "max_query_nodes"},
		{"exemplars nodes", "/api/v1/query_exemplars", many, "max_query_nodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"query": {tc.expr}, "start": {"0"}, "end": {"60"}, "step": {"15"}}
			resp, err := cl.PostForm(srv.URL+tc.path, form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env promapi.Response
			if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || env.ErrorType != promapi.ErrBadData || !strings.Contains(env.Error, tc.want) {
				t.Errorf("got %d %s %q, want 400 bad_data naming %s", resp.StatusCode, env.ErrorType, env.Error, tc.want)
			}
		})
	}
}

// TestQueryAdmissionBoundary checks that the limits are exact: an
// expression at the limits is evaluated, one token or byte more is refused.
func TestQueryAdmissionBoundary(t *testing.T) {
	cfg := query.DefaultConfig()
	cfg.MaxQueryNodes = 5 // "1 + 2 + 3" is 5 tokens
	cfg.MaxQueryLength = len("1 + 2 + 3")
	srv := newStatusServer(t, cfg)
	for expr, code := range map[string]int{
		"1 + 2 + 3":  200,
		"1+2+3+4":    400, // 7 tokens
		"1 + 2 + 30": 400, // one byte over
	} {
		resp, err := http.PostForm(srv.URL+"/api/v1/query", url.Values{"query": {expr}, "time": {"60"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("%q: %d %s, want %d", expr, resp.StatusCode, b, code)
		}
	}
}
