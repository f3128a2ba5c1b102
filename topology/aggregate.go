package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Per-edge aggregate series (docs/topology.md, "Edge aggregates"). Each
// sample holds what the raw golden metrics of one edge and direction added
// during the aggregation step ending at the sample's timestamp, so the
// total of a window is sum_over_time over it: exact, and free of counter
// resets by construction.
const (
	metricEdgeRequests = "mesh_edge_requests"
	metricEdgeFailures = "mesh_edge_failures"
	metricEdgeBytes    = "mesh_edge_bytes"
	metricEdgeDuration = "mesh_edge_duration_seconds"
	// metricEdgeNative holds the exponential native histogram of the
	// durations where the proxies send one (beside the classic buckets).
	metricEdgeNative = "mesh_edge_duration_native_seconds"
	// metricEdgeSince is appended at every step; its value is the Unix time
	// (seconds) since which the aggregates have been continuous.
	metricEdgeSince = "mesh_edge_aggregates_since_seconds"
)

// aggregateLookback bounds how far back the aggregator looks when it
// starts: for the last step of a previous run and for the raw counters'
// values at that step. Raw series not seen for this long are forgotten.
const aggregateLookback = 10 * time.Minute

type rawKind uint8

const (
	rawRequests rawKind = iota
	rawBytes
	rawBucket
	rawSum
	rawNative
)

// edgeAggKey identifies one aggregate edge: raw label values as reported.
type edgeAggKey struct {
	dir string
	fineKey
	tls string // the tls label: "mtls" or "plaintext" ("" from proxies before it)
}

// rawState is what the aggregator remembers of one raw golden series.
type rawState struct {
	kind    rawKind
	failure bool    // mesh_requests_total{outcome="failure"}
	le      float64 // rawBucket
	seen    bool
	ts      int64
	v       float64
	h       *histogram.FloatHistogram
	edge    *edgeAgg
}

// edgeAgg is one edge's aggregate series and what the current step added.
type edgeAgg struct {
	key     edgeAggKey
	lsets   [5]labels.Labels // requests, failures, bytes, duration, native duration
	refs    [5]storage.SeriesRef
	touched bool  // raw samples since the last append
	flushed int64 // ms: last duration append, 0 before the first
	req     float64
	fail    float64
	bytes   float64
	sum     float64
	cum     map[float64]float64       // duration: upper bound -> cumulative count
	nat     *histogram.FloatHistogram // native (exponential) duration histogram of the step
	// mem: the samples appended for this edge within the live memory
	// window, oldest first (livememory.go).
	mem []memSample
}

// aggregator turns the raw golden metrics into per-edge aggregate series.
// It sees raw samples on the ingest path (hook, see ingest.go) once they are
// committed, keeps each raw series' last value to turn cumulative counters
// (with resets) into increases, and appends each edge's increases at every
// step (the duration histogram every interval; new edges' at once).
type aggregator struct {
	q        storage.Queryable
	app      storage.Appendable
	logger   *slog.Logger
	interval int64 // ms

	mu      sync.Mutex
	hooked  bool                 // an ingest hook feeds the aggregator: steps append
	epoch   int64                // ms: aggregates are continuous since
	prev    int64                // ms: time of the previous step
	raw     map[uint64]*rawState // by labels hash
	byRef   map[storage.SeriesRef]*rawState
	edges   map[edgeAggKey]*edgeAgg
	steps   int
	sinceL  labels.Labels
	sinceR  storage.SeriesRef
	matcher *labels.Matcher
	// Live memory (livememory.go): memWindow > 0 keeps the appended
	// samples of the last memWindow ms per edge; they are complete for
	// sample times after memFrom. order lists the edges in creation order.
	memWindow int64
	memFrom   int64
	memGen    uint64 // changes with the memory's content
	memSums   memSumCache
	order     []*edgeAgg

	stepSeconds prometheus.Histogram
	errs        prometheus.Counter
}

func newAggregator(q storage.Queryable, app storage.Appendable, interval time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*aggregator, error) {
	a := &aggregator{
		q: q, app: app, logger: logger, interval: interval.Milliseconds(),
		raw:    map[uint64]*rawState{},
		byRef:  map[storage.SeriesRef]*rawState{},
		edges:  map[edgeAggKey]*edgeAgg{},
		sinceL: labels.FromStrings(labels.MetricName, metricEdgeSince),
		matcher: labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName,
			metricRequests+"|"+metricReqBytes+"|"+metricRespBytes+"|"+metricDuration+"|"+metricDuration+"_bucket|"+metricDuration+"_sum"),
		stepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshscope_topology_aggregate_seconds",
			Help:    "Time of one edge aggregation step (reading new raw golden samples and appending the per-edge series).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_topology_aggregate_errors_total",
			Help: "Edge aggregation steps that failed (the aggregates restart a new continuous span after one).",
		}),
	}
	rawSeries := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_topology_aggregate_raw_series",
		Help: "Raw golden-metric series whose last value the edge aggregator holds.",
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.raw))
	})
	edges := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_topology_aggregate_edges",
		Help: "Edges (per direction) the edge aggregator appends series for.",
	}, func() float64 {
		a.mu.Lock()
		defer a.mu.Unlock()
		return float64(len(a.edges))
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{a.stepSeconds, a.errs, rawSeries, edges} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering aggregate metrics: %w", err)
			}
		}
	}
	return a, nil
}

// seed prepares the aggregator before the first raw sample reaches the
// hook: it continues the aggregates of a previous run found in the store
// (the raw counters' values at its last step are the base; what they added
// since counts in the first step), or starts them at now (the raw
// counters' current values are the base).
func (a *aggregator) seed(ctx context.Context, now int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	epoch, last, ok, err := a.lastStep(ctx, now)
	if err != nil {
		return err
	}
	countAfter := now
	if ok && last <= now {
		a.epoch, countAfter = epoch, last
	} else {
		a.epoch = now
	}
	if err := a.read(ctx, countAfter-aggregateLookback.Milliseconds(), now, countAfter); err != nil {
		return err
	}
	if err := a.memFill(ctx, now); err != nil {
		return err
	}
	a.hooked = true
	return nil
}

// step appends, stamped now, what edges added since their last append:
// requests, failures and bytes of every edge with raw samples since; the
// duration histogram of edges whose last one is at least interval old, and
// of new edges. It does nothing until an ingest hook feeds the aggregator.
func (a *aggregator) step(ctx context.Context, now time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hooked {
		return nil
	}
	start := time.Now()
	ms := now.UnixMilli()
	var err error
	if ms > a.prev {
		err = a.flush(ctx, ms)
		if err != nil {
			a.errs.Inc()
		} else {
			a.prev = ms
			a.steps++
			if a.steps%60 == 0 {
				a.evict(ms - aggregateLookback.Milliseconds())
			}
		}
	}
	a.stepSeconds.Observe(time.Since(start).Seconds())
	return err
}

// lastStep finds the last step of a previous run within aggregateLookback:
// its time and the start of its continuous span.
func (a *aggregator) lastStep(ctx context.Context, now int64) (epoch, last int64, ok bool, err error) {
	qr, err := a.q.Querier(now-aggregateLookback.Milliseconds(), now)
	if err != nil {
		return 0, 0, false, fmt.Errorf("edge aggregates: querier: %w", err)
	}
	defer qr.Close()
	ss := qr.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, metricEdgeSince))
	var it chunkenc.Iterator
	for ss.Next() {
		it = ss.At().Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			if t > last || !ok {
				last, epoch, ok = t, int64(math.Round(v*1000)), true
			}
		}
		if it.Err() != nil {
			return 0, 0, false, fmt.Errorf("edge aggregates: reading %s: %w", metricEdgeSince, it.Err())
		}
	}
	if err := ss.Err(); err != nil {
		return 0, 0, false, fmt.Errorf("edge aggregates: reading %s: %w", metricEdgeSince, err)
	}
	return epoch, last, ok, nil
}

// read walks the raw golden samples in (mint, maxt] (see observe); samples
// at or before countAfter only set the series' base values.
func (a *aggregator) read(ctx context.Context, mint, maxt, countAfter int64) error {
	qr, err := a.q.Querier(mint+1, maxt)
	if err != nil {
		return fmt.Errorf("edge aggregates: querier: %w", err)
	}
	defer qr.Close()
	ss := qr.Select(ctx, false, nil, a.matcher)
	var it chunkenc.Iterator
	for ss.Next() {
		s := ss.At()
		l := s.Labels()
		h := l.Hash()
		st := a.raw[h]
		if st == nil {
			st = a.newRawState(l)
			if st == nil {
				continue
			}
			a.raw[h] = st
		}
		it = s.Iterator(it)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				t, v := it.At()
				a.observe(st, t, v, nil, t > countAfter)
			case chunkenc.ValHistogram, chunkenc.ValFloatHistogram:
				t, fh := it.AtFloatHistogram(nil)
				a.observe(st, t, 0, fh, t > countAfter)
			}
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("edge aggregates: reading %s: %w", l, err)
		}
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("edge aggregates: reading raw series: %w", err)
	}
	return nil
}

// observe takes one raw sample of a series: when count is set, its
// increase over the series' previous sample (a lower value is a counter
// reset: the value itself is the increase) is added to the series' edge.
// A series seen for the first time adds its whole value: it counts from
// zero since it started. Samples not newer than the last one are ignored.
func (a *aggregator) observe(st *rawState, t int64, v float64, fh *histogram.FloatHistogram, count bool) {
	if st.seen && t <= st.ts {
		return
	}
	e := st.edge
	if fh != nil {
		if st.kind != rawNative {
			return
		}
		d := fh
		if st.seen && st.h != nil && !fh.DetectReset(st.h) {
			if sub, _, _, err := fh.Copy().Sub(st.h); err == nil {
				d = sub
			}
		}
		st.h = fh
		if count {
			e.addNative(d)
		}
	} else {
		if st.kind == rawNative {
			return
		}
		d := v
		if st.seen && v >= st.v {
			d = v - st.v
		}
		st.v = v
		if count {
			e.addFloat(st, d)
		}
	}
	st.seen, st.ts = true, t
	if count {
		e.touched = true
	}
}

// stateFor returns the state of the raw series ref / l, nil when it is
// not a series the graph uses.
func (a *aggregator) stateFor(ref storage.SeriesRef, l labels.Labels) *rawState {
	if st := a.byRef[ref]; st != nil && ref != 0 {
		return st
	}
	l = withoutEmpty(l) // as the store keeps them, so seeded states match
	h := l.Hash()
	st := a.raw[h]
	if st == nil {
		if st = a.newRawState(l); st == nil {
			return nil
		}
		a.raw[h] = st
	}
	if ref != 0 {
		a.byRef[ref] = st
	}
	return st
}

func (e *edgeAgg) addFloat(st *rawState, d float64) {
	switch st.kind {
	case rawRequests:
		e.req += d
		if st.failure {
			e.fail += d
		}
	case rawBytes:
		e.bytes += d
	case rawSum:
		e.sum += d
	case rawBucket:
		e.cum[st.le] += d
	}
}

// addNative adds a native histogram's increase: exponential ones are kept
// as they are (precise quantiles), custom-bucket ones go with the classic
// buckets.
func (e *edgeAgg) addNative(d *histogram.FloatHistogram) {
	if d.UsesCustomBuckets() {
		b := buckets(e.cum)
		b.addNative(d)
		e.sum += d.Sum
		return
	}
	g := d.Copy()
	g.CounterResetHint = histogram.GaugeType
	e.nat = addHistogram(e.nat, g)
}

// newRawState classifies a raw golden series; nil for series the graph
// does not use.
func (a *aggregator) newRawState(l labels.Labels) *rawState {
	st := &rawState{}
	switch l.Get(labels.MetricName) {
	case metricRequests:
		st.kind = rawRequests
		st.failure = l.Get("outcome") == "failure"
	case metricReqBytes, metricRespBytes:
		st.kind = rawBytes
	case metricDuration + "_bucket":
		st.kind = rawBucket
		le, err := strconv.ParseFloat(l.Get("le"), 64)
		if err != nil {
			return nil
		}
		st.le = le
	case metricDuration + "_sum":
		st.kind = rawSum
	case metricDuration:
		st.kind = rawNative
	default:
		return nil
	}
	dir := l.Get("direction")
	k := edgeAggKey{dir: dir, fineKey: fineKey{
		src: l.Get("source_service"), srcVer: l.Get("source_version"),
		dst: l.Get("destination_service"), dstVer: l.Get("destination_version"),
		proto: l.Get("protocol"), route: l.Get("route"),
	}, tls: l.Get("tls")}
	switch dir {
	case "inbound", "outbound":
	case "ingress": // aggregated as what the gateway serves (ingressKey)
		k.dir, k.fineKey = "inbound", ingressKey(k.fineKey)
	default:
		return nil
	}
	st.edge = a.edgeFor(k)
	return st
}

// edgeNames are the aggregate series of an edge, in edgeAgg.lsets order.
var edgeNames = [5]string{metricEdgeRequests, metricEdgeFailures, metricEdgeBytes, metricEdgeDuration, metricEdgeNative}

// edgeFor returns the aggregate edge k, made on first use.
func (a *aggregator) edgeFor(k edgeAggKey) *edgeAgg {
	e := a.edges[k]
	if e == nil {
		e = &edgeAgg{key: k, cum: map[float64]float64{}}
		for i, name := range edgeNames {
			b := labels.NewBuilder(labels.EmptyLabels())
			b.Set(labels.MetricName, name)
			b.Set("direction", k.dir)
			b.Set("source_service", k.src)
			b.Set("source_version", k.srcVer)
			b.Set("destination_service", k.dst)
			b.Set("destination_version", k.dstVer)
			b.Set("protocol", k.proto)
			b.Set("route", k.route)
			b.Set("tls", k.tls)
			e.lsets[i] = b.Labels() // the builder drops empty values, as the store does
		}
		a.edges[k] = e
		a.order = append(a.order, e)
	}
	return e
}

// flush appends, at now, what every edge added in the step and the
// continuity marker.
func (a *aggregator) flush(ctx context.Context, now int64) error {
	app := a.app.Appender(ctx)
	var errs []error
	put := func(e *edgeAgg, i int, v float64) {
		ref, err := app.Append(e.refs[i], e.lsets[i], now, v)
		if err != nil {
			errs = append(errs, fmt.Errorf("appending %s: %w", e.lsets[i], err))
			return
		}
		e.refs[i] = ref
	}
	// putHist appends histogram series i of e and returns the copy the
	// live memory keeps (nil when it keeps none or the append failed).
	putHist := func(e *edgeAgg, i int, fh *histogram.FloatHistogram, rec *memSample) *histogram.FloatHistogram {
		ref, err := app.AppendHistogram(e.refs[i], e.lsets[i], now, nil, fh)
		if err != nil {
			errs = append(errs, fmt.Errorf("appending %s: %w", e.lsets[i], err))
			return nil
		}
		e.refs[i] = ref
		if a.memWindow <= 0 {
			return nil
		}
		rec.has |= 1 << i
		return fh.Copy() // the store keeps fh
	}
	var due, dueHist []*edgeAgg
	var recs []memRecord // what is appended, for the live memory
	for _, e := range a.edges {
		var rec memSample
		if e.touched {
			// Requests are appended even when zero: an edge whose series
			// exist but carried no requests stays in the graph.
			due = append(due, e)
			put(e, 0, e.req)
			rec.set(0, e.req)
			if e.fail > 0 {
				put(e, 1, e.fail)
				rec.set(1, e.fail)
			}
			if e.bytes > 0 {
				put(e, 2, e.bytes)
				rec.set(2, e.bytes)
			}
		}
		if (len(e.cum) != 0 || e.nat != nil) && (e.flushed == 0 || now-e.flushed >= a.interval) {
			dueHist = append(dueHist, e)
			if e.nat != nil && e.nat.Count > 0 {
				rec.nh = putHist(e, 4, e.nat.Copy().Compact(0), &rec)
			}
			if fh := fixedHistogram(e.cum, e.sum); fh != nil {
				rec.h = putHist(e, 3, fh, &rec)
			}
		}
		if a.memWindow > 0 && rec.has != 0 {
			rec.t = now
			recs = append(recs, memRecord{e, rec})
		}
	}
	ref, err := app.Append(a.sinceR, a.sinceL, now, float64(a.epoch)/1000)
	if err != nil {
		errs = append(errs, fmt.Errorf("appending %s: %w", metricEdgeSince, err))
	} else {
		a.sinceR = ref
	}
	if err := errors.Join(errs...); err != nil {
		_ = app.Rollback()
		return fmt.Errorf("edge aggregates: %w", err)
	}
	if err := app.Commit(); err != nil {
		a.memReset(now) // what the store holds is not known: read it for a window
		return fmt.Errorf("edge aggregates: commit: %w", err)
	}
	a.memAdd(recs, now)
	// What an edge added is kept for the next step when the append failed.
	for _, e := range due {
		e.touched = false
		e.req, e.fail, e.bytes = 0, 0, 0
	}
	for _, e := range dueHist {
		clear(e.cum)
		e.nat = nil
		e.sum = 0
		e.flushed = now
	}
	return nil
}

// fixedHistogram turns cumulative counts by upper bound into a gauge native
// histogram with the golden duration buckets as custom bounds; nil when it
// holds no observation. An upper bound that is not one of the golden ones
// counts in the next golden bucket above it; golden bounds missing from the
// input are interpolated linearly.
func fixedHistogram(cum map[float64]float64, sum float64) *histogram.FloatHistogram {
	if len(cum) == 0 {
		return nil
	}
	n := len(durationBuckets)
	at := make([]float64, n+1) // cumulative at each bound, +Inf last
	have := make([]bool, n+1)
	for le, c := range cum {
		i, _ := slices.BinarySearch(durationBuckets, le)
		if math.IsInf(le, 1) {
			i = n
		}
		at[i] = math.Max(at[i], c)
		have[i] = true
	}
	// Golden bounds the input lacks (coarser input buckets) get the linear
	// interpolation histogram_quantile would apply inside the input bucket,
	// so quantiles stay the same.
	lo, loC := 0.0, 0.0
	for i := 0; i < n; i++ {
		if have[i] {
			lo, loC = durationBuckets[i], at[i]
			continue
		}
		j := i + 1
		for j < n && !have[j] {
			j++
		}
		if j == n { // above the highest input bound: counted in +Inf
			at[i] = loC
			continue
		}
		at[i] = loC + (at[j]-loC)*(durationBuckets[i]-lo)/(durationBuckets[j]-lo)
	}
	counts := make([]float64, n+1)
	prev, total := 0.0, 0.0
	for i, c := range at {
		if c < prev { // partial or non-monotonic input: keep it cumulative
			c = prev
		}
		counts[i] = c - prev
		total += counts[i]
		prev = c
	}
	if total <= 0 {
		return nil
	}
	return &histogram.FloatHistogram{
		CounterResetHint: histogram.GaugeType,
		Schema:           histogram.CustomBucketsSchema,
		Count:            total,
		Sum:              sum,
		PositiveSpans:    []histogram.Span{{Offset: 0, Length: uint32(len(counts))}},
		PositiveBuckets:  counts,
		CustomValues:     durationBuckets,
	}
}

// evict forgets raw series and edges not seen since before.
func (a *aggregator) evict(before int64) {
	used := map[*edgeAgg]bool{}
	for h, st := range a.raw {
		if st.ts < before {
			delete(a.raw, h)
			continue
		}
		used[st.edge] = true
	}
	for ref, st := range a.byRef {
		if st.ts < before {
			delete(a.byRef, ref)
		}
	}
	for k, e := range a.edges {
		if !used[e] && !e.touched && len(e.mem) == 0 {
			delete(a.edges, k)
		}
	}
	a.order = slices.DeleteFunc(a.order, func(e *edgeAgg) bool {
		return !used[e] && !e.touched && len(e.mem) == 0
	})
}

// aggregatesCover reports whether the aggregates are continuous over the
// whole window (at-window, at]: since is min_over_time of the continuity
// marker over the window (seconds), ok whether it had a sample. Windows
// shorter than two aggregation intervals are not covered (an edge's
// samples are interval apart).
func aggregatesCover(since float64, ok bool, at time.Time, window, interval time.Duration) bool {
	return ok && window >= 2*interval && since*1000 <= float64(at.Add(-window).UnixMilli())
}

// withoutEmpty returns l without labels whose value is empty.
func withoutEmpty(l labels.Labels) labels.Labels {
	empty := false
	l.Range(func(lb labels.Label) {
		if lb.Value == "" {
			empty = true
		}
	})
	if !empty {
		return l
	}
	b := labels.NewScratchBuilder(l.Len())
	l.Range(func(lb labels.Label) {
		if lb.Value != "" {
			b.Add(lb.Name, lb.Value)
		}
	})
	return b.Labels()
}
