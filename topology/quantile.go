package topology

import (
	"math"
	"slices"
	"sort"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser/posrange"
)

// nativeQuantile is PromQL's histogram_quantile of a native histogram
// (exponential interpolation within a bucket, as Prometheus does).
func nativeQuantile(q float64, h *histogram.FloatHistogram) float64 {
	v, _ := promql.HistogramQuantile(q, h, "", posrange.PositionRange{})
	return v
}

// buckets maps a classic histogram bucket's upper bound (le) to its rate.
type buckets map[float64]float64

func (b buckets) add(o buckets) {
	for le, v := range o {
		b[le] += v
	}
}

// quantile returns the q-quantile (0..1) of the cumulative buckets with the
// same linear interpolation as PromQL's histogram_quantile, or 0 when there
// is no data.
func (b buckets) quantile(q float64) float64 {
	return b.quantiles(q)[0]
}

// quantiles is quantile for several qs.
func (b buckets) quantiles(qs ...float64) []float64 {
	var sb sortedBuckets
	for le, c := range b {
		sb.addAt(le, c)
	}
	return sb.quantiles(qs...)
}

// sortedBuckets are cumulative counts (or rates) by upper bound, sorted by
// bound: what the builder merges per edge and node (cheaper than maps, as
// the bounds are nearly always the same).
type sortedBuckets struct {
	les    []float64
	counts []float64
}

func (b *sortedBuckets) empty() bool { return len(b.les) == 0 }

// addAt adds v to the bucket with upper bound le.
func (b *sortedBuckets) addAt(le, v float64) {
	if math.IsNaN(le) {
		return
	}
	i := sort.SearchFloat64s(b.les, le)
	if i < len(b.les) && b.les[i] == le {
		b.counts[i] += v
		return
	}
	b.les = slices.Insert(b.les, i, le)
	b.counts = slices.Insert(b.counts, i, v)
}

// add adds o's buckets.
func (b *sortedBuckets) add(o *sortedBuckets) {
	switch {
	case o.empty():
	case b.empty():
		b.les, b.counts = slices.Clone(o.les), slices.Clone(o.counts)
	case slices.Equal(b.les, o.les):
		for i, c := range o.counts {
			b.counts[i] += c
		}
	default:
		for i, le := range o.les {
			b.addAt(le, o.counts[i])
		}
	}
}

// addNative adds a native histogram's buckets as cumulative buckets.
func (b *sortedBuckets) addNative(h *histogram.FloatHistogram) {
	if h == nil {
		return
	}
	cum := h.ZeroCount
	if h.ZeroCount > 0 {
		b.addAt(h.ZeroThreshold, cum)
	}
	for it := h.PositiveBucketIterator(); it.Next(); {
		bk := it.At()
		if math.IsInf(bk.Upper, 1) {
			break // counted below as Count
		}
		cum += bk.Count
		b.addAt(bk.Upper, cum)
	}
	b.addAt(math.Inf(1), h.Count)
}

// quantiles returns the qs-quantiles (0..1) with histogram_quantile's
// interpolation; 0s when there is no data.
func (b *sortedBuckets) quantiles(qs ...float64) []float64 {
	out, _ := b.quantilesOK(qs...)
	return out
}

// quantilesOK is quantiles; ok is false (and the quantiles 0) when there is
// no data.
func (b *sortedBuckets) quantilesOK(qs ...float64) (out []float64, ok bool) {
	out = make([]float64, len(qs))
	les := b.les
	if len(les) < 2 || !math.IsInf(les[len(les)-1], 1) {
		return out, false
	}
	counts := make([]float64, len(les))
	maxSoFar := 0.0
	for i, c := range b.counts {
		if c < maxSoFar { // rates of cumulative buckets can be slightly non-monotonic
			c = maxSoFar
		}
		maxSoFar = c
		counts[i] = c
	}
	total := counts[len(counts)-1]
	if total <= 0 {
		return out, false
	}
	for k, q := range qs {
		out[k] = quantileOf(les, counts, q*total)
	}
	return out, true
}

func quantileOf(les, counts []float64, rank float64) float64 {
	i := sort.SearchFloat64s(counts, rank)
	if i >= len(les)-1 {
		return les[len(les)-2]
	}
	lower, prev := 0.0, 0.0
	if i > 0 {
		lower, prev = les[i-1], counts[i-1]
	} else if les[0] <= 0 {
		return les[0]
	}
	upper := les[i]
	if counts[i] == prev {
		return upper
	}
	return lower + (upper-lower)*((rank-prev)/(counts[i]-prev))
}

// addNative adds a native histogram's positive buckets as cumulative
// classic buckets (upper bound -> count of observations up to it).
func (b buckets) addNative(h *histogram.FloatHistogram) {
	if h == nil {
		return
	}
	cum := h.ZeroCount
	if h.ZeroCount > 0 {
		b[h.ZeroThreshold] += cum
	}
	for it := h.PositiveBucketIterator(); it.Next(); {
		bk := it.At()
		if math.IsInf(bk.Upper, 1) {
			break // counted below as Count
		}
		cum += bk.Count
		b[bk.Upper] += cum
	}
	b[math.Inf(1)] += h.Count
}
