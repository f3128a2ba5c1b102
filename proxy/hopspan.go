package proxy

import (
	"encoding/binary"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The span of each request hop is recorded straight into the bounded export
// queue as a hopSpan instead of through the OTel SDK's span machinery (span
// processors, locked attribute slices, de-duplication maps and a snapshot
// copy per span): the hop span has a fixed shape, so it is built in one
// pooled struct and handed to the exporter as an sdktrace.ReadOnlySpan.
// Trace and span IDs, sampling (ParentBased(TraceIDRatioBased)) and the
// span context carried to the next hop follow the SDK exactly; the trace
// context types are go.opentelemetry.io/otel/trace's.

// scopeName is the instrumentation scope of the proxy's spans.
const scopeName = "meshscope-proxy"

// hopSampler decides like sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)).
type hopSampler struct {
	always, never bool
	upperBound    uint64
}

func newHopSampler(ratio float64) hopSampler {
	switch {
	case ratio >= 1:
		return hopSampler{always: true}
	case ratio <= 0:
		return hopSampler{never: true}
	}
	return hopSampler{upperBound: uint64(ratio * (1 << 63))}
}

func (s hopSampler) sampled(parent trace.SpanContext, tid trace.TraceID) bool {
	if parent.IsValid() {
		return parent.IsSampled()
	}
	switch {
	case s.always:
		return true
	case s.never:
		return false
	}
	return binary.BigEndian.Uint64(tid[8:16])>>1 < s.upperBound
}

// newHopSpanContext returns the span context of a new span under parent
// (the remote caller's, possibly invalid), as the SDK builds it: the
// parent's trace ID or a new one, a new span ID, the parent's trace state,
// and the parent's flags with the sampled bit set by the sampler.
func newHopSpanContext(parent trace.SpanContext, s hopSampler) trace.SpanContext {
	var tid trace.TraceID
	if parent.TraceID().IsValid() {
		tid = parent.TraceID()
	} else {
		for !tid.IsValid() {
			binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
			binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
		}
	}
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	flags := parent.TraceFlags() &^ trace.FlagsSampled
	if s.sampled(parent, tid) {
		flags |= trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: flags, TraceState: parent.TraceState(),
	})
}

// hopAttr is one of the string attributes most hop spans carry, kept in
// a field of its own instead of an attribute.KeyValue: a span is written
// by a request and read by the exporter a batch later, both times with
// cold caches, so its size is what they pay for.
type hopAttr uint8

const (
	attrMethod        hopAttr = iota // http.request.method
	attrPath                         // url.path
	attrScheme                       // url.scheme
	attrServerAddress                // server.address
	attrProtoVersion                 // network.protocol.version
	attrSrcService                   // mesh.source.service
	attrSrcVersion                   // mesh.source.version
	attrDstService                   // mesh.destination.service
	attrDstVersion                   // mesh.destination.version
	attrDirection                    // mesh.direction
	attrProtocol                     // mesh.protocol
	attrRoute                        // http.route
	attrUserAgent                    // user_agent.original
	attrClientAddress                // client.address
	numHopAttrs
)

// key is the attribute's name.
func (a hopAttr) key() string {
	switch a {
	case attrMethod:
		return "http.request.method"
	case attrPath:
		return "url.path"
	case attrScheme:
		return "url.scheme"
	case attrServerAddress:
		return "server.address"
	case attrProtoVersion:
		return "network.protocol.version"
	case attrSrcService:
		return "mesh.source.service"
	case attrSrcVersion:
		return "mesh.source.version"
	case attrDstService:
		return "mesh.destination.service"
	case attrDstVersion:
		return "mesh.destination.version"
	case attrDirection:
		return "mesh.direction"
	case attrProtocol:
		return "mesh.protocol"
	case attrRoute:
		return "http.route"
	case attrUserAgent:
		return "user_agent.original"
	case attrClientAddress:
		return "client.address"
	}
	return ""
}

// hopAttrOf returns the hopAttr named key.
func hopAttrOf(key attribute.Key) (hopAttr, bool) {
	for a := range numHopAttrs {
		if a.key() == string(key) {
			return a, true
		}
	}
	return 0, false
}

// maxExtraAttrs is the most other attributes a hop span carries (status,
// errors, mTLS, policy attempts).
const maxExtraAttrs = 8

// hopSpan is one finished (or in-progress) hop span. It implements
// sdktrace.ReadOnlySpan for the exporter; the embedded interface is always
// nil and only completes the interface's unexported method. Its
// attributes are the hopAttrs it has, in hopAttr order, then the others
// in the order they were added; every hopAttr a span has is set before
// any other attribute is added.
type hopSpan struct {
	hopSpanFields
	extra [maxExtraAttrs]attribute.KeyValue // the other attributes: extra[:n]
}

// hopSpanFields is the part of a hopSpan cleared as a whole for reuse.
type hopSpanFields struct {
	sdktrace.ReadOnlySpan

	sc, parent trace.SpanContext
	name       string
	kind       trace.SpanKind
	start, end time.Time
	status     sdktrace.Status
	events     []sdktrace.Event // policy decisions
	has        uint16           // bit a: strs[a] is set
	n          int              // extra attributes
	strs       [numHopAttrs]string
}

var hopSpanPool = sync.Pool{New: func() any { return new(hopSpan) }}

func newHopSpan() *hopSpan { return hopSpanPool.Get().(*hopSpan) }

// free returns s to the pool; s must not be used afterwards. Only what
// was used is cleared: clearing the whole span would load every line.
func (s *hopSpan) free() {
	clear(s.extra[:s.n])
	s.hopSpanFields = hopSpanFields{}
	hopSpanPool.Put(s)
}

// setStr sets a string attribute of the fixed set.
func (s *hopSpan) setStr(a hopAttr, v string) {
	s.strs[a] = v
	s.has |= 1 << a
}

// add appends attributes (beyond maxExtraAttrs they are dropped).
func (s *hopSpan) add(kvs ...attribute.KeyValue) {
	for _, kv := range kvs {
		if a, ok := hopAttrOf(kv.Key); ok && kv.Value.Type() == attribute.STRING {
			s.setStr(a, kv.Value.AsString())
			continue
		}
		if s.n < len(s.extra) {
			s.extra[s.n] = kv
			s.n++
		}
	}
}

func (s *hopSpan) setError(description string) {
	s.status = sdktrace.Status{Code: codes.Error, Description: description}
}

func (s *hopSpan) Name() string                     { return s.name }
func (s *hopSpan) SpanContext() trace.SpanContext   { return s.sc }
func (s *hopSpan) Parent() trace.SpanContext        { return s.parent }
func (s *hopSpan) SpanKind() trace.SpanKind         { return s.kind }
func (s *hopSpan) StartTime() time.Time             { return s.start }
func (s *hopSpan) EndTime() time.Time               { return s.end }
func (s *hopSpan) Attributes() []attribute.KeyValue { return s.appendAttributes(nil) }
func (s *hopSpan) Links() []sdktrace.Link           { return nil }
func (s *hopSpan) Events() []sdktrace.Event         { return s.events }
func (s *hopSpan) Status() sdktrace.Status          { return s.status }
func (s *hopSpan) InstrumentationScope() instrumentation.Scope {
	return instrumentation.Scope{Name: scopeName}
}

//nolint:staticcheck // part of sdktrace.ReadOnlySpan
func (s *hopSpan) InstrumentationLibrary() instrumentation.Library {
	return instrumentation.Library{Name: scopeName}
}
func (s *hopSpan) Resource() *resource.Resource { return resource.Empty() }
func (s *hopSpan) DroppedAttributes() int       { return 0 }
func (s *hopSpan) DroppedLinks() int            { return 0 }
func (s *hopSpan) DroppedEvents() int           { return 0 }
func (s *hopSpan) ChildSpanCount() int          { return 0 }

// appendAttributes appends the span's attributes, in their order, to dst.
func (s *hopSpan) appendAttributes(dst []attribute.KeyValue) []attribute.KeyValue {
	for a := range numHopAttrs {
		if s.has&(1<<a) != 0 {
			dst = append(dst, attribute.String(a.key(), s.strs[a]))
		}
	}
	return append(dst, s.extra[:s.n]...)
}
