package topology

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Live memory (docs/topology.md, "Live memory"): the aggregator keeps, per
// edge, the aggregate samples it appended within the last memWindow, so
// that the live graphs are summed from memory instead of read back from
// the store. The samples are exactly those in the store (same values, same
// timestamps) and are summed in time order as the store read sums them, so
// a graph from memory equals the replay of the same window.

// memSample is what one aggregation step appended for an edge.
type memSample struct {
	t   int64
	has uint8                     // bit i: series i of edgeAgg.lsets got a sample
	v   [3]float64                // requests, failures, bytes
	h   *histogram.FloatHistogram // duration (classic buckets)
	nh  *histogram.FloatHistogram // native duration
}

func (m *memSample) set(i int, v float64) {
	m.v[i] = v
	m.has |= 1 << i
}

type memRecord struct {
	e *edgeAgg
	s memSample
}

// enableMemory makes the aggregator keep window's worth of appended
// samples. Call before seed.
func (a *aggregator) enableMemory(window time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.memWindow = window.Milliseconds()
}

// memAdd records a committed step's samples and forgets those that left
// the window. Called with a.mu held.
func (a *aggregator) memAdd(recs []memRecord, now int64) {
	if a.memWindow <= 0 {
		return
	}
	a.memGen++
	for _, r := range recs {
		r.e.mem = append(r.e.mem, r.s)
	}
	cut := now - a.memWindow
	for _, e := range a.order {
		i := 0
		for i < len(e.mem) && e.mem[i].t <= cut {
			i++
		}
		if i > 0 {
			n := copy(e.mem, e.mem[i:])
			clear(e.mem[n:])
			e.mem = e.mem[:n]
		}
	}
	a.memFrom = max(a.memFrom, cut)
}

// memReset forgets the memory: it is complete again only for samples after
// now. Called with a.mu held.
func (a *aggregator) memReset(now int64) {
	a.memGen++
	a.memSums = memSumCache{}
	for _, e := range a.order {
		e.mem = nil
	}
	a.memFrom = now
}

// memCovers reports whether the memory holds every sample of the window
// (at-window, at] (times in ms).
func (a *aggregator) memCovers(at, window int64) bool {
	return a.hooked && a.memWindow > 0 && window <= a.memWindow && a.memFrom <= at-window
}

// covers is memCovers for callers without a.mu.
func (a *aggregator) covers(at, window int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.memCovers(at, window)
}

// memSum is sumOverWindow over the live memory: per aggregate series
// (index i of edgeAgg.lsets) whose labels match ms (the metric name
// matcher aside), the sum of its samples in (at-window, at]. ok is false
// when the memory does not cover the window. The sums of all four series
// of every edge are computed in one pass and kept until the memory
// changes, so the builds' several reads of one window cost one pass.
func (a *aggregator) memSum(i int, ms []*labels.Matcher, at, window int64) (out []promql.Sample, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.memCovers(at, window) {
		return nil, false
	}
	c := &a.memSums
	if !c.valid || c.gen != a.memGen || c.at != at || c.window != window {
		a.memSumAll(at, window)
	}
	for k := range c.sums {
		es := &c.sums[k]
		if es.n[i] == 0 || !es.e.matches(ms) {
			continue
		}
		s := promql.Sample{Metric: es.e.lsets[i]}
		switch {
		case i < 3:
			s.F = es.v[i]
		case i == 3:
			s.H = es.h.Copy() // the caller may scale it in place
		default:
			s.H = es.nh.Copy()
		}
		out = append(out, s)
	}
	return out, true
}

// edgeSums are one edge's sums over a window: per series of edgeAgg.lsets,
// the number of samples, and the sums.
type edgeSums struct {
	e  *edgeAgg
	n  [5]int32
	v  [3]float64
	h  *histogram.FloatHistogram
	nh *histogram.FloatHistogram
}

// memSumCache holds the sums of the window last summed.
type memSumCache struct {
	valid      bool
	gen        uint64
	at, window int64
	sums       []edgeSums
}

// memSumAll fills a.memSums for (at-window, at]: each series' samples are
// summed in time order, as sumOverWindow sums what the store returns.
// Called with a.mu held.
func (a *aggregator) memSumAll(at, window int64) {
	c := &a.memSums
	*c = memSumCache{valid: true, gen: a.memGen, at: at, window: window, sums: c.sums[:0]}
	from := at - window
	for _, e := range a.order {
		if len(e.mem) == 0 || e.mem[len(e.mem)-1].t <= from || e.mem[0].t > at {
			continue
		}
		es := edgeSums{e: e}
		for j := range e.mem {
			s := &e.mem[j]
			if s.t <= from || s.t > at {
				continue
			}
			for i := range 3 {
				if s.has&(1<<i) != 0 {
					es.n[i]++
					es.v[i] += s.v[i]
				}
			}
			if s.has&(1<<3) != 0 {
				es.n[3]++
				es.h = addHistogram(es.h, s.h)
			}
			if s.has&(1<<4) != 0 {
				es.n[4]++
				es.nh = addHistogram(es.nh, s.nh)
			}
		}
		c.sums = append(c.sums, es)
	}
}

// matches reports whether the edge's series match ms (the metric name
// matcher aside).
func (e *edgeAgg) matches(ms []*labels.Matcher) bool {
	for _, m := range ms {
		var v string
		switch m.Name {
		case labels.MetricName:
			continue
		case "direction":
			v = e.key.dir
		case "source_service":
			v = e.key.src
		case "source_version":
			v = e.key.srcVer
		case "destination_service":
			v = e.key.dst
		case "destination_version":
			v = e.key.dstVer
		case "protocol":
			v = e.key.proto
		case "route":
			v = e.key.route
		default:
			v = e.lsets[0].Get(m.Name)
		}
		if !m.Matches(v) {
			return false
		}
	}
	return true
}

// addHistogram returns sum + o as sumOverWindow computes it (sum nil: a
// copy of o). Histograms with the same custom bounds and one span, as the
// aggregator appends them, are added bucket by bucket in place, which
// gives FloatHistogram.Add's result (the same float additions in the same
// order) without its span merging.
func addHistogram(sum, o *histogram.FloatHistogram) *histogram.FloatHistogram {
	if sum == nil {
		return o.Copy()
	}
	if sum.Schema == histogram.CustomBucketsSchema && o.Schema == histogram.CustomBucketsSchema &&
		len(sum.PositiveSpans) == 1 && len(o.PositiveSpans) == 1 && sum.PositiveSpans[0] == o.PositiveSpans[0] &&
		len(sum.NegativeSpans) == 0 && len(o.NegativeSpans) == 0 &&
		len(sum.PositiveBuckets) == len(o.PositiveBuckets) && sameBounds(sum.CustomValues, o.CustomValues) &&
		sum.CounterResetHint == o.CounterResetHint {
		sum.Count += o.Count
		sum.Sum += o.Sum
		for k, c := range o.PositiveBuckets {
			sum.PositiveBuckets[k] += c
		}
		return sum
	}
	if r, _, _, err := sum.Add(o); err == nil {
		return r
	}
	return sum
}

func sameBounds(a, b []float64) bool {
	if len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) {
		return true
	}
	return slices.Equal(a, b)
}

// memFill reads the aggregate samples of (now-memWindow, now] from the
// store into the memory (at start, to continue a previous run's). Called
// with a.mu held.
func (a *aggregator) memFill(ctx context.Context, now int64) error {
	if a.memWindow <= 0 {
		return nil
	}
	a.memReset(now - a.memWindow)
	qr, err := a.q.Querier(now-a.memWindow+1, now)
	if err != nil {
		return fmt.Errorf("edge aggregates: querier: %w", err)
	}
	defer qr.Close()
	ss := qr.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName,
		metricEdgeRequests+"|"+metricEdgeFailures+"|"+metricEdgeBytes+"|"+metricEdgeDuration+"|"+metricEdgeNative))
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		l := s.Labels()
		i := slices.Index(edgeNames[:], l.Get(labels.MetricName))
		dir := l.Get("direction")
		if i < 0 || (dir != "inbound" && dir != "outbound") {
			continue
		}
		e := a.edgeFor(edgeAggKey{dir: dir, fineKey: fineKey{
			src: l.Get("source_service"), srcVer: l.Get("source_version"),
			dst: l.Get("destination_service"), dstVer: l.Get("destination_version"),
			proto: l.Get("protocol"), route: l.Get("route"),
		}, tls: l.Get("tls")})
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			var t int64
			var v float64
			var fh *histogram.FloatHistogram
			switch vt {
			case chunkenc.ValFloat:
				t, v = it.At()
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				t, fh = it.AtFloatHistogram(nil)
			default:
				continue
			}
			if (i < 3) != (fh == nil) {
				continue
			}
			k, found := slices.BinarySearchFunc(e.mem, t, func(m memSample, t int64) int { return cmp.Compare(m.t, t) })
			if !found {
				e.mem = slices.Insert(e.mem, k, memSample{t: t})
			}
			m := &e.mem[k]
			switch {
			case i < 3:
				m.set(i, v)
			case i == 3:
				m.h, m.has = fh, m.has|1<<3
			default:
				m.nh, m.has = fh, m.has|1<<4
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("edge aggregates: reading %s: %w", l, err)
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("edge aggregates: reading aggregate series: %w", err)
	}
	return nil
}
