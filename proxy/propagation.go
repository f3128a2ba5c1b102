package proxy

import (
	"context"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// meshStateKey is the W3C tracestate member through which an outbound proxy
// tells the next hop's inbound proxy who is calling: meshscope=SERVICE/VERSION.
const meshStateKey = "meshscope"

// b3Format records which B3 header form a request carried, so the proxy
// answers in the same form.
type b3Format uint8

const (
	b3None b3Format = iota
	b3Single
	b3Multi
)

var w3c = propagation.TraceContext{}

// extractTrace returns ctx carrying the remote span context of h: W3C
// traceparent first, else B3 single (b3), else B3 multi (X-B3-*).
func extractTrace(ctx context.Context, h http.Header) (context.Context, b3Format) {
	format := b3None
	if _, ok := h["B3"]; ok {
		format = b3Single
	} else if _, ok := h["X-B3-Traceid"]; ok {
		format = b3Multi
	}
	if _, ok := h["Traceparent"]; ok {
		ctx = w3c.Extract(ctx, propagation.HeaderCarrier(h))
		if trace.SpanContextFromContext(ctx).IsValid() {
			return ctx, format
		}
	}
	var sc trace.SpanContext
	switch format {
	case b3Single:
		sc = parseB3Single(h.Get("B3"))
	case b3Multi:
		sc = parseB3Multi(h)
	}
	if sc.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	return ctx, format
}

// injectTrace writes sc as W3C headers, plus B3 in the form the request
// came with.
func injectTrace(ctx context.Context, h http.Header, format b3Format) {
	injectTraceContext(trace.SpanContextFromContext(ctx), h, format)
}

// injectTraceContext writes sc as W3C headers (exactly as
// propagation.TraceContext.Inject does), plus B3 in the form the request
// came with.
func injectTraceContext(sc trace.SpanContext, h http.Header, format b3Format) {
	if !sc.IsValid() {
		return
	}
	if ts := sc.TraceState().String(); ts != "" {
		h["Tracestate"] = []string{ts}
	}
	// Only the spec-defined flags: sampled (0x01) and random (0x02).
	flags := sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom)
	var tp [55]byte // "00-" 32 "-" 16 "-" 2
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(tp[:], "00-")
	hex.Encode(tp[3:35], tid[:])
	tp[35] = '-'
	hex.Encode(tp[36:52], sid[:])
	tp[52] = '-'
	hex.Encode(tp[53:55], []byte{byte(flags)})
	if v := h["Traceparent"]; len(v) == 1 {
		v[0] = string(tp[:]) // replaced in place: no new slice
	} else {
		h["Traceparent"] = []string{string(tp[:])}
	}
	switch format {
	case b3Single:
		h.Set("B3", formatB3Single(sc))
	case b3Multi:
		h.Del("X-B3-Parentspanid")
		h.Set("X-B3-Traceid", sc.TraceID().String())
		h.Set("X-B3-Spanid", sc.SpanID().String())
		if sc.IsSampled() {
			h.Set("X-B3-Sampled", "1")
		} else {
			h.Set("X-B3-Sampled", "0")
		}
		h.Del("X-B3-Flags")
	}
}

func formatB3Single(sc trace.SpanContext) string {
	s := "0"
	if sc.IsSampled() {
		s = "1"
	}
	return sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + s
}

func parseTraceID(s string) (trace.TraceID, bool) {
	var id trace.TraceID
	switch len(s) {
	case 32:
	case 16: // 64-bit B3 trace id: left-pad
		s = "0000000000000000" + s
	default:
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || !id.IsValid() {
		return trace.TraceID{}, false
	}
	return id, true
}

func parseSpanID(s string) (trace.SpanID, bool) {
	var id trace.SpanID
	if len(s) != 16 {
		return id, false
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil || !id.IsValid() {
		return trace.SpanID{}, false
	}
	return id, true
}

// parseB3Single parses "b3: {TraceId}-{SpanId}[-{Sampled}[-{ParentSpanId}]]".
// A bare sampling decision ("0", "1", "d") carries no span context.
func parseB3Single(v string) trace.SpanContext {
	parts := strings.SplitN(strings.TrimSpace(v), "-", 4)
	if len(parts) < 2 {
		return trace.SpanContext{}
	}
	tid, ok1 := parseTraceID(strings.ToLower(parts[0]))
	sid, ok2 := parseSpanID(strings.ToLower(parts[1]))
	if !ok1 || !ok2 {
		return trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true}
	if len(parts) >= 3 {
		switch parts[2] {
		case "1", "d":
			cfg.TraceFlags = trace.FlagsSampled
		case "0":
		default:
			return trace.SpanContext{}
		}
	} else {
		cfg.TraceFlags = trace.FlagsSampled // deferred: record
	}
	return trace.NewSpanContext(cfg)
}

// parseB3Multi parses X-B3-TraceId, X-B3-SpanId, X-B3-Sampled, X-B3-Flags.
func parseB3Multi(h http.Header) trace.SpanContext {
	tid, ok1 := parseTraceID(strings.ToLower(h.Get("X-B3-Traceid")))
	sid, ok2 := parseSpanID(strings.ToLower(h.Get("X-B3-Spanid")))
	if !ok1 || !ok2 {
		return trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, Remote: true, TraceFlags: trace.FlagsSampled}
	switch s := h.Get("X-B3-Sampled"); s {
	case "0", "false":
		cfg.TraceFlags = 0
	}
	if h.Get("X-B3-Flags") == "1" {
		cfg.TraceFlags = trace.FlagsSampled
	}
	return trace.NewSpanContext(cfg)
}

// setMeshState puts meshscope=member first in h's tracestate, replacing any
// older meshscope member. It only acts when h carries a traceparent, since a
// tracestate without one is ignored by every tracer.
func setMeshState(h http.Header, member string) {
	setMeshStateValue(h, member, nil)
}

// setMeshStateValue is setMeshState with memberOnly, when not nil, a
// prebuilt []string{member} used (shared, never modified) when h has no
// tracestate yet.
func setMeshStateValue(h http.Header, member string, memberOnly []string) {
	if _, ok := h["Traceparent"]; !ok {
		return
	}
	old := h["Tracestate"]
	if len(old) == 0 {
		if memberOnly == nil {
			memberOnly = []string{member}
		}
		h["Tracestate"] = memberOnly
		return
	}
	var b strings.Builder
	b.WriteString(member)
	n := 1
	for _, line := range old {
		for m := range strings.SplitSeq(line, ",") {
			m = strings.TrimSpace(m)
			if m == "" || strings.HasPrefix(m, meshStateKey+"=") || n >= 32 {
				continue
			}
			b.WriteByte(',')
			b.WriteString(m)
			n++
		}
	}
	h["Tracestate"] = []string{b.String()}
}

// meshCaller reads the caller's service and version from the tracestate.
// ok is false when no valid member is present.
func meshCaller(h http.Header) (service, version string, ok bool) {
	for _, line := range h["Tracestate"] {
		for line != "" {
			var m string
			if i := strings.IndexByte(line, ','); i >= 0 {
				m, line = line[:i], line[i+1:]
			} else {
				m, line = line, ""
			}
			m = strings.TrimSpace(m)
			v, found := strings.CutPrefix(m, meshStateKey+"=")
			if !found {
				continue
			}
			svc, ver, _ := strings.Cut(v, "/")
			if !validName(svc) {
				return "", "", false
			}
			if !validName(ver) {
				ver = versionUnknown
			}
			return svc, ver, true
		}
	}
	return "", "", false
}

// callerSet bounds the distinct caller names an inbound proxy turns into
// label values: the names come from the network, so past the limit new names
// are reported as unknown. Known names are interned so label sets keep no
// reference to request headers.
type callerSet struct {
	mu    sync.RWMutex
	names map[string]string
	max   int
}

func newCallerSet(max int) *callerSet { return &callerSet{names: map[string]string{}, max: max} }

func (c *callerSet) intern(s string) string {
	c.mu.RLock()
	v, ok := c.names[s]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.names[s]; ok {
		return v
	}
	if len(c.names) >= c.max {
		return serviceUnknown
	}
	v = strings.Clone(s)
	c.names[v] = v
	return v
}
