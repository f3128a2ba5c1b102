package clickhouse

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// spanColumns is the explicit column list of every insert into spans, and the
// column list trace reads select (in the same order as spanRow's values).
const spanColumns = "timestamp, trace_id, span_id, parent_span_id, trace_state, service, name, kind, duration, " +
	"status_code, status_message, attributes, attribute_types, resource, resource_types, scope, scope_version, " +
	"event_times, event_names, event_attributes, link_trace_ids, link_span_ids, link_attributes"

// Typed attributes are stored as text (Attr.String: the form search
// compares), with the type of every non-string attribute in a parallel map
// key → spans.ValueType. The text form round-trips every type: integers in
// decimal, floats in Go's shortest exact form (NaN, +Inf), booleans as
// true/false and bytes as hex.
func encodeAttrs(attrs []spans.Attr) (values, types *chsql.Map) {
	values, types = &chsql.Map{}, &chsql.Map{}
	for _, a := range attrs {
		values.Put(a.Key, a.String())
		if a.Type != spans.TypeString {
			types.Put(a.Key, uint8(a.Type))
		}
	}
	return values, types
}

func decodeAttr(key, text string, typ spans.ValueType) (spans.Attr, error) {
	a := spans.Attr{Key: key, Type: typ}
	var err error
	switch typ {
	case spans.TypeString:
		a.Str = text
	case spans.TypeInt:
		a.Int, err = strconv.ParseInt(text, 10, 64)
	case spans.TypeFloat:
		a.Float, err = strconv.ParseFloat(text, 64)
	case spans.TypeBool:
		a.Bool, err = strconv.ParseBool(text)
	case spans.TypeBytes:
		var b []byte
		b, err = hex.DecodeString(text)
		a.Str = string(b)
	default:
		err = fmt.Errorf("unknown type %d", typ)
	}
	if err != nil {
		return a, fmt.Errorf("attribute %q: %w", key, err)
	}
	return a, nil
}

func decodeAttrs(values, types *chsql.Map) ([]spans.Attr, error) {
	if values.Len() == 0 {
		return nil, nil
	}
	typeOf := make(map[string]spans.ValueType, types.Len())
	for i, k := range types.Keys {
		ks, _ := k.(string)
		t, _ := types.Values[i].(uint8)
		typeOf[ks] = spans.ValueType(t)
	}
	out := make([]spans.Attr, 0, values.Len())
	for i, k := range values.Keys {
		ks, _ := k.(string)
		vs, _ := values.Values[i].(string)
		a, err := decodeAttr(ks, vs, typeOf[ks])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// jsonAttr is one attribute of an event or link, stored as a JSON array of
// these in one String per event/link ("" when it has none).
type jsonAttr struct {
	K string          `json:"k"`
	T spans.ValueType `json:"t,omitempty"`
	V string          `json:"v"`
}

func encodeJSONAttrs(attrs []spans.Attr) string {
	if len(attrs) == 0 {
		return ""
	}
	ja := make([]jsonAttr, len(attrs))
	for i, a := range attrs {
		ja[i] = jsonAttr{K: a.Key, T: a.Type, V: a.String()}
	}
	b, _ := json.Marshal(ja) // strings only: cannot fail
	return string(b)
}

func decodeJSONAttrs(s string) ([]spans.Attr, error) {
	if s == "" {
		return nil, nil
	}
	var ja []jsonAttr
	if err := json.Unmarshal([]byte(s), &ja); err != nil {
		return nil, fmt.Errorf("event/link attributes: %w", err)
	}
	out := make([]spans.Attr, len(ja))
	for i, a := range ja {
		var err error
		if out[i], err = decodeAttr(a.K, a.V, a.T); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// spanRow is the insert row of one span, in spanColumns order.
func spanRow(sp *spans.Span) []any {
	attrs, attrTypes := encodeAttrs(sp.Attrs)
	res, resTypes := encodeAttrs(sp.Resource)
	evTimes := make([]time.Time, len(sp.Events))
	evNames := make([]string, len(sp.Events))
	evAttrs := make([]string, len(sp.Events))
	for i, e := range sp.Events {
		evTimes[i] = time.Unix(0, e.TimeUnixNano)
		evNames[i] = e.Name
		evAttrs[i] = encodeJSONAttrs(e.Attrs)
	}
	lnTraces := make([]string, len(sp.Links))
	lnSpans := make([]string, len(sp.Links))
	lnAttrs := make([]string, len(sp.Links))
	for i, l := range sp.Links {
		lnTraces[i] = string(l.TraceID[:])
		lnSpans[i] = string(l.SpanID[:])
		lnAttrs[i] = encodeJSONAttrs(l.Attrs)
	}
	return []any{
		time.Unix(0, sp.StartUnixNano),
		string(sp.TraceID[:]),
		string(sp.SpanID[:]),
		string(sp.ParentSpanID[:]),
		sp.TraceState,
		sp.Service,
		sp.Name,
		uint8(sp.Kind),
		sp.EndUnixNano - sp.StartUnixNano,
		uint8(sp.StatusCode),
		sp.StatusMessage,
		attrs, attrTypes, res, resTypes,
		sp.Scope,
		sp.ScopeVersion,
		evTimes, evNames, evAttrs,
		lnTraces, lnSpans, lnAttrs,
	}
}

// spanScan holds the scan destinations of one spanColumns row.
type spanScan struct {
	ts                         time.Time
	traceID, spanID, parentID  string
	traceState, service, name  string
	kind, statusCode           uint8
	duration                   int64
	statusMessage              string
	attrs, attrTypes           chsql.Map
	res, resTypes              chsql.Map
	scope, scopeVersion        string
	evTimes                    []time.Time
	evNames, evAttrs           []string
	lnTraces, lnSpans, lnAttrs []string
}

func (r *spanScan) dest() []any {
	*r = spanScan{}
	return []any{&r.ts, &r.traceID, &r.spanID, &r.parentID, &r.traceState, &r.service, &r.name, &r.kind,
		&r.duration, &r.statusCode, &r.statusMessage, &r.attrs, &r.attrTypes, &r.res, &r.resTypes,
		&r.scope, &r.scopeVersion, &r.evTimes, &r.evNames, &r.evAttrs, &r.lnTraces, &r.lnSpans, &r.lnAttrs}
}

func (r *spanScan) span() (spans.Span, error) {
	sp := spans.Span{
		TraceState:    r.traceState,
		Service:       r.service,
		Name:          r.name,
		Kind:          spans.Kind(r.kind),
		StartUnixNano: r.ts.UnixNano(),
		StatusCode:    spans.StatusCode(r.statusCode),
		StatusMessage: r.statusMessage,
		Scope:         r.scope,
		ScopeVersion:  r.scopeVersion,
	}
	sp.EndUnixNano = sp.StartUnixNano + r.duration
	copy(sp.TraceID[:], r.traceID)
	copy(sp.SpanID[:], r.spanID)
	copy(sp.ParentSpanID[:], r.parentID)
	var err error
	if sp.Attrs, err = decodeAttrs(&r.attrs, &r.attrTypes); err != nil {
		return sp, err
	}
	if sp.Resource, err = decodeAttrs(&r.res, &r.resTypes); err != nil {
		return sp, err
	}
	if len(r.evTimes) != len(r.evNames) || len(r.evTimes) != len(r.evAttrs) {
		return sp, fmt.Errorf("span %s: event arrays of different lengths", sp.SpanID)
	}
	for i := range r.evTimes {
		e := spans.Event{TimeUnixNano: r.evTimes[i].UnixNano(), Name: r.evNames[i]}
		if e.Attrs, err = decodeJSONAttrs(r.evAttrs[i]); err != nil {
			return sp, err
		}
		sp.Events = append(sp.Events, e)
	}
	if len(r.lnTraces) != len(r.lnSpans) || len(r.lnTraces) != len(r.lnAttrs) {
		return sp, fmt.Errorf("span %s: link arrays of different lengths", sp.SpanID)
	}
	for i := range r.lnTraces {
		var l spans.Link
		copy(l.TraceID[:], r.lnTraces[i])
		copy(l.SpanID[:], r.lnSpans[i])
		if l.Attrs, err = decodeJSONAttrs(r.lnAttrs[i]); err != nil {
			return sp, err
		}
		sp.Links = append(sp.Links, l)
	}
	return sp, nil
}
