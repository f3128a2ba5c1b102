package collector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelmetric "go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/batch"
	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
)

type env struct {
	c       *Collector
	traces  *embedded.Store
	metrics *metricstore.Store
	cancel  context.CancelFunc
	done    chan error
}

func (e *env) stop(t *testing.T) {
	t.Helper()
	e.cancel()
	if err := <-e.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func startEnv(t *testing.T, cfg Config, spanSink consumer.Spans) *env {
	t.Helper()
	ts, err := embedded.New(embedded.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := metricstore.New(metricstore.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if spanSink == nil {
		spanSink = ts
	}
	if cfg.OTLPGRPC == "" {
		cfg.OTLPGRPC = "127.0.0.1:0"
	}
	if cfg.OTLPHTTP == "" {
		cfg.OTLPHTTP = "127.0.0.1:0"
	}
	c, err := New(cfg, Sinks{Spans: spanSink, Metrics: ms}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{c: c, traces: ts, metrics: ms, cancel: cancel, done: make(chan error, 1)}
	go func() { e.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-e.done
		ts.Close()
		ms.Close()
	})
	return e
}

func TestSDKExportersRoundTrip(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		exp  func() (sdktrace.SpanExporter, error)
	}{
		{"grpc", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(e.c.GRPCAddr()), otlptracegrpc.WithInsecure())
		}},
		{"grpc-gzip", func() (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(e.c.GRPCAddr()), otlptracegrpc.WithInsecure(), otlptracegrpc.WithCompressor("gzip"))
		}},
		{"http", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(e.c.HTTPAddr()), otlptracehttp.WithInsecure())
		}},
		{"http-gzip", func() (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(e.c.HTTPAddr()), otlptracehttp.WithInsecure(),
				otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp, err := tc.exp()
			if err != nil {
				t.Fatal(err)
			}
			res := resource.NewSchemaless(attribute.String("service.name", "sdk-"+tc.name), attribute.String("host.name", "h1"))
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
			tr := tp.Tracer("test-scope")
			pctx, parent := tr.Start(ctx, "parent", trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.Int("http.status_code", 503), attribute.Bool("retry", true), attribute.StringSlice("tags", []string{"a", "b"})))
			_, child := tr.Start(pctx, "child", trace.WithSpanKind(trace.SpanKindClient))
			child.AddEvent("retrying", trace.WithAttributes(attribute.Float64("backoff", 0.5)))
			child.End()
			parent.End()
			if err := tp.Shutdown(ctx); err != nil {
				t.Fatalf("exporter: %v", err)
			}
			var id spans.TraceID = spans.TraceID(parent.SpanContext().TraceID())
			got, err := e.traces.Trace(ctx, id)
			if err != nil {
				t.Fatalf("Trace(%s): %v", id, err)
			}
			if len(got) != 2 {
				t.Fatalf("got %d spans, want 2", len(got))
			}
			byName := map[string]spans.Span{}
			for _, s := range got {
				byName[s.Name] = s
			}
			p, c := byName["parent"], byName["child"]
			if p.Service != "sdk-"+tc.name || p.Kind != spans.KindServer || c.Kind != spans.KindClient {
				t.Fatalf("parent %+v", p)
			}
			if c.ParentSpanID != p.SpanID {
				t.Fatalf("child parent = %s, want %s", c.ParentSpanID, p.SpanID)
			}
			if a, _ := p.Attr("http.status_code"); a.Type != spans.TypeInt || a.Int != 503 {
				t.Fatalf("http.status_code = %+v", a)
			}
			if a, _ := p.Attr("tags"); a.Str != `["a","b"]` {
				t.Fatalf("tags = %+v", a)
			}
			if a, _ := p.Attr("host.name"); a.Str != "h1" {
				t.Fatalf("resource host.name = %+v", a)
			}
			if p.Scope != "test-scope" || len(c.Events) != 1 || c.Events[0].Attrs[0].Float != 0.5 {
				t.Fatalf("scope/events wrong: %q %+v", p.Scope, c.Events)
			}
		})
	}
}

func query(t *testing.T, ms *metricstore.Store, expr string, at time.Time) promql.Vector {
	t.Helper()
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q, err := eng.NewInstantQuery(context.Background(), ms, nil, expr, at)
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The golden metrics as the proxy records them with the OTel SDK arrive
// under exactly the names of docs/metrics.md.
func TestGoldenMetricsOverOTLPgRPC(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	ctx := context.Background()
	exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(e.c.GRPCAddr()), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	res := resource.NewSchemaless(attribute.String("service.name", "catalog"), attribute.String("service.instance.id", "catalog-1"), attribute.String("host.name", "node-7"))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithResource(res),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "mesh_request_duration_seconds"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: []float64{0.01, 0.1, 1}}})),
		sdkmetric.WithView(sdkmetric.NewView(sdkmetric.Instrument{Name: "payload_size"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20}})))
	m := mp.Meter("meshscope-proxy")
	reqs, _ := m.Int64Counter("mesh_requests_total")
	dur, _ := m.Float64Histogram("mesh_request_duration_seconds", otelmetric.WithUnit("s"))
	open, _ := m.Int64UpDownCounter("mesh_tcp_open_connections")
	size, _ := m.Float64Histogram("payload_size", otelmetric.WithUnit("By"))
	size.Record(ctx, 100)
	size.Record(ctx, 2000)
	labels := []attribute.KeyValue{
		attribute.String("direction", "inbound"), attribute.String("source_service", "web"),
		attribute.String("destination_service", "catalog"), attribute.String("destination_version", "v1"),
		attribute.String("outcome", "success"),
	}
	reqs.Add(ctx, 7, otelmetric.WithAttributes(append(labels, attribute.String("status_code", "200"))...))
	dur.Record(ctx, 0.05, otelmetric.WithAttributes(labels...))
	dur.Record(ctx, 0.5, otelmetric.WithAttributes(labels...))
	open.Add(ctx, 3, otelmetric.WithAttributes(labels[:4]...))
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if err := exp.Export(ctx, &rm); err != nil {
		t.Fatalf("export: %v", err)
	}
	exp.Shutdown(ctx)
	mp.Shutdown(ctx)

	now := time.Now()
	for _, c := range []struct {
		expr string
		want float64
	}{
		{`mesh_requests_total{job="catalog",instance="catalog-1",direction="inbound",source_service="web",destination_service="catalog",destination_version="v1",outcome="success",status_code="200"}`, 7},
		{`mesh_request_duration_seconds_bucket{job="catalog",le="0.1",source_service="web"}`, 1},
		{`mesh_request_duration_seconds_bucket{job="catalog",le="+Inf"}`, 2},
		{`mesh_request_duration_seconds_count{job="catalog"}`, 2},
		{`mesh_request_duration_seconds_sum{job="catalog"}`, 0.55},
		{`mesh_tcp_open_connections{job="catalog"}`, 3},
		{`histogram_count(payload_size_bytes{job="catalog"})`, 2}, // exponential → native histogram
		{`target_info{job="catalog",instance="catalog-1",host_name="node-7"}`, 1},
	} {
		v := query(t, e.metrics, c.expr, now)
		if len(v) != 1 || v[0].F != c.want {
			t.Errorf("%s = %v, want one sample %v", c.expr, v, c.want)
		}
	}
}

func otlpRequest(traceHex string, spanHexes ...string) *coltracepb.ExportTraceServiceRequest {
	tid, _ := hex.DecodeString(traceHex)
	var sps []*tracepb.Span
	for _, s := range spanHexes {
		sid, _ := hex.DecodeString(s)
		now := uint64(time.Now().UnixNano())
		sps = append(sps, &tracepb.Span{TraceId: tid, SpanId: sid, Name: "op", StartTimeUnixNano: now, EndTimeUnixNano: now + 1000,
			Kind: tracepb.Span_SPAN_KIND_SERVER})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "svc"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: sps}},
	}}}
}

func post(t *testing.T, url, ct, ce string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if ce != "" {
		req.Header.Set("Content-Encoding", ce)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestHTTPTracesEncodingsAndErrors(t *testing.T) {
	e := startEnv(t, Config{MaxRequestBytes: 64 << 10}, nil)
	url := "http://" + e.c.HTTPAddr() + "/v1/traces"
	pb, _ := proto.Marshal(otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718"))
	now := time.Now().UnixNano()
	jsonBody := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},
	  "scopeSpans":[{"scope":{"name":"s"},"spans":[{"traceId":"a1a2a3a4a5a6a7a8a9aaabacadaeafb0","spanId":"b1b2b3b4b5b6b7b8",
	  "parentSpanId":"c1c2c3c4c5c6c7c8","name":"GET /x","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"%d","endTimeUnixNano":"%d",
	  "status":{"code":2,"message":"boom"},
	  "attributes":[{"key":"n","value":{"intValue":"42"}}]}]}]}]}`, now, now+5000)
	big := make([]byte, 100<<10)

	for _, c := range []struct {
		name, ct, ce string
		body         []byte
		wantCode     int
		wantMsg      string
	}{
		{"protobuf", "application/x-protobuf", "", pb, 200, ""},
		{"protobuf gzip", "application/x-protobuf", "gzip", gz(pb), 200, ""},
		{"json hex ids", "application/json", "", []byte(jsonBody), 200, ""},
		{"json gzip", "application/json; charset=utf-8", "gzip", gz([]byte(jsonBody)), 200, ""},
		{"malformed protobuf", "application/x-protobuf", "", []byte{0xff, 0xff, 0xff}, 400, "decode OTLP protobuf traces"},
		{"malformed json", "application/json", "", []byte(`{"resourceSpans":[{`), 400, "decode OTLP JSON traces"},
		{"bad gzip", "application/json", "gzip", []byte("not gzip"), 400, "gzip"},
		{"bad encoding", "application/json", "br", []byte("{}"), 400, "Content-Encoding"},
		{"bad content type", "text/plain", "", []byte("x"), 415, "unsupported content type"},
		{"too large", "application/x-protobuf", "", big, 413, "max_request_bytes"},
		{"too large after gunzip", "application/x-protobuf", "gzip", gz(big), 413, "max_request_bytes"},
		{"zero trace id", "application/x-protobuf", "", mustMarshal(otlpRequest("00000000000000000000000000000000", "1112131415161718")), 400, "invalid trace_id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, url, c.ct, c.ce, c.body)
			if resp.StatusCode != c.wantCode {
				t.Fatalf("status %d, want %d; body %q", resp.StatusCode, c.wantCode, body)
			}
			if c.wantMsg != "" && !strings.Contains(string(body), c.wantMsg) {
				t.Fatalf("body %q does not name the problem %q", body, c.wantMsg)
			}
		})
	}
	id, _ := spans.ParseTraceID("a1a2a3a4a5a6a7a8a9aaabacadaeafb0")
	got, err := e.traces.Trace(context.Background(), id)
	if err != nil || len(got) != 1 {
		t.Fatalf("JSON span not stored: %v %v", got, err)
	}
	s := got[0]
	if s.Service != "json-svc" || s.SpanID.String() != "b1b2b3b4b5b6b7b8" || s.ParentSpanID.String() != "c1c2c3c4c5c6c7c8" ||
		s.Kind != spans.KindClient || s.StatusCode != spans.StatusError || s.Attrs[0].Int != 42 {
		t.Fatalf("JSON span decoded wrong: %+v", s)
	}
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func TestPartialSuccess(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	req := otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718", "0000000000000000")
	conn, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := coltracepb.NewTraceServiceClient(conn).Export(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if ps := resp.GetPartialSuccess(); ps.GetRejectedSpans() != 1 || !strings.Contains(ps.GetErrorMessage(), "span_id") {
		t.Fatalf("partial success = %v", ps)
	}
	// Everything invalid: INVALID_ARGUMENT naming the field.
	_, err = coltracepb.NewTraceServiceClient(conn).Export(context.Background(), otlpRequest("0102030405060708090a0b0c0d0e0f10", "00"))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "span_id") {
		t.Fatalf("all-invalid request: %v", err)
	}
}

// blockingSink holds every batch until released.
type blockingSink struct {
	release chan struct{}
	entered chan struct{}
	once    sync.Once
	n       atomic.Int64
}

func (b *blockingSink) ConsumeSpans(ctx context.Context, batch []spans.Span) error {
	b.once.Do(func() { close(b.entered) })
	<-b.release
	b.n.Add(int64(len(batch)))
	return nil
}

func TestOverloadRefusesWithRetryInfo(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{}), entered: make(chan struct{})}
	e := startEnv(t, Config{RetryAfter: 2 * time.Second, Batch: batch.Config{QueueSpans: 1, Workers: 1}}, sink)
	defer close(sink.release)
	// The first request fills the queue (and blocks in the sink).
	go func() {
		post(t, "http://"+e.c.HTTPAddr()+"/v1/traces", "application/x-protobuf", "",
			mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718")))
	}()
	<-sink.entered
	resp, body := post(t, "http://"+e.c.HTTPAddr()+"/v1/traces", "application/x-protobuf", "",
		mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f11", "1112131415161719")))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("overloaded HTTP: %d Retry-After=%q body=%q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	conn, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = coltracepb.NewTraceServiceClient(conn).Export(context.Background(), otlpRequest("0102030405060708090a0b0c0d0e0f12", "1112131415161710"))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("overloaded gRPC: %v", err)
	}
	var ri *errdetails.RetryInfo
	for _, d := range st.Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			ri = r
		}
	}
	if ri == nil || ri.GetRetryDelay().AsDuration() != 2*time.Second {
		t.Fatalf("gRPC RetryInfo = %v", st.Details())
	}
}

func TestPortInUseNamesFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ms, _ := metricstore.New(metricstore.Config{Dir: t.TempDir()}, nil, nil)
	defer ms.Close()
	sink := consumer.SpansFunc(func(context.Context, []spans.Span) error { return nil })
	for _, c := range []struct {
		cfg  Config
		flag string
	}{
		{Config{OTLPGRPC: ln.Addr().String(), OTLPHTTP: "127.0.0.1:0"}, "--otlp-grpc"},
		{Config{OTLPGRPC: "127.0.0.1:0", OTLPHTTP: ln.Addr().String()}, "--otlp-http"},
	} {
		_, err := New(c.cfg, Sinks{Spans: sink, Metrics: ms}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.flag) || !strings.Contains(err.Error(), ln.Addr().String()) {
			t.Fatalf("New with port in use: %v, want error naming %s and the address", err, c.flag)
		}
	}
	_, err = New(Config{OTLPGRPC: "nonsense"}, Sinks{Spans: sink, Metrics: ms}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "otlp_grpc") {
		t.Fatalf("bad address: %v", err)
	}
}

// Every request acknowledged before and during shutdown is in the store
// after Run returns.
func TestShutdownLosesNothingAccepted(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	conn, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tid := fmt.Sprintf("%08x%024x", w+1, i+1)
				_, err := client.Export(context.Background(), otlpRequest(tid, "1112131415161718", "2122232425262728"))
				if err == nil {
					mu.Lock()
					acked = append(acked, tid)
					mu.Unlock()
				} else if status.Code(err) == codes.Unavailable || status.Code(err) == codes.ResourceExhausted {
					return
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	e.cancel()
	err = <-e.done
	e.done <- err // for Cleanup
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(acked) == 0 {
		t.Fatal("no request was acknowledged")
	}
	for _, tid := range acked {
		id, _ := spans.ParseTraceID(tid)
		got, err := e.traces.Trace(context.Background(), id)
		if err != nil || len(got) != 2 {
			t.Fatalf("acknowledged trace %s: %d spans, %v", tid, len(got), err)
		}
	}
}

func TestRemoteWriteRoute(t *testing.T) {
	e := startEnv(t, Config{}, nil)
	mux := http.NewServeMux()
	e.c.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	now := time.Now()
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "agent_up"}, {Name: "job", Value: "node"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write: %d %s", resp.StatusCode, body)
	}
	if v := query(t, e.metrics, `agent_up{job="node"}`, now); len(v) != 1 || v[0].F != 1 {
		t.Fatalf("agent_up = %v", v)
	}
}

func TestConcurrentRequestLimit(t *testing.T) {
	sink := &blockingSink{release: make(chan struct{}), entered: make(chan struct{})}
	e := startEnv(t, Config{MaxConcurrentRequests: 1}, sink)
	defer close(sink.release)
	go func() {
		post(t, "http://"+e.c.HTTPAddr()+"/v1/traces", "application/x-protobuf", "",
			mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718")))
	}()
	<-sink.entered
	resp, body := post(t, "http://"+e.c.HTTPAddr()+"/v1/traces", "application/json", "", []byte(`{}`))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "max_concurrent_requests") {
		t.Fatalf("HTTP over the request limit: %d %s", resp.StatusCode, body)
	}
	conn, err := grpc.NewClient(e.c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = coltracepb.NewTraceServiceClient(conn).Export(context.Background(), otlpRequest("0102030405060708090a0b0c0d0e0f12", "1112131415161710"))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "max_concurrent_requests") {
		t.Fatalf("gRPC over the request limit: %v", err)
	}
}

func TestSelfMetricsCount(t *testing.T) {
	ts, err := embedded.New(embedded.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	ms, err := metricstore.New(metricstore.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ms.Close()
	reg := prometheus.NewRegistry()
	c, err := New(Config{OTLPGRPC: Off, OTLPHTTP: "127.0.0.1:0"}, Sinks{Spans: ts, Metrics: ms}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	resp, _ := post(t, "http://"+c.HTTPAddr()+"/v1/traces", "application/x-protobuf", "",
		mustMarshal(otlpRequest("0102030405060708090a0b0c0d0e0f10", "1112131415161718", "0000000000000000", "2122232425262728")))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"meshscope_collector_spans_received_total", map[string]string{"transport": "http"}, 3},
		{"meshscope_collector_spans_accepted_total", nil, 2},
		{"meshscope_collector_spans_dropped_total", map[string]string{"reason": "invalid"}, 1},
		{"meshscope_collector_requests_total", map[string]string{"signal": "traces", "transport": "http", "result": "ok"}, 1},
		{"meshscope_collector_queue_spans", nil, 0},
	} {
		if got := gathered(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
}

func gathered(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}
