package otlp

import (
	"encoding/json"
	"fmt"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"

	"github.com/meshscope/meshscope/collector/spans"
)

// UnknownService is the service name of spans whose resource has no
// service.name (as the OpenTelemetry SDKs default it).
const UnknownService = "unknown_service"

// Rejection says why spans of a request were not taken.
type Rejection struct {
	Count   int
	Message string // the first problem, naming the span
}

// Spans translates a request into flat spans appended to dst. Spans with an
// invalid trace id (not 16 bytes or all zero) or span id (not 8 bytes or
// all zero) are rejected and counted, as are bad parent ids; the rest are
// kept (OTLP partial success).
func Spans(dst []spans.Span, req *coltracepb.ExportTraceServiceRequest) ([]spans.Span, Rejection) {
	var rej Rejection
	reject := func(format string, args ...any) {
		if rej.Count == 0 {
			rej.Message = fmt.Sprintf(format, args...)
		}
		rej.Count++
	}
	for ri, rs := range req.GetResourceSpans() {
		service := UnknownService
		var resource []spans.Attr
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				if s := kv.GetValue().GetStringValue(); s != "" {
					service = s
				}
				continue
			}
			resource = append(resource, attr(kv))
		}
		for si, ss := range rs.GetScopeSpans() {
			scope, scopeVersion := ss.GetScope().GetName(), ss.GetScope().GetVersion()
			for pi, sp := range ss.GetSpans() {
				var out spans.Span
				if len(sp.GetTraceId()) != 16 || copy(out.TraceID[:], sp.GetTraceId()) == 0 || out.TraceID.IsZero() {
					reject("resource_spans[%d].scope_spans[%d].spans[%d]: invalid trace_id %x (want 16 bytes, not all zero)", ri, si, pi, sp.GetTraceId())
					continue
				}
				if len(sp.GetSpanId()) != 8 || copy(out.SpanID[:], sp.GetSpanId()) == 0 || out.SpanID.IsZero() {
					reject("resource_spans[%d].scope_spans[%d].spans[%d]: invalid span_id %x (want 8 bytes, not all zero)", ri, si, pi, sp.GetSpanId())
					continue
				}
				if p := sp.GetParentSpanId(); len(p) != 0 {
					if len(p) != 8 {
						reject("resource_spans[%d].scope_spans[%d].spans[%d]: invalid parent_span_id %x (want 8 bytes or empty)", ri, si, pi, p)
						continue
					}
					copy(out.ParentSpanID[:], p)
				}
				out.TraceState = sp.GetTraceState()
				out.Service = service
				out.Name = sp.GetName()
				out.Kind = spans.Kind(sp.GetKind())
				if out.Kind > spans.KindConsumer {
					out.Kind = spans.KindUnspecified
				}
				out.StartUnixNano = int64(sp.GetStartTimeUnixNano())
				out.EndUnixNano = int64(sp.GetEndTimeUnixNano())
				if out.EndUnixNano < out.StartUnixNano {
					out.EndUnixNano = out.StartUnixNano
				}
				out.StatusCode = spans.StatusCode(sp.GetStatus().GetCode())
				if out.StatusCode > spans.StatusError {
					out.StatusCode = spans.StatusUnset
				}
				out.StatusMessage = sp.GetStatus().GetMessage()
				out.Attrs = attrs(sp.GetAttributes())
				out.Resource = resource
				out.Scope, out.ScopeVersion = scope, scopeVersion
				if evs := sp.GetEvents(); len(evs) > 0 {
					out.Events = make([]spans.Event, len(evs))
					for i, e := range evs {
						out.Events[i] = spans.Event{TimeUnixNano: int64(e.GetTimeUnixNano()), Name: e.GetName(), Attrs: attrs(e.GetAttributes())}
					}
				}
				if lks := sp.GetLinks(); len(lks) > 0 {
					out.Links = make([]spans.Link, 0, len(lks))
					for _, l := range lks {
						var lk spans.Link
						copy(lk.TraceID[:], l.GetTraceId())
						copy(lk.SpanID[:], l.GetSpanId())
						lk.Attrs = attrs(l.GetAttributes())
						out.Links = append(out.Links, lk)
					}
				}
				dst = append(dst, out)
			}
		}
	}
	return dst, rej
}

func attrs(kvs []*commonpb.KeyValue) []spans.Attr {
	if len(kvs) == 0 {
		return nil
	}
	out := make([]spans.Attr, len(kvs))
	for i, kv := range kvs {
		out[i] = attr(kv)
	}
	return out
}

func attr(kv *commonpb.KeyValue) spans.Attr {
	a := spans.Attr{Key: kv.GetKey()}
	v := kv.GetValue()
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		a.Type, a.Str = spans.TypeString, x.StringValue
	case *commonpb.AnyValue_IntValue:
		a.Type, a.Int = spans.TypeInt, x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		a.Type, a.Float = spans.TypeFloat, x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		a.Type, a.Bool = spans.TypeBool, x.BoolValue
	case *commonpb.AnyValue_BytesValue:
		a.Type, a.Str = spans.TypeBytes, string(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		b, _ := json.Marshal(anyToJSON(v))
		a.Type, a.Str = spans.TypeString, string(b)
	default: // empty value
		a.Type = spans.TypeString
	}
	return a
}

// anyToJSON renders arrays and maps as plain JSON values (how the spans
// model stores them: as their JSON text).
func anyToJSON(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_BytesValue:
		return x.BytesValue
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyToJSON(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := make(map[string]any, len(x.KvlistValue.GetValues()))
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = anyToJSON(kv.GetValue())
		}
		return out
	}
	return nil
}
