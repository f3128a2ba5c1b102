package otlp

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/spans"
)

// viaMessages is the reference path: the generated types, then Spans.
func viaMessages(body []byte) ([]spans.Span, Rejection, error) {
	req, err := DecodeTraces(body, Protobuf)
	if err != nil {
		return nil, Rejection{}, err
	}
	out, rej := Spans(nil, req)
	return out, rej, nil
}

func richRequest() *coltracepb.ExportTraceServiceRequest {
	req := sampleRequest()
	sp := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
	sp.TraceState = "k=v"
	sp.Attributes = append(sp.Attributes,
		&commonpb.KeyValue{Key: "d", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}}},
		&commonpb.KeyValue{Key: "b", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
		&commonpb.KeyValue{Key: "raw", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{0, 1}}}},
		&commonpb.KeyValue{Key: "arr", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{Values: []*commonpb.AnyValue{{Value: &commonpb.AnyValue_IntValue{IntValue: 1}}}}}}},
		&commonpb.KeyValue{Key: "empty"},
		str("s", "x"))
	sp.Events = append(sp.Events, &tracepb.Span_Event{TimeUnixNano: 160, Name: "ev", Attributes: []*commonpb.KeyValue{str("ek", "ev")}})
	sp.Links[0].Attributes = []*commonpb.KeyValue{str("lk", "lv")}
	// A second span, a second scope, a resource without service.name and
	// one with a non-string service.name, rejected spans between.
	sp2 := proto.Clone(sp).(*tracepb.Span)
	sp2.SpanId = bytes.Repeat([]byte{9}, 8)
	sp2.Kind = tracepb.Span_SpanKind(77)
	sp2.Status = &tracepb.Status{Code: tracepb.Status_StatusCode(9)}
	sp2.EndTimeUnixNano = 50 // before its start: clamped
	bad := proto.Clone(sp).(*tracepb.Span)
	bad.TraceId = make([]byte, 16)
	bad2 := proto.Clone(sp).(*tracepb.Span)
	bad2.ParentSpanId = []byte{1}
	req.ResourceSpans[0].ScopeSpans[0].Spans = append(req.ResourceSpans[0].ScopeSpans[0].Spans, bad, sp2)
	req.ResourceSpans[0].ScopeSpans = append(req.ResourceSpans[0].ScopeSpans, &tracepb.ScopeSpans{Spans: []*tracepb.Span{bad2, proto.Clone(sp).(*tracepb.Span)}})
	req.ResourceSpans = append(req.ResourceSpans,
		&tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "other"}, Spans: []*tracepb.Span{proto.Clone(sp).(*tracepb.Span)}}}},
		&tracepb.ResourceSpans{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 3}}}}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{proto.Clone(sp).(*tracepb.Span)}}},
		})
	return req
}

// TestDecodeSpansMatchesMessages checks that the wire decoder gives what
// the generated types and Spans give, rejections included.
func TestDecodeSpansMatchesMessages(t *testing.T) {
	rich, _ := proto.Marshal(richRequest())
	// Field order on the wire is free: resource and scope after the spans.
	var reordered []byte
	rs := richRequest().ResourceSpans[0]
	ss, _ := proto.Marshal(rs.ScopeSpans[0])
	res, _ := proto.Marshal(rs.Resource)
	inner := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), ss)
	inner = protowire.AppendBytes(protowire.AppendTag(inner, 1, protowire.BytesType), res)
	reordered = protowire.AppendBytes(protowire.AppendTag(reordered, 1, protowire.BytesType), inner)

	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"sample", mustMarshal(t, sampleRequest())},
		{"rich", rich},
		{"resource after its spans", reordered},
		{"empty", nil},
		{"many spans", benchRequest(300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantRej, err := viaMessages(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			got, gotRej, err := DecodeSpans(nil, tc.body)
			if err != nil {
				t.Fatalf("DecodeSpans: %v", err)
			}
			if gotRej != wantRej {
				t.Fatalf("rejection %+v, want %+v", gotRej, wantRej)
			}
			if len(got) != len(want) {
				t.Fatalf("%d spans, want %d", len(got), len(want))
			}
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("span %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeSpansErrors(t *testing.T) {
	good := mustMarshal(t, sampleRequest())
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"truncated", good[:len(good)-3], "malformed protobuf"},
		{"bad tag", []byte{0x00}, "malformed protobuf"},
		{"invalid UTF-8 in the span name", func() []byte {
			r := sampleRequest()
			r.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = "ok"
			b := mustMarshal(t, r)
			i := bytes.Index(b, []byte("ok"))
			b[i] = 0xff
			return b
		}(), "spans[0].name: string field contains invalid UTF-8"},
		{"invalid UTF-8 in an attribute value", func() []byte {
			r := sampleRequest()
			r.ResourceSpans[0].ScopeSpans[0].Spans[0].Attributes = []*commonpb.KeyValue{str("k", "zz")}
			b := mustMarshal(t, r)
			i := bytes.Index(b, []byte("zz"))
			b[i] = 0xc3
			return b
		}(), "attributes.value.string_value: string field contains invalid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := viaMessages(tc.body); err == nil {
				t.Fatal("the generated types accept this body: the case is not malformed")
			}
			out, _, err := DecodeSpans(nil, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeSpans error %v, want one containing %q (spans %d)", err, tc.want, len(out))
			}
		})
	}
}

// TestDecodeSpansAttributesIndependent checks that spans carved from one
// attribute slice do not share room: appending to one span's attributes
// leaves its neighbour intact.
func TestDecodeSpansAttributesIndependent(t *testing.T) {
	out, _, err := DecodeSpans(nil, benchRequest(3))
	if err != nil || len(out) != 3 {
		t.Fatalf("%d spans, %v", len(out), err)
	}
	before := out[1].Attrs[0]
	_ = append(out[0].Attrs, spans.StringAttr("x", "y"))
	if out[1].Attrs[0] != before {
		t.Fatalf("appending to span 0's attributes changed span 1's: %+v", out[1].Attrs[0])
	}
}

func FuzzDecodeSpans(f *testing.F) {
	for _, m := range []proto.Message{sampleRequest(), richRequest()} {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotRej, err := DecodeSpans(nil, data)
		want, wantRej, werr := viaMessages(data)
		if werr != nil {
			// The wire decoder skips fields it does not store, so it may
			// accept what the generated types refuse; it must not crash.
			return
		}
		if err != nil {
			t.Fatalf("DecodeSpans refused a body the generated types accept: %v", err)
		}
		if gotRej != wantRej || !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeSpans differs:\n got %+v %+v\nwant %+v %+v", got, gotRej, want, wantRej)
		}
	})
}

func BenchmarkDecodeSpans512(b *testing.B) {
	body := benchRequest(512)
	b.SetBytes(int64(len(body)))
	var out []spans.Span
	for b.Loop() {
		var err error
		out, _, err = DecodeSpans(out[:0], body)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "spans/s")
}
