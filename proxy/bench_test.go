package proxy

import (
	"bufio"
	"context"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// BenchmarkOutboundHTTP1 measures one request through an outbound proxy to
// a real app (client and app costs included; compare with -bench Direct).
func BenchmarkOutboundHTTP1(b *testing.B) {
	benchHTTP(b, true, false)
}

// BenchmarkOutboundHTTP1NoTelemetry is the same with tracing and metrics off.
func BenchmarkOutboundHTTP1NoTelemetry(b *testing.B) {
	benchHTTP(b, true, true)
}

// BenchmarkDirectHTTP1 is the baseline without a proxy.
func BenchmarkDirectHTTP1(b *testing.B) {
	benchHTTP(b, false, false)
}

// BenchmarkOutboundHTTP1Parallel drives 16 concurrent clients through a
// proxy exporting to a real OTLP gRPC collector.
func BenchmarkOutboundHTTP1Parallel(b *testing.B) {
	t := &testing.T{}
	payload := strings.Repeat("x", 1024)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, payload) }))
	col := startCollector(t)
	cfg := baseConfig("bench")
	cfg.Telemetry.Collector = col.addr
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p, err := New(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := contextWithCancel()
	defer cancel()
	go func() { _ = p.Run(ctx) }()
	<-p.Ready()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	url := "http://" + p.ListenAddrs()[0] + "/api/items/7"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkOutboundH2C measures one prior-knowledge HTTP/2 GET through an
// outbound proxy to an h2c app (client and app costs included).
func BenchmarkOutboundH2C(b *testing.B) {
	benchHTTPClient(b, true, false, h2cClient())
}

func benchHTTP(b *testing.B, viaProxy, noTelemetry bool) {
	benchHTTPClient(b, viaProxy, noTelemetry, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}})
}

func benchHTTPClient(b *testing.B, viaProxy, noTelemetry bool, client *http.Client) {
	t := &testing.T{}
	payload := strings.Repeat("x", 1024)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, payload) }))
	addr := app
	if viaProxy {
		cfg := baseConfig("bench")
		cfg.RouteTemplates = []string{"/api/items/{id}"}
		cfg.Telemetry.DisableTracing = noTelemetry
		cfg.Telemetry.DisableMetrics = noTelemetry
		cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
		p, err := New(cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := contextWithCancel()
		defer cancel()
		go func() { _ = p.Run(ctx) }()
		<-p.Ready()
		addr = p.ListenAddrs()[0]
	}
	url := "http://" + addr + "/api/items/7"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkHopSpan measures recording one hop span into the export queue
// (span context, sampling, attributes, queueing; export excluded).
func BenchmarkHopSpan(b *testing.B) {
	q := &boundedSpanProcessor{queue: make(chan sdktrace.ReadOnlySpan, 1)}
	sampler := newHopSampler(1)
	parent := trace.SpanContext{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sc := newHopSpanContext(parent, sampler)
		s := newHopSpan()
		s.sc, s.parent, s.kind, s.start = sc, parent, trace.SpanKindClient, time.Now()
		setBenchHopAttrs(s)
		s.end = time.Now()
		q.enqueue(s)
		(<-q.queue).(*hopSpan).free()
	}
}

// setBenchHopAttrs names s and sets the attributes of an outbound HTTP/1
// hop span, as ServeHTTP and finish set them.
func setBenchHopAttrs(s *hopSpan) {
	s.name = "GET /api/items/{id}"
	s.setStr(attrMethod, "GET")
	s.setStr(attrPath, "/api/items/7")
	s.setStr(attrScheme, "http")
	s.setStr(attrServerAddress, "app")
	s.setStr(attrProtoVersion, "1.1")
	s.setStr(attrSrcService, "web")
	s.setStr(attrSrcVersion, "v1")
	s.setStr(attrDstService, "app")
	s.setStr(attrDstVersion, "unknown")
	s.setStr(attrDirection, "outbound")
	s.setStr(attrProtocol, "http1")
	s.setStr(attrRoute, "/api/items/{id}")
	s.add(attribute.Int("http.response.status_code", 200))
}

// BenchmarkSDKSpan is the same span through the OpenTelemetry SDK with a
// span processor, for comparison.
func BenchmarkSDKSpan(b *testing.B) {
	q := &boundedSpanProcessor{queue: make(chan sdktrace.ReadOnlySpan, 1)}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q))
	tr := tp.Tracer("meshscope-proxy")
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_, span := tr.Start(context.Background(), "GET /api/items/{id}", opts...)
		var buf [16]attribute.KeyValue
		attrs := append(buf[:0],
			attribute.String("http.request.method", "GET"),
			attribute.String("url.path", "/api/items/7"),
			attribute.String("url.scheme", "http"),
			attribute.String("server.address", "app"),
			attribute.String("network.protocol.version", "1.1"),
			attribute.String("mesh.source.service", "web"),
			attribute.String("mesh.source.version", "v1"),
			attribute.String("mesh.destination.service", "app"),
			attribute.String("mesh.destination.version", "unknown"),
			attribute.String("mesh.direction", "outbound"),
			attribute.String("mesh.protocol", "http1"),
			attribute.String("http.route", "/api/items/{id}"),
		)
		span.SetAttributes(attrs...)
		span.SetAttributes(attribute.Int("http.response.status_code", 200))
		span.End()
		<-q.queue
	}
}

// BenchmarkRequestHead compares the lean upstream request writer with
// (*http.Request).Write for a typical proxied GET.
func BenchmarkRequestHead(b *testing.B) {
	r, err := http.NewRequest("GET", "http://127.0.0.1:8080/api/items/7?x=1", nil)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Accept", "*/*")
	r.Header.Set("User-Agent", "bench")
	r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	r.Header.Set("Tracestate", "meshscope=bench/v1")
	bw := bufio.NewWriterSize(io.Discard, 4096)
	b.Run("lean", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !writeRequestHead(bw, r) {
				b.Fatal("declined")
			}
			_ = bw.Flush()
		}
	})
	b.Run("inOrder", func(b *testing.B) { // an owned connection's: the client's field order
		names := fieldNames("/api/items/7?x=1\nHost\nUser-Agent\nAccept\n")
		b.ReportAllocs()
		for b.Loop() {
			if !writeRequestHeadInOrder(bw, r, names) {
				b.Fatal("declined")
			}
			_ = bw.Flush()
		}
	})
	b.Run("RequestWrite", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = r.Write(bw)
			_ = bw.Flush()
		}
	})
}

// discardExporter drops every span.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkSpanQueue measures handing finished spans to the running export
// loop (run with -cpu 1, as the proxy runs on one core by default).
func BenchmarkSpanQueue(b *testing.B) {
	cfg := baseConfig("bench")
	self, err := newSelfMetrics(prometheus.NewRegistry(), &cfg)
	if err != nil {
		b.Fatal(err)
	}
	p := newBoundedSpanProcessor(discardExporter{}, 2048, 256, time.Second, time.Second, self, nil)
	defer p.Shutdown(context.Background())
	b.ReportAllocs()
	for b.Loop() {
		p.enqueue(newHopSpan())
		runtime.Gosched() // a request yields between spans, letting the loop run
	}
}

// benchHopSpans returns n finished hop spans shaped like the proxy's
// outbound HTTP/1 spans (a remote sampled parent, 13 attributes).
func benchHopSpans(n int) []sdktrace.ReadOnlySpan {
	sampler := newHopSampler(1)
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: trace.FlagsSampled, Remote: true,
	})
	spans := make([]sdktrace.ReadOnlySpan, n)
	start := time.Unix(1_700_000_000, 0)
	for i := range spans {
		s := newHopSpan()
		s.sc, s.parent, s.kind, s.start = newHopSpanContext(parent, sampler), parent, trace.SpanKindClient, start
		setBenchHopAttrs(s)
		s.setStr(attrUserAgent, "Go-http-client/1.1")
		s.end = start.Add(time.Duration(300+i) * time.Microsecond)
		spans[i] = s
	}
	return spans
}

// BenchmarkEncodeTraceRequest measures encoding one full export batch (256
// hop spans) as the span exporter does.
func BenchmarkEncodeTraceRequest(b *testing.B) {
	spans := benchHopSpans(256)
	res := []attribute.KeyValue{
		attribute.String("service.name", "web"),
		attribute.String("service.version", "v1"),
		attribute.String("service.instance.id", "0123456789abcdef"),
		attribute.String("meshscope.proxy.mode", "sidecar"),
		attribute.String("telemetry.sdk.name", "meshscope-proxy"),
		attribute.String("telemetry.sdk.language", "go"),
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = encodeTraceRequest(buf, res, spans)
	}
	b.SetBytes(int64(len(buf)))
}
