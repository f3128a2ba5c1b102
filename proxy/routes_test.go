package proxy

import (
	"fmt"
	"net/http"
	"testing"
)

func TestRouteTemplates(t *testing.T) {
	rt, err := newRouteTable([]string{"/", "/api/items/{id}", "/api/items/{id}/reviews", "/static/{path...}", "/users/{u}/", "/health"})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"/":                       "/",
		"/api/items/42":           "/api/items/{id}",
		"/api/items/42/reviews":   "/api/items/{id}/reviews",
		"/api/items/42/other":     "unmatched",
		"/api/items/":             "unmatched",
		"/api/items":              "unmatched",
		"/static/":                "/static/{path...}",
		"/static/css/a.css":       "/static/{path...}",
		"/static":                 "unmatched",
		"/users/bob/":             "/users/{u}/",
		"/users/bob":              "unmatched",
		"/health":                 "/health",
		"/health/":                "unmatched",
		"/healthz":                "unmatched",
		"":                        "unmatched",
		"relative":                "unmatched",
		"/api/items/42?x=1":       "/api/items/{id}",
		"//api/items/42":          "unmatched",
		"/api/items/%2F/reviews/": "unmatched",
	}
	for path, want := range tests {
		if got := rt.route(path); got != want {
			t.Errorf("route(%q) = %q, want %q", path, got, want)
		}
	}
	for _, bad := range []string{"api", "/a/{}", "/a/{x...}/b", "/a/x{y}", "/a//b"} {
		if _, err := parseRouteTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
}

func TestRouteMatchDoesNotAllocate(t *testing.T) {
	rt, _ := newRouteTable([]string{"/api/items/{id}", "/static/{p...}"})
	if n := testing.AllocsPerRun(100, func() { _ = rt.route("/api/items/123456") }); n != 0 {
		t.Errorf("route allocates %v times", n)
	}
}

// TestRouteCardinality: 10,000 distinct paths through the proxy create no
// series beyond the declared routes and "unmatched".
func TestRouteCardinality(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	cfg := baseConfig("web")
	cfg.RouteTemplates = []string{"/api/items/{id}"}
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	base := "http://" + p.ListenAddrs()[0]
	client := &http.Client{}
	for i := 0; i < 10000; i++ {
		path := fmt.Sprintf("/api/items/%d", i)
		if i%2 == 1 {
			path = fmt.Sprintf("/raw/%d/x", i)
		}
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if got := p.waitValue(t, "mesh_requests_total", nil, 10000); got != 10000 {
		t.Fatalf("recorded %v requests", got)
	}
	for _, name := range []string{"mesh_requests_total", "mesh_request_duration_seconds", "mesh_request_bytes_total", "mesh_response_bytes_total"} {
		if n := len(p.series(t, name, nil)); n > 2 {
			t.Errorf("%s has %d series, want at most 2 (one route + unmatched)", name, n)
		}
	}
	routes := map[string]bool{}
	for _, m := range p.series(t, "mesh_requests_total", nil) {
		for _, l := range m.Label {
			if l.GetName() == "route" {
				routes[l.GetValue()] = true
			}
		}
	}
	if len(routes) != 2 || !routes["/api/items/{id}"] || !routes["unmatched"] {
		t.Errorf("route values %v", routes)
	}
}

// TestSpanNamesFollowRoutes checks the OpenTelemetry HTTP span names on
// both hops: "{method} {route}" with the matched template, the method
// alone when no template matches, and http.route only when one does.
func TestSpanNamesFollowRoutes(t *testing.T) {
	col := startCollector(t)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	_, _, addr := meshPair(t, app, col.addr, func(c *Config) {
		c.RouteTemplates = []string{"/", "/api/items/{id}", "/static/{path...}"}
	})
	tests := []struct {
		method, path, name, route string
	}{
		{"GET", "/api/items/7", "GET /api/items/{id}", "/api/items/{id}"},
		{"POST", "/static/css/site.css", "POST /static/{path...}", "/static/{path...}"},
		{"GET", "/", "GET /", "/"},
		{"DELETE", "/nowhere/1", "DELETE", ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	eventually(t, "both hops' spans of every request", func() bool { return len(col.snapshot()) >= 2*len(tests) })
	for _, tt := range tests {
		n := 0
		for _, sp := range col.snapshot() {
			if spanAttr(sp, "url.path") != tt.path {
				continue
			}
			n++
			if sp.GetName() != tt.name || spanAttr(sp, "http.route") != tt.route {
				t.Errorf("%s %s: span %q with http.route %q, want %q and %q", tt.method, tt.path, sp.GetName(), spanAttr(sp, "http.route"), tt.name, tt.route)
			}
		}
		if n != 2 {
			t.Errorf("%s %s: %d spans, want 2 (client and server)", tt.method, tt.path, n)
		}
	}
}
