package query_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/query"
	"github.com/meshscope/meshscope/query/internal/fixture"
)

// newServer serves the whole query layer the way cmd/meshscope wires it,
// plus a stand-in for the topology's graph routes to prove they coexist.
func newServer(t *testing.T, reg prometheus.Registerer) *httptest.Server {
	t.Helper()
	db := fixture.TSDB(t)
	cfg := query.DefaultConfig()
	api, err := query.New(cfg, fixture.Engine(), db, fixture.SampleTraces(), fixture.RED(t, db), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	mux.HandleFunc("GET /api/mesh/graph", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"nodes":[],"edges":[]}`) })
	mux.HandleFunc("GET /api/mesh/graph/stream", func(w http.ResponseWriter, r *http.Request) {})
	// The same API behind a path prefix, as a reverse proxy would mount it.
	mux.Handle("/prefix/", http.StripPrefix("/prefix", mux))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type call struct {
	method string
	path   string
	form   url.Values
	check  func(t *testing.T, body []byte)
}

func do(t *testing.T, base string, c call) []byte {
	t.Helper()
	var req *http.Request
	var err error
	if c.method == "POST" {
		req, err = http.NewRequest("POST", base+c.path, strings.NewReader(c.form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		u := base + c.path
		if len(c.form) > 0 {
			u += "?" + c.form.Encode()
		}
		req, err = http.NewRequest("GET", u, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "Grafana/11.3.0")
	req.Header.Set("Accept", "application/json, text/plain, */*")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", c.method, c.path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", c.method, c.path, ct)
	}
	return body
}

// promEnvelope decodes a Prometheus API answer and checks status=success.
func promData(t *testing.T, body []byte, data any) {
	t.Helper()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Status != "success" {
		t.Fatalf("not a success envelope (%v): %s", err, body)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		t.Fatalf("data: %v: %s", err, env.Data)
	}
}

type promResult struct {
	ResultType string            `json:"resultType"`
	Result     []json.RawMessage `json:"result"`
}

// TestGrafanaPrometheusDataSource replays, request for request, what
// Grafana's Prometheus data source sends: the health check, the flavour
// probe, a dashboard panel's range query, the query editor's metric/label
// browsers and the alerting view.
func TestGrafanaPrometheusDataSource(t *testing.T) {
	srv := newServer(t, nil)
	start := fmt.Sprint(fixture.Now.Add(-5 * time.Minute).Unix())
	end := fmt.Sprint(fixture.Now.Unix())
	calls := []call{
		{"GET", "/api/v1/query", url.Values{"query": {"1+1"}, "time": {end}}, func(t *testing.T, b []byte) {
			var r struct {
				ResultType string `json:"resultType"`
				Result     []any  `json:"result"`
			}
			promData(t, b, &r)
			if r.ResultType != "scalar" || r.Result[1] != "2" {
				t.Errorf("health check answer %s", b)
			}
		}},
		{"GET", "/api/v1/status/buildinfo", nil, func(t *testing.T, b []byte) {
			var r struct{ Version string }
			promData(t, b, &r)
			if !strings.HasPrefix(r.Version, "3.") {
				t.Errorf("version %q: Grafana would not pick the Prometheus 3 feature set", r.Version)
			}
		}},
		{"POST", "/api/v1/query_range", url.Values{"query": {`sum by (destination_service) (rate(mesh_requests_total{direction="inbound"}[1m]))`}, "start": {start}, "end": {end}, "step": {"15"}}, func(t *testing.T, b []byte) {
			var r promResult
			promData(t, b, &r)
			if r.ResultType != "matrix" || len(r.Result) != 4 {
				t.Errorf("range query: %s", b)
			}
		}},
		{"POST", "/api/v1/query", url.Values{"query": {`histogram_quantile(0.95, sum by (le) (rate(mesh_request_duration_seconds_bucket[5m])))`}, "time": {end}}, func(t *testing.T, b []byte) {
			var r promResult
			promData(t, b, &r)
			if r.ResultType != "vector" || len(r.Result) != 1 {
				t.Errorf("instant query: %s", b)
			}
		}},
		{"GET", "/api/v1/labels", url.Values{"start": {start}, "end": {end}}, func(t *testing.T, b []byte) {
			var r []string
			promData(t, b, &r)
			if !strings.Contains(strings.Join(r, ","), "destination_service") {
				t.Errorf("labels: %v", r)
			}
		}},
		{"GET", "/api/v1/label/__name__/values", url.Values{"start": {start}, "end": {end}}, func(t *testing.T, b []byte) {
			var r []string
			promData(t, b, &r)
			if !strings.Contains(strings.Join(r, ","), "mesh_requests_total") {
				t.Errorf("metric names: %v", r)
			}
		}},
		{"GET", "/api/v1/label/destination_service/values", url.Values{"match[]": {`mesh_requests_total{direction="inbound"}`}, "start": {start}, "end": {end}}, func(t *testing.T, b []byte) {
			var r []string
			promData(t, b, &r)
			if strings.Join(r, ",") != "catalog,checkout,payments,web" {
				t.Errorf("label values: %v", r)
			}
		}},
		{"GET", "/api/v1/series", url.Values{"match[]": {`meshscope_proxy_info`}, "start": {start}, "end": {end}}, func(t *testing.T, b []byte) {
			var r []map[string]string
			promData(t, b, &r)
			if len(r) != 5 {
				t.Errorf("series: %v", r)
			}
		}},
		{"POST", "/api/v1/series", url.Values{"match[]": {`mesh_requests_total{destination_service="payments",direction="inbound"}`}, "start": {start}, "end": {end}}, func(t *testing.T, b []byte) {
			var r []map[string]string
			promData(t, b, &r)
			if len(r) != 2 {
				t.Errorf("series (POST): %v", r)
			}
		}},
		{"GET", "/api/v1/metadata", nil, func(t *testing.T, b []byte) {
			var r map[string][]struct{ Type, Help string }
			promData(t, b, &r)
			if r["mesh_request_duration_seconds"][0].Type != "histogram" || r["mesh_requests_total"][0].Type != "counter" {
				t.Errorf("metadata: %v", r)
			}
		}},
		{"GET", "/api/v1/metadata", url.Values{"metric": {"mesh_requests_total"}}, func(t *testing.T, b []byte) {
			var r map[string]any
			promData(t, b, &r)
			if len(r) != 1 {
				t.Errorf("metadata for one metric: %v", r)
			}
		}},
		{"GET", "/api/v1/rules", nil, func(t *testing.T, b []byte) {
			var r struct{ Groups []any }
			promData(t, b, &r)
			if r.Groups == nil {
				t.Errorf("rules: %s", b)
			}
		}},
		{"GET", "/api/v1/alerts", nil, func(t *testing.T, b []byte) {
			var r struct{ Alerts []any }
			promData(t, b, &r)
			if r.Alerts == nil {
				t.Errorf("alerts: %s", b)
			}
		}},
		{"POST", "/api/v1/format_query", url.Values{"query": {"sum(rate(x[1m]))"}}, func(t *testing.T, b []byte) {
			var r string
			promData(t, b, &r)
			if r != "sum(rate(x[1m]))" {
				t.Errorf("format_query: %q", r)
			}
		}},
	}
	for _, prefix := range []string{"", "/prefix"} {
		for _, c := range calls {
			t.Run(prefix+c.method+c.path, func(t *testing.T) {
				c.check(t, do(t, srv.URL+prefix, c))
			})
		}
	}
}

type jaegerEnvelope struct {
	Data   json.RawMessage `json:"data"`
	Total  int             `json:"total"`
	Errors []any           `json:"errors"`
}

func jaegerData(t *testing.T, body []byte, data any) jaegerEnvelope {
	t.Helper()
	var env jaegerEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Errors != nil {
		t.Fatalf("not a Jaeger success envelope (%v): %s", err, body)
	}
	if err := json.Unmarshal(env.Data, data); err != nil {
		t.Fatalf("data: %v: %s", err, env.Data)
	}
	return env
}

// TestGrafanaJaegerDataSource replays what Grafana's Jaeger data source
// sends, with its URL set to http://HOST/jaeger (and behind a prefix).
func TestGrafanaJaegerDataSource(t *testing.T) {
	srv := newServer(t, nil)
	t1 := fixture.TraceID(1).String()
	start := fmt.Sprint(fixture.Now.Add(-time.Hour).UnixMicro())
	end := fmt.Sprint(fixture.Now.UnixMicro())
	calls := []call{
		{"GET", "/api/services", nil, func(t *testing.T, b []byte) {
			var r []string
			env := jaegerData(t, b, &r)
			if strings.Join(r, ",") != "catalog,checkout,payments,web" || env.Total != 4 {
				t.Errorf("services: %s", b)
			}
		}},
		{"GET", "/api/services/" + url.PathEscape("web") + "/operations", nil, func(t *testing.T, b []byte) {
			var r []string
			jaegerData(t, b, &r)
			if strings.Join(r, ",") != "GET /,POST /api/checkout" {
				t.Errorf("operations: %v", r)
			}
		}},
		{"GET", "/api/traces", url.Values{"service": {"checkout"}, "operation": {"POST /pay"}, "tags": {`{"http.response.status_code":"503"}`},
			"minDuration": {"1.2ms"}, "maxDuration": {"5s"}, "limit": {"20"}, "start": {start}, "end": {end}}, func(t *testing.T, b []byte) {
			var r []struct {
				TraceID string `json:"traceID"`
				Spans   []struct {
					SpanID     string `json:"spanID"`
					ProcessID  string `json:"processID"`
					References []struct{ RefType string }
				}
				Processes map[string]struct{ ServiceName string }
			}
			jaegerData(t, b, &r)
			if len(r) != 1 || r[0].TraceID != t1 || len(r[0].Spans) != 5 {
				t.Fatalf("search: %s", b)
			}
			for _, s := range r[0].Spans {
				if _, ok := r[0].Processes[s.ProcessID]; !ok {
					t.Errorf("span %s has unknown process %q", s.SpanID, s.ProcessID)
				}
			}
		}},
		{"GET", "/api/traces/" + t1, nil, func(t *testing.T, b []byte) {
			var r []struct {
				TraceID string `json:"traceID"`
			}
			jaegerData(t, b, &r)
			if len(r) != 1 || r[0].TraceID != t1 {
				t.Errorf("trace: %s", b)
			}
		}},
		{"GET", "/api/dependencies", url.Values{"endTs": {fmt.Sprint(fixture.Now.UnixMilli())}, "lookback": {fmt.Sprint((5 * time.Minute).Milliseconds())}}, func(t *testing.T, b []byte) {
			var r []struct {
				Parent, Child string
				CallCount     uint64
			}
			jaegerData(t, b, &r)
			if len(r) != 5 {
				t.Errorf("dependencies: %s", b)
			}
		}},
	}
	for _, prefix := range []string{"/jaeger", "/prefix/jaeger"} {
		for _, c := range calls {
			t.Run(prefix+c.path, func(t *testing.T) {
				c.check(t, do(t, srv.URL+prefix, c))
			})
		}
	}
}

func TestSelfMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := newServer(t, reg)
	resp, err := http.Get(srv.URL + "/api/v1/query?query=sum((")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n := counterValue(t, reg, "prom_query", "400")
	if n != 1 {
		t.Errorf("meshscope_query_http_requests_total{handler=prom_query,code=400} = %v, want 1", n)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, handler, code string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshscope_query_http_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lbl := map[string]string{}
			for _, l := range m.GetLabel() {
				lbl[l.GetName()] = l.GetValue()
			}
			if lbl["handler"] == handler && lbl["code"] == code {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series handler=%s code=%s", handler, code)
	return 0
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  query.Config
		want string
	}{
		{query.DefaultConfig(), ""},
		{query.Config{}, ""},
		{query.Config{Timeout: -1}, "query.timeout"},
		{query.Config{MaxSamples: -1}, "query.max_samples"},
		{query.Config{LookbackDelta: -time.Second}, "query.lookback_delta"},
		{query.Config{MaxTraces: -2}, "query.max_traces"},
		{query.Config{ProxyWindow: -time.Minute}, "query.proxy_window"},
	}
	for _, tc := range tests {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: error %v, want one naming %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := query.New(query.Config{Timeout: -1}, fixture.Engine(), fixture.TSDB(t), nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "query.timeout") {
		t.Errorf("New accepted a bad config: %v", err)
	}
}
