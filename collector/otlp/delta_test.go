package otlp

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

func TestExpBucketsDownscaleAndMerge(t *testing.T) {
	for _, c := range []struct {
		name   string
		a, b   expBuckets
		by     int32 // downscale of b before the merge
		want   expBuckets
		wantDS expBuckets
	}{
		{"same range", expBuckets{0, []uint64{1, 2}}, expBuckets{0, []uint64{3, 4}}, 0, expBuckets{0, []uint64{4, 6}}, expBuckets{0, []uint64{3, 4}}},
		{"disjoint", expBuckets{0, []uint64{1}}, expBuckets{3, []uint64{5}}, 0, expBuckets{0, []uint64{1, 0, 0, 5}}, expBuckets{3, []uint64{5}}},
		{"b before a", expBuckets{2, []uint64{1}}, expBuckets{-1, []uint64{5, 6}}, 0, expBuckets{-1, []uint64{5, 6, 0, 1}}, expBuckets{-1, []uint64{5, 6}}},
		// Scale s to s-1: buckets 0,1 → 0; 2,3 → 1; -1 → -1 (floor).
		{"downscale by one", expBuckets{0, []uint64{1}}, expBuckets{-1, []uint64{1, 2, 3, 4, 5}}, 1, expBuckets{-1, []uint64{1, 6, 9}}, expBuckets{-1, []uint64{1, 5, 9}}},
		{"empty", expBuckets{}, expBuckets{4, []uint64{2}}, 0, expBuckets{4, []uint64{2}}, expBuckets{4, []uint64{2}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ds := c.b.downscale(c.by)
			if ds.offset != c.wantDS.offset || !slices.Equal(ds.counts, c.wantDS.counts) {
				t.Fatalf("downscale(%d) = %+v, want %+v", c.by, ds, c.wantDS)
			}
			got := c.a.merge(ds)
			if got.offset != c.want.offset || !slices.Equal(got.counts, c.want.counts) {
				t.Fatalf("merge = %+v, want %+v", got, c.want)
			}
		})
	}
}

func deltaSum(name string, attrs map[string]string, at time.Time, v float64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName(name)
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	dp := s.DataPoints().AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(-time.Second)))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
	dp.SetDoubleValue(v)
	for k, v := range attrs {
		dp.Attributes().PutStr(k, v)
	}
	return md
}

func sumValue(md pmetric.Metrics) (float64, int) {
	dps := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints()
	if dps.Len() == 0 {
		return 0, 0
	}
	return dps.At(0).DoubleValue(), dps.Len()
}

func TestDeltaStreamsLimitStalenessAndOrder(t *testing.T) {
	d := newDeltaToCumulative(DeltaConfig{MaxStreams: 2, MaxStale: time.Minute})
	t0 := time.Unix(1_700_000_000, 0)
	type step struct {
		name   string
		md     pmetric.Metrics
		now    time.Time
		want   float64 // cumulative value written (when kept)
		reject string  // substring of the rejection, "" = kept
	}
	for _, s := range []step{
		{"first point of a", deltaSum("a", map[string]string{"k": "1"}, t0, 2), t0, 2, ""},
		{"a again accumulates", deltaSum("a", map[string]string{"k": "1"}, t0.Add(time.Second), 3), t0, 5, ""},
		{"b", deltaSum("b", nil, t0, 1), t0, 1, ""},
		{"c beyond the stream limit", deltaSum("c", nil, t0, 1), t0, 0, "stream limit (2 streams)"},
		{"a not after its last point", deltaSum("a", map[string]string{"k": "1"}, t0.Add(time.Second), 1), t0, 0, "not after the stream's last point"},
		// Two minutes later a and b are stale and forgotten: c fits, a restarts.
		{"c after the others went stale", deltaSum("c", nil, t0.Add(2*time.Minute), 4), t0.Add(2 * time.Minute), 4, ""},
		{"a restarts after staleness", deltaSum("a", map[string]string{"k": "1"}, t0.Add(2*time.Minute), 7), t0.Add(2 * time.Minute), 7, ""},
	} {
		rej := d.convert(s.md, s.now)
		v, n := sumValue(s.md)
		if s.reject != "" {
			if rej.points != 1 || !strings.Contains(rej.first, s.reject) || n != 0 {
				t.Errorf("%s: rejected %d %q, %d points left; want 1 rejected naming %q", s.name, rej.points, rej.first, n, s.reject)
			}
			continue
		}
		if rej.points != 0 || n != 1 || v != s.want {
			t.Errorf("%s: value %v (%d points, %d rejected %q), want %v", s.name, v, n, rej.points, rej.first, s.want)
		}
		temp := s.md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().AggregationTemporality()
		if temp != pmetric.AggregationTemporalityCumulative {
			t.Errorf("%s: temporality %v after conversion", s.name, temp)
		}
	}
}

func TestDeltaHistogramBucketChangeRestarts(t *testing.T) {
	d := newDeltaToCumulative(DeltaConfig{})
	t0 := time.Unix(1_700_000_000, 0)
	hist := func(at time.Time, bounds []float64, counts []uint64) (pmetric.Metrics, pmetric.HistogramDataPoint) {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("h")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := h.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(at.Add(-time.Second)))
		dp.SetTimestamp(pcommon.NewTimestampFromTime(at))
		dp.ExplicitBounds().FromRaw(bounds)
		dp.BucketCounts().FromRaw(counts)
		var n uint64
		for _, c := range counts {
			n += c
		}
		dp.SetCount(n)
		return md, dp
	}
	md, dp := hist(t0, []float64{1}, []uint64{1, 1})
	d.convert(md, t0)
	md, dp = hist(t0.Add(time.Second), []float64{1}, []uint64{2, 0})
	d.convert(md, t0)
	if got := dp.BucketCounts().AsRaw(); !slices.Equal(got, []uint64{3, 1}) || dp.Count() != 4 || !dp.StartTimestamp().AsTime().Equal(t0.Add(-time.Second)) {
		t.Fatalf("accumulated %v count %d start %v", got, dp.Count(), dp.StartTimestamp().AsTime())
	}
	md, dp = hist(t0.Add(2*time.Second), []float64{1, 2}, []uint64{1, 1, 1})
	d.convert(md, t0)
	if got := dp.BucketCounts().AsRaw(); !slices.Equal(got, []uint64{1, 1, 1}) || dp.Count() != 3 || !dp.StartTimestamp().AsTime().Equal(t0.Add(time.Second)) {
		t.Fatalf("after a bucket change %v count %d start %v; want a restart at the point's start", got, dp.Count(), dp.StartTimestamp().AsTime())
	}
}

// Two deltas far apart at a fine scale are merged at a scale coarse enough
// for the buckets to stay within the SDKs' 160 (not millions of buckets).
func TestDeltaExpHistogramMergeStaysBounded(t *testing.T) {
	d := newDeltaToCumulative(DeltaConfig{})
	t0 := time.Unix(1_700_000_000, 0)
	var last pmetric.ExponentialHistogramDataPoint
	for i, offset := range []int32{6_966_000, 12_100_000} {
		md := pmetric.NewMetrics()
		m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		m.SetName("payload")
		h := m.SetEmptyExponentialHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
		dp := h.DataPoints().AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(t0.Add(time.Duration(i) * time.Second)))
		dp.SetScale(20)
		dp.Positive().SetOffset(offset)
		dp.Positive().BucketCounts().FromRaw([]uint64{1})
		dp.SetCount(1)
		d.convert(md, t0)
		last = dp
	}
	if n := last.Positive().BucketCounts().Len(); n > maxExpBuckets || last.Count() != 2 || last.Scale() >= 20 {
		t.Fatalf("merged: scale %d, %d buckets, count %d; want ≤ %d buckets, count 2", last.Scale(), n, last.Count(), maxExpBuckets)
	}
	var total uint64
	for _, c := range last.Positive().BucketCounts().All() {
		total += c
	}
	if total != 2 {
		t.Fatalf("bucket counts sum to %d, want 2", total)
	}
}
