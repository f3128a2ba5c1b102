package proxy

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestHTTP1ThroughTwoProxies sends a request through an outbound and an
// inbound proxy to a real net/http app and checks what the app saw, the
// golden metrics on both sides, the spans at the collector and the push of
// metrics.
func TestHTTP1ThroughTwoProxies(t *testing.T) {
	col := startCollector(t)
	seen := make(chan http.Header, 1)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-App", "yes")
		fmt.Fprintf(w, "hello %s %s", r.URL.Path, body)
	}))
	out, in, addr := meshPair(t, app, col.addr, func(c *Config) {
		c.RouteTemplates = []string{"/api/items/{id}"}
	})

	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/items/42", strings.NewReader("payload"))
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.Header.Set("X-Custom", "kept")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello /api/items/42 payload" || resp.Header.Get("X-App") != "yes" {
		t.Fatalf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
	h := <-seen
	if h.Get("X-Forwarded-For") != "10.1.2.3" || h.Get("X-Custom") != "kept" {
		t.Errorf("app headers changed: %v", h)
	}
	if h.Get("Traceparent") == "" {
		t.Errorf("app got no traceparent: %v", h)
	}
	for k := range h {
		switch k {
		case "X-Forwarded-For", "X-Custom", "Traceparent", "Tracestate", "Content-Length", "Accept-Encoding", "User-Agent":
		default:
			t.Errorf("app got unexpected header %s: %v", k, h[k])
		}
	}

	common := map[string]string{"route": "/api/items/{id}", "protocol": "http1", "outcome": "success", "status_code": "200",
		"source_service": "frontend", "source_version": "v1", "destination_service": "backend"}
	inLabels := map[string]string{"direction": "inbound", "destination_version": "v2"}
	outLabels := map[string]string{"direction": "outbound", "destination_version": "unknown"}
	for _, c := range []struct {
		p    *testProxy
		want map[string]string
	}{{in, inLabels}, {out, outLabels}} {
		for k, v := range common {
			c.want[k] = v
		}
		if got := c.p.waitValue(t, "mesh_requests_total", c.want, 1); got != 1 {
			t.Errorf("%s mesh_requests_total%v = %v, want 1", c.want["direction"], c.want, got)
		}
		delete(c.want, "status_code")
		if got := c.p.waitValue(t, "mesh_request_duration_seconds", c.want, 1); got != 1 {
			t.Errorf("%s duration count = %v, want 1", c.want["direction"], got)
		}
		if got := c.p.waitValue(t, "mesh_request_bytes_total", c.want, 7); got != 7 {
			t.Errorf("%s request bytes = %v, want 7", c.want["direction"], got)
		}
		if got := c.p.waitValue(t, "mesh_response_bytes_total", c.want, float64(len(body))); got != float64(len(body)) {
			t.Errorf("%s response bytes = %v, want %d", c.want["direction"], got, len(body))
		}
	}
	if got := in.waitValue(t, "meshscope_proxy_info", map[string]string{"service": "backend", "version": "v2", "mode": "observe"}, 1); got != 1 {
		t.Errorf("meshscope_proxy_info = %v", got)
	}

	// Spans: CLIENT from frontend's proxy, SERVER from backend's proxy, one trace, parent → child.
	var client, server *tracepb.Span
	eventually(t, "two spans at the collector", func() bool {
		client, server = nil, nil
		for _, sp := range col.snapshot() {
			switch sp.Kind {
			case tracepb.Span_SPAN_KIND_CLIENT:
				client = sp
			case tracepb.Span_SPAN_KIND_SERVER:
				server = sp
			}
		}
		return client != nil && server != nil
	})
	if hex.EncodeToString(client.TraceId) != hex.EncodeToString(server.TraceId) {
		t.Errorf("trace ids differ")
	}
	if hex.EncodeToString(server.ParentSpanId) != hex.EncodeToString(client.SpanId) {
		t.Errorf("server span's parent is not the client span")
	}
	if !strings.Contains(h.Get("Traceparent"), hex.EncodeToString(server.SpanId)) {
		t.Errorf("app's traceparent %q does not name the server span", h.Get("Traceparent"))
	}
	for sp, want := range map[*tracepb.Span]map[string]string{
		client: {"mesh.direction": "outbound", "mesh.source.service": "frontend", "mesh.destination.service": "backend", "http.request.method": "POST", "http.route": "/api/items/{id}", "http.response.status_code": "200"},
		server: {"mesh.direction": "inbound", "mesh.source.service": "frontend", "mesh.destination.service": "backend", "mesh.destination.version": "v2", "url.path": "/api/items/42"},
	} {
		for k, v := range want {
			if got := spanAttr(sp, k); got != v {
				t.Errorf("span %s attr %s = %q, want %q", sp.Name, k, got, v)
			}
		}
	}
	if client.Name != "POST /api/items/{id}" {
		t.Errorf("span name %q", client.Name)
	}
	col.mu.Lock()
	svc := col.svcOf[hex.EncodeToString(server.SpanId)]
	col.mu.Unlock()
	if svc != "backend" {
		t.Errorf("server span resource service.name = %q", svc)
	}
	eventually(t, "golden metrics pushed over OTLP", func() bool {
		return col.hasMetric("mesh_requests_total") && col.hasMetric("mesh_request_duration_seconds") && col.hasMetric("meshscope_proxy_info")
	})
}

// TestNoTraceHeaders checks that with no_trace_headers the app sees the
// request exactly as sent and the inbound side reports an unknown caller.
func TestNoTraceHeaders(t *testing.T) {
	seen := make(chan http.Header, 1)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Clone()
		h.Set("X-Query", r.URL.RawQuery)
		seen <- h
	}))
	_, in, addr := meshPair(t, app, "", func(c *Config) { c.Telemetry.NoTraceHeaders = true })
	resp, _ := get(t, http.DefaultClient, "http://"+addr+"/x?a=1;b=2&c=%zz", map[string]string{"X-A": "1"})
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	h := <-seen
	if q := h.Get("X-Query"); q != "a=1;b=2&c=%zz" {
		t.Errorf("query changed: %q", q)
	}
	if h.Get("Traceparent") != "" || h.Get("Tracestate") != "" {
		t.Errorf("trace headers added: %v", h)
	}
	if got := in.waitValue(t, "mesh_requests_total", map[string]string{"source_service": "unknown", "direction": "inbound"}, 1); got != 1 {
		t.Errorf("unknown-caller inbound count = %v", got)
	}
}

// TestErrorStatuses checks 502 on connect failure, 504 on timeout and 499
// when the client goes away, in the response, the metrics and the span.
func TestErrorStatuses(t *testing.T) {
	col := startCollector(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	dead := freeAddr(t)
	cfg := baseConfig("caller")
	cfg.Telemetry.Collector = col.addr
	cfg.ResponseTimeout = Duration(200 * time.Millisecond)
	cfg.Upstreams = []Upstream{
		{Listen: "127.0.0.1:0", Service: "dead", Addrs: []string{dead}},
		{Listen: "127.0.0.1:0", Service: "slow", Addrs: []string{slow}},
	}
	p := startProxy(t, cfg)
	deadAddr, slowAddr := p.ListenAddrs()[0], p.ListenAddrs()[1]

	resp, _ := get(t, http.DefaultClient, "http://"+deadAddr+"/", nil)
	if resp.StatusCode != 502 {
		t.Errorf("connect failure: got %d, want 502", resp.StatusCode)
	}
	resp, _ = get(t, http.DefaultClient, "http://"+slowAddr+"/", nil)
	if resp.StatusCode != 504 {
		t.Errorf("timeout: got %d, want 504", resp.StatusCode)
	}
	for svc, code := range map[string]string{"dead": "502", "slow": "504"} {
		if got := p.waitValue(t, "mesh_requests_total", map[string]string{"destination_service": svc, "status_code": code, "outcome": "failure"}, 1); got != 1 {
			t.Errorf("%s: mesh_requests_total{status_code=%s,outcome=failure} = %v", svc, code, got)
		}
	}

	// Client gone: a long response timeout, and the client cancels.
	cfg2 := baseConfig("caller2")
	cfg2.Telemetry.Collector = col.addr
	cfg2.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "slow", Addrs: []string{slow}}}
	p2 := startProxy(t, cfg2)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p2.ListenAddrs()[0]+"/", nil)
	go func() {
		eventually(t, "request in flight", func() bool { return p2.value(t, "meshscope_proxy_inflight_requests", nil) == 1 })
		cancel()
	}()
	if _, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v", err)
	}
	eventually(t, "499 recorded", func() bool {
		return p2.value(t, "mesh_requests_total", map[string]string{"status_code": "499", "outcome": "failure"}) == 1
	})

	eventually(t, "error spans", func() bool {
		n := 0
		for _, sp := range col.snapshot() {
			if sp.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR && sp.Status.GetMessage() != "" {
				switch spanAttr(sp, "http.response.status_code") {
				case "502", "504", "499":
					n++
				}
			}
		}
		return n == 3
	})
	for _, sp := range col.snapshot() {
		msg := sp.Status.GetMessage()
		switch spanAttr(sp, "http.response.status_code") {
		case "502":
			if !strings.Contains(msg, "connect") {
				t.Errorf("502 reason %q", msg)
			}
		case "504":
			if !strings.Contains(msg, "timeout") {
				t.Errorf("504 reason %q", msg)
			}
		case "499":
			if !strings.Contains(msg, "client gone") {
				t.Errorf("499 reason %q", msg)
			}
		}
	}
}

// TestCollectorDown: with the collector unreachable every request still
// succeeds and the dropped-telemetry counters rise.
func TestCollectorDown(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	cfg := baseConfig("lonely")
	cfg.Telemetry.Collector = freeAddr(t) // nothing listens
	cfg.Telemetry.SpanQueueSize = 8
	cfg.Telemetry.SpanBatchSize = 4
	cfg.Telemetry.ExportTimeout = Duration(100 * time.Millisecond)
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	for i := 0; i < 100; i++ {
		resp, body := get(t, http.DefaultClient, "http://"+p.ListenAddrs()[0]+"/", nil)
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	eventually(t, "dropped spans counted", func() bool {
		return p.value(t, "meshscope_proxy_telemetry_dropped_total", map[string]string{"signal": "spans"}) > 0
	})
	eventually(t, "metric export errors counted", func() bool {
		return p.value(t, "meshscope_proxy_telemetry_export_errors_total", map[string]string{"signal": "metrics"}) > 0 &&
			p.value(t, "meshscope_proxy_telemetry_dropped_total", map[string]string{"signal": "metrics"}) > 0
	})
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"outcome": "success"}, 100); got != 100 {
		t.Errorf("recorded %v requests, want 100", got)
	}
}

// TestAdminEndpoints checks /ready, /live, /config and /metrics.
func TestAdminEndpoints(t *testing.T) {
	app := startHTTPApp(t, http.NotFoundHandler())
	cfg := baseConfig("adm")
	cfg.Mode = ModeEnforce
	cfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app}}
	p := startProxy(t, cfg)
	base := "http://" + p.AdminAddr()
	for path, want := range map[string]string{
		"/ready":   "ready",
		"/live":    "ok",
		"/config":  `"mode": "enforce"`,
		"/metrics": `meshscope_proxy_info{mode="enforce",service="adm",version="v1"} 1`,
	} {
		resp, body := get(t, http.DefaultClient, base+path, nil)
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, body lacks %q:\n%s", path, resp.StatusCode, want, body)
		}
	}
	_, body := get(t, http.DefaultClient, base+"/metrics", nil)
	if !strings.Contains(body, "process_resident_memory_bytes") {
		t.Errorf("/metrics lacks process metrics")
	}
}

// TestPortInUse names the flag and address.
func TestPortInUse(t *testing.T) {
	app := startHTTPApp(t, http.NotFoundHandler())
	cfg := baseConfig("busy")
	cfg.Inbound = []Inbound{{Listen: app, App: app}}
	_, err := New(cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "--inbound "+app) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("got %v", err)
	}
	cfg = baseConfig("busy")
	cfg.Admin = app
	cfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app}}
	_, err = New(cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "--admin "+app) {
		t.Fatalf("got %v", err)
	}
}

// TestRoundRobin spreads requests over every upstream address.
func TestRoundRobin(t *testing.T) {
	var addrs []string
	hits := make([]int, 3)
	for i := range hits {
		addrs = append(addrs, startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits[i]++ })))
	}
	cfg := baseConfig("rr")
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "many", Addrs: addrs}}
	p := startProxy(t, cfg)
	for i := 0; i < 9; i++ {
		get(t, http.DefaultClient, "http://"+p.ListenAddrs()[0]+"/", nil)
	}
	for i, n := range hits {
		if n != 3 {
			t.Errorf("address %d got %d requests, want 3", i, n)
		}
	}
}

// TestUpstreamAbortsMidBody: an upstream that dies mid-response is a 502
// failure, not a client-gone 499.
func TestUpstreamAbortsMidBody(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
		_ = brw.Flush()
		c.Close()
	}))
	cfg := baseConfig("abort")
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "flaky", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	resp, err := http.Get("http://" + p.ListenAddrs()[0] + "/")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("client read a complete response")
	}
	if got := p.waitValue(t, "mesh_requests_total", map[string]string{"status_code": "502", "outcome": "failure"}, 1); got != 1 {
		t.Errorf("502 count %v", got)
	}
}
