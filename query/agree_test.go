package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/meshscope/meshscope/collector"
	"github.com/meshscope/meshscope/query"
	"github.com/meshscope/meshscope/query/cli"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/jaegerapi"
	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/query/red"
	"github.com/meshscope/meshscope/topology"
)

// goldenBounds are the golden duration buckets (docs/metrics.md).
var goldenBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// flow is one stream of requests between two services, reported by the
// proxies named in sides ("inbound", "outbound").
type flow struct {
	src, srcVer, dst, dstVer, route string
	rps                             int     // requests per second
	errFrac                         float64 // failure probability
	median                          float64 // seconds; latencies are log-normal around it
	sides                           []string
	tls                             string // the proxies' tls label
}

// mesh is the traffic of the agreement test: a shop whose payments service
// has two routes and one unmeshed callee (pricing).
var mesh = []flow{
	{"unknown", "unknown", "web", "v1", "/", 20, 0.004, 0.030, []string{"inbound"}, "plaintext"},
	{"web", "v1", "checkout", "v1", "/api/checkout", 6, 0.01, 0.080, []string{"outbound", "inbound"}, "mtls"},
	{"checkout", "v1", "payments", "v1", "/pay", 5, 0.05, 0.200, []string{"outbound", "inbound"}, "mtls"},
	{"checkout", "v1", "payments", "v2", "/pay", 2, 0.1, 0.300, []string{"outbound", "inbound"}, "plaintext"},
	{"web", "v1", "payments", "v1", "/refund", 1, 0.0, 0.050, []string{"outbound", "inbound"}, "mtls"},
	{"web", "v1", "cart", "v1", "/cart", 8, 0.0, 0.010, []string{"outbound", "inbound"}, "mtls"},
	{"cart", "v1", "pricing", "unknown", "unmatched", 8, 0.02, 0.004, []string{"outbound"}, "plaintext"},
}

type seriesKey struct {
	flow    int
	dir     string
	outcome string
}

type seriesState struct {
	count, sum float64
	buckets    []float64 // per golden bound, +Inf last (non-cumulative counts)
}

// trafficGen keeps the cumulative golden metrics of every proxy series.
type trafficGen struct {
	rnd    *rand.Rand
	start  time.Time
	series map[seriesKey]*seriesState
	keys   []seriesKey
}

// step adds one second of requests.
func (g *trafficGen) step() {
	for i, f := range mesh {
		for range f.rps {
			outcome := "success"
			if g.rnd.Float64() < f.errFrac {
				outcome = "failure"
			}
			lat := f.median * math.Exp(0.6*g.rnd.NormFloat64())
			for _, dir := range f.sides {
				d := lat
				if dir == "outbound" {
					d += 0.001 // the caller's proxy sees the network too
				}
				k := seriesKey{i, dir, outcome}
				st := g.series[k]
				if st == nil {
					st = &seriesState{buckets: make([]float64, len(goldenBounds)+1)}
					g.series[k] = st
					g.keys = append(g.keys, k)
				}
				st.count++
				st.sum += d
				b, _ := slices.BinarySearch(goldenBounds, d)
				st.buckets[b]++
			}
		}
	}
}

// metrics renders what the proxies push at now, as their OTLP exporter
// does: cumulative monotonic sums and explicit-bucket histograms, names as
// in docs/metrics.md, plus each meshed proxy's meshscope_proxy_info.
func (g *trafficGen) metrics(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "meshscope-proxy")
	sm := rm.ScopeMetrics().AppendEmpty()
	reqs := sm.Metrics().AppendEmpty()
	reqs.SetName("mesh_requests_total")
	sum := reqs.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dur := sm.Metrics().AppendEmpty()
	dur.SetName("mesh_request_duration_seconds")
	hist := dur.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ts, st0 := pcommon.NewTimestampFromTime(now), pcommon.NewTimestampFromTime(g.start)
	for _, k := range g.keys {
		f, s := mesh[k.flow], g.series[k]
		attrs := func(m pcommon.Map) {
			m.PutStr("direction", k.dir)
			m.PutStr("source_service", f.src)
			m.PutStr("source_version", f.srcVer)
			m.PutStr("destination_service", f.dst)
			m.PutStr("destination_version", f.dstVer)
			m.PutStr("route", f.route)
			m.PutStr("protocol", "http1")
			m.PutStr("outcome", k.outcome)
			m.PutStr("tls", f.tls)
		}
		p := sum.DataPoints().AppendEmpty()
		attrs(p.Attributes())
		code := "200"
		if k.outcome == "failure" {
			code = "503"
		}
		p.Attributes().PutStr("status_code", code)
		p.SetStartTimestamp(st0)
		p.SetTimestamp(ts)
		p.SetDoubleValue(s.count)
		h := hist.DataPoints().AppendEmpty()
		attrs(h.Attributes())
		h.SetStartTimestamp(st0)
		h.SetTimestamp(ts)
		h.SetCount(uint64(s.count))
		h.SetSum(s.sum)
		h.ExplicitBounds().FromRaw(goldenBounds)
		for _, c := range s.buckets {
			h.BucketCounts().Append(uint64(c))
		}
	}
	info := sm.Metrics().AppendEmpty()
	info.SetName("meshscope_proxy_info")
	gauge := info.SetEmptyGauge()
	for _, px := range [][3]string{{"web", "v1", "observe"}, {"checkout", "v1", "observe"}, {"payments", "v1", "enforce"}, {"payments", "v2", "enforce"}, {"cart", "v1", "observe"}} {
		p := gauge.DataPoints().AppendEmpty()
		p.Attributes().PutStr("service", px[0])
		p.Attributes().PutStr("version", px[1])
		p.Attributes().PutStr("mode", px[2])
		p.SetTimestamp(ts)
		p.SetDoubleValue(1)
	}
	return md
}

// spansOf renders the calls of one second between two services that only
// an OpenTelemetry SDK instruments (no proxy): shipping calls ledger.
func spansOf(now time.Time, second int) ptrace.Traces {
	td := ptrace.NewTraces()
	for i, svc := range []string{"shipping", "ledger"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		ss := rs.ScopeSpans().AppendEmpty()
		for n := range 3 {
			sp := ss.Spans().AppendEmpty()
			var tid pcommon.TraceID
			tid[0], tid[1], tid[2] = 0xab, byte(second), byte(n)
			sp.SetTraceID(tid)
			client := pcommon.SpanID{1, byte(second), byte(n)}
			if i == 0 {
				sp.SetSpanID(client)
				sp.SetKind(ptrace.SpanKindClient)
				sp.SetName("POST /ship")
			} else {
				sp.SetSpanID(pcommon.SpanID{2, byte(second), byte(n)})
				sp.SetParentSpanID(client)
				sp.SetKind(ptrace.SpanKindServer)
				sp.SetName("POST /entries")
			}
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-20 * time.Millisecond)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		}
	}
	return td
}

func post(t *testing.T, url string, body []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

func redSource(engine *promql.Engine, db *tsdb.DB) red.Source {
	return red.Source{Engine: engine, Queryable: db}
}

// r6 is a figure as the native tables print it (6 decimals).
func r6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// TestOneREDEngine writes traffic through the real ingest path (OTLP/HTTP
// into the collector, the topology's ingest hook, a real TSDB; spans into
// the span pairing) and checks that, at one instant, the graph (both
// views), the native tables, the Jaeger dependencies and the CLI show the
// same figures to the last printed digit.
func TestOneREDEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes traffic in real time for about 12 s")
	}
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	engine := fixture.Engine()
	topo, err := topology.New(topology.Config{BuildInterval: 200 * time.Millisecond, AggregateInterval: 500 * time.Millisecond,
		PairingExpiry: time.Second}, engine, db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	coll, err := collector.New(collector.Config{OTLPGRPC: "off", OTLPHTTP: "off"},
		collector.Sinks{Spans: topo, Metrics: topo.AppendableV2(db)}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := query.New(query.DefaultConfig(), engine, db, nil, topo, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	coll.RegisterRoutes(mux)
	topo.RegisterRoutes(mux)
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = coll.Run(ctx); done <- struct{}{} }()
	go func() { _ = topo.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })

	gen := &trafficGen{rnd: rand.New(rand.NewPCG(1, 2)), start: time.Now(), series: map[seriesKey]*seriesState{}}
	const seconds = 12
	for i := range seconds {
		now := time.Now()
		gen.step()
		body, err := pmetricotlp.NewExportRequestFromMetrics(gen.metrics(now)).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		post(t, srv.URL+"/otlp/v1/metrics", body)
		tb, err := ptraceotlp.NewExportRequestFromTraces(spansOf(now, i)).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		post(t, srv.URL+"/otlp/v1/traces", tb)
		time.Sleep(time.Until(now.Add(time.Second)))
	}
	// Let the pairing expire and flush its series, and the last samples be
	// aggregated, then look at one instant over the last 8 s.
	time.Sleep(2 * time.Second)
	at := time.Now().Truncate(time.Millisecond)
	const window = 8 * time.Second
	q := url.Values{"window": {"8s"}, "at": {at.Format(time.RFC3339Nano)}}

	var graph, vgraph topology.Graph
	getJSON(t, srv.URL+"/api/mesh/graph?"+q.Encode(), &graph)
	qv := url.Values{"window": q["window"], "at": q["at"], "view": {"version"}}
	getJSON(t, srv.URL+"/api/mesh/graph?"+qv.Encode(), &vgraph)
	var services meshapi.ServicesResponse
	var routes meshapi.RoutesResponse
	var versions meshapi.VersionsResponse
	var edges meshapi.EdgesResponse
	getJSON(t, srv.URL+"/api/mesh/services?"+q.Encode(), &services)
	getJSON(t, srv.URL+"/api/mesh/routes?"+q.Encode(), &routes)
	getJSON(t, srv.URL+"/api/mesh/versions?"+q.Encode(), &versions)
	getJSON(t, srv.URL+"/api/mesh/edges?"+q.Encode(), &edges)
	var deps struct{ Data []jaegerapi.DependencyLink }
	getJSON(t, fmt.Sprintf("%s/jaeger/api/dependencies?endTs=%d&lookback=%d", srv.URL, at.UnixMilli(), window.Milliseconds()), &deps)

	if graph.CoveredSeconds != window.Seconds() || services.CoveredSeconds != window.Seconds() {
		t.Errorf("covered_seconds: graph %v, services %v, want %v", graph.CoveredSeconds, services.CoveredSeconds, window.Seconds())
	}
	same := func(what string, g topology.Stats, tb meshapi.Stats) {
		t.Helper()
		pairs := [][2]float64{{r6(g.RPS), float64(tb.RPS)}, {r6(g.ErrorRate), float64(tb.ErrorRate)},
			{r6(g.P50Ms), float64(tb.P50Ms)}, {r6(g.P95Ms), float64(tb.P95Ms)}, {r6(g.P99Ms), float64(tb.P99Ms)}}
		for i, p := range pairs {
			if p[0] != p[1] {
				t.Errorf("%s: figure %d (rps, error rate, p50, p95, p99): graph %v, table %v", what, i, p[0], p[1])
			}
		}
	}
	nodes := map[string]topology.Node{}
	for _, n := range graph.Nodes {
		nodes[n.ID] = n
	}
	checked := 0
	for _, row := range services.Services {
		n, ok := nodes[row.Service]
		if !ok {
			t.Errorf("service %s is not a graph node", row.Service)
			continue
		}
		if n.RPS > 0 {
			same("service "+row.Service, n.Stats, row.Stats)
			checked++
		}
	}
	gedges := map[string]topology.Edge{}
	for _, e := range graph.Edges {
		gedges[e.Source+"->"+e.Target] = e
	}
	for _, row := range edges.Edges {
		e, ok := gedges[row.Source+"->"+row.Destination]
		if !ok {
			t.Errorf("edge %s->%s is not a graph edge", row.Source, row.Destination)
			continue
		}
		same("edge "+e.ID, e.Stats, row.Stats)
		checked++
		// The mTLS share: one figure in the graph and the table (null
		// there for span-derived edges, whose tls is unknown).
		if tb := float64(row.MTLSFraction); (e.TLS == "") != math.IsNaN(tb) || (e.TLS != "" && r6(e.MTLSFraction) != tb) {
			t.Errorf("edge %s: graph tls %q mtls_fraction %v, table %v", e.ID, e.TLS, e.MTLSFraction, tb)
		}
	}
	// What the proxies said: checkout->payments is 5 of 7 requests mTLS
	// (v2 runs plaintext), the unmeshed pricing is called in plaintext.
	for id, w := range map[string]struct {
		tls   string
		share float64
	}{"checkout->payments": {topology.TLSPartial, 5.0 / 7}, "web->checkout": {topology.TLSMutual, 1}, "cart->pricing": {topology.TLSPlaintext, 0},
		"unknown->web": {topology.TLSPlaintext, 0}, "shipping->ledger": {"", 0}} {
		if e := gedges[id]; e.TLS != w.tls || math.Abs(e.MTLSFraction-w.share) > 0.03 {
			t.Errorf("edge %s: tls %q mtls_fraction %v, want %q %v", id, e.TLS, e.MTLSFraction, w.tls, w.share)
		}
	}
	if c := graph.Coverage; c.EdgesMTLS != 3 || c.EdgesPlaintext != 3 {
		t.Errorf("coverage: %d edges mTLS, %d in plaintext; want 3 and 3 (%+v)", c.EdgesMTLS, c.EdgesPlaintext, c)
	}
	if len(edges.Edges) != len(graph.Edges) {
		t.Errorf("%d table edges, %d graph edges", len(edges.Edges), len(graph.Edges))
	}
	vnodes := map[string]topology.Node{}
	for _, n := range vgraph.Nodes {
		vnodes[n.ID] = n
	}
	for _, row := range versions.Versions {
		if n, ok := vnodes[row.Service+"@"+row.Version]; ok {
			same("version "+n.ID, n.Stats, row.Stats)
			checked++
		}
	}
	// A service with one route: the route row is the service.
	for _, row := range routes.Routes {
		if row.Service == "checkout" || row.Service == "web" {
			same("route "+row.Service+" "+row.Route, nodes[row.Service].Stats, row.Stats)
			checked++
		}
	}
	// An edge's routes (what its side panel lists) add up to the edge; an
	// edge with one route is that route.
	for _, e := range graph.Edges {
		if e.SeenBy == "spans" {
			continue
		}
		var er meshapi.RoutesResponse
		rq := url.Values{"window": q["window"], "at": q["at"], "service": {e.Target}, "source": {e.Source}}
		getJSON(t, srv.URL+"/api/mesh/routes?"+rq.Encode(), &er)
		var n float64
		for _, row := range er.Routes {
			n += float64(row.Requests)
		}
		if math.Abs(n-r6(e.RPS*window.Seconds())) > 1e-6 {
			t.Errorf("edge %s: routes have %v requests, the edge %v", e.ID, n, e.RPS*window.Seconds())
		}
		if len(er.Routes) == 1 {
			same("edge route "+e.ID+" "+er.Routes[0].Route, e.Stats, er.Routes[0].Stats)
			checked++
		}
	}
	// Payments' routes add up to payments.
	var payReqs float64
	for _, row := range routes.Routes {
		if row.Service == "payments" {
			payReqs += float64(row.Requests)
		}
	}
	if got, want := payReqs, nodes["payments"].RPS*window.Seconds(); math.Abs(got-want) > 1e-6 {
		t.Errorf("payments' routes have %v requests, the node %v", got, want)
	}
	// Dependencies: the graph's edges (span-derived ones included) with
	// their requests.
	if len(deps.Data) != len(graph.Edges) {
		t.Errorf("%d dependencies, %d graph edges", len(deps.Data), len(graph.Edges))
	}
	for _, d := range deps.Data {
		e, ok := gedges[d.Parent+"->"+d.Child]
		if !ok {
			t.Errorf("dependency %s->%s is not a graph edge", d.Parent, d.Child)
			continue
		}
		if want := uint64(math.Round(e.RPS * window.Seconds())); d.CallCount != want {
			t.Errorf("dependency %s: %d calls, graph edge %v rps × 8 s = %d", e.ID, d.CallCount, e.RPS, want)
		}
	}
	if !slices.ContainsFunc(deps.Data, func(d jaegerapi.DependencyLink) bool {
		return d.Parent == "shipping" && d.Child == "ledger" && d.CallCount > 0
	}) {
		t.Errorf("dependencies %+v lack shipping->ledger (services instrumented only with OpenTelemetry SDKs)", deps.Data)
	}
	if e, ok := gedges["shipping->ledger"]; !ok || e.SeenBy != "spans" || e.RPS <= 0 {
		t.Errorf("span-derived edge shipping->ledger = %+v, %v", e, ok)
	}
	if u := nodes["unknown"]; u.RPS != gedges["unknown->web"].RPS || u.P99Ms == 0 {
		t.Errorf("user node %+v does not carry its outgoing traffic %+v", u.Stats, gedges["unknown->web"].Stats)
	}
	if checked < 15 {
		t.Errorf("only %d figures rows compared", checked)
	}
	svc := func(name string) meshapi.ServiceRow {
		return services.Services[slices.IndexFunc(services.Services, func(r meshapi.ServiceRow) bool { return r.Service == name })]
	}
	// What the tables showed when they ran their own PromQL over the raw
	// series (rate() extrapolates; the graph sums the aggregates).
	promql := func(qs string) float64 {
		v, err := redSource(engine, db).Instant(context.Background(), qs, at)
		if err != nil || len(v) != 1 {
			t.Fatalf("%s: %v %v", qs, v, err)
		}
		return v[0].F
	}
	t.Logf("web rps: graph %v, services %v, raw PromQL %v", nodes["web"].RPS, float64(svc("web").RPS),
		promql(`sum(rate(mesh_requests_total{direction="inbound",destination_service="web"}[8s]))`))
	t.Logf("payments error rate: graph %v, services %v, raw PromQL %v", nodes["payments"].ErrorRate, float64(svc("payments").ErrorRate),
		promql(`sum(rate(mesh_requests_total{direction="inbound",destination_service="payments",outcome="failure"}[8s])) / sum(rate(mesh_requests_total{direction="inbound",destination_service="payments"}[8s]))`))
	t.Logf("payments p99 ms: graph %v, services %v, raw PromQL %v", nodes["payments"].P99Ms, float64(svc("payments").P99Ms),
		1000*promql(`histogram_quantile(0.99, sum by (le) (rate(mesh_request_duration_seconds_bucket{direction="inbound",destination_service="payments"}[8s])))`))

	// The CLI prints the graph's edges and the edge table alike: every
	// figure of an edge is the same string in both (a 1m window holds all
	// the traffic, so the two commands agree although they run a moment
	// apart).
	cliRows := func(args ...string) map[string][]string {
		var out, errOut bytes.Buffer
		if code := cli.Run(context.Background(), args[0], append(args[1:], "--server", srv.URL), &out, &errOut); code != 0 {
			t.Fatalf("meshscope %v: exit %d: %s", args, code, errOut.String())
		}
		rows := map[string][]string{}
		for _, line := range strings.Split(out.String(), "\n") {
			f := strings.Fields(line)
			if len(f) >= 7 && strings.HasSuffix(f[2], "rps") || len(f) >= 7 && strings.HasSuffix(f[3], "rps") {
				rows[f[0]+"->"+f[1]] = f[2:7]
			}
		}
		return rows
	}
	g := cliRows("graph", "--window", "1m")
	s := cliRows("stat", "--edges", "--window", "1m")
	if len(g) == 0 || len(s) == 0 {
		t.Fatalf("no CLI rows: graph %v, stat %v", g, s)
	}
	for id, gf := range g {
		sf, ok := s[id]
		if !ok {
			continue
		}
		// graph: RPS SUCCESS P50 P95 P99; stat: SUCCESS RPS P50 P95 P99.
		if gf[0] != sf[1] || gf[1] != sf[0] || !slices.Equal(gf[2:], sf[2:]) {
			t.Errorf("CLI %s: graph %v, stat --edges %v", id, gf, sf)
		}
	}
}
