package meshapi_test

import (
	"net/http/httptest"
	"testing"

	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/meshapi"
)

// FuzzParseTraceSearch: arbitrary query strings never panic the native
// search decoder, and accepted ones are consistent.
func FuzzParseTraceSearch(f *testing.F) {
	for _, s := range []string{
		"service=web&status=error&limit=5",
		"attr=http.route=/a&attr=k=v=w&min_duration=250ms&max_duration=1s",
		"start=2026-01-01T11:00:00Z&end=1767268800",
		"lookback=24h&status=ok",
		"attr=novalue",
		"limit=-3",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest("GET", "/api/mesh/traces", nil)
		r.URL.RawQuery = raw
		if err := r.ParseForm(); err != nil {
			return
		}
		q, err := meshapi.ParseTraceSearch(r, fixture.Now)
		if err != nil {
			return
		}
		if q.Limit <= 0 || q.End.Before(q.Start) || q.MinDuration < 0 || (q.MaxDuration > 0 && q.MaxDuration < q.MinDuration) {
			t.Errorf("inconsistent query from %q: %+v", raw, q)
		}
	})
}
