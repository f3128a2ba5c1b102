package topology

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
)

// The builder's quantiles equal PromQL's histogram_quantile over the same
// buckets.
func TestQuantileMatchesHistogramQuantile(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls, shopProxies)
	g, err := top.Graph(context.Background(), at(60), time.Minute, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	eng := newEngine()
	for _, q := range []float64{0.5, 0.95, 0.99} {
		qs := fmt.Sprintf(`histogram_quantile(%v, sum by (le) (rate(mesh_request_duration_seconds_bucket{direction="inbound", destination_service="catalog"}[1m])))`, q)
		qry, err := eng.NewInstantQuery(context.Background(), db, nil, qs, at(60))
		if err != nil {
			t.Fatal(err)
		}
		res := qry.Exec(context.Background())
		vec, err := res.Vector()
		if err != nil || len(vec) != 1 {
			t.Fatalf("%s: %v %v", qs, vec, err)
		}
		want := vec[0].F * 1000
		qry.Close()
		n := nodeByID(g, "catalog")
		got := map[float64]float64{0.5: n.P50Ms, 0.95: n.P95Ms, 0.99: n.P99Ms}[q]
		if !near(got, want) {
			t.Errorf("q%v: builder %v ms, histogram_quantile %v ms", q, got, want)
		}
	}
}

func TestQuantileEdges(t *testing.T) {
	inf := buckets{0.1: 0, 1: 0}
	for _, tc := range []struct {
		name string
		b    buckets
		q    float64
		want float64
	}{
		{"empty", buckets{}, 0.5, 0},
		{"no +Inf", inf, 0.5, 0},
		{"all in +Inf", buckets{0.1: 0, 1: 0, posInf: 4}, 0.5, 1},
		{"first bucket", buckets{0.1: 4, 1: 4, posInf: 4}, 0.5, 0.05},
		{"non-monotonic", buckets{0.1: 4, 0.5: 3.9, 1: 4, posInf: 4}, 0.99, 0.099},
	} {
		if got := tc.b.quantile(tc.q); !near(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestNativeHistogramBuckets(t *testing.T) {
	h := &histogram.FloatHistogram{
		Schema: histogram.CustomBucketsSchema, Count: 12, Sum: 1,
		CustomValues:    []float64{0.01, 0.1, 1},
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 4}},
		PositiveBuckets: []float64{2, 6, 2, 2},
	}
	b := buckets{}
	b.addNative(h)
	if got := b.quantile(0.5); !near(got, 0.01+0.09*4.0/6) || b[posInf] != 12 {
		t.Errorf("median %v (buckets %v)", got, b)
	}
}

var posInf = math.Inf(1)

// Durations stored as native histograms with custom buckets (OTLP ingest
// with NHCB conversion) give the same latencies as histogram_quantile.
func TestNativeHistogramEdgeLatency(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	common := []string{"direction", "inbound", "source_service", "web", "source_version", "v1", "destination_service", "catalog",
		"destination_version", "v1", "protocol", "http1", "outcome", "success"}
	bounds := []float64{0.01, 0.1, 1}
	app := db.Appender(context.Background())
	for i := 1; i <= 60; i++ {
		n := uint64(i * 10) // 10 rps: 2 fast, 6 medium, 2 slow per second
		h := &histogram.Histogram{
			CounterResetHint: histogram.NotCounterReset,
			Schema:           histogram.CustomBucketsSchema, Count: n, Sum: float64(n) * 0.05,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
			PositiveBuckets: []int64{int64(n / 5), int64(n*3/5) - int64(n/5), int64(n/5) - int64(n*3/5)},
			CustomValues:    bounds,
		}
		ts := at(i).UnixMilli()
		if _, err := app.AppendHistogram(0, labelsOf(append([]string{"__name__", metricDuration}, common...)...), ts, h, nil); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, app, labelsOf(append([]string{"__name__", metricRequests, "status_code", "200"}, common...)...), ts, float64(n))
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	g, err := top.Graph(context.Background(), at(60), time.Minute, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	e := edgeByID(g, "web->catalog")
	if e == nil {
		t.Fatalf("no edge: %+v", g.Edges)
	}
	qry, err := newEngine().NewInstantQuery(context.Background(), db, nil,
		`histogram_quantile(0.5, sum(rate(mesh_request_duration_seconds[1m])))`, at(60))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	vec, err := qry.Exec(context.Background()).Vector()
	if err != nil || len(vec) != 1 {
		t.Fatalf("%v %v", vec, err)
	}
	if want := vec[0].F * 1000; !near(e.P50Ms, want) || !near(e.RPS, 10) {
		t.Errorf("p50 %v ms rps %v, want %v ms and 10 rps", e.P50Ms, e.RPS, want)
	}
}
