package proxy

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/otel/attribute"

	"github.com/meshscope/meshscope/collector/otlp"
	"github.com/meshscope/meshscope/topology"
)

// latencySample draws n request durations (seconds) from a known
// distribution: log-normal around 60 ms with a slow tail (3 % around
// 330 ms), like a service with a slow dependency.
func latencySample(n int) []float64 {
	rnd := rand.New(rand.NewPCG(7, 11))
	out := make([]float64, n)
	for i := range out {
		med := 0.060
		if rnd.Float64() < 0.03 {
			med = 0.330
		}
		out[i] = med * math.Exp(0.3*rnd.NormFloat64())
	}
	return out
}

// exactQuantile is the q-quantile of sorted (nearest rank).
func exactQuantile(sorted []float64, q float64) float64 {
	return sorted[int(math.Ceil(q*float64(len(sorted))))-1]
}

// TestQuantilesPrecise records a known latency distribution with the
// proxy's golden metrics, pushes them as the proxy's OTLP exporter encodes
// them, translates them into a real TSDB through the collector's OTLP
// translator and the topology's ingest hook, and checks that the graph's
// p50/p99 (which every table and the CLI show too) are within 5 % of the
// exact quantiles, from the edge aggregates and from the raw series alike.
// The classic buckets alone are logged for comparison: they miss by far
// more (what the graph showed before native histograms).
func TestQuantilesPrecise(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := newGoldenMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	k := requestKey{peerLabels: peerLabels{dirInbound, "checkout", "v1", "payments", "v1"}, outcome: outcomeSuccess, protocol: protoHTTP1, route: "/pay", statusCode: "200"}
	s := g.request(&k)

	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	topo, err := topology.New(topology.Config{}, engine, db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := otlp.NewMetricsWriter(topo.AppendableV2(db), otlp.DeltaConfig{}, nil)
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Second)
	push := func(at time.Time) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		b := encodeMetricsRequest(nil, []attribute.KeyValue{attribute.String("service.name", "payments")}, mfs, t0, at)
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(b); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(ctx, req.Metrics()); err != nil {
			t.Fatal(err)
		}
	}
	push(t0.Add(5 * time.Second)) // the series exist, empty
	durations := latencySample(20000)
	for _, d := range durations {
		s.duration.Observe(d)
		s.requests.Inc()
	}
	push(t0.Add(30 * time.Second))
	if err := topo.AggregateEdges(ctx, t0.Add(35*time.Second)); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(durations)
	slices.Sort(sorted)
	exact50, exact99 := exactQuantile(sorted, 0.5), exactQuantile(sorted, 0.99)

	check := func(name string, top *topology.Topology, at time.Time, window time.Duration) {
		t.Helper()
		gr, err := top.Graph(ctx, at, window, topology.ViewService)
		if err != nil {
			t.Fatal(err)
		}
		var e *topology.Edge
		for i := range gr.Edges {
			if gr.Edges[i].ID == "checkout->payments" {
				e = &gr.Edges[i]
			}
		}
		if e == nil || math.Abs(e.RPS*window.Seconds()-20000) > 0.5 {
			t.Fatalf("%s: edge %+v, want 20000 requests", name, e)
		}
		for _, c := range []struct {
			q          string
			got, exact float64
		}{{"p50", e.P50Ms / 1000, exact50}, {"p99", e.P99Ms / 1000, exact99}} {
			rel := math.Abs(c.got-c.exact) / c.exact
			t.Logf("%s %s: %.2f ms, exact %.2f ms (%.1f %% off)", name, c.q, 1000*c.got, 1000*c.exact, 100*rel)
			if rel > 0.05 {
				t.Errorf("%s %s = %.2f ms, exact %.2f ms: %.1f %% off", name, c.q, 1000*c.got, 1000*c.exact, 100*rel)
			}
		}
	}
	// Edge aggregates: continuous since the hook was made (before t0+5s).
	check("aggregates", topo, t0.Add(40*time.Second), 30*time.Second)
	// Raw series (no aggregates), rate over both pushes.
	off := false
	raw, err := topology.New(topology.Config{EdgeAggregates: &off}, engine, db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("raw series", raw, t0.Add(30*time.Second), time.Minute)

	// The classic buckets alone, as histogram_quantile reads them (and as
	// the graph did before native histograms): they cannot meet the 5 %.
	worst := 0.0
	for _, q := range []float64{0.5, 0.99} {
		qry, err := engine.NewInstantQuery(ctx, db, nil, "histogram_quantile("+strconv.FormatFloat(q, 'g', -1, 64)+`, sum by (le) (rate(mesh_request_duration_seconds_bucket[1m])))`, t0.Add(30*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		v, err := qry.Exec(ctx).Vector()
		if err != nil || len(v) != 1 {
			t.Fatalf("classic quantile: %v %v", v, err)
		}
		exact := exactQuantile(sorted, q)
		rel := math.Abs(v[0].F-exact) / exact
		t.Logf("classic buckets p%g: %.2f ms, exact %.2f ms (%.1f %% off)", 100*q, 1000*v[0].F, 1000*exact, 100*rel)
		worst = max(worst, rel)
		qry.Close()
	}
	if worst <= 0.05 {
		t.Errorf("classic buckets are within 5 %% (%.1f %%): the distribution does not tell native from classic", 100*worst)
	}
}

// BenchmarkDurationObserve is the proxy's cost of recording one request
// duration: the classic buckets alone, and with the native buckets
// alongside (what the proxy records).
func BenchmarkDurationObserve(b *testing.B) {
	durations := latencySample(4096)
	for _, bc := range []struct {
		name   string
		factor float64
	}{{"classic", 0}, {"classic+native", NativeBucketFactor}} {
		b.Run(bc.name, func(b *testing.B) {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "d", Help: "d", Buckets: DurationBuckets,
				NativeHistogramBucketFactor: bc.factor, NativeHistogramMaxBucketNumber: NativeMaxBuckets,
			})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.Observe(durations[i&4095])
				i++
			}
		})
	}
}

// BenchmarkDurationIngest is the server's cost of one push of one
// duration series (1000 distinct observations so far): decoding the
// proxy's OTLP encoding, translating it and appending it to a real TSDB
// through the topology's ingest hook. classic: the explicit-bucket
// histogram only (19 float samples); classic+native: with the
// exponential histogram (one native sample more).
func BenchmarkDurationIngest(b *testing.B) {
	for _, bc := range []struct {
		name   string
		factor float64
	}{{"classic", 0}, {"classic+native", NativeBucketFactor}} {
		b.Run(bc.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name: "mesh_request_duration_seconds", Help: "d", Buckets: DurationBuckets,
				NativeHistogramBucketFactor: bc.factor, NativeHistogramMaxBucketNumber: NativeMaxBuckets,
			}, commonLabels)
			reg.MustRegister(h)
			o := h.WithLabelValues(dirInbound, "checkout", "v1", "payments", "v1", outcomeSuccess, protoHTTP1, "/pay", tlsPlaintext)
			for _, d := range latencySample(1000) {
				o.Observe(d)
			}
			mfs, err := reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			db, err := tsdb.Open(b.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute})
			topo, err := topology.New(topology.Config{}, engine, db, db, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			w := otlp.NewMetricsWriter(topo.AppendableV2(db), otlp.DeltaConfig{}, nil)
			t0 := time.Now()
			ctx := context.Background()
			res := []attribute.KeyValue{attribute.String("service.name", "payments")}
			var buf []byte
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				buf = encodeMetricsRequest(buf, res, mfs, t0, t0.Add(time.Duration(i)*time.Second))
				req := pmetricotlp.NewExportRequest()
				if err := req.UnmarshalProto(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(ctx, req.Metrics()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
