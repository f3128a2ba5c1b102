package spans

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// TraceID is a W3C / OTLP 16-byte trace identifier.
type TraceID [16]byte

// SpanID is a W3C / OTLP 8-byte span identifier.
type SpanID [8]byte

// String returns the lower-case hex form used by OTLP JSON, W3C traceparent
// and the Jaeger API.
func (t TraceID) String() string { return hex.EncodeToString(t[:]) }

// IsZero reports whether t is the invalid all-zero trace id.
func (t TraceID) IsZero() bool { return t == TraceID{} }

// String returns the lower-case hex form of s.
func (s SpanID) String() string { return hex.EncodeToString(s[:]) }

// IsZero reports whether s is the invalid all-zero span id (used for "no parent").
func (s SpanID) IsZero() bool { return s == SpanID{} }

// ParseTraceID parses 32 hex digits. Jaeger clients may send shorter ids
// (leading zeros dropped); those are left-padded.
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("trace id %q: want 1 to 32 hex digits", s)
	}
	if len(s)%2 == 1 || len(s) < 32 {
		s = fmt.Sprintf("%032s", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("trace id %q: %w", s, err)
	}
	return id, nil
}

// ParseSpanID parses 16 hex digits (shorter input is left-padded).
func ParseSpanID(s string) (SpanID, error) {
	var id SpanID
	if len(s) == 0 || len(s) > 16 {
		return id, fmt.Errorf("span id %q: want 1 to 16 hex digits", s)
	}
	if len(s) < 16 {
		s = fmt.Sprintf("%016s", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("span id %q: %w", s, err)
	}
	return id, nil
}

// Kind is the span kind, numbered as in OTLP.
type Kind uint8

// Span kinds, numbered as OTLP's SpanKind.
const (
	KindUnspecified Kind = 0
	KindInternal    Kind = 1
	KindServer      Kind = 2
	KindClient      Kind = 3
	KindProducer    Kind = 4
	KindConsumer    Kind = 5
)

var kindNames = [...]string{"unspecified", "internal", "server", "client", "producer", "consumer"}

// String returns the lower-case kind name as Jaeger's span.kind tag spells it.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unspecified"
}

// ParseKind accepts the names String returns ("server", "client", ...).
func ParseKind(s string) (Kind, error) {
	for i, n := range kindNames {
		if n == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("span kind %q: want one of %v", s, kindNames[:])
}

// StatusCode is the span status, numbered as in OTLP.
type StatusCode uint8

// Span status codes, numbered as OTLP's Status.StatusCode.
const (
	StatusUnset StatusCode = 0
	StatusOK    StatusCode = 1
	StatusError StatusCode = 2
)

// ValueType says which field of an Attr holds its value.
type ValueType uint8

// Attribute value types. Arrays and maps from OTLP are stored as their JSON
// text with type String.
const (
	TypeString ValueType = iota
	TypeInt
	TypeFloat
	TypeBool
	TypeBytes
)

// Attr is one typed key/value attribute.
type Attr struct {
	Key   string
	Type  ValueType
	Str   string // TypeString, and TypeBytes (raw bytes as a string)
	Int   int64  // TypeInt
	Float float64
	Bool  bool
}

// String renders the value as text (how tag filters compare it).
func (a Attr) String() string {
	switch a.Type {
	case TypeInt:
		return fmt.Sprint(a.Int)
	case TypeFloat:
		return fmt.Sprint(a.Float)
	case TypeBool:
		return fmt.Sprint(a.Bool)
	case TypeBytes:
		return hex.EncodeToString([]byte(a.Str))
	default:
		return a.Str
	}
}

// StringAttr, IntAttr, FloatAttr and BoolAttr build attributes.
func StringAttr(k, v string) Attr { return Attr{Key: k, Type: TypeString, Str: v} }

// IntAttr builds an integer attribute.
func IntAttr(k string, v int64) Attr { return Attr{Key: k, Type: TypeInt, Int: v} }

// FloatAttr builds a float attribute.
func FloatAttr(k string, v float64) Attr { return Attr{Key: k, Type: TypeFloat, Float: v} }

// BoolAttr builds a boolean attribute.
func BoolAttr(k string, v bool) Attr { return Attr{Key: k, Type: TypeBool, Bool: v} }

// Event is a timestamped annotation on a span (OTLP Span.Event).
type Event struct {
	TimeUnixNano int64
	Name         string
	Attrs        []Attr
}

// Link points at another span (OTLP Span.Link).
type Link struct {
	TraceID TraceID
	SpanID  SpanID
	Attrs   []Attr
}

// Span is one finished span. Times are Unix nanoseconds.
type Span struct {
	TraceID       TraceID
	SpanID        SpanID
	ParentSpanID  SpanID // zero for a root span
	TraceState    string
	Service       string // resource attribute service.name ("unknown_service" if absent)
	Name          string // operation
	Kind          Kind
	StartUnixNano int64
	EndUnixNano   int64
	StatusCode    StatusCode
	StatusMessage string
	Attrs         []Attr // span attributes
	Resource      []Attr // resource attributes other than service.name
	Scope         string // instrumentation scope name
	ScopeVersion  string
	Events        []Event
	Links         []Link
}

// Duration is End-Start.
func (s *Span) Duration() time.Duration { return time.Duration(s.EndUnixNano - s.StartUnixNano) }

// Start returns the start time.
func (s *Span) Start() time.Time { return time.Unix(0, s.StartUnixNano) }

// IsError reports whether the span's status is Error.
func (s *Span) IsError() bool { return s.StatusCode == StatusError }

// Attr returns the span attribute named key, then the resource attribute.
func (s *Span) Attr(key string) (Attr, bool) {
	for _, a := range s.Attrs {
		if a.Key == key {
			return a, true
		}
	}
	for _, a := range s.Resource {
		if a.Key == key {
			return a, true
		}
	}
	return Attr{}, false
}

// PeerService names the service a CLIENT span calls, or "" (any other kind,
// or no usable peer): the mesh proxy's mesh.destination.service (unless
// unknown or external), else peer.service, else server.address (or
// net.peer.name when that is empty) when it is a bare service name (no dot,
// no colon, not localhost: not an IP address or an outside host). Only span
// attributes count. Trace stores list such peers as services and find the
// traces calling them; the ClickHouse store computes the same rule in SQL.
func (s *Span) PeerService() string {
	if s.Kind != KindClient {
		return ""
	}
	attr := func(key string) string {
		for _, a := range s.Attrs {
			if a.Key == key {
				return a.String()
			}
		}
		return ""
	}
	if v := attr("mesh.destination.service"); v != "" && v != "unknown" && v != "external" {
		return v
	}
	if v := attr("peer.service"); v != "" {
		return v
	}
	host := attr("server.address")
	if host == "" {
		host = attr("net.peer.name")
	}
	if host == "" || host == "localhost" || strings.ContainsAny(host, ".:") {
		return ""
	}
	return host
}
