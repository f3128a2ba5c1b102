package meshapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/internal/golden"
	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/query/red"
)

func newServer(t *testing.T, traces *fixture.Traces, now time.Time) *httptest.Server {
	t.Helper()
	db := fixture.TSDB(t)
	opts := meshapi.Options{Timeout: time.Minute, MaxTraces: 100, Now: func() time.Time { return now }}
	var api *meshapi.API
	if traces == nil {
		api = meshapi.New(opts, red.Source{Engine: fixture.Engine(), Queryable: db}, fixture.RED(t, db), nil)
	} else {
		api = meshapi.New(opts, red.Source{Engine: fixture.Engine(), Queryable: db}, fixture.RED(t, db), traces)
	}
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestEndpointsGolden(t *testing.T) {
	srv := newServer(t, fixture.SampleTraces(), fixture.Now)
	t1 := fixture.TraceID(1).String()
	tests := []struct {
		name string
		path string
		q    url.Values
		code int
	}{
		{"services", "/services", nil, 200},
		{"services_window", "/services", url.Values{"window": {"5m"}}, 200},
		{"services_one", "/services", url.Values{"service": {"catalog"}}, 200},
		{"services_at_past", "/services", url.Values{"at": {fixture.Now.Add(-time.Hour).Format(time.RFC3339)}}, 200},
		{"services_bad_window", "/services", url.Values{"window": {"soon"}}, 400},
		{"services_short_window", "/services", url.Values{"window": {"10ms"}}, 400},
		{"services_bad_at", "/services", url.Values{"at": {"noon"}}, 400},
		{"routes", "/routes", nil, 200},
		{"routes_service", "/routes", url.Values{"service": {"payments"}}, 200},
		{"versions", "/versions", url.Values{"service": {"catalog"}}, 200},
		{"edges", "/edges", nil, 200},
		{"edges_source", "/edges", url.Values{"source": {"web"}}, 200},
		{"traces", "/traces", nil, 200},
		{"traces_service_error", "/traces", url.Values{"service": {"payments"}, "status": {"error"}}, 200},
		{"traces_attr", "/traces", url.Values{"attr": {"http.response.status_code=200"}, "min_duration": {"200ms"}}, 200},
		{"traces_operation_limit", "/traces", url.Values{"service": {"web"}, "operation": {"GET /"}, "limit": {"1"}}, 200},
		{"traces_window", "/traces", url.Values{"start": {fixture.Now.Add(-3 * time.Hour).Format(time.RFC3339)}, "end": {fixture.Now.Add(-2 * time.Hour).Format(time.RFC3339)}}, 200},
		{"traces_bad_attr", "/traces", url.Values{"attr": {"novalue"}}, 400},
		{"traces_bad_status", "/traces", url.Values{"status": {"maybe"}}, 400},
		{"traces_bad_duration", "/traces", url.Values{"min_duration": {"slow"}}, 400},
		{"traces_bad_limit", "/traces", url.Values{"limit": {"0"}}, 400},
		{"traces_bad_sort", "/traces", url.Values{"sort": {"slowest"}}, 400},
		{"trace_services", "/traces/services", nil, 200},
		{"trace", "/traces/" + t1, nil, 200},
		{"trace_nested", "/traces/" + fixture.TraceID(3).String(), nil, 200},
		{"trace_not_found", "/traces/ffffffff", nil, 404},
		{"trace_bad_id", "/traces/xyz", nil, 400},
		{"health", "/health", nil, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := srv.URL + meshapi.Prefix + tc.path
			if tc.q != nil {
				u += "?" + tc.q.Encode()
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if !json.Valid(body) {
				t.Fatalf("not JSON: %s", body)
			}
			golden.Assert(t, "mesh_"+tc.name, append([]byte(fmt.Sprintf("HTTP %d\n", resp.StatusCode)), golden.JSON(body)...))
		})
	}
}

func getHealth(t *testing.T, srv *httptest.Server) (int, meshapi.Health) {
	t.Helper()
	resp, err := http.Get(srv.URL + meshapi.Prefix + "/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h meshapi.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, h
}

func TestHealthStates(t *testing.T) {
	tests := []struct {
		name       string
		traces     *fixture.Traces
		now        time.Time
		wantCode   int
		wantStatus string
		wantProxy  int
	}{
		{"ok", fixture.SampleTraces(), fixture.Now, 200, meshapi.HealthOK, 5},
		{"no proxies lately", fixture.SampleTraces(), fixture.Now.Add(time.Hour), 200, meshapi.HealthDegraded, 0},
		{"trace store failing", &fixture.Traces{Err: errors.New("disk on fire")}, fixture.Now, 503, meshapi.HealthFailing, 5},
		{"no trace store", nil, fixture.Now, 503, meshapi.HealthFailing, 5},
		{"trace store damaged", &fixture.Traces{Spans: fixture.SampleTraces().Spans, Damaged: tracestore.Damage{Regions: 2, Bytes: 4096, Where: []string{"seg-0000000001.log@512+2048"}}}, fixture.Now, 200, meshapi.HealthDegraded, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.traces, tc.now)
			code, h := getHealth(t, srv)
			if code != tc.wantCode || h.Status != tc.wantStatus || h.ProxiesReporting != tc.wantProxy {
				t.Errorf("got %d %s proxies=%d problems=%v; want %d %s proxies=%d", code, h.Status, h.ProxiesReporting, h.Problems, tc.wantCode, tc.wantStatus, tc.wantProxy)
			}
			if tc.wantStatus != meshapi.HealthOK && len(h.Problems) == 0 {
				t.Errorf("status %s without problems", h.Status)
			}
		})
	}
}

// TestSuccessRateMatchesFixture checks the RED numbers against the
// fixture's declared rates, independently of the golden files.
func TestSuccessRateMatchesFixture(t *testing.T) {
	srv := newServer(t, fixture.SampleTraces(), fixture.Now)
	resp, err := http.Get(srv.URL + meshapi.Prefix + "/services?window=5m")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got meshapi.ServicesResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]struct{ rps, sr float64 }{
		"web":       {10, 1},
		"catalog":   {8, 1 - 0.2/8},
		"checkout":  {1, 1},
		"payments":  {1, 0.98},
		"inventory": {3, 1},
	}
	for _, s := range got.Services {
		w, ok := want[s.Service]
		if !ok {
			t.Errorf("unexpected service %q", s.Service)
			continue
		}
		if d := float64(s.RPS) - w.rps; d > 0.01 || d < -0.01 {
			t.Errorf("%s rps %v, want %v", s.Service, s.RPS, w.rps)
		}
		if d := float64(s.SuccessRate) - w.sr; d > 0.001 || d < -0.001 {
			t.Errorf("%s success rate %v, want %v", s.Service, s.SuccessRate, w.sr)
		}
		delete(want, s.Service)
	}
	if len(want) > 0 {
		t.Errorf("missing services %v", want)
	}
}
