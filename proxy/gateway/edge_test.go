package gateway

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestGateway(t *testing.T, doc string) *Gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Service: "edge", ConfigFile: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.closeListeners)
	return g
}

func TestRouteEdge(t *testing.T) {
	g := newTestGateway(t, `kind: Gateway
name: edge
service: edge
listeners: [{address: "127.0.0.1:0"}]
routes:
  - name: api
    path_prefix: /api/
    service: web@127.0.0.1:1,127.0.0.1:2
    anonymous: true
    request_headers: {set: {X-Edge: "1"}, remove: [Cookie]}
    cors: {allow_origins: ["https://shop.example"], allow_headers: [Authorization]}
`)
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		code         int    // local answer; 0 = forwarded
		check        string // header that must be set on the answer or request
	}{
		{"GET", "/nowhere", nil, 404, ""},
		{"GET", "/api/../admin", nil, 400, ""},
		{"OPTIONS", "/api/x", map[string]string{"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}, 204, "Access-Control-Allow-Origin"},
		{"OPTIONS", "/api/x", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, 204, ""},
		{"GET", "/api/x", map[string]string{"Cookie": "a=b"}, 0, "X-Edge"},
	} {
		req := httptest.NewRequest(tc.method, "http://shop.example"+tc.path, nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		r, d := g.RouteEdge(req)
		if tc.code == 0 {
			if d.Local != nil || d.Service != "web" || d.Route != "api" || !strings.HasPrefix(d.Addr, "127.0.0.1:") {
				t.Errorf("%s %s: not forwarded: %+v", tc.method, tc.path, d)
			}
			if r.Header.Get(tc.check) == "" || r.Header.Get("Cookie") != "" {
				t.Errorf("%s %s: request headers not rewritten: %v", tc.method, tc.path, r.Header)
			}
			continue
		}
		if d.Local == nil {
			t.Errorf("%s %s: forwarded, want %d", tc.method, tc.path, tc.code)
			continue
		}
		rec := httptest.NewRecorder()
		d.Local.ServeHTTP(rec, r)
		if rec.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, rec.Code, tc.code)
		}
		if got := rec.Header().Get("Access-Control-Allow-Origin"); (tc.check != "") != (got != "") {
			t.Errorf("%s %s %v: Access-Control-Allow-Origin %q", tc.method, tc.path, tc.hdr, got)
		}
	}
	// Round-robin over the static addresses.
	seen := map[string]bool{}
	for range 4 {
		_, d := g.RouteEdge(httptest.NewRequest("GET", "http://x/api/y", nil))
		seen[d.Addr] = true
	}
	if len(seen) != 2 {
		t.Errorf("addresses used: %v, want both", seen)
	}
}

func TestStaticRouteNeedsAddresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.yaml")
	os.WriteFile(path, []byte("kind: Gateway\nname: e\nservice: edge\nlisteners: [{address: \"127.0.0.1:0\"}]\nroutes: [{service: web, anonymous: true}]\n"), 0o600)
	_, err := New(Options{Service: "edge", ConfigFile: path})
	if err == nil || !strings.Contains(err.Error(), "routes[0]: service") || !strings.Contains(err.Error(), "--control-plane") {
		t.Fatalf("static route without addresses: %v", err)
	}
	_, err = New(Options{Service: "other", ConfigFile: path})
	if err == nil || !strings.Contains(err.Error(), `service "edge", but this gateway is --service other`) {
		t.Fatalf("service mismatch: %v", err)
	}
}

func TestStaticServices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.yaml")
	doc := "kind: Gateway\nname: e\nservice: edge\nlisteners: [{address: \"127.0.0.1:0\"}]\nroutes:\n" +
		"- {path_prefix: /a/, service: \"web@127.0.0.1:1\", anonymous: true}\n" +
		"- {path_prefix: /b/, service: \"api@127.0.0.1:2,127.0.0.1:3\", anonymous: true}\n" +
		"- {path_prefix: /c/, service: cart, anonymous: true}\n" +
		"- {path_prefix: /d/, service: \"cart@127.0.0.1:4\", anonymous: true}\n" +
		"- {path_prefix: /e/, service: \"web@127.0.0.1:5\", anonymous: true}\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := New(Options{Service: "edge", ConfigFile: path, Discovery: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.closeListeners)
	// cart is also discovered (its endpoints route /c/), so it is no
	// static-only service; web and api are.
	if got, want := strings.Join(g.StaticServices(), ","), "api,web"; got != want {
		t.Fatalf("StaticServices = %q, want %q", got, want)
	}
	if got, want := strings.Join(g.Services(), ","), "api,cart,web"; got != want {
		t.Fatalf("Services = %q, want %q", got, want)
	}
}
