package jaegerapi

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/meshscope/meshscope/collector/spans"
)

// The JSON model of the Jaeger query API (jaeger/model/json), as the Jaeger
// UI and Grafana's Jaeger data source decode it.

// Response is the envelope of every answer.
type Response struct {
	Data   any     `json:"data"`
	Total  int     `json:"total"`
	Limit  int     `json:"limit"`
	Offset int     `json:"offset"`
	Errors []Error `json:"errors"`
}

// Error is one entry of Response.Errors.
type Error struct {
	Code    int    `json:"code,omitempty"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID,omitempty"`
}

// Trace is a trace with its processes.
type Trace struct {
	TraceID   string             `json:"traceID"`
	Spans     []Span             `json:"spans"`
	Processes map[string]Process `json:"processes"`
	Warnings  []string           `json:"warnings"`
}

// Span is one span.
type Span struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	Flags         uint32      `json:"flags,omitempty"`
	OperationName string      `json:"operationName"`
	References    []Reference `json:"references"`
	StartTime     int64       `json:"startTime"` // µs since the epoch
	Duration      int64       `json:"duration"`  // µs
	Tags          []KeyValue  `json:"tags"`
	Logs          []Log       `json:"logs"`
	ProcessID     string      `json:"processID"`
	Warnings      []string    `json:"warnings"`
}

// Reference types.
const (
	ChildOf     = "CHILD_OF"
	FollowsFrom = "FOLLOWS_FROM"
)

// Reference links a span to its parent (CHILD_OF) or to a linked span
// (FOLLOWS_FROM).
type Reference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

// Process is the service (and its resource attributes) that emitted spans.
type Process struct {
	ServiceName string     `json:"serviceName"`
	Tags        []KeyValue `json:"tags"`
}

// Log is a timestamped span event.
type Log struct {
	Timestamp int64      `json:"timestamp"` // µs since the epoch
	Fields    []KeyValue `json:"fields"`
}

// Value types of KeyValue.
const (
	TypeString  = "string"
	TypeBool    = "bool"
	TypeInt64   = "int64"
	TypeFloat64 = "float64"
	TypeBinary  = "binary"
)

// KeyValue is a typed tag. Binary values are base64 in JSON, as in Jaeger.
type KeyValue struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Operation is an entry of /api/operations.
type Operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

// DependencyLink is an entry of /api/dependencies.
type DependencyLink struct {
	Parent    string `json:"parent"`
	Child     string `json:"child"`
	CallCount uint64 `json:"callCount"`
}

func keyValue(a spans.Attr) KeyValue {
	switch a.Type {
	case spans.TypeInt:
		return KeyValue{Key: a.Key, Type: TypeInt64, Value: a.Int}
	case spans.TypeFloat:
		return KeyValue{Key: a.Key, Type: TypeFloat64, Value: a.Float}
	case spans.TypeBool:
		return KeyValue{Key: a.Key, Type: TypeBool, Value: a.Bool}
	case spans.TypeBytes:
		return KeyValue{Key: a.Key, Type: TypeBinary, Value: []byte(a.Str)}
	default:
		return KeyValue{Key: a.Key, Type: TypeString, Value: a.Str}
	}
}

func keyValues(as []spans.Attr) []KeyValue {
	out := make([]KeyValue, 0, len(as))
	for _, a := range as {
		out = append(out, keyValue(a))
	}
	return out
}

func str(k, v string) KeyValue { return KeyValue{Key: k, Type: TypeString, Value: v} }

// micros converts Unix nanoseconds to Jaeger's microseconds.
func micros(ns int64) int64 { return ns / 1000 }

// SpanKind returns the Jaeger spanKind text of k ("" for unspecified).
func SpanKind(k spans.Kind) string {
	if k == spans.KindUnspecified {
		return ""
	}
	return k.String()
}

// ConvertTrace turns the spans of one trace into Jaeger's shape, translating
// as Jaeger's OTLP receiver does: span kind, status and scope become tags
// (span.kind, otel.status_code, error=true, otel.status_description,
// otel.scope.name/version, w3c.tracestate), events become logs (with an
// "event" field), the parent becomes a CHILD_OF reference and links become
// FOLLOWS_FROM references. Each distinct service+resource becomes a process
// p1, p2, ... in span order. Spans are ordered by start time.
func ConvertTrace(in []spans.Span) Trace {
	ss := slices.Clone(in)
	slices.SortStableFunc(ss, func(a, b spans.Span) int {
		if c := cmp.Compare(a.StartUnixNano, b.StartUnixNano); c != 0 {
			return c
		}
		return strings.Compare(a.SpanID.String(), b.SpanID.String())
	})
	t := Trace{Spans: make([]Span, 0, len(ss)), Processes: map[string]Process{}}
	if len(ss) > 0 {
		t.TraceID = ss[0].TraceID.String()
	}
	procKeys := map[string]string{}
	warnings := SpanWarnings(ss)
	for i, s := range ss {
		pk := processKey(&s)
		pid, ok := procKeys[pk]
		if !ok {
			pid = "p" + strconv.Itoa(len(procKeys)+1)
			procKeys[pk] = pid
			t.Processes[pid] = Process{ServiceName: s.Service, Tags: keyValues(s.Resource)}
		}
		js := convertSpan(&s, pid)
		js.Warnings = warnings[i]
		t.Spans = append(t.Spans, js)
	}
	return t
}

// Warnings Jaeger's trace adjusters attach to spans (its clock-skew
// adjuster's texts).
const (
	warningDuplicateSpanID = "duplicate span IDs; skipping clock skew adjustment"
	warningMissingParent   = "parent span ID=%s is not in the trace; skipping clock skew adjustment"
)

// SpanWarnings returns the warnings of each span of one trace, as Jaeger
// attaches them: a span whose ID an earlier span already has, and a span
// whose parent is not in the trace (an orphan: its parent was lost, not yet
// received, or sampled out), are named; nil for a span without warnings.
func SpanWarnings(ss []spans.Span) [][]string {
	out := make([][]string, len(ss))
	ids := make(map[spans.SpanID]bool, len(ss))
	for i := range ss {
		if ids[ss[i].SpanID] {
			out[i] = append(out[i], warningDuplicateSpanID)
		}
		ids[ss[i].SpanID] = true
	}
	for i := range ss {
		if p := ss[i].ParentSpanID; !p.IsZero() && !ids[p] {
			out[i] = append(out[i], fmt.Sprintf(warningMissingParent, p))
		}
	}
	return out
}

func processKey(s *spans.Span) string {
	var b strings.Builder
	b.WriteString(s.Service)
	for _, a := range s.Resource {
		b.WriteByte(0)
		b.WriteString(a.Key)
		b.WriteByte(1)
		b.WriteString(strconv.Itoa(int(a.Type)))
		b.WriteString(a.String())
	}
	return b.String()
}

func convertSpan(s *spans.Span, pid string) Span {
	tid := s.TraceID.String()
	js := Span{
		TraceID:       tid,
		SpanID:        s.SpanID.String(),
		OperationName: s.Name,
		References:    []Reference{},
		StartTime:     micros(s.StartUnixNano),
		Duration:      micros(s.EndUnixNano) - micros(s.StartUnixNano),
		Tags:          keyValues(s.Attrs),
		Logs:          []Log{},
		ProcessID:     pid,
	}
	if !s.ParentSpanID.IsZero() {
		js.References = append(js.References, Reference{RefType: ChildOf, TraceID: tid, SpanID: s.ParentSpanID.String()})
	}
	for _, l := range s.Links {
		js.References = append(js.References, Reference{RefType: FollowsFrom, TraceID: l.TraceID.String(), SpanID: l.SpanID.String()})
	}
	if s.Scope != "" {
		js.Tags = append(js.Tags, str("otel.scope.name", s.Scope))
	}
	if s.ScopeVersion != "" {
		js.Tags = append(js.Tags, str("otel.scope.version", s.ScopeVersion))
	}
	if k := SpanKind(s.Kind); k != "" {
		js.Tags = append(js.Tags, str("span.kind", k))
	}
	switch s.StatusCode {
	case spans.StatusOK:
		js.Tags = append(js.Tags, str("otel.status_code", "OK"))
	case spans.StatusError:
		js.Tags = append(js.Tags, KeyValue{Key: "error", Type: TypeBool, Value: true}, str("otel.status_code", "ERROR"))
	}
	if s.StatusMessage != "" {
		js.Tags = append(js.Tags, str("otel.status_description", s.StatusMessage))
	}
	if s.TraceState != "" {
		js.Tags = append(js.Tags, str("w3c.tracestate", s.TraceState))
	}
	for _, e := range s.Events {
		fields := []KeyValue{str("event", e.Name)}
		fields = append(fields, keyValues(e.Attrs)...)
		js.Logs = append(js.Logs, Log{Timestamp: micros(e.TimeUnixNano), Fields: fields})
	}
	return js
}
