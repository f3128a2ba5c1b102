package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type edgeRouterFunc func(r *http.Request) (*http.Request, EdgeDecision)

func (f edgeRouterFunc) RouteEdge(r *http.Request) (*http.Request, EdgeDecision) { return f(r) }

// TestEdge checks that gateway requests, forwarded or answered by the
// router, are recorded by the sidecar's code with direction="ingress".
func TestEdge(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 || r.Header.Get("Traceparent") == "" || r.Host != "shop.example" || r.Header.Get("X-Forwarded-For") != "192.0.2.1" {
			http.Error(w, "bad forwarded request", http.StatusTeapot)
			return
		}
		io.WriteString(w, "up")
	}))
	defer up.Close()
	addr := strings.TrimPrefix(up.URL, "http://")
	cfg := DefaultConfig()
	cfg.Service, cfg.Admin = "edge", ""
	reg := prometheus.NewRegistry()
	e, err := NewEdge(cfg, reg, nil, edgeRouterFunc(func(r *http.Request) (*http.Request, EdgeDecision) {
		if r.URL.Path == "/deny" {
			return r, EdgeDecision{Route: "deny", Service: "web", Local: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
			})}
		}
		return r, EdgeDecision{Route: "api", Service: "web", Addr: addr}
	}))
	if err != nil {
		t.Fatal(err)
	}
	h := e.Handler()
	for path, want := range map[string]int{"/api": 200, "/deny": 401} {
		req := httptest.NewRequest("GET", "http://shop.example"+path, nil)
		req.Host = "shop.example"
		req.Header.Set("X-Forwarded-For", "10.9.9.9") // spoofed by the client: replaced
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("%s: %d %s, want %d", path, rec.Code, rec.Body, want)
		}
	}
	for route, code := range map[string]string{"api": "200", "deny": "401"} {
		c := e.metrics.requests.WithLabelValues("ingress", "edge", "v1", "web", "unknown", "success", "http1", route, "plaintext", code, "")
		if v := testutil.ToFloat64(c); v != 1 {
			t.Errorf("mesh_requests_total{route=%q, status_code=%q} = %v, want 1", route, code, v)
		}
	}
	cfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: addr}}
	if _, err := NewEdge(cfg, prometheus.NewRegistry(), nil, nil); err == nil {
		t.Fatal("NewEdge accepted sidecar listeners")
	}
}
