package jaegerapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/internal/golden"
	"github.com/meshscope/meshscope/query/jaegerapi"
	"github.com/meshscope/meshscope/query/red"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	db := fixture.TSDB(t)
	api := jaegerapi.New(jaegerapi.Options{MaxLimit: 1500, Timeout: time.Minute, Now: func() time.Time { return fixture.Now }},
		fixture.SampleTraces(), red.Dependencies{RED: fixture.RED(t, db)})
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestEndpointsGolden(t *testing.T) {
	srv := newServer(t)
	us := func(d time.Duration) string { return fmt.Sprint(fixture.Now.Add(d).UnixMicro()) }
	t1 := fixture.TraceID(1).String()
	tests := []struct {
		name string
		path string
		q    url.Values
		code int
	}{
		{"services", "/services", nil, 200},
		{"service_operations", "/services/catalog/operations", nil, 200},
		{"service_operations_unknown", "/services/nope/operations", nil, 200},
		{"operations", "/operations", url.Values{"service": {"web"}}, 200},
		{"operations_kind", "/operations", url.Values{"service": {"catalog"}, "spanKind": {"server"}}, 200},
		{"operations_no_service", "/operations", nil, 400},
		{"operations_bad_kind", "/operations", url.Values{"service": {"web"}, "spanKind": {"sideways"}}, 400},
		{"search_service", "/traces", url.Values{"service": {"web"}, "start": {us(-time.Hour)}, "end": {us(0)}, "limit": {"20"}}, 200},
		{"search_operation_tags", "/traces", url.Values{"service": {"checkout"}, "operation": {"POST /api/checkout"}, "tags": {`{"http.response.status_code":"502"}`}}, 200},
		{"search_min_duration", "/traces", url.Values{"service": {"catalog"}, "minDuration": {"100ms"}, "maxDuration": {"1.5s"}}, 200},
		{"search_error_tag", "/traces", url.Values{"service": {"payments"}, "tags": {`{"error":"true"}`}}, 200},
		{"search_tag_param", "/traces", url.Values{"service": {"catalog"}, "tag": {"db.system:sqlite"}}, 200},
		{"search_limit", "/traces", url.Values{"service": {"web"}, "limit": {"1"}}, 200},
		{"search_outside_window", "/traces", url.Values{"service": {"web"}, "start": {us(-3 * time.Hour)}, "end": {us(-2 * time.Hour)}}, 200},
		{"search_trace_ids", "/traces", url.Values{"traceID": {t1, "ffff"}}, 200},
		{"search_no_service", "/traces", nil, 400},
		{"search_bad_duration", "/traces", url.Values{"service": {"web"}, "minDuration": {"fast"}}, 400},
		{"search_bad_tags", "/traces", url.Values{"service": {"web"}, "tags": {`{"a":`}}, 400},
		{"search_bad_start", "/traces", url.Values{"service": {"web"}, "start": {"yesterday"}}, 400},
		{"search_max_below_min", "/traces", url.Values{"service": {"web"}, "minDuration": {"1s"}, "maxDuration": {"1ms"}}, 400},
		{"trace", "/traces/" + t1, nil, 200},
		{"trace_short_id", "/traces/abc0003", nil, 200},
		{"trace_not_found", "/traces/0123456789abcdef0123456789abcdef", nil, 404},
		{"trace_malformed", "/traces/not-hex", nil, 400},
		{"dependencies", "/dependencies", url.Values{"endTs": {fmt.Sprint(fixture.Now.UnixMilli())}, "lookback": {"300000"}}, 200},
		{"dependencies_default", "/dependencies", nil, 200},
		{"dependencies_bad_end", "/dependencies", url.Values{"endTs": {"now"}}, 400},
		{"dependencies_bad_lookback", "/dependencies", url.Values{"lookback": {"-5"}}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := srv.URL + jaegerapi.Prefix + tc.path
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
			var env jaegerapi.Response
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("not JSON: %v: %s", err, body)
			}
			if tc.name != "search_trace_ids" && (tc.code != 200) != (len(env.Errors) > 0) {
				t.Errorf("errors %v for status %d", env.Errors, tc.code)
			}
			golden.Assert(t, "jaeger_"+tc.name, append([]byte(fmt.Sprintf("HTTP %d\n", resp.StatusCode)), golden.JSON(body)...))
		})
	}
}

func TestNoStore(t *testing.T) {
	api := jaegerapi.New(jaegerapi.Options{}, nil, nil)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	for _, p := range []string{"/services", "/traces?service=a", "/traces/abc"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", jaegerapi.Prefix+p, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", p, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", jaegerapi.Prefix+"/dependencies", nil))
	if rec.Code != 200 || rec.Body.String() != `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}` {
		t.Errorf("dependencies without a metrics source: %d %s", rec.Code, rec.Body)
	}
}
