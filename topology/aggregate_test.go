package topology

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// hooked fixes top's clock at sec and returns its ingest hook over db.
func hooked(top *Topology, db *tsdb.DB, sec int) storage.Appendable {
	top.now = func() time.Time { return at(sec) }
	return top.Appendable(db)
}

// aggregated appends the shop traffic second by second from..to through
// the ingest hook app, running an aggregation step after each second (as
// the live loop does).
func aggregated(t *testing.T, top *Topology, app storage.Appendable, from, to int, calls []call) {
	t.Helper()
	for i := from; i <= to; i++ {
		appendGolden(t, app, i, i, calls, shopProxies)
		if err := top.AggregateEdges(context.Background(), at(i)); err != nil {
			t.Fatalf("aggregating at %d: %v", i, err)
		}
	}
}

func assembleAt(t *testing.T, top *Topology, sec int, window time.Duration) *assembled {
	t.Helper()
	a, err := top.assemble(context.Background(), at(sec), window, false)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func statsNear(a, b Stats) bool {
	return near(a.RPS, b.RPS) && near(a.ErrorRate, b.ErrorRate) && near(a.P50Ms, b.P50Ms) &&
		near(a.P95Ms, b.P95Ms) && near(a.P99Ms, b.P99Ms) && near(a.BytesPerSec, b.BytesPerSec)
}

// graphsNear compares two graphs' structure exactly and their stats to
// rounding.
func graphsNear(t *testing.T, got, want *Graph) {
	t.Helper()
	strip := func(g *Graph) string {
		c := *g
		c.Nodes = append([]Node(nil), g.Nodes...)
		c.Edges = append([]Edge(nil), g.Edges...)
		for i := range c.Nodes {
			c.Nodes[i].Stats = Stats{}
		}
		for i := range c.Edges {
			c.Edges[i].Stats = Stats{}
			c.Edges[i].MTLSFraction = math.Round(c.Edges[i].MTLSFraction*1e9) / 1e9
		}
		c.Coverage.RequestFraction = 0
		b, _ := json.Marshal(&c)
		return string(b)
	}
	if s1, s2 := strip(got), strip(want); s1 != s2 {
		t.Fatalf("graphs differ\n got  %s\n want %s", s1, s2)
	}
	for i := range got.Nodes {
		if !statsNear(got.Nodes[i].Stats, want.Nodes[i].Stats) {
			t.Errorf("node %s: %+v, want %+v", got.Nodes[i].ID, got.Nodes[i].Stats, want.Nodes[i].Stats)
		}
	}
	for i := range got.Edges {
		if !statsNear(got.Edges[i].Stats, want.Edges[i].Stats) {
			t.Errorf("edge %s: %+v, want %+v", got.Edges[i].ID, got.Edges[i].Stats, want.Edges[i].Stats)
		}
	}
}

// The graph from the per-edge aggregates equals the graph from the raw
// golden series, in both views.
func TestAggregatesMatchRaw(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	off := false
	rawTop, err := New(Config{EdgeAggregates: &off}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Not hooked to the ingest: the graph is computed from the raw series.
	unhooked, err := New(Config{}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	aggregated(t, top, app, 1, 60, shopCalls)
	if a := assembleAt(t, top, 60, time.Minute); !a.raw.aggregates {
		t.Fatal("the aggregates cover (0s, 60s] but were not used")
	}
	if a := assembleAt(t, rawTop, 60, time.Minute); a.raw.aggregates {
		t.Fatal("aggregates used with edge_aggregates off")
	}
	if err := unhooked.AggregateEdges(context.Background(), at(61)); err != nil {
		t.Fatal(err)
	}
	if n := countSeries(t, db, `mesh_edge_aggregates_since_seconds`); n != 1 {
		t.Fatalf("%d continuity series", n)
	}
	for _, view := range []string{ViewService, ViewVersion} {
		got, err := top.Graph(context.Background(), at(60), time.Minute, view)
		if err != nil {
			t.Fatal(err)
		}
		want, err := rawTop.Graph(context.Background(), at(60), time.Minute, view)
		if err != nil {
			t.Fatal(err)
		}
		graphsNear(t, got, want)
	}
	// The aggregates are per edge and direction: far fewer series.
	if n := countSeries(t, db, `{__name__=~"mesh_edge_.*"}`); n > 4*len(shopCalls)+1 {
		t.Errorf("%d aggregate series for %d raw edges", n, len(shopCalls))
	}
}

// A window that starts before the aggregates did is computed from the raw
// series; once covered, from the aggregates.
func TestAggregatesFallBackBeforeTheyStart(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 30, shopCalls, shopProxies) // ingested before the aggregator ran
	app := hooked(top, db, 30)
	if err := top.AggregateEdges(context.Background(), at(30)); err != nil {
		t.Fatal(err)
	}
	aggregated(t, top, app, 31, 95, shopCalls)
	for _, c := range []struct {
		sec  int
		agg  bool
		rps  float64
		edge string
	}{{60, false, 10, "web->catalog"}, {89, false, 10, "web->catalog"}, {90, true, 10, "web->catalog"}, {95, true, 2, "checkout->payments"}} {
		a := assembleAt(t, top, c.sec, time.Minute)
		if a.raw.aggregates != c.agg {
			t.Errorf("at %ds: aggregates used = %v, want %v", c.sec, a.raw.aggregates, c.agg)
		}
		g := a.graph(ViewService, top.th)
		if e := edgeByID(g, c.edge); e == nil || !near(e.RPS, c.rps) {
			t.Errorf("at %ds: %s = %+v, want rps %v", c.sec, c.edge, e, c.rps)
		}
	}
}

// A raw counter that resets (proxy restart) adds what it counted before
// and after the reset.
func TestAggregatesCounterReset(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	hook := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	lbl := labelsOf("__name__", metricRequests, "direction", "inbound", "source_service", "web", "source_version", "v1",
		"destination_service", "catalog", "destination_version", "v1", "protocol", "http1", "outcome", "success", "status_code", "200")
	for i := 1; i <= 60; i++ {
		v := 10.0 * float64(i) // 10 per second ...
		if i > 30 {
			v = 10*float64(i-30) - 5 // ... restarted at 30.5 s
		}
		app := hook.Appender(context.Background())
		mustAppend(t, app, lbl, at(i).UnixMilli(), v)
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := top.AggregateEdges(context.Background(), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	g, err := top.Graph(context.Background(), at(60), time.Minute, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	// 300 before the reset, 295 after it (5 at the first sample).
	if e := edgeByID(g, "web->catalog"); e == nil || !near(e.RPS, 595.0/60) {
		t.Errorf("edge = %+v, want rps %v", e, 595.0/60)
	}
}

// A restarted server continues the aggregates from the store: the raw
// counters' values at the previous run's last step are the base, so
// samples ingested between that step and the restart count once.
func TestAggregatesRestartReseed(t *testing.T) {
	db := openDB(t)
	first, err := New(Config{}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := hooked(first, db, 0)
	if err := first.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	aggregated(t, first, app, 1, 30, shopCalls)
	// Ingested after the last step, before the process ended: the first
	// run counted these samples but never appended them.
	appendGolden(t, app, 31, 35, shopCalls, shopProxies)
	second, err := New(Config{}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app = hooked(second, db, 35)
	aggregated(t, second, app, 36, 60, shopCalls)
	a := assembleAt(t, second, 60, time.Minute)
	if !a.raw.aggregates {
		t.Fatal("the restarted aggregates do not continue the previous run")
	}
	off := false
	rawTop, err := New(Config{EdgeAggregates: &off}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := rawTop.Graph(context.Background(), at(60), time.Minute, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	graphsNear(t, a.graph(ViewService, second.th), want)
}

// The replay of a past window reads the same aggregates the live loop
// read: identical graphs.
func TestAggregatesHistoryEqualsLive(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	app := hooked(top, db, 0)
	var now time.Time
	top.now = func() time.Time { return now }
	live := map[string]string{}
	for i := 0; i <= 90; i++ {
		if i > 0 {
			calls := shopCalls
			if i > 70 {
				calls = shopCalls[:4] // traffic changes after the live build
			}
			appendGolden(t, app, i, i, calls, shopProxies)
		}
		now = at(i).Add(250 * time.Millisecond)
		top.step(context.Background())
		if i == 70 {
			for _, v := range []string{ViewService, ViewVersion} {
				g := top.liveGraph(time.Minute, v)
				if g == nil {
					t.Fatal("no live graph")
				}
				live[v] = mustJSON(t, g)
			}
		}
	}
	for _, v := range []string{ViewService, ViewVersion} {
		a, err := top.assemble(context.Background(), at(70).Add(250*time.Millisecond), time.Minute, false)
		if err != nil {
			t.Fatal(err)
		}
		if !a.raw.aggregates {
			t.Fatal("replay did not use the aggregates")
		}
		if got := mustJSON(t, a.graph(v, top.th)); got != live[v] {
			t.Errorf("%s view: replay differs from live\nlive   %s\nreplay %s", v, live[v], got)
		}
	}
}

// Raw durations stored as native histograms are aggregated too.
func TestAggregatesNativeHistograms(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	hook := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	common := []string{"direction", "inbound", "source_service", "web", "source_version", "v1", "destination_service", "catalog",
		"destination_version", "v1", "protocol", "http1", "outcome", "success"}
	for i := 1; i <= 60; i++ {
		n := uint64(i * 10) // 10 rps: 2 under 10 ms, 6 under 100 ms, 2 under 1 s
		h := &histogram.Histogram{
			CounterResetHint: histogram.NotCounterReset,
			Schema:           histogram.CustomBucketsSchema, Count: n, Sum: float64(n) * 0.05,
			PositiveSpans:   []histogram.Span{{Offset: 0, Length: 3}},
			PositiveBuckets: []int64{int64(n / 5), int64(n*3/5) - int64(n/5), int64(n/5) - int64(n*3/5)},
			CustomValues:    []float64{0.01, 0.1, 1},
		}
		app := hook.Appender(context.Background())
		if _, err := app.AppendHistogram(0, labelsOf(append([]string{"__name__", metricDuration}, common...)...), at(i).UnixMilli(), h, nil); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, app, labelsOf(append([]string{"__name__", metricRequests, "status_code", "200"}, common...)...), at(i).UnixMilli(), float64(n))
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := top.AggregateEdges(context.Background(), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	g, err := top.Graph(context.Background(), at(60), time.Minute, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	e := edgeByID(g, "web->catalog")
	if e == nil || !near(e.RPS, 10) || !near(e.P50Ms, 10+90*3.0/6) {
		t.Errorf("edge = %+v, want 10 rps, p50 %v ms", e, 10+90*3.0/6)
	}
}

// Proxies send the durations both as classic buckets and as an
// exponential native histogram: the aggregates keep the native one as it
// is, quantiles come from it (not from the coarse classic buckets), and the
// live graph from memory equals the replay.
func TestAggregatesExponentialHistograms(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	hook := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	common := []string{"direction", "inbound", "source_service", "web", "source_version", "v1", "destination_service", "catalog",
		"destination_version", "v1", "protocol", "http1", "outcome", "success", "route", "/items"}
	// Every request in the schema-3 bucket (2^(-41/8), 2^(-40/8)] ≈ (28.7, 31.3] ms,
	// that is in the classic bucket (25, 50] ms.
	for i := 1; i <= 60; i++ {
		n := uint64(i * 10)
		nh := &histogram.Histogram{
			CounterResetHint: histogram.NotCounterReset, Schema: 3, ZeroThreshold: 1e-128,
			Count: n, Sum: float64(n) * 0.03,
			PositiveSpans: []histogram.Span{{Offset: -40, Length: 1}}, PositiveBuckets: []int64{int64(n)},
		}
		app := hook.Appender(context.Background())
		if _, err := app.AppendHistogram(0, labelsOf(append([]string{"__name__", metricDuration}, common...)...), at(i).UnixMilli(), nh, nil); err != nil {
			t.Fatal(err)
		}
		for _, b := range []struct {
			le string
			v  float64
		}{{"0.025", 0}, {"0.05", float64(n)}, {"+Inf", float64(n)}} {
			mustAppend(t, app, labelsOf(append([]string{"__name__", metricDuration + "_bucket", "le", b.le}, common...)...), at(i).UnixMilli(), b.v)
		}
		mustAppend(t, app, labelsOf(append([]string{"__name__", metricRequests, "status_code", "200"}, common...)...), at(i).UnixMilli(), float64(n))
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := top.AggregateEdges(context.Background(), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := countSeries(t, db, metricEdgeNative); n != 1 {
		t.Errorf("%d %s series, want 1", n, metricEdgeNative)
	}
	live, replay, liveMem, _ := liveAndReplay(t, top, 60, 30*time.Second, ViewService)
	if !liveMem || live != replay {
		t.Errorf("live (memory %v) differs from replay\nlive   %s\nreplay %s", liveMem, live, replay)
	}
	g, err := top.Graph(context.Background(), at(60), 30*time.Second, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := 1000*math.Pow(2, -41.0/8), 1000*math.Pow(2, -40.0/8)
	e := edgeByID(g, "web->catalog")
	if e == nil || !near(e.RPS, 10) || e.P50Ms <= lo || e.P50Ms > hi || e.P99Ms <= lo || e.P99Ms > hi {
		t.Errorf("edge = %+v, want 10 rps and quantiles in (%.2f, %.2f] ms (the classic buckets say 37.5 ms)", e, lo, hi)
	}
}

func TestFixedHistogram(t *testing.T) {
	if fixedHistogram(map[float64]float64{}, 0) != nil || fixedHistogram(map[float64]float64{posInf: 0}, 0) != nil {
		t.Error("empty input gave a histogram")
	}
	// 0.003 is not a golden bound: it counts under 0.005. Missing golden
	// bounds are interpolated. A non-monotonic input stays cumulative.
	h := fixedHistogram(map[float64]float64{0.001: 2, 0.003: 5, 0.01: 4, 1: 9, posInf: 10}, 1.5)
	if h == nil || h.Count != 10 || h.Sum != 1.5 || h.Validate() != nil {
		t.Fatalf("histogram %v (validate %v)", h, h.Validate())
	}
	b := buckets{}
	b.addNative(h)
	want := buckets{0.0001: 0.2, 0.001: 2, 0.0025: 3.125, 0.005: 5, 0.01: 5, 1: 9, 30: 9, posInf: 10}
	for le, c := range want {
		if !near(b[le], c) {
			t.Errorf("cumulative at %v = %v, want %v (all %v)", le, b[le], c, b)
		}
	}
	if math.IsNaN(b.quantile(0.5)) {
		t.Error("NaN median")
	}
}

func countSeries(t *testing.T, db *tsdb.DB, sel string) int {
	t.Helper()
	qry, err := newEngine().NewInstantQuery(context.Background(), db, nil, "count("+sel+")", at(60))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	vec, err := qry.Exec(context.Background()).Vector()
	if err != nil || len(vec) != 1 {
		t.Fatalf("%v %v", vec, err)
	}
	return int(vec[0].F)
}
