package otlp

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// DeltaConfig bounds the state of the delta-to-cumulative conversion.
type DeltaConfig struct {
	// MaxStreams bounds the delta streams tracked at once; points of new
	// streams beyond it are rejected (partial success). Default 100000.
	MaxStreams int `yaml:"max_streams"`
	// MaxStale forgets a stream not updated for this long; its next point
	// starts a new cumulative series (a reset). Default 5m. Unit: duration.
	MaxStale time.Duration `yaml:"max_stale"`
}

// Defaults of DeltaConfig.
const (
	DefaultDeltaMaxStreams = 100_000
	DefaultDeltaMaxStale   = 5 * time.Minute
)

func (c DeltaConfig) withDefaults() DeltaConfig {
	if c.MaxStreams == 0 {
		c.MaxStreams = DefaultDeltaMaxStreams
	}
	if c.MaxStale == 0 {
		c.MaxStale = DefaultDeltaMaxStale
	}
	return c
}

// Validate names the first bad field.
func (c DeltaConfig) Validate() error {
	switch {
	case c.MaxStreams < 0:
		return fmt.Errorf("max_streams: %d must not be negative", c.MaxStreams)
	case c.MaxStale < 0:
		return fmt.Errorf("max_stale: %v must not be negative", c.MaxStale)
	}
	return nil
}

// deltaToCumulative turns delta sums, histograms and exponential
// histograms into cumulative ones, as the OpenTelemetry Collector's
// deltatocumulative processor does: each stream (resource, scope, metric
// and point attributes) keeps its running total and start time; a point
// not newer than the stream's last one is rejected; streams idle for
// MaxStale are forgotten; at most MaxStreams are kept.
type deltaToCumulative struct {
	cfg DeltaConfig

	mu        sync.Mutex
	streams   map[streamKey]*deltaStream
	lastSweep time.Time
}

type streamKey [16]byte

type deltaStream struct {
	seen        time.Time
	start, last pcommon.Timestamp

	// sums
	value float64
	// histograms
	bounds       []float64
	counts       []uint64
	count        uint64
	sum          float64
	hasSum       bool
	min, max     float64
	hasMin       bool
	hasMax       bool
	scale        int32
	zeroCount    uint64
	zeroThresh   float64
	pos, neg     expBuckets
	initialized  bool
	pointIsFloat bool
}

// expBuckets are exponential-histogram bucket counts from index offset.
type expBuckets struct {
	offset int32
	counts []uint64
}

func newDeltaToCumulative(cfg DeltaConfig) *deltaToCumulative {
	return &deltaToCumulative{cfg: cfg.withDefaults(), streams: map[streamKey]*deltaStream{}}
}

// rejection counts the points the conversion refused and keeps the first
// reason.
type rejection struct {
	points int64
	first  string
}

func (r *rejection) add(n int64, format string, args ...any) {
	if n == 0 {
		return
	}
	if r.points == 0 {
		r.first = fmt.Sprintf(format, args...)
	}
	r.points += n
}

// convert rewrites md's delta points as cumulative in place and removes
// the points it rejects (also points of aggregation temporality
// "unspecified", which have no meaning).
func (d *deltaToCumulative) convert(md pmetric.Metrics, now time.Time) rejection {
	var rej rejection
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.lastSweep) > d.cfg.MaxStale/2 {
		for k, s := range d.streams {
			if now.Sub(s.seen) > d.cfg.MaxStale {
				delete(d.streams, k)
			}
		}
		d.lastSweep = now
	}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		resHash := hashMap(rm.Resource().Attributes())
		sms := rm.ScopeMetrics()
		for j := range sms.Len() {
			sm := sms.At(j)
			h := fnv.New128a()
			h.Write(resHash[:])
			writeString(h, sm.Scope().Name())
			writeString(h, sm.Scope().Version())
			sh := hashMap(sm.Scope().Attributes())
			h.Write(sh[:])
			scopeHash := h.Sum(nil)
			ms := sm.Metrics()
			for k := range ms.Len() {
				d.convertMetric(ms.At(k), scopeHash, now, &rej)
			}
		}
	}
	return rej
}

func (d *deltaToCumulative) convertMetric(m pmetric.Metric, scopeHash []byte, now time.Time, rej *rejection) {
	key := func(attrs pcommon.Map) streamKey {
		h := fnv.New128a()
		h.Write(scopeHash)
		writeString(h, m.Name())
		writeString(h, m.Unit())
		h.Write([]byte{byte(m.Type())})
		ah := hashMap(attrs)
		h.Write(ah[:])
		var k streamKey
		copy(k[:], h.Sum(nil))
		return k
	}
	switch m.Type() {
	case pmetric.MetricTypeSum:
		s := m.Sum()
		convertPoints(d, m.Name(), s, s.DataPoints(), key, now, rej, func(st *deltaStream, dp pmetric.NumberDataPoint) {
			v := dp.DoubleValue()
			if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
				v = float64(dp.IntValue())
			} else {
				st.pointIsFloat = true
			}
			if !st.initialized || dp.Flags().NoRecordedValue() {
				st.value = 0
			}
			if !dp.Flags().NoRecordedValue() {
				st.value += v
			}
			st.initialized = true
			if st.pointIsFloat || st.value != math.Trunc(st.value) || math.Abs(st.value) > 1<<53 {
				dp.SetDoubleValue(st.value)
			} else {
				dp.SetIntValue(int64(st.value))
			}
		})
	case pmetric.MetricTypeHistogram:
		h := m.Histogram()
		convertPoints(d, m.Name(), h, h.DataPoints(), key, now, rej, func(st *deltaStream, dp pmetric.HistogramDataPoint) {
			st.addHistogram(dp)
			dp.BucketCounts().FromRaw(st.counts)
			st.writeTotals(dp)
		})
	case pmetric.MetricTypeExponentialHistogram:
		h := m.ExponentialHistogram()
		convertPoints(d, m.Name(), h, h.DataPoints(), key, now, rej, func(st *deltaStream, dp pmetric.ExponentialHistogramDataPoint) {
			st.addExpHistogram(dp)
			dp.SetScale(st.scale)
			dp.SetZeroCount(st.zeroCount)
			dp.SetZeroThreshold(st.zeroThresh)
			dp.Positive().SetOffset(st.pos.offset)
			dp.Positive().BucketCounts().FromRaw(st.pos.counts)
			dp.Negative().SetOffset(st.neg.offset)
			dp.Negative().BucketCounts().FromRaw(st.neg.counts)
			st.writeTotals(dp)
		})
	}
}

// deltaPoint is what the three kinds of delta data points share.
type deltaPoint interface {
	Attributes() pcommon.Map
	StartTimestamp() pcommon.Timestamp
	SetStartTimestamp(pcommon.Timestamp)
	Timestamp() pcommon.Timestamp
}

// temporal is a metric with an aggregation temporality.
type temporal interface {
	AggregationTemporality() pmetric.AggregationTemporality
	SetAggregationTemporality(pmetric.AggregationTemporality)
}

// convertPoints converts a metric's delta points with accumulate, which
// adds a point to its stream and writes the stream's totals into it;
// points of unspecified temporality and points their stream refuses are
// removed.
func convertPoints[P deltaPoint](d *deltaToCumulative, name string, m temporal, dps interface {
	Len() int
	RemoveIf(func(P) bool)
}, key func(pcommon.Map) streamKey, now time.Time, rej *rejection, accumulate func(*deltaStream, P)) {
	switch m.AggregationTemporality() {
	case pmetric.AggregationTemporalityUnspecified:
		rej.add(int64(dps.Len()), "metric %q: aggregation temporality unspecified", name)
		dps.RemoveIf(func(P) bool { return true })
	case pmetric.AggregationTemporalityDelta:
		dps.RemoveIf(func(dp P) bool {
			st, ok := d.stream(key(dp.Attributes()), dp.StartTimestamp(), dp.Timestamp(), name, now, rej)
			if !ok {
				return true
			}
			accumulate(st, dp)
			dp.SetStartTimestamp(st.start)
			return false
		})
		m.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
}

// writeTotals sets a histogram point's count, sum, min and max from the
// stream.
func (st *deltaStream) writeTotals(dp interface {
	SetCount(uint64)
	SetSum(float64)
	SetMin(float64)
	SetMax(float64)
}) {
	dp.SetCount(st.count)
	if st.hasSum {
		dp.SetSum(st.sum)
	}
	if st.hasMin {
		dp.SetMin(st.min)
	}
	if st.hasMax {
		dp.SetMax(st.max)
	}
}

// stream finds or creates the state of a delta point's stream; it rejects
// points not newer than the stream's last and new streams beyond the limit.
func (d *deltaToCumulative) stream(k streamKey, start, ts pcommon.Timestamp, name string, now time.Time, rej *rejection) (*deltaStream, bool) {
	st, ok := d.streams[k]
	if !ok {
		if len(d.streams) >= d.cfg.MaxStreams {
			rej.add(1, "metric %q: delta-to-cumulative stream limit (%d streams) reached", name, d.cfg.MaxStreams)
			return nil, false
		}
		st = &deltaStream{start: startOf(start, ts)}
		d.streams[k] = st
	} else if ts <= st.last {
		rej.add(1, "metric %q: delta point at %s not after the stream's last point at %s", name,
			ts.AsTime().UTC().Format(time.RFC3339Nano), st.last.AsTime().UTC().Format(time.RFC3339Nano))
		return nil, false
	}
	st.last = ts
	st.seen = now
	return st, true
}

// startOf is a point's start time, its time when the start is unknown.
func startOf(start, ts pcommon.Timestamp) pcommon.Timestamp {
	if start == 0 {
		return ts
	}
	return start
}

func (st *deltaStream) addSumMinMax(count uint64, hasSum bool, sum float64, hasMin bool, min float64, hasMax bool, max float64) {
	st.count += count
	if hasSum {
		st.sum += sum
		st.hasSum = true
	}
	if hasMin && (!st.hasMin || min < st.min) {
		st.min, st.hasMin = min, true
	}
	if hasMax && (!st.hasMax || max > st.max) {
		st.max, st.hasMax = max, true
	}
}

func (st *deltaStream) addHistogram(dp pmetric.HistogramDataPoint) {
	bounds := dp.ExplicitBounds().AsRaw()
	counts := dp.BucketCounts().AsRaw()
	if !st.initialized || !slices.Equal(bounds, st.bounds) || len(counts) != len(st.counts) {
		// First point, or the buckets changed: the cumulative restarts here.
		if st.initialized {
			st.start = startOf(dp.StartTimestamp(), dp.Timestamp())
		}
		*st = deltaStream{start: st.start, last: st.last, seen: st.seen, bounds: slices.Clone(bounds), counts: make([]uint64, len(counts)), initialized: true}
	}
	for i, c := range counts {
		st.counts[i] += c
	}
	st.addSumMinMax(dp.Count(), dp.HasSum(), dp.Sum(), dp.HasMin(), dp.Min(), dp.HasMax(), dp.Max())
}

func (st *deltaStream) addExpHistogram(dp pmetric.ExponentialHistogramDataPoint) {
	if !st.initialized || dp.ZeroThreshold() != st.zeroThresh {
		if st.initialized { // the zero bucket changed: the cumulative restarts here
			st.start = startOf(dp.StartTimestamp(), dp.Timestamp())
		}
		*st = deltaStream{start: st.start, last: st.last, seen: st.seen, scale: dp.Scale(), zeroThresh: dp.ZeroThreshold(), initialized: true}
	}
	pos := expBuckets{offset: dp.Positive().Offset(), counts: dp.Positive().BucketCounts().AsRaw()}
	neg := expBuckets{offset: dp.Negative().Offset(), counts: dp.Negative().BucketCounts().AsRaw()}
	// The common scale: the lower of the two, lowered further while the
	// merged buckets would span more than maxExpBuckets (as an SDK does).
	scale := min(st.scale, dp.Scale())
	for scale > minExpScale && (spanAt(st.pos, st.scale, pos, dp.Scale(), scale) > maxExpBuckets ||
		spanAt(st.neg, st.scale, neg, dp.Scale(), scale) > maxExpBuckets) {
		scale--
	}
	st.pos = st.pos.downscale(st.scale - scale)
	st.neg = st.neg.downscale(st.scale - scale)
	pos = pos.downscale(dp.Scale() - scale)
	neg = neg.downscale(dp.Scale() - scale)
	st.scale = scale
	st.pos = st.pos.merge(pos)
	st.neg = st.neg.merge(neg)
	st.zeroCount += dp.ZeroCount()
	st.addSumMinMax(dp.Count(), dp.HasSum(), dp.Sum(), dp.HasMin(), dp.Min(), dp.HasMax(), dp.Max())
}

// maxExpBuckets bounds the buckets of a converted exponential histogram on
// each side (the OTel SDKs' default MaxSize); minExpScale is the lowest
// scale a Prometheus native histogram takes.
const (
	maxExpBuckets = 160
	minExpScale   = -4
)

// spanAt is the number of buckets a and b (at scales as and bs) cover
// together at scale.
func spanAt(a expBuckets, as int32, b expBuckets, bs int32, scale int32) int64 {
	first, last, found := int64(math.MaxInt64), int64(math.MinInt64), false
	for _, x := range []struct {
		b  expBuckets
		by int32
	}{{a, as - scale}, {b, bs - scale}} {
		if len(x.b.counts) == 0 {
			continue
		}
		found = true
		first = min(first, int64(x.b.offset>>x.by))
		last = max(last, int64((x.b.offset+int32(len(x.b.counts))-1)>>x.by))
	}
	if !found {
		return 0
	}
	return last - first + 1
}

// downscale merges buckets by 2^by (bucket i goes to i >> by).
func (b expBuckets) downscale(by int32) expBuckets {
	if by <= 0 || len(b.counts) == 0 {
		return b
	}
	first := b.offset >> by
	last := (b.offset + int32(len(b.counts)) - 1) >> by
	out := make([]uint64, last-first+1)
	for i, c := range b.counts {
		out[((b.offset+int32(i))>>by)-first] += c
	}
	return expBuckets{offset: first, counts: out}
}

// merge adds two bucket ranges of the same scale.
func (b expBuckets) merge(o expBuckets) expBuckets {
	switch {
	case len(o.counts) == 0:
		return b
	case len(b.counts) == 0:
		return expBuckets{offset: o.offset, counts: slices.Clone(o.counts)}
	}
	first := min(b.offset, o.offset)
	last := max(b.offset+int32(len(b.counts)), o.offset+int32(len(o.counts)))
	out := make([]uint64, last-first)
	for i, c := range b.counts {
		out[b.offset-first+int32(i)] += c
	}
	for i, c := range o.counts {
		out[o.offset-first+int32(i)] += c
	}
	return expBuckets{offset: first, counts: out}
}

// hashMap hashes attributes independently of their order.
func hashMap(m pcommon.Map) [16]byte {
	keys := make([]string, 0, m.Len())
	for k := range m.All() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := fnv.New128a()
	for _, k := range keys {
		v, _ := m.Get(k)
		writeString(h, k)
		h.Write([]byte{byte(v.Type())})
		writeString(h, v.AsString())
	}
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

func writeString(h interface{ Write([]byte) (int, error) }, s string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	h.Write([]byte(s))
}
