package topology

import (
	"math"
	"sort"

	"github.com/prometheus/prometheus/model/histogram"
)

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
	if len(b) < 2 {
		return 0
	}
	les := make([]float64, 0, len(b))
	for le := range b {
		les = append(les, le)
	}
	sort.Float64s(les)
	if !math.IsInf(les[len(les)-1], 1) {
		return 0
	}
	counts := make([]float64, len(les))
	maxSoFar := 0.0
	for i, le := range les {
		c := b[le]
		if c < maxSoFar { // rates of cumulative buckets can be slightly non-monotonic
			c = maxSoFar
		}
		maxSoFar = c
		counts[i] = c
	}
	total := counts[len(counts)-1]
	if total <= 0 {
		return 0
	}
	rank := q * total
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
