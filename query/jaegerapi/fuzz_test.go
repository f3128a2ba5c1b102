package jaegerapi_test

import (
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/jaegerapi"
)

// FuzzParseSearch feeds arbitrary query strings to the search parameter
// decoder: it must return a query or an error, never panic, and a returned
// query must be consistent.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"service=web&limit=20",
		`service=web&tags={"error":"true","http.status_code":"500"}&minDuration=1.2ms&maxDuration=2s`,
		"service=a&start=1767268740000000&end=1767268800000000&lookback=custom",
		"traceID=abc&traceID=0123456789abcdef0123456789abcdef",
		"service=a&tag=k:v&tag=bad",
		"service=a&minDuration=-1s",
		"service=%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/jaeger/api/traces", nil)
		r.URL.RawQuery = raw
		if err := r.ParseForm(); err != nil {
			return
		}
		q, _, err := jaegerapi.ParseSearch(r, fixture.Now)
		if err != nil {
			return
		}
		if q.Limit <= 0 || q.End.Before(q.Start) || q.MinDuration < 0 || (q.MaxDuration > 0 && q.MaxDuration < q.MinDuration) {
			t.Errorf("inconsistent query from %q: %+v", raw, q)
		}
	})
}

// FuzzParseV3Search: api_v3's search decoder returns a consistent query or
// an error, never panics.
func FuzzParseV3Search(f *testing.F) {
	for _, s := range []string{
		"query.service_name=web&query.start_time_min=2026-01-01T11:00:00Z&query.start_time_max=2026-01-01T12:00:00Z",
		`query.serviceName=a&query.attributes={"error":"true","k":"v"}&query.startTimeMin=2026-01-01T11:00:00.5Z&query.startTimeMax=2026-01-01T12:00:00Z&query.searchDepth=5`,
		"query.start_time_min=x&query.start_time_max=y",
		"query.num_traces=-1&query.duration_min=1s&query.duration_max=1ms",
		"query.raw_traces=maybe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, _, err := jaegerapi.ParseV3Search(v)
		if err != nil {
			return
		}
		if q.Limit <= 0 || !q.Start.Before(q.End) || q.MinDuration < 0 || (q.MaxDuration > 0 && q.MaxDuration < q.MinDuration) {
			t.Errorf("inconsistent query from %q: %+v", raw, q)
		}
	})
}
