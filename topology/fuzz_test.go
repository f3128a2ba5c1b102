package topology

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// FuzzGraphParams: any query string gives 200 or a 400 naming a parameter,
// never a crash.
func FuzzGraphParams(f *testing.F) {
	for _, s := range []string{"", "window=1m", "window=5m&view=version", "at=2025-06-15T12:00:00Z", "at=1750000000.5",
		"window=-1m", "window=1y", "view=%00", "at=NaN", "at=1e400", "window=9999999999999999999h"} {
		f.Add(s)
	}
	top, _, _ := newTestTopology(f, Config{})
	mux := http.NewServeMux()
	top.RegisterRoutes(mux)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "/api/mesh/graph?"+q.Encode(), nil)
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest {
			t.Fatalf("%q: status %d: %s", raw, rec.Code, rec.Body)
		}
	})
}
