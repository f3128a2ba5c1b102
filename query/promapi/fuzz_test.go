package promapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/meshscope/meshscope/query/promapi"
)

// FuzzParseTimeAndDuration: the API's time and duration decoders never
// panic, and accept what Prometheus accepts.
func FuzzParseTimeAndDuration(f *testing.F) {
	for _, s := range []string{"1767268800", "1767268800.123", "2026-01-01T12:00:00Z", "5m", "1h30m", "0.5", "NaN", "1e300", "-Inf", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = promapi.ParseTime(s)
		if d, err := promapi.ParseDuration(s); err == nil && s == "" {
			t.Errorf("empty duration accepted as %v", d)
		}
	})
}

// FuzzParseQueryEndpoint: /api/v1/parse_query admits, parses and renders
// any expression as 200 JSON or refuses it with 400, never another answer.
func FuzzParseQueryEndpoint(f *testing.F) {
	for _, s := range []string{
		`sum by (a) (rate(x{b="c"}[5m] offset 1m @ 100))`,
		`-topk(3, max_over_time(up[1h:5m] @ end())) > bool 0.5 or on (a) group_left (b) vector(1)`,
		`rate(x[5m+1m]) offset -(2m)`,
		`"str"`, `((((`, `up+up+up+up+up+up+up+up`, "{__name__=~\".+\"}", "\x00",
	} {
		f.Add(s)
	}
	api := promapi.New(promapi.Options{MaxQueryLength: 4096, MaxQueryNodes: 64}, nil, nil)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	f.Fuzz(func(t *testing.T, expr string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/api/v1/parse_query", strings.NewReader(url.Values{"query": {expr}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("%q: status %d: %s", expr, rec.Code, rec.Body)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%q: body is not JSON: %s", expr, rec.Body)
		}
	})
}
