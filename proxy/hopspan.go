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

// maxHopAttrs is the most attributes a hop span carries.
const maxHopAttrs = 24

// hopSpan is one finished (or in-progress) hop span. It implements
// sdktrace.ReadOnlySpan for the exporter; the embedded interface is always
// nil and only completes the interface's unexported method.
type hopSpan struct {
	sdktrace.ReadOnlySpan

	sc, parent trace.SpanContext
	name       string
	kind       trace.SpanKind
	start, end time.Time
	status     sdktrace.Status
	events     []sdktrace.Event // policy decisions
	n          int
	// Last: the exporter reads attrs[:n] and every field above, which so
	// share cache lines (the span is encoded on another core, a while
	// after it was recorded).
	attrs [maxHopAttrs]attribute.KeyValue
}

var hopSpanPool = sync.Pool{New: func() any { return new(hopSpan) }}

func newHopSpan() *hopSpan { return hopSpanPool.Get().(*hopSpan) }

// free returns s to the pool; s must not be used afterwards.
func (s *hopSpan) free() {
	*s = hopSpan{}
	hopSpanPool.Put(s)
}

// add appends attributes (beyond maxHopAttrs they are dropped).
func (s *hopSpan) add(kvs ...attribute.KeyValue) {
	s.n += copy(s.attrs[s.n:], kvs)
}

// set replaces the attribute with kv's key, or adds it.
func (s *hopSpan) set(kv attribute.KeyValue) {
	for i := range s.attrs[:s.n] {
		if s.attrs[i].Key == kv.Key {
			s.attrs[i] = kv
			return
		}
	}
	s.add(kv)
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
func (s *hopSpan) Attributes() []attribute.KeyValue { return s.attrs[:s.n] }
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
