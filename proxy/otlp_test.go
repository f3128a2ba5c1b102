package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestEncodeTraceRequest decodes the hand-written encoding with the
// generated OTLP types.
func TestEncodeTraceRequest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	long := strings.Repeat("ü", 300) // forces multi-byte length prefixes
	ctx, parent := tp.Tracer("meshscope-proxy").Start(context.Background(), "parent", trace.WithSpanKind(trace.SpanKindClient))
	_, child := tp.Tracer("meshscope-proxy").Start(ctx, "GET /api/items/{id}", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("long", long), attribute.Int("http.response.status_code", 504),
			attribute.Bool("b", true), attribute.Float64("f", 1.5), attribute.StringSlice("s", []string{"a", "b"})))
	child.AddEvent("ev", trace.WithAttributes(attribute.String("k", "v")))
	child.SetStatus(codes.Error, "upstream timeout: "+long)
	child.End()
	parent.End()
	res := []attribute.KeyValue{attribute.String("service.name", "web")}
	b := encodeTraceRequest(nil, res, rec.Ended())

	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	rs := req.ResourceSpans
	if len(rs) != 1 || rs[0].Resource.Attributes[0].Value.GetStringValue() != "web" || len(rs[0].ScopeSpans) != 1 {
		t.Fatalf("shape: %v", &req)
	}
	ss := rs[0].ScopeSpans[0]
	if ss.Scope.Name != "meshscope-proxy" || len(ss.Spans) != 2 {
		t.Fatalf("scope: %v", ss)
	}
	c := ss.Spans[0]
	csc := child.SpanContext()
	ctid, csid, psid := csc.TraceID(), csc.SpanID(), parent.SpanContext().SpanID()
	if string(c.TraceId) != string(ctid[:]) || string(c.SpanId) != string(csid[:]) || string(c.ParentSpanId) != string(psid[:]) {
		t.Error("ids")
	}
	if c.Name != "GET /api/items/{id}" || c.Kind != tracepb.Span_SPAN_KIND_SERVER || c.StartTimeUnixNano == 0 || c.EndTimeUnixNano < c.StartTimeUnixNano {
		t.Errorf("span: %v", c)
	}
	if c.Status.Code != tracepb.Status_STATUS_CODE_ERROR || c.Status.Message != "upstream timeout: "+long {
		t.Errorf("status: %v", c.Status)
	}
	got := map[string]string{}
	for _, a := range c.Attributes {
		got[a.Key] = a.Value.String()
	}
	if spanAttr(c, "long") != long || spanAttr(c, "http.response.status_code") != "504" || !strings.Contains(got["b"], "true") || !strings.Contains(got["f"], "1.5") || !strings.Contains(got["s"], "a") {
		t.Errorf("attributes: %v", got)
	}
	if len(c.Events) != 1 || c.Events[0].Name != "ev" || c.Events[0].Attributes[0].Value.GetStringValue() != "v" {
		t.Errorf("events: %v", c.Events)
	}
	if ss.Spans[1].Kind != tracepb.Span_SPAN_KIND_CLIENT || len(ss.Spans[1].ParentSpanId) != 0 {
		t.Errorf("root span: %v", ss.Spans[1])
	}
}

func TestEncodeMetricsRequest(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := newGoldenMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	k := requestKey{peerLabels: peerLabels{"inbound", "a", "v1", "b", "v2"}, outcome: "success", protocol: "http1", route: "unmatched", statusCode: "200"}
	s := g.request(&k)
	s.requests.Add(3)
	s.duration.Observe(0.0002)
	s.duration.Observe(0.003)
	s.duration.Observe(100) // beyond the last bucket
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "h"})
	gauge.Set(-2.5)
	reg.MustRegister(gauge)
	mfs, _ := reg.Gather()
	start := time.Unix(100, 0)
	now := time.Unix(200, 0)
	b := encodeMetricsRequest(nil, []attribute.KeyValue{attribute.String("service.name", "b")}, mfs, start, now)
	var req colmetricspb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	ms := map[string]int{}
	metrics := req.ResourceMetrics[0].ScopeMetrics[0].Metrics
	for i, m := range metrics {
		ms[m.Name] = i
	}
	reqs := metrics[ms["mesh_requests_total"]].GetSum()
	if reqs == nil || !reqs.IsMonotonic || reqs.AggregationTemporality != 2 || len(reqs.DataPoints) != 1 {
		t.Fatalf("requests: %v", reqs)
	}
	dp := reqs.DataPoints[0]
	if dp.GetAsDouble() != 3 || dp.StartTimeUnixNano != uint64(start.UnixNano()) || dp.TimeUnixNano != uint64(now.UnixNano()) {
		t.Errorf("point: %v", dp)
	}
	attrs := map[string]string{}
	for _, a := range dp.Attributes {
		attrs[a.Key] = a.Value.GetStringValue()
	}
	if attrs["direction"] != "inbound" || attrs["source_service"] != "a" || attrs["status_code"] != "200" || attrs["grpc_status"] != "" || attrs["tls"] != "plaintext" || len(attrs) != 11 {
		t.Errorf("attributes: %v", attrs)
	}
	var h *metricspb.Histogram
	var eh *metricspb.ExponentialHistogram
	for _, m := range metrics {
		if m.Name == "mesh_request_duration_seconds" {
			if m.GetHistogram() != nil {
				h = m.GetHistogram()
			}
			if m.GetExponentialHistogram() != nil {
				eh = m.GetExponentialHistogram()
			}
		}
	}
	if h == nil || h.AggregationTemporality != 2 || len(h.DataPoints) != 1 {
		t.Fatalf("histogram: %v", h)
	}
	hp := h.DataPoints[0]
	if hp.Count != 3 || hp.GetSum() != 100.0032 || len(hp.ExplicitBounds) != len(DurationBuckets) || len(hp.BucketCounts) != len(DurationBuckets)+1 {
		t.Fatalf("histogram point: %v", hp)
	}
	want := make([]uint64, len(DurationBuckets)+1)
	want[1], want[5], want[len(DurationBuckets)] = 1, 1, 1 // 0.00025, 0.005, overflow
	for i := range want {
		if hp.BucketCounts[i] != want[i] {
			t.Errorf("bucket %d: %d, want %d", i, hp.BucketCounts[i], want[i])
		}
	}
	// The native buckets alongside: schema 3, the three observations in
	// the buckets whose OTLP lower bounds are just below them.
	if eh == nil || eh.AggregationTemporality != 2 || len(eh.DataPoints) != 1 {
		t.Fatalf("exponential histogram: %v", eh)
	}
	ep := eh.DataPoints[0]
	if ep.Count != 3 || ep.GetSum() != 100.0032 || ep.Scale != 3 || ep.Positive == nil {
		t.Fatalf("exponential point: %v", ep)
	}
	base := math.Pow(2, math.Pow(2, -3))
	var got []float64
	for i, c := range ep.Positive.BucketCounts {
		for range c {
			got = append(got, math.Pow(base, float64(ep.Positive.Offset+int32(i)))) // lower bound
		}
	}
	for i, v := range []float64{0.0002, 0.003, 100} {
		if i >= len(got) || got[i] >= v || got[i]*base < v {
			t.Errorf("observation %v: bucket lower bound %v", v, got)
		}
	}
	gp := metrics[ms["g"]].GetGauge()
	if gp == nil || gp.DataPoints[0].GetAsDouble() != -2.5 {
		t.Errorf("gauge: %v", gp)
	}
}

type failingCollector struct {
	coltracepb.UnimplementedTraceServiceServer
}

func (failingCollector) Export(context.Context, *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	return nil, status.Error(grpccodes.ResourceExhausted, "too much ünicode")
}

// TestOTLPClientStatus: a gRPC error from the collector is an error naming
// the status; a server without the service is one too.
func TestOTLPClientStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, failingCollector{})
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()
	c := newOTLPClient(ln.Addr().String(), time.Second, nil)
	defer c.close()
	err = c.call(context.Background(), otlpTracePath, make([]byte, grpcPrefix))
	if err == nil || !strings.Contains(err.Error(), "grpc-status 8: too much ünicode") {
		t.Errorf("trace: %v", err)
	}
	err = c.call(context.Background(), otlpMetricsPath, make([]byte, grpcPrefix))
	if err == nil || !strings.Contains(err.Error(), "grpc-status 12") {
		t.Errorf("metrics on a trace-only server: %v", err)
	}
}

// TestOTLPClientTLS: an https:// collector is reached over TLS with the
// given roots and ALPN h2; a TLS server that does not speak HTTP/2 is
// refused with an error that says so, and an unknown certificate fails.
func TestOTLPClientTLS(t *testing.T) {
	certFile, keyFile, pool := writeCert(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	coltracepb.RegisterTraceServiceServer(s, failingCollector{})
	go func() { _ = s.Serve(ln) }()
	defer s.Stop()

	c := newOTLPClient("https://"+ln.Addr().String(), time.Second, &tls.Config{RootCAs: pool})
	defer c.close()
	err = c.call(context.Background(), otlpTracePath, make([]byte, grpcPrefix))
	if err == nil || !strings.Contains(err.Error(), "grpc-status 8: too much ünicode") {
		t.Errorf("over TLS: %v", err)
	}
	untrusted := newOTLPClient("https://"+ln.Addr().String(), time.Second, &tls.Config{RootCAs: x509.NewCertPool()})
	defer untrusted.close()
	if err := untrusted.call(context.Background(), otlpTracePath, make([]byte, grpcPrefix)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown certificate: %v", err)
	}

	// A TLS server without ALPN (an HTTP/1.1 server, for instance).
	h1ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	h1 := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = h1.Serve(h1ln) }()
	defer h1.Close()
	c1 := newOTLPClient("https://"+h1ln.Addr().String(), time.Second, &tls.Config{RootCAs: pool})
	defer c1.close()
	if err := c1.call(context.Background(), otlpTracePath, make([]byte, grpcPrefix)); err == nil || !strings.Contains(err.Error(), "did not agree on HTTP/2") {
		t.Errorf("HTTP/1-only server: %v", err)
	}
}

// heldBodyTransport answers every call with grpc-status 0 after reading
// only the gRPC prefix, and keeps the request body, as a RoundTripper may
// that closes it after returning.
type heldBodyTransport struct {
	prefix [grpcPrefix]byte
	body   io.ReadCloser
}

func (h *heldBodyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.body = r.Body
	if _, err := io.ReadFull(r.Body, h.prefix[:]); err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Grpc-Status": {"0"}},
		Body: http.NoBody, Request: r}, nil
}

// TestOTLPClientFrameReuse: call fills in the gRPC prefix of the frame it
// is given, and once it returns the transport reads nothing more of the
// frame (which the exporter then reuses).
func TestOTLPClientFrameReuse(t *testing.T) {
	c := newOTLPClient("127.0.0.1:1", time.Second, nil)
	tr := &heldBodyTransport{}
	c.rt = tr
	frame := append(make([]byte, grpcPrefix), strings.Repeat("m", 300)...)
	if err := c.call(context.Background(), otlpTracePath, frame); err != nil {
		t.Fatal(err)
	}
	if want := [grpcPrefix]byte{0, 0, 0, 1, 44}; tr.prefix != want {
		t.Errorf("prefix %v, want %v", tr.prefix, want)
	}
	if n, err := tr.body.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Errorf("body read after the call: %d, %v", n, err)
	}
}

// wantTraceRequest builds, with the generated OTLP types, the request
// encodeTraceRequest is to encode: one resource, one scope per scope name
// in the order of first appearance.
func wantTraceRequest(res []attribute.KeyValue, spans []sdktrace.ReadOnlySpan) *coltracepb.ExportTraceServiceRequest {
	kvs := func(attrs []attribute.KeyValue) []*commonpb.KeyValue {
		var out []*commonpb.KeyValue
		for _, kv := range attrs {
			v := &commonpb.AnyValue{}
			switch kv.Value.Type() {
			case attribute.STRING:
				v.Value = &commonpb.AnyValue_StringValue{StringValue: kv.Value.AsString()}
			case attribute.BOOL:
				v.Value = &commonpb.AnyValue_BoolValue{BoolValue: kv.Value.AsBool()}
			case attribute.INT64:
				v.Value = &commonpb.AnyValue_IntValue{IntValue: kv.Value.AsInt64()}
			case attribute.FLOAT64:
				v.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: kv.Value.AsFloat64()}
			default:
				v.Value = &commonpb.AnyValue_StringValue{StringValue: kv.Value.Emit()}
			}
			out = append(out, &commonpb.KeyValue{Key: string(kv.Key), Value: v})
		}
		return out
	}
	nanos := func(t time.Time) uint64 {
		if t.IsZero() {
			return 0
		}
		return uint64(t.UnixNano())
	}
	rs := &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: kvs(res)}}
	scopes := map[string]*tracepb.ScopeSpans{}
	for _, s := range spans {
		scope := s.InstrumentationScope()
		ss := scopes[scope.Name]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: scope.Name, Version: scope.Version}}
			scopes[scope.Name] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		sc := s.SpanContext()
		tid, sid := sc.TraceID(), sc.SpanID()
		sp := &tracepb.Span{
			TraceId: tid[:], SpanId: sid[:], TraceState: sc.TraceState().String(),
			Name: s.Name(), Kind: tracepb.Span_SpanKind(s.SpanKind()),
			StartTimeUnixNano: nanos(s.StartTime()), EndTimeUnixNano: nanos(s.EndTime()),
			Attributes: kvs(s.Attributes()), DroppedAttributesCount: uint32(s.DroppedAttributes()),
			Flags: uint32(sc.TraceFlags()) | 0x100,
		}
		if p := s.Parent(); p.IsValid() {
			psid := p.SpanID()
			sp.ParentSpanId = psid[:]
			if p.IsRemote() {
				sp.Flags |= 0x200
			}
		}
		for _, ev := range s.Events() {
			sp.Events = append(sp.Events, &tracepb.Span_Event{TimeUnixNano: nanos(ev.Time), Name: ev.Name, Attributes: kvs(ev.Attributes)})
		}
		switch st := s.Status(); st.Code {
		case codes.Error:
			sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: st.Description}
		case codes.Ok:
			sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK, Message: st.Description}
		}
		ss.Spans = append(ss.Spans, sp)
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{rs}}
}

// TestEncodeTraceRequestMatchesProto compares the decoded encoding of hop
// spans and SDK spans of several scopes, at batch sizes whose messages
// need one- to three-byte lengths, with the request built from the
// generated types.
func TestEncodeTraceRequestMatchesProto(t *testing.T) {
	ts, err := trace.ParseTraceState("a=b,meshscope=" + strings.Repeat("x", 200))
	if err != nil {
		t.Fatal(err)
	}
	var spans []sdktrace.ReadOnlySpan
	for i := range 300 {
		s := newHopSpan()
		s.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i)}, SpanID: trace.SpanID{2, byte(i)},
			TraceFlags: trace.FlagsSampled})
		if i%4 == 0 {
			s.sc = s.sc.WithTraceState(ts)
		}
		if i%3 == 0 {
			s.parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i)}, SpanID: trace.SpanID{3}, Remote: i%2 == 0})
		}
		s.name = strings.Repeat("n", i)
		s.kind = trace.SpanKind(i % 6)
		s.start, s.end = time.Unix(100, int64(i)), time.Unix(101, 0)
		s.add(attribute.String("k", strings.Repeat("v", i*3)), attribute.Int("i", -i), attribute.Int("u", i<<20),
			attribute.Bool("b", i%2 == 0), attribute.Float64("f", float64(i)/3), attribute.IntSlice("sl", []int{1, i}),
			attribute.String("", ""), attribute.String(strings.Repeat("K", i), ""))
		switch i % 5 {
		case 0:
			s.setError(strings.Repeat("e", i))
		case 1:
			s.status = sdktrace.Status{Code: codes.Ok}
		}
		if i%7 == 0 {
			s.events = []sdktrace.Event{{Name: "ev", Time: time.Unix(5, 0), Attributes: []attribute.KeyValue{attribute.String("x", strings.Repeat("y", i))}},
				{Name: strings.Repeat("E", i)}}
		}
		spans = append(spans, s)
		if i%13 == 0 {
			spans = append(spans, tracetest.SpanStub{Name: "stub", SpanContext: s.sc, Parent: s.parent, StartTime: s.start,
				InstrumentationScope: instrumentation.Scope{Name: []string{"x", "y"}[i%2], Version: "v1"}, DroppedAttributes: i}.Snapshot())
		}
	}
	res := []attribute.KeyValue{attribute.String("service.name", "web"), attribute.String("service.instance.id", strings.Repeat("i", 200))}
	var buf []byte
	for _, n := range []int{1, 2, 10, 27, 100, 300, len(spans)} {
		buf = encodeTraceRequest(buf, res, spans[:n])
		var got coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(buf, &got); err != nil {
			t.Fatalf("%d spans: %v", n, err)
		}
		if want := wantTraceRequest(res, spans[:n]); !proto.Equal(&got, want) {
			t.Errorf("%d spans: decoded request differs from the generated one", n)
		}
	}
}
