package proxy

import (
	"context"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// TestHopSamplerMatchesSDK: the hop span sampler decides exactly as
// sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)) for roots and
// for sampled and unsampled remote parents.
func TestHopSamplerMatchesSDK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ts, _ := trace.ParseTraceState("vendor=x,other=y")
	for _, ratio := range []float64{0, 0.001, 0.25, 0.5, 0.999, 1} {
		sdk := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
		ours := newHopSampler(ratio)
		for i := 0; i < 2000; i++ {
			var tid trace.TraceID
			for j := range tid {
				tid[j] = byte(rng.UintN(256))
			}
			var parent trace.SpanContext
			switch i % 3 {
			case 1, 2:
				flags := trace.TraceFlags(0)
				if i%3 == 1 {
					flags = trace.FlagsSampled
				}
				parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: flags, TraceState: ts, Remote: true})
			}
			ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
			res := sdk.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: tid, Name: "GET"})
			want := res.Decision == sdktrace.RecordAndSample
			if got := ours.sampled(parent, tid); got != want {
				t.Fatalf("ratio %v, trace %s, parent %v: sampled = %v, SDK says %v", ratio, tid, parent.IsValid(), got, want)
			}
			sc := newHopSpanContext(parent, ours)
			if !parent.IsValid() { // a root gets its own trace ID: ask the SDK about that one
				res := sdk.ShouldSample(sdktrace.SamplingParameters{ParentContext: ctx, TraceID: sc.TraceID(), Name: "GET"})
				want = res.Decision == sdktrace.RecordAndSample
			}
			if sc.IsSampled() != want || !sc.IsValid() {
				t.Fatalf("span context %v: sampled %v, want %v", sc, sc.IsSampled(), want)
			}
			if parent.IsValid() && (sc.TraceID() != parent.TraceID() || sc.SpanID() == parent.SpanID() || sc.TraceState().String() != res.Tracestate.String()) {
				t.Fatalf("child of %v: got %v", parent, sc)
			}
		}
	}
}

// TestInjectTraceContextMatchesW3C: the traceparent and tracestate written
// for a hop are byte-identical to propagation.TraceContext's.
func TestInjectTraceContextMatchesW3C(t *testing.T) {
	ts, _ := trace.ParseTraceState("meshscope=a/b,vendor=x")
	for _, sc := range []trace.SpanContext{
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 2}, TraceFlags: trace.FlagsSampled}),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{15: 1}, SpanID: trace.SpanID{7: 9}, TraceState: ts}),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{3}, SpanID: trace.SpanID{4}, TraceFlags: 0xff}),
		{}, // invalid: nothing written
	} {
		want := http.Header{}
		propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), propagation.HeaderCarrier(want))
		got := http.Header{}
		injectTraceContext(sc, got, b3None)
		for _, k := range []string{"Traceparent", "Tracestate"} {
			if g, w := got.Values(k), want.Values(k); len(g) != len(w) || (len(g) > 0 && g[0] != w[0]) {
				t.Errorf("%s for %v: got %q, want %q", k, sc, g, w)
			}
		}
	}
}

// TestHopSpanPoolReuse: a recycled hop span starts empty.
func TestHopSpanPoolReuse(t *testing.T) {
	s := newHopSpan()
	s.name = "GET /x"
	s.add(attribute.String("k", "v"))
	s.setStr(attrRoute, "/x")
	s.setError("boom")
	s.free()
	s = newHopSpan()
	if s.name != "" || len(s.Attributes()) != 0 || s.Status().Description != "" {
		t.Errorf("recycled span not reset: %q %v %v", s.name, s.Attributes(), s.Status())
	}
	var ro sdktrace.ReadOnlySpan = s // the exporter's view
	if ro.InstrumentationScope().Name != scopeName || ro.Events() != nil || ro.DroppedAttributes() != 0 {
		t.Errorf("read-only view: %+v", ro.InstrumentationScope())
	}
}

// TestHopSpanAttributeOrder: a hop span's attributes are its fixed string
// attributes in hopAttr order (those added through add too), then the
// others in the order they were added.
func TestHopSpanAttributeOrder(t *testing.T) {
	s := newHopSpan()
	defer s.free()
	s.setStr(attrProtocol, "http")
	s.setStr(attrMethod, "GET")
	s.add(attribute.String("url.path", "/a"), attribute.Int("http.response.status_code", 503))
	s.setStr(attrServerAddress, "") // set, though empty
	s.add(attribute.String("error.type", "503"))
	s.setStr(attrMethod, "HEAD") // replaced in place
	want := []attribute.KeyValue{
		attribute.String("http.request.method", "HEAD"),
		attribute.String("url.path", "/a"),
		attribute.String("server.address", ""),
		attribute.String("mesh.protocol", "http"),
		attribute.Int("http.response.status_code", 503),
		attribute.String("error.type", "503"),
	}
	if got := s.Attributes(); !slices.Equal(got, want) {
		t.Errorf("attributes\n%v\nwant\n%v", got, want)
	}
	for a := range numHopAttrs {
		if b, ok := hopAttrOf(attribute.Key(a.key())); !ok || b != a {
			t.Errorf("hopAttrOf(%q) = %v, %v", a.key(), b, ok)
		}
	}
}
