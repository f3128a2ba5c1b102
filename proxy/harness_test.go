package proxy

import (
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/meshscope/meshscope/demo/freeport"
)

// testCollector is a real OTLP gRPC trace+metrics endpoint that keeps what
// it receives.
type testCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string

	mu      sync.Mutex
	spans   []*tracepb.Span
	svcOf   map[string]string // span id hex → resource service.name
	metrics []string          // metric names received
}

func startCollector(t *testing.T) *testCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &testCollector{addr: ln.Addr().String(), svcOf: map[string]string{}}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, c)
	colmetricspb.RegisterMetricsServiceServer(s, c.metricsServer())
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	return c
}

func (c *testCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		svc := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.Key == "service.name" {
				svc = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				c.spans = append(c.spans, sp)
				c.svcOf[hex.EncodeToString(sp.SpanId)] = svc
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

type metricsService struct {
	colmetricspb.UnimplementedMetricsServiceServer
	c *testCollector
}

func (c *testCollector) metricsServer() colmetricspb.MetricsServiceServer {
	return metricsService{c: c}
}

func (m metricsService) Export(_ context.Context, req *colmetricspb.ExportMetricsServiceRequest) (*colmetricspb.ExportMetricsServiceResponse, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, mt := range sm.Metrics {
				m.c.metrics = append(m.c.metrics, mt.Name)
			}
		}
	}
	return &colmetricspb.ExportMetricsServiceResponse{}, nil
}

func (c *testCollector) snapshot() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}

func (c *testCollector) hasMetric(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.metrics {
		if n == name {
			return true
		}
	}
	return false
}

func spanAttr(sp *tracepb.Span, key string) string {
	for _, a := range sp.Attributes {
		if a.Key == key {
			if s := a.GetValue().GetStringValue(); s != "" {
				return s
			}
			if i := a.GetValue().GetIntValue(); i != 0 {
				return itoa(int(i))
			}
		}
	}
	return ""
}

func itoa(i int) string { return statusLabel(i) }

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testProxy is a running proxy with its registry.
type testProxy struct {
	*Proxy
	reg *prometheus.Registry
}

// startProxy validates, builds and runs a proxy until the test ends.
func startProxy(t *testing.T, cfg Config) *testProxy {
	t.Helper()
	return startProxyWith(t, cfg, nil)
}

// startProxyWith is startProxy with set applied to the proxy before it
// runs (nil: nothing).
func startProxyWith(t *testing.T, cfg Config, set func(*Proxy)) *testProxy {
	t.Helper()
	if cfg.Admin == "" {
		cfg.Admin = "127.0.0.1:0"
	}
	reg := prometheus.NewRegistry()
	p, err := New(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if set != nil {
		set(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	<-p.Ready()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testProxy{Proxy: p, reg: reg}
}

func baseConfig(service string) Config {
	cfg := DefaultConfig()
	cfg.Service = service
	cfg.Admin = "127.0.0.1:0"
	cfg.DrainTimeout = Duration(5 * time.Second)
	cfg.Telemetry.PushInterval = Duration(100 * time.Millisecond)
	cfg.Telemetry.SpanFlushInterval = Duration(50 * time.Millisecond)
	return cfg
}

// series returns the metric samples of name whose labels include want.
func (tp *testProxy) series(t *testing.T, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := tp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

// waitValue polls value until it equals want (metrics are recorded just
// after the response completes) or 5 s pass, and returns the last value.
func (tp *testProxy) waitValue(t *testing.T, name string, labels map[string]string, want float64) float64 {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := tp.value(t, name, labels)
		if v == want || time.Now().After(deadline) {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// value sums the counter/gauge/histogram-count values of matching series.
func (tp *testProxy) value(t *testing.T, name string, want map[string]string) float64 {
	var v float64
	for _, m := range tp.series(t, name, want) {
		switch {
		case m.Counter != nil:
			v += m.Counter.GetValue()
		case m.Gauge != nil:
			v += m.Gauge.GetValue()
		case m.Histogram != nil:
			v += float64(m.Histogram.GetSampleCount())
		}
	}
	return v
}

func get(t *testing.T, client *http.Client, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// startHTTPApp serves h on a free port with HTTP/1.1 and h2c.
func startHTTPApp(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: protos}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addrs, err := freeport.Addrs(1)
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

// meshPair starts an inbound proxy for service "backend" in front of app
// and an outbound proxy for service "frontend" whose upstream is that
// inbound proxy; it returns the outbound address to send requests to.
func meshPair(t *testing.T, app string, collector string, mod func(*Config)) (out, in *testProxy, outAddr string) {
	t.Helper()
	icfg := baseConfig("backend")
	icfg.Version = "v2"
	icfg.Telemetry.Collector = collector
	icfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app}}
	if mod != nil {
		mod(&icfg)
	}
	in = startProxy(t, icfg)
	ocfg := baseConfig("frontend")
	ocfg.Telemetry.Collector = collector
	ocfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "backend", Addrs: []string{in.ListenAddrs()[0]}}}
	if mod != nil {
		mod(&ocfg)
	}
	out = startProxy(t, ocfg)
	return out, in, out.ListenAddrs()[0]
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
