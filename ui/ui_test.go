package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func builtFS() fstest.MapFS {
	return fstest.MapFS{
		"index.html": {Data: []byte(`<!doctype html><title>Meshscope</title><script src="/app.js?v=1"></script>`)},
		"app.js":     {Data: []byte(`console.log("app")`)},
		"app.css":    {Data: []byte(`body{}`)},
		".keep":      {Data: nil},
	}
}

func TestServeHTTP(t *testing.T) {
	built, err := NewFromFS(builtFS())
	if err != nil {
		t.Fatal(err)
	}
	empty, err := NewFromFS(fstest.MapFS{".keep": {Data: nil}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		srv         *Server
		method      string
		target      string
		wantStatus  int
		wantType    string
		wantBody    string
		wantCaching string
	}{
		{"root serves index", built, "GET", "/", 200, "text/html", "<title>Meshscope</title>", "no-cache"},
		{"client route serves index", built, "GET", "/topology?window=5m", 200, "text/html", "<title>Meshscope</title>", "no-cache"},
		{"nested client route", built, "GET", "/traces/4bf92f3577b34da6a3ce929d0e0e4736", 200, "text/html", "<title>Meshscope</title>", "no-cache"},
		{"asset with version is immutable", built, "GET", "/app.js?v=1", 200, "javascript", `console.log("app")`, "immutable"},
		{"asset without version revalidates", built, "GET", "/app.css", 200, "text/css", "body{}", "no-cache"},
		{"missing asset is 404", built, "GET", "/nope.js", 404, "text/plain", "404", ""},
		{"unknown api path is 404", built, "GET", "/api/mesh/nope", 404, "text/plain", "no API", ""},
		{"unknown jaeger path is 404", built, "GET", "/jaeger/api/nope", 404, "text/plain", "no API", ""},
		{"dotfile hidden", built, "GET", "/.keep", 404, "text/plain", "404", ""},
		{"post rejected", built, "POST", "/", 405, "text/plain", "method not allowed", ""},
		{"not built page", empty, "GET", "/", 200, "text/html", "make build", "no-store"},
		{"not built page on client route", empty, "GET", "/traces", 200, "text/html", "make build", "no-store"},
		{"head", built, "HEAD", "/", 200, "text/html", "", "no-cache"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.srv.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.target, nil))
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tc.wantStatus, rec.Body.String())
			}
			if ct := rec.Header().Get("Content-Type"); !strings.Contains(ct, tc.wantType) {
				t.Errorf("Content-Type = %q, want it to contain %q", ct, tc.wantType)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body = %q, want it to contain %q", rec.Body.String(), tc.wantBody)
			}
			if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, tc.wantCaching) {
				t.Errorf("Cache-Control = %q, want it to contain %q", cc, tc.wantCaching)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); tc.wantStatus != 405 && csp != ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
		})
	}
}

func TestETagRevalidation(t *testing.T) {
	s, err := NewFromFS(builtFS())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/app.js", nil))
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("status = %d, want 304", rec.Code)
	}
}

func TestRegisterRoutesLeavesAPIPatternsFirst(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/mesh/graph", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"nodes":[]}`)) })
	RegisterRoutes(mux)
	for target, want := range map[string]string{
		"/api/mesh/graph": `{"nodes":[]}`,
		"/services":       "", // SPA or not-built page: both are HTML
	} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("%s: status %d body %q", target, rec.Code, rec.Body.String())
		}
		if want == "" && !strings.Contains(rec.Header().Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q, want HTML", target, rec.Header().Get("Content-Type"))
		}
	}
}
