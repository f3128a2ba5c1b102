package otlp

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/collector/spans"
)

// DecodeSpans decodes a protobuf ExportTraceServiceRequest straight into
// flat spans appended to dst, with the result and the rejections of
// Spans(dst, DecodeTraces(body, Protobuf)) but without building the
// request's message tree first: one pass over the wire bytes, strings
// repeated within the request (attribute keys, service and operation
// names, values shared by the spans of a trace) allocated once, and the
// spans' attributes carved from one slice per request.
//
// Malformed protobuf and invalid UTF-8 in a field that is stored fail the
// whole request with an error naming the field. Fields that are not
// stored (schema URLs, scope attributes, dropped counts, flags, unknown
// fields) are skipped unread.
func DecodeSpans(dst []spans.Span, body []byte) ([]spans.Span, Rejection, error) {
	if n := countWireSpans(body); cap(dst)-len(dst) < n {
		dst = append(make([]spans.Span, 0, len(dst)+n), dst...)
	}
	d := wireDecoder{dst: dst, strs: make(map[string]string, 64)}
	err := eachField(body, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		err := d.resourceSpans(v)
		d.ri++
		return err
	})
	if err != nil {
		return dst, Rejection{}, fmt.Errorf("decode OTLP protobuf traces: %w", err)
	}
	return d.dst, d.rej, nil
}

// countWireSpans counts the spans of an export request from the field
// headers of its first three levels (an estimate for a malformed body).
func countWireSpans(body []byte) int {
	n := 0
	eachField(body, func(num protowire.Number, typ protowire.Type, rs []byte) error { //nolint:errcheck // an estimate
		if num == 1 && typ == protowire.BytesType {
			eachField(rs, func(num protowire.Number, typ protowire.Type, ss []byte) error { //nolint:errcheck
				if num == 2 && typ == protowire.BytesType {
					eachField(ss, func(num protowire.Number, typ protowire.Type, _ []byte) error { //nolint:errcheck
						if num == 2 && typ == protowire.BytesType {
							n++
						}
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
	return n
}

// errMalformed is a protobuf wire error.
var errMalformed = errors.New("malformed protobuf")

// eachField calls fn for each field of the message b. For bytes fields v
// is the content; for varint, fixed32 and fixed64 fields v is the raw
// encoding (read it with the matching protowire.Consume function).
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return fmt.Errorf("%w: field %d: %v", errMalformed, num, protowire.ParseError(m))
		}
		v := b[:m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(b)
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[m:]
	}
	return nil
}

type wireDecoder struct {
	dst   []spans.Span
	rej   Rejection
	strs  map[string]string // strings of this request, each allocated once
	attrs []spans.Attr      // free room for span attributes
	ri    int               // index of the resource_spans being read
}

const (
	internMaxLen     = 128  // longer strings are not looked up
	internMaxEntries = 8192 // per request
)

// str returns b as a string after checking it is UTF-8 (as protobuf
// requires of string fields); field names it in the error.
func (d *wireDecoder) str(b []byte, field func() string) (string, error) {
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s: string field contains invalid UTF-8", field())
	}
	if len(b) > internMaxLen {
		return string(b), nil
	}
	if s, ok := d.strs[string(b)]; ok {
		return s, nil
	}
	s := string(b)
	if len(d.strs) < internMaxEntries {
		d.strs[s] = s
	}
	return s, nil
}

func (d *wireDecoder) resourceSpans(b []byte) error {
	service := UnknownService
	var resource []spans.Attr
	// The resource may follow its scope_spans on the wire: read it first.
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			if num != 1 || typ != protowire.BytesType {
				return nil
			}
			a, err := d.keyValue(v, func() string { return fmt.Sprintf("resource_spans[%d].resource.attributes", d.ri) })
			if err != nil {
				return err
			}
			if a.Key == "service.name" {
				if a.Type == spans.TypeString && a.Str != "" && !a.fromList {
					service = a.Str
				}
				return nil
			}
			resource = append(resource, a.Attr)
			return nil
		})
	})
	if err != nil {
		return err
	}
	si := 0
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 2 || typ != protowire.BytesType {
			return nil
		}
		err := d.scopeSpans(v, si, service, resource)
		si++
		return err
	})
}

func (d *wireDecoder) scopeSpans(b []byte, si int, service string, resource []spans.Attr) error {
	var scope, version string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			var err error
			switch {
			case num == 1 && typ == protowire.BytesType:
				scope, err = d.str(v, func() string { return fmt.Sprintf("resource_spans[%d].scope_spans[%d].scope.name", d.ri, si) })
			case num == 2 && typ == protowire.BytesType:
				version, err = d.str(v, func() string { return fmt.Sprintf("resource_spans[%d].scope_spans[%d].scope.version", d.ri, si) })
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	pi := 0
	return eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 2 || typ != protowire.BytesType {
			return nil
		}
		err := d.span(v, si, pi, service, resource, scope, version)
		pi++
		return err
	})
}

func (d *wireDecoder) span(b []byte, si, pi int, service string, resource []spans.Attr, scope, version string) error {
	loc := func() string { return fmt.Sprintf("resource_spans[%d].scope_spans[%d].spans[%d]", d.ri, si, pi) }
	var traceID, spanID, parentID []byte
	out := spans.Span{Service: service, Resource: resource, Scope: scope, ScopeVersion: version}
	attrStart := len(d.attrs)
	if cap(d.attrs)-len(d.attrs) < 32 {
		// A fresh arena: spans keep slices of the old one.
		d.attrs = make([]spans.Attr, 0, 1024)
		attrStart = 0
	}
	var kind, code uint64
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		var err error
		switch {
		case typ == protowire.BytesType:
			switch num {
			case 1:
				traceID = v
			case 2:
				spanID = v
			case 3:
				out.TraceState, err = d.str(v, func() string { return loc() + ".trace_state" })
			case 4:
				parentID = v
			case 5:
				out.Name, err = d.str(v, func() string { return loc() + ".name" })
			case 9:
				var a attrValue
				a, err = d.keyValue(v, func() string { return loc() + ".attributes" })
				if err == nil {
					if len(d.attrs) == cap(d.attrs) {
						// Move this span's attributes to a larger arena.
						na := make([]spans.Attr, len(d.attrs)-attrStart, max(1024, 2*(len(d.attrs)-attrStart)))
						copy(na, d.attrs[attrStart:])
						d.attrs, attrStart = na, 0
					}
					d.attrs = append(d.attrs, a.Attr)
				}
			case 11:
				var e spans.Event
				ei := len(out.Events)
				e, err = d.event(v, func() string { return fmt.Sprintf("%s.events[%d]", loc(), ei) })
				out.Events = append(out.Events, e)
			case 13:
				var l spans.Link
				li := len(out.Links)
				l, err = d.link(v, func() string { return fmt.Sprintf("%s.links[%d]", loc(), li) })
				out.Links = append(out.Links, l)
			case 15:
				err = eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
					var err error
					switch {
					case num == 2 && typ == protowire.BytesType:
						out.StatusMessage, err = d.str(v, func() string { return loc() + ".status.message" })
					case num == 3 && typ == protowire.VarintType:
						code, _ = protowire.ConsumeVarint(v)
					}
					return err
				})
			}
		case typ == protowire.VarintType && num == 6:
			kind, _ = protowire.ConsumeVarint(v)
		case typ == protowire.Fixed64Type && num == 7:
			x, _ := protowire.ConsumeFixed64(v)
			out.StartUnixNano = int64(x)
		case typ == protowire.Fixed64Type && num == 8:
			x, _ := protowire.ConsumeFixed64(v)
			out.EndUnixNano = int64(x)
		}
		return err
	})
	if err != nil {
		return err
	}
	if n := len(d.attrs) - attrStart; n > 0 {
		out.Attrs = d.attrs[attrStart:len(d.attrs):len(d.attrs)]
	}
	switch {
	case len(traceID) != 16 || [16]byte(traceID) == [16]byte{}:
		d.reject("%s: invalid trace_id %x (want 16 bytes, not all zero)", loc(), traceID)
		return nil
	case len(spanID) != 8 || [8]byte(spanID) == [8]byte{}:
		d.reject("%s: invalid span_id %x (want 8 bytes, not all zero)", loc(), spanID)
		return nil
	case len(parentID) != 0 && len(parentID) != 8:
		d.reject("%s: invalid parent_span_id %x (want 8 bytes or empty)", loc(), parentID)
		return nil
	}
	out.TraceID, out.SpanID = spans.TraceID(traceID), spans.SpanID(spanID)
	if len(parentID) == 8 {
		out.ParentSpanID = spans.SpanID(parentID)
	}
	// Enums are int32 on the wire; as Spans does, out-of-range values
	// become unspecified / unset.
	out.Kind = spans.Kind(int32(kind))
	if out.Kind > spans.KindConsumer {
		out.Kind = spans.KindUnspecified
	}
	out.StatusCode = spans.StatusCode(int32(code))
	if out.StatusCode > spans.StatusError {
		out.StatusCode = spans.StatusUnset
	}
	if out.EndUnixNano < out.StartUnixNano {
		out.EndUnixNano = out.StartUnixNano
	}
	d.dst = append(d.dst, out)
	return nil
}

func (d *wireDecoder) reject(format string, args ...any) {
	if d.rej.Count == 0 {
		d.rej.Message = fmt.Sprintf(format, args...)
	}
	d.rej.Count++
}

func (d *wireDecoder) event(b []byte, path func() string) (spans.Event, error) {
	var e spans.Event
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		var err error
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			x, _ := protowire.ConsumeFixed64(v)
			e.TimeUnixNano = int64(x)
		case num == 2 && typ == protowire.BytesType:
			e.Name, err = d.str(v, func() string { return path() + ".name" })
		case num == 3 && typ == protowire.BytesType:
			var a attrValue
			a, err = d.keyValue(v, func() string { return path() + ".attributes" })
			e.Attrs = append(e.Attrs, a.Attr)
		}
		return err
	})
	return e, err
}

func (d *wireDecoder) link(b []byte, path func() string) (spans.Link, error) {
	var l spans.Link
	var tid, sid []byte
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		var err error
		switch {
		case num == 1 && typ == protowire.BytesType:
			tid = v
		case num == 2 && typ == protowire.BytesType:
			sid = v
		case num == 3 && typ == protowire.BytesType:
			_, err = d.str(v, func() string { return path() + ".trace_state" }) // not stored, but a string field
		case num == 4 && typ == protowire.BytesType:
			var a attrValue
			a, err = d.keyValue(v, func() string { return path() + ".attributes" })
			l.Attrs = append(l.Attrs, a.Attr)
		}
		return err
	})
	copy(l.TraceID[:], tid)
	copy(l.SpanID[:], sid)
	return l, err
}

// attrValue is a decoded attribute; fromList marks an array or map value
// (stored as its JSON text, so never a service name).
type attrValue struct {
	spans.Attr
	fromList bool
}

// keyValue decodes a KeyValue. Values are decoded from the wire, except
// arrays and maps (and a KeyValue carrying its value field more than once,
// which protobuf merges), which go through the generated types and the
// same conversion as Spans.
func (d *wireDecoder) keyValue(b []byte, path func() string) (attrValue, error) {
	var key, value []byte
	values := 0
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			key = v
		case num == 2 && typ == protowire.BytesType:
			value = v
			values++
		}
		return nil
	})
	if err != nil {
		return attrValue{}, err
	}
	k, err := d.str(key, func() string { return path() + ".key" })
	if err != nil {
		return attrValue{}, err
	}
	if values > 1 {
		return d.slowKeyValue(b, k, path)
	}
	a := attrValue{Attr: spans.Attr{Key: k, Type: spans.TypeString}}
	var str []byte
	err = eachField(value, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			a.Type, str = spans.TypeString, v
		case num == 2 && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(v)
			a.Type, a.Bool, str = spans.TypeBool, x != 0, nil
		case num == 3 && typ == protowire.VarintType:
			x, _ := protowire.ConsumeVarint(v)
			a.Type, a.Int, str = spans.TypeInt, int64(x), nil
		case num == 4 && typ == protowire.Fixed64Type:
			x, _ := protowire.ConsumeFixed64(v)
			a.Type, a.Float, str = spans.TypeFloat, math.Float64frombits(x), nil
		case (num == 5 || num == 6) && typ == protowire.BytesType:
			a.fromList = true
		case num == 7 && typ == protowire.BytesType:
			a.Type, str = spans.TypeBytes, v
		case num == 8 && typ == protowire.VarintType: // string_value_strindex: not used by traces
			a.Type, str = spans.TypeString, nil
		}
		return nil
	})
	if err != nil {
		return attrValue{}, err
	}
	if a.fromList {
		return d.slowKeyValue(b, k, path)
	}
	a.Bool, a.Int, a.Float = a.Type == spans.TypeBool && a.Bool, intIf(a.Type == spans.TypeInt, a.Int), floatIf(a.Type == spans.TypeFloat, a.Float)
	switch a.Type {
	case spans.TypeString:
		a.Str, err = d.str(str, func() string { return path() + ".value.string_value" })
	case spans.TypeBytes:
		a.Str = string(str)
	}
	return a, err
}

func intIf(ok bool, v int64) int64 {
	if ok {
		return v
	}
	return 0
}

func floatIf(ok bool, v float64) float64 {
	if ok {
		return v
	}
	return 0
}

// slowKeyValue decodes a KeyValue with the generated types.
func (d *wireDecoder) slowKeyValue(b []byte, key string, path func() string) (attrValue, error) {
	kv := &commonpb.KeyValue{}
	if err := proto.Unmarshal(b, kv); err != nil {
		return attrValue{}, fmt.Errorf("%s: %w", path(), err)
	}
	a := attrValue{Attr: attr(kv)}
	a.Key = key
	switch kv.GetValue().GetValue().(type) {
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		a.fromList = true
	}
	return a, nil
}

// DecodeTraceSpans decodes an OTLP/HTTP or OTLP/gRPC trace export body in
// either encoding into flat spans appended to dst: protobuf with
// DecodeSpans, JSON through DecodeTraces and Spans.
func DecodeTraceSpans(dst []spans.Span, body []byte, enc Encoding) ([]spans.Span, Rejection, error) {
	if enc == Protobuf {
		return DecodeSpans(dst, body)
	}
	req, err := DecodeTraces(body, enc)
	if err != nil {
		return dst, Rejection{}, err
	}
	dst, rej := Spans(dst, req)
	return dst, rej, nil
}
