package proxy

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestOTelSDKAppsJoinTrace: a client app instrumented with the OTel SDK
// calls a server app instrumented the same way through both proxies; all
// four spans (app client, proxy CLIENT, proxy SERVER, app server) form one
// trace with the expected parent chain.
func TestOTelSDKAppsJoinTrace(t *testing.T) {
	col := startCollector(t)
	appSpans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(appSpans))
	prop := propagation.TraceContext{}
	tracer := tp.Tracer("app")

	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		_, span := tracer.Start(ctx, "server-app", trace.WithSpanKind(trace.SpanKindServer))
		span.End()
	}))
	_, _, addr := meshPair(t, app, col.addr, nil)

	ctx, root := tracer.Start(context.Background(), "client-app", trace.WithSpanKind(trace.SpanKindClient))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	req.Header.Set("Tracestate", "vendor=abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
	root.End()

	var client, server *tracepb.Span
	eventually(t, "proxy spans", func() bool {
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
	var serverApp sdktrace.ReadOnlySpan
	for _, s := range appSpans.Ended() {
		if s.Name() == "server-app" {
			serverApp = s
		}
	}
	if serverApp == nil {
		t.Fatal("server app span missing")
	}
	rootSC := root.SpanContext()
	if hex.EncodeToString(client.TraceId) != rootSC.TraceID().String() ||
		hex.EncodeToString(server.TraceId) != rootSC.TraceID().String() ||
		serverApp.SpanContext().TraceID() != rootSC.TraceID() {
		t.Fatal("spans are not in the client app's trace")
	}
	if hex.EncodeToString(client.ParentSpanId) != rootSC.SpanID().String() {
		t.Error("proxy CLIENT span's parent is not the client app's span")
	}
	if hex.EncodeToString(server.ParentSpanId) != hex.EncodeToString(client.SpanId) {
		t.Error("proxy SERVER span's parent is not the proxy CLIENT span")
	}
	if serverApp.Parent().SpanID().String() != hex.EncodeToString(server.SpanId) {
		t.Error("server app span's parent is not the proxy SERVER span")
	}
	if ts := serverApp.Parent().TraceState().Get("vendor"); ts != "abc" {
		t.Errorf("foreign tracestate member lost: %q", serverApp.Parent().TraceState().String())
	}
}

// TestB3 checks B3 single and multi header extraction and injection in the
// same form, end to end through two proxies.
func TestB3(t *testing.T) {
	const traceID = "463ac35c9f6413ad48485a3953bb6124"
	const spanID = "0020000000000001"
	tests := []struct {
		name string
		in   map[string]string
		want func(h http.Header) string // returns the trace id the app saw in B3
	}{
		{"single", map[string]string{"B3": traceID + "-" + spanID + "-1"}, func(h http.Header) string {
			return strings.SplitN(h.Get("B3"), "-", 2)[0]
		}},
		{"multi", map[string]string{"X-B3-TraceId": traceID, "X-B3-SpanId": spanID, "X-B3-Sampled": "1"}, func(h http.Header) string {
			return h.Get("X-B3-TraceId")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := startCollector(t)
			seen := make(chan http.Header, 1)
			app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
			_, _, addr := meshPair(t, app, col.addr, nil)
			get(t, http.DefaultClient, "http://"+addr+"/", tt.in)
			h := <-seen
			if got := tt.want(h); got != traceID {
				t.Errorf("app saw B3 trace id %q, want %q (headers %v)", got, traceID, h)
			}
			if !strings.Contains(h.Get("Traceparent"), traceID) {
				t.Errorf("traceparent %q not in the B3 trace", h.Get("Traceparent"))
			}
			if tt.name == "single" && h.Get("X-B3-Traceid") != "" || tt.name == "multi" && h.Get("B3") != "" {
				t.Errorf("B3 form changed: %v", h)
			}
			eventually(t, "client span parented on the B3 span", func() bool {
				for _, sp := range col.snapshot() {
					if sp.Kind == tracepb.Span_SPAN_KIND_CLIENT && hex.EncodeToString(sp.TraceId) == traceID &&
						hex.EncodeToString(sp.ParentSpanId) == spanID {
						return true
					}
				}
				return false
			})
		})
	}
}

func TestParseB3(t *testing.T) {
	tests := []struct {
		in      string
		valid   bool
		sampled bool
	}{
		{"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90", true, true},
		{"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-0", true, false},
		{"64fe8b2a57d3eff7-e457b5a2e4d86bd1-d", true, true},
		{"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", true, true},
		{"0", false, false},
		{"80f198ee56343ba864fe8b2a57d3eff7-zz57b5a2e4d86bd1-1", false, false},
		{"00000000000000000000000000000000-e457b5a2e4d86bd1-1", false, false},
		{"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-x", false, false},
	}
	for _, tt := range tests {
		sc := parseB3Single(tt.in)
		if sc.IsValid() != tt.valid || (tt.valid && sc.IsSampled() != tt.sampled) {
			t.Errorf("%q: valid=%v sampled=%v", tt.in, sc.IsValid(), sc.IsSampled())
		}
	}
}

func TestMeshState(t *testing.T) {
	h := http.Header{}
	setMeshState(h, "meshscope=a/v1")
	if h.Get("Tracestate") != "" {
		t.Error("tracestate set without traceparent")
	}
	h.Set("Traceparent", "00-463ac35c9f6413ad48485a3953bb6124-0020000000000001-01")
	h.Set("Tracestate", "x=1, meshscope=old/v0,y=2")
	setMeshState(h, "meshscope=a/v1")
	if got := h.Get("Tracestate"); got != "meshscope=a/v1,x=1,y=2" {
		t.Errorf("tracestate %q", got)
	}
	svc, ver, ok := meshCaller(h)
	if !ok || svc != "a" || ver != "v1" {
		t.Errorf("caller %q %q %v", svc, ver, ok)
	}
	h.Set("Tracestate", "meshscope=bad name/v1")
	if _, _, ok := meshCaller(h); ok {
		t.Error("invalid caller accepted")
	}
	cs := newCallerSet(2)
	if cs.intern("a") != "a" || cs.intern("b") != "b" || cs.intern("c") != serviceUnknown || cs.intern("a") != "a" {
		t.Error("caller set bound")
	}
}

// TestSampling: with sample_ratio 0 no span is exported but trace headers
// still flow, so traces started by apps keep joining.
func TestSampling(t *testing.T) {
	col := startCollector(t)
	seen := make(chan http.Header, 2)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
	out, _, addr := meshPair(t, app, col.addr, func(c *Config) { c.Telemetry.SampleRatio = 0 })
	get(t, http.DefaultClient, "http://"+addr+"/", nil)
	h := <-seen
	if !strings.HasSuffix(h.Get("Traceparent"), "-00") {
		t.Errorf("unsampled traceparent expected, got %q", h.Get("Traceparent"))
	}
	// A sampled parent is honoured.
	get(t, http.DefaultClient, "http://"+addr+"/", map[string]string{"Traceparent": "00-463ac35c9f6413ad48485a3953bb6124-0020000000000001-01"})
	<-seen
	eventually(t, "sampled spans", func() bool { return len(col.snapshot()) == 2 })
	for _, sp := range col.snapshot() {
		if hex.EncodeToString(sp.TraceId) != "463ac35c9f6413ad48485a3953bb6124" {
			t.Errorf("unsampled trace exported: %x", sp.TraceId)
		}
	}
	if got := out.waitValue(t, "mesh_requests_total", nil, 2); got != 2 {
		t.Errorf("metrics must count every request: %v", got)
	}
}
