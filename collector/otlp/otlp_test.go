package otlp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/spans"
)

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func sampleRequest() *coltracepb.ExportTraceServiceRequest {
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "web"), str("host.name", "h")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "sc", Version: "1"},
			Spans: []*tracepb.Span{{
				TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), ParentSpanId: bytes.Repeat([]byte{3}, 8),
				Name: "GET /", Kind: tracepb.Span_SPAN_KIND_SERVER, StartTimeUnixNano: 100, EndTimeUnixNano: 200,
				Attributes: []*commonpb.KeyValue{
					{Key: "i", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -3}}},
					{Key: "kv", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{Values: []*commonpb.KeyValue{str("a", "b")}}}}},
				},
				Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "m"},
				Events: []*tracepb.Span_Event{{TimeUnixNano: 150, Name: "e"}},
				Links:  []*tracepb.Span_Link{{TraceId: bytes.Repeat([]byte{4}, 16), SpanId: bytes.Repeat([]byte{5}, 8)}},
			}},
		}},
	}}}
}

const sampleJSON = `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"web"}}]},
"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"1112131415161718","name":"x",
"kind":2,"startTimeUnixNano":"1000","endTimeUnixNano":1500,"attributes":[{"key":"b","value":{"boolValue":true}}]}]}]}]}`

func TestSpansTranslation(t *testing.T) {
	out, rej := Spans(nil, sampleRequest())
	if rej.Count != 0 || len(out) != 1 {
		t.Fatalf("Spans: %v %+v", out, rej)
	}
	s := out[0]
	if s.Service != "web" || len(s.Resource) != 1 || s.Resource[0].Key != "host.name" || s.Kind != spans.KindServer ||
		s.StatusCode != spans.StatusError || s.Scope != "sc" || s.ScopeVersion != "1" || s.Duration() != 100 {
		t.Fatalf("span: %+v", s)
	}
	if s.Attrs[0].Type != spans.TypeInt || s.Attrs[0].Int != -3 || s.Attrs[1].Str != `{"a":"b"}` {
		t.Fatalf("attrs: %+v", s.Attrs)
	}
	if len(s.Events) != 1 || len(s.Links) != 1 || s.Links[0].SpanID != (spans.SpanID{5, 5, 5, 5, 5, 5, 5, 5}) {
		t.Fatalf("events/links: %+v %+v", s.Events, s.Links)
	}
}

func TestSpansRejectsInvalidIDs(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*tracepb.Span)
		want   string
	}{
		{"short trace id", func(s *tracepb.Span) { s.TraceId = []byte{1} }, "trace_id"},
		{"zero trace id", func(s *tracepb.Span) { s.TraceId = make([]byte, 16) }, "trace_id"},
		{"missing span id", func(s *tracepb.Span) { s.SpanId = nil }, "span_id"},
		{"bad parent", func(s *tracepb.Span) { s.ParentSpanId = []byte{1, 2} }, "parent_span_id"},
	} {
		req := sampleRequest()
		c.mutate(req.ResourceSpans[0].ScopeSpans[0].Spans[0])
		out, rej := Spans(nil, req)
		if len(out) != 0 || rej.Count != 1 || !strings.Contains(rej.Message, c.want) || !strings.Contains(rej.Message, "spans[0]") {
			t.Fatalf("%s: %v %+v", c.name, out, rej)
		}
	}
}

func TestDecodeTracesJSONHexIDs(t *testing.T) {
	req, err := DecodeTraces([]byte(sampleJSON), JSON)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := Spans(nil, req)
	if len(out) != 1 || out[0].TraceID.String() != "0102030405060708090a0b0c0d0e0f10" || out[0].SpanID.String() != "1112131415161718" ||
		out[0].StartUnixNano != 1000 || out[0].EndUnixNano != 1500 || !out[0].Attrs[0].Bool {
		t.Fatalf("decoded %+v", out)
	}
}

func TestReadBody(t *testing.T) {
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(bytes.Repeat([]byte("a"), 1000))
	w.Close()
	if _, err := ReadBody(bytes.NewReader(gz.Bytes()), "gzip", 999, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("gzip bomb past limit: %v", err)
	}
	if b, err := ReadBody(bytes.NewReader(gz.Bytes()), "gzip", 1000, nil); err != nil || len(b) != 1000 {
		t.Fatalf("gzip at limit: %d %v", len(b), err)
	}
	if _, err := ReadBody(strings.NewReader("x"), "zstd", 10, nil); err == nil || !strings.Contains(err.Error(), "zstd") {
		t.Fatalf("unknown encoding: %v", err)
	}
}

func TestParseContentType(t *testing.T) {
	for ct, want := range map[string]Encoding{"application/x-protobuf": Protobuf, "application/protobuf": Protobuf,
		"application/json": JSON, "application/json; charset=utf-8": JSON} {
		if got, err := ParseContentType(ct); err != nil || got != want {
			t.Fatalf("%q: %v %v", ct, got, err)
		}
	}
	if _, err := ParseContentType("text/plain"); !errors.Is(err, ErrUnsupportedMediaType) {
		t.Fatal(err)
	}
}

func FuzzDecodeTracesProtobuf(f *testing.F) {
	b, _ := proto.Marshal(sampleRequest())
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeTraces(data, Protobuf)
		if err != nil {
			return
		}
		out, rej := Spans(nil, req)
		for _, s := range out {
			if s.TraceID.IsZero() || s.SpanID.IsZero() || s.EndUnixNano < s.StartUnixNano {
				t.Fatalf("invalid span passed translation: %+v", s)
			}
		}
		if rej.Count > 0 && rej.Message == "" {
			t.Fatal("rejection without a message")
		}
	})
}

func FuzzDecodeTracesJSON(f *testing.F) {
	f.Add([]byte(sampleJSON))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":""}]}]}]}`))
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_CLIENT","status":{"code":"STATUS_CODE_ERROR"}}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeTraces(data, JSON)
		if err != nil {
			return
		}
		out, _ := Spans(nil, req)
		for _, s := range out {
			if s.TraceID.IsZero() || s.SpanID.IsZero() {
				t.Fatalf("invalid span passed translation: %+v", s)
			}
		}
	})
}

func FuzzDecodeMetrics(f *testing.F) {
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"m","sum":{"dataPoints":[{"asDouble":1}],"isMonotonic":true,"aggregationTemporality":2}}]}]}]}`), true)
	f.Add([]byte{0x0a, 0x00}, false)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		enc := Protobuf
		if json {
			enc = JSON
		}
		md, err := DecodeMetrics(data, enc)
		if err == nil {
			n := md.Metrics().DataPointCount()
			rej := newDeltaToCumulative(DeltaConfig{}).convert(md.Metrics(), time.Now())
			if left := md.Metrics().DataPointCount(); int64(left)+rej.points != int64(n) {
				t.Fatalf("delta conversion: %d points in, %d out + %d rejected", n, left, rej.points)
			}
		}
	})
}
