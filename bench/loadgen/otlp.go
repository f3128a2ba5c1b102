package loadgen

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// TraceMode selects the shape of generated trace data.
type TraceMode int

// Trace data shapes.
const (
	// Realistic: 20 services with 8 operations each, traces of 5–40 spans
	// crossing services, start times spread evenly over the run's time
	// window, log-normal durations, HTTP attributes, a customer id of 1,000
	// values and a unique request.id per trace.
	Realistic TraceMode = iota
	// Adversarial: every span of a request has the same start time, 90 % of
	// spans belong to one hot service, and every span carries unique values
	// (request.id, session.id, user.id): worst cases for time-ordered and
	// per-value indexes.
	Adversarial
)

// ParseTraceMode accepts "realistic" and "adversarial".
func ParseTraceMode(s string) (TraceMode, error) {
	switch s {
	case "realistic":
		return Realistic, nil
	case "adversarial":
		return Adversarial, nil
	}
	return 0, fmt.Errorf("trace mode %q: want realistic or adversarial", s)
}

func (m TraceMode) String() string {
	if m == Adversarial {
		return "adversarial"
	}
	return "realistic"
}

// TraceServices is the number of services of generated data; HotService
// is the one that takes 90 % of adversarial spans.
const (
	TraceServices = 20
	HotService    = "svc-00"
	operations    = 8
)

// ServiceName returns the name of generated service i.
func ServiceName(i int) string { return fmt.Sprintf("svc-%02d", i) }

// OperationName returns the name of operation j of a service.
func OperationName(j int) string { return fmt.Sprintf("GET /api/v1/resource%d", j) }

// TraceSample describes one generated trace, for queries that must find it.
type TraceSample struct {
	TraceID   string `json:"trace_id"` // 32 hex digits
	Service   string `json:"service"`  // of the root span
	Operation string `json:"operation"`
	RequestID string `json:"request_id"` // the root span's request.id (unique)
	Spans     int    `json:"spans"`
	StartUS   int64  `json:"start_us"`
}

// TraceGen builds OTLP ExportTraceServiceRequest messages, encoded as
// protobuf, from a seeded generator: the same seed yields the same bytes.
// It encodes with protowire straight into a reused buffer, so the generator
// process spends little CPU per span and the server under test gets most of
// the machine. Not safe for concurrent use.
type TraceGen struct {
	mode   TraceMode
	rng    *rand.Rand
	start  time.Time
	window time.Duration
	total  int // spans the run will produce (spreads realistic start times)
	made   int
	seq    uint64
	buf    []byte
	scr    [3][]byte // scratch for nested messages
	spans  [TraceServices][]byte
	counts [TraceServices]int
}

// NewTraceGen returns a generator of total spans whose start times fall in
// [start, start+window).
func NewTraceGen(mode TraceMode, seed uint64, start time.Time, window time.Duration, total int) *TraceGen {
	return &TraceGen{mode: mode, rng: rand.New(rand.NewPCG(seed, 0x6f746c70)), start: start, window: window, total: max(total, 1), seq: seed << 40}
}

// Request returns the protobuf encoding of one export request of whole
// traces with at least spans spans (the last trace may overshoot), the
// number of spans in it, and a sample of its first trace. The returned
// slice is reused by the next call.
func (g *TraceGen) Request(spans int) ([]byte, int, TraceSample) {
	for i := range g.spans {
		g.spans[i] = g.spans[i][:0]
		g.counts[i] = 0
	}
	n := 0
	var sample TraceSample
	// Adversarial: one start time for every span of the request.
	reqStart := g.start.Add(time.Duration(float64(g.window) * float64(g.made) / float64(g.total)))
	for first := true; n < spans; first = false {
		s := g.trace(reqStart)
		if first {
			sample = s
		}
		n += s.Spans
	}
	g.made += n
	g.buf = g.buf[:0]
	for i := range g.spans {
		if g.counts[i] == 0 {
			continue
		}
		rs := g.scr[0][:0]
		res := g.scr[1][:0]
		res = appendKV(res, "service.name", ServiceName(i))
		res = appendKV(res, "host.name", "node-"+strconv.Itoa(i%4))
		rs = protowire.AppendTag(rs, 1, protowire.BytesType)
		rs = protowire.AppendBytes(rs, res)
		ss := g.scr[2][:0]
		ss = protowire.AppendTag(ss, 1, protowire.BytesType) // scope
		ss = protowire.AppendVarint(ss, uint64(2+len("meshscope-bench")))
		ss = protowire.AppendTag(ss, 1, protowire.BytesType)
		ss = protowire.AppendString(ss, "meshscope-bench")
		ss = append(ss, g.spans[i]...)
		rs = protowire.AppendTag(rs, 2, protowire.BytesType)
		rs = protowire.AppendBytes(rs, ss)
		g.buf = protowire.AppendTag(g.buf, 1, protowire.BytesType)
		g.buf = protowire.AppendBytes(g.buf, rs)
		g.scr[0], g.scr[1], g.scr[2] = rs, res, ss
	}
	return g.buf, n, sample
}

func (g *TraceGen) id() uint64 {
	g.seq++
	// splitmix64 of a per-seed sequence: unique and well spread.
	z := g.seq + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// trace appends one trace's spans to g.spans and describes it.
func (g *TraceGen) trace(reqStart time.Time) TraceSample {
	var tid [16]byte
	binary.BigEndian.PutUint64(tid[:8], g.id())
	binary.BigEndian.PutUint64(tid[8:], g.id())
	var n int
	var start time.Time
	if g.mode == Adversarial {
		n = 5 + g.rng.IntN(16)
		start = reqStart
	} else {
		n = 5 + g.rng.IntN(36)
		start = g.start.Add(time.Duration(float64(g.window) * (float64(g.made) + g.rng.Float64()*1000) / float64(g.total)))
	}
	// Root duration: log-normal around 30 ms (realistic), children nest in it.
	rootDur := time.Duration(math.Exp(g.rng.NormFloat64()*1.0+math.Log(30)) * float64(time.Millisecond))
	var sample TraceSample
	var parent [8]byte
	reqID := fmt.Sprintf("req-%016x", g.id())
	customer := "c-" + strconv.Itoa(g.rng.IntN(1000))
	for i := range n {
		var svc int
		switch {
		case g.mode == Adversarial && g.rng.IntN(10) != 0:
			svc = 0
		default:
			svc = g.rng.IntN(TraceServices)
		}
		op := g.rng.IntN(operations)
		var sid [8]byte
		binary.BigEndian.PutUint64(sid[:], g.id())
		st, dur := start, rootDur
		if i > 0 && g.mode == Realistic {
			off := time.Duration(g.rng.Int64N(int64(rootDur)/2 + 1))
			st = start.Add(off)
			dur = time.Duration(g.rng.Int64N(int64(rootDur-off)) + 1)
		} else if i > 0 {
			dur = time.Duration(g.rng.Int64N(int64(rootDur)) + 1)
		}
		kind := uint64(2) // server
		if i%2 == 1 {
			kind = 3 // client
		}
		status := "200"
		code := uint64(0)
		if g.rng.IntN(50) == 0 {
			status, code = "500", 2
		}
		sp := g.scr[0][:0]
		sp = protowire.AppendTag(sp, 1, protowire.BytesType)
		sp = protowire.AppendBytes(sp, tid[:])
		sp = protowire.AppendTag(sp, 2, protowire.BytesType)
		sp = protowire.AppendBytes(sp, sid[:])
		if i > 0 {
			sp = protowire.AppendTag(sp, 4, protowire.BytesType)
			sp = protowire.AppendBytes(sp, parent[:])
		}
		sp = protowire.AppendTag(sp, 5, protowire.BytesType)
		sp = protowire.AppendString(sp, OperationName(op))
		sp = protowire.AppendTag(sp, 6, protowire.VarintType)
		sp = protowire.AppendVarint(sp, kind)
		sp = protowire.AppendTag(sp, 7, protowire.Fixed64Type)
		sp = protowire.AppendFixed64(sp, uint64(st.UnixNano()))
		sp = protowire.AppendTag(sp, 8, protowire.Fixed64Type)
		sp = protowire.AppendFixed64(sp, uint64(st.Add(dur).UnixNano()))
		sp = appendAttr(sp, "http.method", "GET")
		sp = appendAttr(sp, "http.route", "/api/v1/resource"+strconv.Itoa(op)+"/{id}")
		sp = appendAttr(sp, "http.status_code", status)
		sp = appendAttr(sp, "net.peer.name", ServiceName(g.rng.IntN(TraceServices)))
		sp = appendAttr(sp, "customer.id", customer)
		sp = appendAttr(sp, "request.id", reqID)
		if g.mode == Adversarial {
			sp = appendAttr(sp, "session.id", fmt.Sprintf("s-%016x", g.id()))
			sp = appendAttr(sp, "user.id", fmt.Sprintf("u-%016x", g.id()))
		}
		if code != 0 {
			stat := protowire.AppendTag(nil, 3, protowire.VarintType)
			stat = protowire.AppendVarint(stat, code)
			sp = protowire.AppendTag(sp, 15, protowire.BytesType)
			sp = protowire.AppendBytes(sp, stat)
		}
		g.spans[svc] = protowire.AppendTag(g.spans[svc], 2, protowire.BytesType)
		g.spans[svc] = protowire.AppendBytes(g.spans[svc], sp)
		g.counts[svc]++
		g.scr[0] = sp
		if i == 0 {
			sample = TraceSample{TraceID: hex.EncodeToString(tid[:]), Service: ServiceName(svc), Operation: OperationName(op),
				RequestID: reqID, Spans: n, StartUS: st.UnixMicro()}
		}
		parent = sid
	}
	return sample
}

// appendKV appends a KeyValue with a string value as field 1 (the
// attributes field of Resource).
func appendKV(b []byte, k, v string) []byte { return appendKVField(b, 1, k, v) }

// appendAttr appends a KeyValue as field 9 (Span.attributes).
func appendAttr(b []byte, k, v string) []byte { return appendKVField(b, 9, k, v) }

func appendKVField(b []byte, field protowire.Number, k, v string) []byte {
	anyLen := protowire.SizeTag(1) + protowire.SizeBytes(len(v))
	kvLen := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(anyLen)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(kvLen))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, k)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(anyLen))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	return protowire.AppendString(b, v)
}

// RawCodec is a gRPC codec that sends an already marshalled protobuf
// message (a *[]byte) as it is and returns answers as raw bytes, so OTLP
// requests built by TraceGen go out without a second encoding.
type RawCodec struct{}

// Name returns "proto": the server sees ordinary protobuf.
func (RawCodec) Name() string { return "proto" }

// Marshal returns the bytes v (a *[]byte) points to.
func (RawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

// Unmarshal copies data into v (a *[]byte).
func (RawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
