package proxy

// A small OTLP/gRPC client: spans and metrics are encoded straight to the
// OTLP protobuf wire format and sent as unary gRPC calls over HTTP/2 (prior
// knowledge, or TLS with ALPN h2) with the proxy's own client. This keeps the gRPC and protobuf runtimes (and
// several MB of resident memory) out of the sidecar. The encodings are tested
// against the generated go.opentelemetry.io/proto/otlp types and the calls
// against a real grpc-go server.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/meshscope/meshscope/proxy/h2"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const (
	otlpTracePath   = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
	otlpMetricsPath = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
)

// pbuf appends protobuf wire-format fields.
type pbuf struct{ b []byte }

const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

func (p *pbuf) tag(field, wire int) {
	p.b = binary.AppendUvarint(p.b, uint64(field)<<3|uint64(wire))
}

func (p *pbuf) uvarint(field int, v uint64) {
	if v == 0 {
		return
	}
	p.tag(field, wireVarint)
	p.b = binary.AppendUvarint(p.b, v)
}

func (p *pbuf) fixed64(field int, v uint64) {
	if v == 0 {
		return
	}
	p.tag(field, wireFixed64)
	p.b = binary.LittleEndian.AppendUint64(p.b, v)
}

func (p *pbuf) fixed32(field int, v uint32) {
	if v == 0 {
		return
	}
	p.tag(field, wireFixed32)
	p.b = binary.LittleEndian.AppendUint32(p.b, v)
}

// double always writes (used for oneof and optional fields, where zero is
// a value).
func (p *pbuf) double(field int, v float64) {
	p.tag(field, wireFixed64)
	p.b = binary.LittleEndian.AppendUint64(p.b, math.Float64bits(v))
}

func (p *pbuf) str(field int, s string) {
	if s == "" {
		return
	}
	p.tag(field, wireBytes)
	p.b = binary.AppendUvarint(p.b, uint64(len(s)))
	p.b = append(p.b, s...)
}

func (p *pbuf) bytes(field int, b []byte) {
	if len(b) == 0 {
		return
	}
	p.tag(field, wireBytes)
	p.b = binary.AppendUvarint(p.b, uint64(len(b)))
	p.b = append(p.b, b...)
}

// msg writes a length-delimited sub-message produced by fn.
func (p *pbuf) msg(field int, fn func()) {
	start := p.open(field, 1)
	fn()
	p.close(start, 1)
}

// open starts a length-delimited field whose length is not known yet: it
// writes the tag and reserves room bytes for the length, and returns where
// the contents start, for close. room is the expected varint size of the
// length; a wrong guess costs a move of the contents, not correctness.
// (Unlike msg, this takes no closure: the span path runs it several times
// per span.)
func (p *pbuf) open(field, room int) int {
	p.tag(field, wireBytes)
	for range room {
		p.b = append(p.b, 0)
	}
	return len(p.b)
}

// close writes the length of the field opened at start with room bytes
// reserved, moving the contents when the length needs another size.
func (p *pbuf) close(start, room int) {
	n := len(p.b) - start
	l := uvarintLen(uint64(n))
	if l > room {
		p.b = append(p.b, make([]byte, l-room)...)
		copy(p.b[start+l-room:], p.b[start:start+n])
	} else if l < room {
		copy(p.b[start-room+l:], p.b[start:])
		p.b = p.b[:len(p.b)-(room-l)]
	}
	pos := start - room
	v := uint64(n)
	for v >= 0x80 {
		p.b[pos] = byte(v) | 0x80
		v >>= 7
		pos++
	}
	p.b[pos] = byte(v)
}

// strLen is the encoded size of a string field with a one-byte tag
// (p.str's: nothing for "").
func strLen(s string) int {
	if s == "" {
		return 0
	}
	return 1 + uvarintLen(uint64(len(s))) + len(s)
}

// keyValue encodes an opentelemetry.proto.common.v1.KeyValue. Sizes are
// computed up front (the value is a scalar), so nothing is moved. field is
// below 16 (a one-byte tag), as are all the KeyValue fields of OTLP.
func (p *pbuf) keyValue(field int, kv *attribute.KeyValue) {
	v := &kv.Value
	var anyLen int // AnyValue's size
	switch v.Type() {
	case attribute.STRING:
		p.stringKV(field, string(kv.Key), v.AsString())
		return
	case attribute.BOOL:
		anyLen = 2
	case attribute.INT64:
		anyLen = 1 + uvarintLen(uint64(v.AsInt64()))
	case attribute.FLOAT64:
		anyLen = 9
	default: // slices: as a string rendering, which every backend can show
		p.stringKV(field, string(kv.Key), v.Emit())
		return
	}
	b := p.b
	b = append(b, byte(field<<3|wireBytes))
	b = binary.AppendUvarint(b, uint64(strLen(string(kv.Key))+1+uvarintLen(uint64(anyLen))+anyLen))
	b = appendStr(b, 1, string(kv.Key))
	b = append(b, 2<<3|wireBytes)
	b = binary.AppendUvarint(b, uint64(anyLen))
	switch v.Type() {
	case attribute.BOOL:
		if v.AsBool() {
			b = append(b, 2<<3|wireVarint, 1)
		} else {
			b = append(b, 2<<3|wireVarint, 0)
		}
	case attribute.INT64:
		b = append(b, 3<<3|wireVarint)
		b = binary.AppendUvarint(b, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		b = append(b, 4<<3|wireFixed64)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v.AsFloat64()))
	}
	p.b = b
}

// appendStr appends string field field (below 16) unless s is "".
func appendStr(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, byte(field<<3|wireBytes))
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// stringKV encodes a KeyValue with a string value (written even when
// empty: the oneof is set); field is below 16.
func (p *pbuf) stringKV(field int, k, v string) {
	anyLen := 1 + uvarintLen(uint64(len(v))) + len(v)
	b := p.b
	b = append(b, byte(field<<3|wireBytes))
	b = binary.AppendUvarint(b, uint64(strLen(k)+1+uvarintLen(uint64(anyLen))+anyLen))
	b = appendStr(b, 1, k)
	b = append(b, 2<<3|wireBytes)
	b = binary.AppendUvarint(b, uint64(anyLen))
	b = append(b, 1<<3|wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	p.b = append(b, v...)
}

// resourceMsg encodes an opentelemetry.proto.resource.v1.Resource.
func (p *pbuf) resource(field int, attrs []attribute.KeyValue) {
	start := p.open(field, 1)
	for i := range attrs {
		p.keyValue(1, &attrs[i])
	}
	p.close(start, 1)
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// grpcPrefix is the size of a gRPC message's length prefix.
const grpcPrefix = 5

// encodeTraceRequest encodes an ExportTraceServiceRequest with one resource
// and one scope per instrumentation scope name.
func encodeTraceRequest(buf []byte, res []attribute.KeyValue, spans []sdktrace.ReadOnlySpan) []byte {
	return appendTraceRequest(buf[:0], res, spans)
}

// appendTraceRequest appends the encoding of an ExportTraceServiceRequest
// to buf (which may hold a gRPC prefix to fill in later).
func appendTraceRequest(buf []byte, res []attribute.KeyValue, spans []sdktrace.ReadOnlySpan) []byte {
	p := &pbuf{b: buf}
	// A full batch of hop spans is 16 KiB to 2 MiB: three length bytes.
	rs := p.open(1, 3) // ResourceSpans
	p.resource(1, res)
	var done []bool // spans already written; nil while all so far shared one scope
	for i := range spans {
		if done != nil && done[i] {
			continue
		}
		scope := scopeOf(spans[i])
		ss := p.open(2, 3) // ScopeSpans
		sc := p.open(1, 1)
		p.str(1, scope.Name)
		p.str(2, scope.Version)
		p.close(sc, 1)
		for j := i; j < len(spans); j++ {
			if done != nil && done[j] {
				continue
			}
			if j > i && scopeOf(spans[j]).Name != scope.Name {
				if done == nil { // spans[i:j] are written
					done = make([]bool, len(spans))
					for k := i; k < j; k++ {
						done[k] = true
					}
				}
				continue
			}
			if done != nil {
				done[j] = true
			}
			p.span(spans[j])
		}
		p.close(ss, 3)
		if done == nil {
			break // every span shared the scope
		}
	}
	p.close(rs, 3)
	return p.b
}

func scopeOf(s sdktrace.ReadOnlySpan) instrumentation.Scope {
	if _, ok := s.(*hopSpan); ok {
		return instrumentation.Scope{Name: scopeName}
	}
	return s.InstrumentationScope()
}

// spanFields is what the encoding of a span reads, gathered without the
// interface calls for the proxy's own hop spans.
type spanFields struct {
	sc, parent trace.SpanContext
	name       string
	kind       trace.SpanKind
	start, end time.Time
	hop        *hopSpan // its hopAttrs come before attrs
	attrs      []attribute.KeyValue
	dropped    int
	events     []sdktrace.Event
	status     sdktrace.Status
}

func (p *pbuf) span(s sdktrace.ReadOnlySpan) {
	if h, ok := s.(*hopSpan); ok {
		p.spanOf(&spanFields{sc: h.sc, parent: h.parent, name: h.name, kind: h.kind, start: h.start, end: h.end,
			hop: h, attrs: h.extra[:h.n], events: h.events, status: h.status})
		return
	}
	p.spanOf(&spanFields{sc: s.SpanContext(), parent: s.Parent(), name: s.Name(), kind: s.SpanKind(),
		start: s.StartTime(), end: s.EndTime(), attrs: s.Attributes(), dropped: s.DroppedAttributes(),
		events: s.Events(), status: s.Status()})
}

func (p *pbuf) spanOf(s *spanFields) {
	// A hop span is 128 B to 16 KiB: two length bytes.
	start := p.open(2, 2)
	tid, sid := s.sc.TraceID(), s.sc.SpanID()
	p.bytes(1, tid[:])
	p.bytes(2, sid[:])
	if ts := s.sc.TraceState(); ts.Len() > 0 {
		// Written as TraceState.String renders it, without the string.
		t := p.open(3, 1)
		first := true
		ts.Walk(func(k, v string) bool {
			if !first {
				p.b = append(p.b, ',')
			}
			first = false
			p.b = append(p.b, k...)
			p.b = append(p.b, '=')
			p.b = append(p.b, v...)
			return true
		})
		p.close(t, 1)
	}
	if s.parent.IsValid() {
		psid := s.parent.SpanID()
		p.bytes(4, psid[:])
	}
	p.str(5, s.name)
	p.uvarint(6, uint64(s.kind)) // OTel API and OTLP number kinds alike
	p.fixed64(7, unixNano(s.start))
	p.fixed64(8, unixNano(s.end))
	if h := s.hop; h != nil {
		for a := range numHopAttrs {
			if h.has&(1<<a) != 0 {
				p.stringKV(9, a.key(), h.strs[a])
			}
		}
	}
	for i := range s.attrs {
		p.keyValue(9, &s.attrs[i])
	}
	p.uvarint(10, uint64(s.dropped))
	for _, ev := range s.events {
		e := p.open(11, 1)
		p.fixed64(1, unixNano(ev.Time))
		p.str(2, ev.Name)
		for i := range ev.Attributes {
			p.keyValue(3, &ev.Attributes[i])
		}
		p.close(e, 1)
	}
	if st := s.status; st.Code != codes.Unset {
		m := p.open(15, 1)
		p.str(2, st.Description)
		switch st.Code {
		case codes.Error:
			p.uvarint(3, 2)
		case codes.Ok:
			p.uvarint(3, 1)
		}
		p.close(m, 1)
	}
	flags := uint32(s.sc.TraceFlags()) | 0x100 // HAS_IS_REMOTE
	if s.parent.IsRemote() {
		flags |= 0x200
	}
	p.fixed32(16, flags)
	p.close(start, 2)
}

// encodeMetricsRequest encodes an ExportMetricsServiceRequest from gathered
// Prometheus families: counters become monotonic cumulative sums, gauges
// gauges, histograms explicit-bucket cumulative histograms; names and label
// names stay as they are.
func encodeMetricsRequest(buf []byte, res []attribute.KeyValue, mfs []*dto.MetricFamily, start, now time.Time) []byte {
	return appendMetricsRequest(buf[:0], res, mfs, start, now)
}

// appendMetricsRequest appends the encoding of encodeMetricsRequest to buf
// (which may hold a gRPC prefix to fill in later).
func appendMetricsRequest(buf []byte, res []attribute.KeyValue, mfs []*dto.MetricFamily, start, now time.Time) []byte {
	p := &pbuf{b: buf}
	startNs, nowNs := unixNano(start), unixNano(now)
	p.msg(1, func() { // ResourceMetrics
		p.resource(1, res)
		p.msg(2, func() { // ScopeMetrics
			p.msg(1, func() { p.str(1, "github.com/meshscope/meshscope/proxy") })
			for _, mf := range mfs {
				if len(mf.Metric) == 0 {
					continue
				}
				switch mf.GetType() {
				case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_UNTYPED, dto.MetricType_HISTOGRAM:
				default:
					continue
				}
				p.msg(2, func() { // Metric
					p.str(1, mf.GetName())
					p.str(2, mf.GetHelp())
					switch mf.GetType() {
					case dto.MetricType_COUNTER:
						p.msg(7, func() { // Sum
							for _, m := range mf.Metric {
								p.numberPoint(m, startNs, nowNs, m.GetCounter().GetValue())
							}
							p.uvarint(2, 2) // CUMULATIVE
							p.uvarint(3, 1) // monotonic
						})
					case dto.MetricType_GAUGE:
						p.msg(5, func() {
							for _, m := range mf.Metric {
								p.numberPoint(m, 0, nowNs, m.GetGauge().GetValue())
							}
						})
					case dto.MetricType_UNTYPED:
						p.msg(5, func() {
							for _, m := range mf.Metric {
								p.numberPoint(m, 0, nowNs, m.GetUntyped().GetValue())
							}
						})
					case dto.MetricType_HISTOGRAM:
						p.msg(9, func() {
							for _, m := range mf.Metric {
								p.histogramPoint(m, startNs, nowNs)
							}
							p.uvarint(2, 2) // CUMULATIVE
						})
					}
				})
				if mf.GetType() == dto.MetricType_HISTOGRAM && hasNative(mf) {
					// The same histogram's native buckets, as an
					// exponential histogram of the same name.
					p.msg(2, func() {
						p.str(1, mf.GetName())
						p.str(2, mf.GetHelp())
						p.msg(10, func() {
							for _, m := range mf.Metric {
								if isNative(m.GetHistogram()) {
									p.exponentialPoint(m, startNs, nowNs)
								}
							}
							p.uvarint(2, 2) // CUMULATIVE
						})
					})
				}
			}
		})
	})
	return p.b
}

func (p *pbuf) labels(field int, m *dto.Metric) {
	for _, l := range m.Label {
		p.stringKV(field, l.GetName(), l.GetValue())
	}
}

func (p *pbuf) numberPoint(m *dto.Metric, startNs, nowNs uint64, v float64) {
	p.msg(1, func() {
		p.labels(7, m)
		p.fixed64(2, startNs)
		p.fixed64(3, nowNs)
		p.double(4, v)
	})
}

func (p *pbuf) histogramPoint(m *dto.Metric, startNs, nowNs uint64) {
	h := m.GetHistogram()
	p.msg(1, func() {
		p.labels(9, m)
		p.fixed64(2, startNs)
		p.fixed64(3, nowNs)
		count := h.GetSampleCount()
		p.tag(4, wireFixed64)
		p.b = binary.LittleEndian.AppendUint64(p.b, count)
		p.double(5, h.GetSampleSum())
		var bounds []float64
		var counts []uint64
		var prev uint64
		for _, b := range h.Bucket {
			if math.IsInf(b.GetUpperBound(), 1) {
				continue
			}
			bounds = append(bounds, b.GetUpperBound())
			c := b.GetCumulativeCount()
			counts = append(counts, c-prev)
			prev = c
		}
		counts = append(counts, count-prev)
		p.tag(6, wireBytes) // packed fixed64
		p.b = binary.AppendUvarint(p.b, uint64(8*len(counts)))
		for _, c := range counts {
			p.b = binary.LittleEndian.AppendUint64(p.b, c)
		}
		if len(bounds) > 0 {
			p.tag(7, wireBytes)
			p.b = binary.AppendUvarint(p.b, uint64(8*len(bounds)))
			for _, b := range bounds {
				p.b = binary.LittleEndian.AppendUint64(p.b, math.Float64bits(b))
			}
		}
	})
}

// isNative reports whether h carries native histogram buckets (a schema
// and spans, or a zero bucket: what client_golang fills in when the
// histogram has native buckets configured).
func isNative(h *dto.Histogram) bool {
	return h != nil && h.Schema != nil && (len(h.PositiveSpan) > 0 || len(h.NegativeSpan) > 0 || h.ZeroThreshold != nil)
}

func hasNative(mf *dto.MetricFamily) bool {
	for _, m := range mf.Metric {
		if isNative(m.GetHistogram()) {
			return true
		}
	}
	return false
}

// exponentialPoint encodes a native histogram as an OTLP
// ExponentialHistogramDataPoint. The scale is the schema; Prometheus'
// bucket i is (base^(i-1), base^i], OTLP's is (base^i, base^(i+1)], so the
// OTLP offset is the first Prometheus index minus one (what Prometheus'
// own OTLP translator undoes).
func (p *pbuf) exponentialPoint(m *dto.Metric, startNs, nowNs uint64) {
	h := m.GetHistogram()
	p.msg(1, func() {
		p.labels(1, m)
		p.fixed64(2, startNs)
		p.fixed64(3, nowNs)
		p.fixed64(4, h.GetSampleCount())
		p.double(5, h.GetSampleSum())
		p.uvarint(6, zigzag(int64(h.GetSchema())))
		p.fixed64(7, h.GetZeroCount())
		if off, counts := denseBuckets(h.PositiveSpan, h.PositiveDelta); len(counts) > 0 {
			p.expBuckets(8, off-1, counts)
		}
		if off, counts := denseBuckets(h.NegativeSpan, h.NegativeDelta); len(counts) > 0 {
			p.expBuckets(9, off-1, counts)
		}
		p.double(14, h.GetZeroThreshold())
	})
}

// expBuckets encodes ExponentialHistogramDataPoint.Buckets.
func (p *pbuf) expBuckets(field int, offset int32, counts []uint64) {
	p.msg(field, func() {
		p.uvarint(1, zigzag(int64(offset)))
		n := 0
		for _, c := range counts {
			n += uvarintLen(c)
		}
		p.tag(2, wireBytes) // packed uint64
		p.b = binary.AppendUvarint(p.b, uint64(n))
		for _, c := range counts {
			p.b = binary.AppendUvarint(p.b, c)
		}
	})
}

// denseBuckets turns native spans and delta-encoded counts into the index
// of the first bucket and the counts of every bucket from there (gaps as
// zeros).
func denseBuckets(spans []*dto.BucketSpan, deltas []int64) (first int32, counts []uint64) {
	var idx int32
	var cur int64
	k := 0
	for i, sp := range spans {
		idx += sp.GetOffset()
		if i == 0 {
			first = idx
		}
		for range sp.GetLength() {
			if k >= len(deltas) {
				return first, counts
			}
			cur += deltas[k]
			k++
			for int32(len(counts)) < idx-first {
				counts = append(counts, 0)
			}
			counts = append(counts, uint64(max(cur, 0)))
			idx++
		}
	}
	return first, counts
}

func zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// otlpClient sends unary OTLP gRPC calls over HTTP/2 with the proxy's
// own client (proxy/h2): no goroutine per call, the connection's reader
// aside.
type otlpClient struct {
	token string // bearer token; "" = none
	base  string
	rt    http.RoundTripper // an *h2.Transport
}

// newOTLPClient talks HTTP/2 to endpoint: host:port by prior knowledge, or
// https://host:port over TLS (ALPN h2, no HTTP/1 fallback) with tlsCfg's
// roots (nil = system roots).
func newOTLPClient(endpoint string, timeout time.Duration, tlsCfg *tls.Config) *otlpClient {
	// Raw socket I/O: an export does not wake the runtime's monitor
	// thread of an otherwise idle proxy.
	dial := rawDial((&net.Dialer{Timeout: timeout}).DialContext)
	base := "http://" + endpoint
	if addr, ok := strings.CutPrefix(endpoint, "https://"); ok {
		base = "https://" + addr
		dial = tlsH2Dial(dial, tlsCfg)
	}
	return &otlpClient{base: base, rt: &h2.Transport{Dial: dial, IdleConnTimeout: time.Minute}}
}

// tlsH2Dial wraps dial in a TLS handshake that must agree on HTTP/2.
func tlsH2Dial(dial func(ctx context.Context, network, addr string) (net.Conn, error), base *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{}
		if base != nil {
			cfg = base.Clone()
		}
		cfg.NextProtos = []string{"h2"}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
			_ = tc.Close()
			return nil, fmt.Errorf("tls handshake with %s: server did not agree on HTTP/2 (ALPN %q)", addr, p)
		}
		return tc, nil
	}
}

// errGRPC is a non-OK gRPC status from the collector.
type errGRPC struct {
	code    string
	message string
}

func (e *errGRPC) Error() string {
	return fmt.Sprintf("grpc-status %s: %s", e.code, e.message)
}

// call sends one gRPC message to path and checks grpc-status. frame is
// the message after grpcPrefix bytes, which call fills in: the message is
// encoded in place, not copied. frame may be reused once call returns.
func (c *otlpClient) call(ctx context.Context, path string, frame []byte) error {
	frame[0] = 0 // not compressed
	binary.BigEndian.PutUint32(frame[1:grpcPrefix], uint32(len(frame)-grpcPrefix))
	var bodies frameBodies
	defer bodies.close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bodies.open(frame))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(frame))
	req.GetBody = func() (io.ReadCloser, error) { return bodies.open(frame), nil }
	req.Header.Set("Content-Type", "application/grpc+proto")
	req.Header.Set("Te", "trailers")
	req.Header.Set("User-Agent", "meshscope-proxy")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("otlp %s: %w", path, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("otlp %s: HTTP %d", path, resp.StatusCode)
	}
	st, msgText := resp.Trailer.Get("Grpc-Status"), resp.Trailer.Get("Grpc-Message")
	if st == "" {
		st, msgText = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	if st != "0" {
		if m, err := url.PathUnescape(msgText); err == nil { // grpc-message is percent-encoded
			msgText = m
		}
		return fmt.Errorf("otlp %s: %w", path, &errGRPC{code: st, message: msgText})
	}
	return nil
}

// frameBody is a request body reading a buffer its owner reuses. A
// RoundTripper may close a request body, and so stop reading it, after
// RoundTrip has returned; once Close has returned, though, frameBody reads
// nothing more, so the owner closes it itself before the buffer is reused.
type frameBody struct {
	mu     sync.Mutex
	r      bytes.Reader
	closed bool
}

var errFrameReused = errors.New("request body read after the call returned")

func (b *frameBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errFrameReused
	}
	return b.r.Read(p)
}

func (b *frameBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// frameBodies are the bodies of one call: the request's and the ones
// GetBody makes for a retried request.
type frameBodies struct {
	mu     sync.Mutex
	bodies []*frameBody
	done   bool // the call returned: new bodies are born closed
}

func (fb *frameBodies) open(frame []byte) *frameBody {
	b := &frameBody{}
	b.r.Reset(frame)
	fb.mu.Lock()
	fb.bodies = append(fb.bodies, b)
	b.closed = fb.done
	fb.mu.Unlock()
	return b
}

func (fb *frameBodies) close() {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	fb.done = true
	for _, b := range fb.bodies {
		b.Close()
	}
}

func (c *otlpClient) withToken(token string) *otlpClient {
	c.token = token
	return c
}

func (c *otlpClient) close() {
	if t, ok := c.rt.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
}

// otlpSpanExporter is an sdktrace.SpanExporter over otlpClient.
type otlpSpanExporter struct {
	c   *otlpClient
	res []attribute.KeyValue
	buf []byte // used by the single export goroutine only
}

func (e *otlpSpanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if len(spans) == 0 {
		return nil
	}
	e.buf = appendTraceRequest(append(e.buf[:0], make([]byte, grpcPrefix)...), e.res, spans)
	err := e.c.call(ctx, otlpTracePath, e.buf)
	if cap(e.buf) > 4<<20 {
		e.buf = nil // do not keep a huge buffer after a burst
	}
	return err
}

func (e *otlpSpanExporter) Shutdown(context.Context) error {
	e.c.close()
	return nil
}
