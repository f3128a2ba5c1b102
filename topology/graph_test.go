package topology

import (
	"context"
	"math"
	"reflect"
	"testing"
)

var shopProxies = []proxy{
	{"web", "v1", "enforce"},
	{"catalog", "v1", "observe"},
	{"catalog", "v2", "observe"},
	{"checkout", "v1", "observe"},
	{"payments", "v1", "enforce"},
	{"cart", "v1", "observe"},
}

// shopCalls: both proxies report meshed calls (outbound with a slightly
// different latency, as the caller's proxy adds the network), the callers'
// proxies alone report calls to the unmeshed inventory and to external.
var shopCalls = []call{
	{dir: "inbound", src: "unknown", srcVer: "unknown", dst: "web", dstVer: "v1", proto: "http1", rps: 5, latency: 0.03, bytesPerReq: 1000},
	{dir: "outbound", src: "web", srcVer: "v1", dst: "catalog", dstVer: "v1", proto: "http1", rps: 6, latency: 0.04, bytesPerReq: 1000},
	{dir: "outbound", src: "web", srcVer: "v1", dst: "catalog", dstVer: "v2", proto: "http1", rps: 4, latency: 0.3, bytesPerReq: 1000},
	{dir: "inbound", src: "web", srcVer: "v1", dst: "catalog", dstVer: "v1", proto: "http1", rps: 6, latency: 0.03, bytesPerReq: 1000, tls: "mtls"},
	{dir: "inbound", src: "web", srcVer: "v1", dst: "catalog", dstVer: "v2", proto: "http1", rps: 4, latency: 0.2, bytesPerReq: 1000, tls: "plaintext"},
	{dir: "outbound", src: "web", srcVer: "v1", dst: "checkout", dstVer: "v1", proto: "http1", rps: 2, failFrac: 0.02, latency: 0.01},
	{dir: "inbound", src: "web", srcVer: "v1", dst: "checkout", dstVer: "v1", proto: "http1", rps: 2, failFrac: 0.02, latency: 0.01, tls: "mtls"},
	{dir: "outbound", src: "checkout", srcVer: "v1", dst: "payments", dstVer: "v1", proto: "grpc", rps: 2, failFrac: 0.2, latency: 0.5},
	{dir: "inbound", src: "checkout", srcVer: "v1", dst: "payments", dstVer: "v1", proto: "grpc", rps: 2, failFrac: 0.2, latency: 0.5, tls: "mtls"},
	{dir: "outbound", src: "catalog", srcVer: "v1", dst: "inventory", dstVer: "unknown", proto: "http1", rps: 3, latency: 0.002},
	{dir: "outbound", src: "catalog", srcVer: "v2", dst: "inventory", dstVer: "unknown", proto: "http1", rps: 1, latency: 0.002},
	{dir: "outbound", src: "web", srcVer: "v1", dst: "external", dstVer: "unknown", proto: "http1", rps: 1, latency: 0.1},
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }

func TestServiceView(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls, shopProxies)
	g, err := top.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	if g.Window != "1m" || g.View != ViewService || !g.At.Equal(at(60)) {
		t.Errorf("header = %q %q %v", g.Window, g.View, g.At)
	}
	nodes := []struct {
		id, kind, mode, health string
		rps                    float64
		versions               []string
	}{
		{"cart", KindService, ModeObserve, HealthNoData, 0, []string{"v1"}},
		{"catalog", KindService, ModeObserve, HealthHealthy, 10, []string{"v1", "v2"}},
		{"checkout", KindService, ModeObserve, HealthDegraded, 2, []string{"v1"}},
		{"external", KindExternal, ModeNone, HealthHealthy, 1, nil},
		{"inventory", KindUnmeshed, ModeNone, HealthHealthy, 4, nil},
		{"payments", KindService, ModeEnforce, HealthFailing, 2, []string{"v1"}},
		// Callers outside the mesh carry the traffic they send (5 rps to web).
		{"unknown", KindUser, ModeNone, HealthHealthy, 5, nil},
		{"web", KindService, ModeEnforce, HealthHealthy, 5, []string{"v1"}},
	}
	if len(g.Nodes) != len(nodes) {
		t.Fatalf("nodes = %s, want %d", ids(g.Nodes, func(n Node) string { return n.ID }), len(nodes))
	}
	for i, want := range nodes {
		n := g.Nodes[i]
		if n.ID != want.id || n.Kind != want.kind || n.Mode != want.mode || n.Health != want.health ||
			!near(n.RPS, want.rps) || !reflect.DeepEqual(n.Versions, want.versions) {
			t.Errorf("node %d = %+v, want %+v", i, n, want)
		}
	}
	if u, e := g.Nodes[6], edgeByID(g, "unknown->web"); e == nil || u.Stats != e.Stats || u.P99Ms == 0 {
		t.Errorf("user node stats %+v, want its outgoing edge's %+v", u.Stats, e)
	}
	edges := []struct {
		id, seenBy, health string
		rps, errRate       float64
		protocols          []string
	}{
		{"catalog->inventory", "source", HealthHealthy, 4, 0, []string{"http1"}},
		{"checkout->payments", "both", HealthFailing, 2, 0.2, []string{"grpc"}},
		{"unknown->web", "destination", HealthHealthy, 5, 0, []string{"http1"}},
		{"web->catalog", "both", HealthHealthy, 10, 0, []string{"http1"}},
		{"web->checkout", "both", HealthDegraded, 2, 0.02, []string{"http1"}},
		{"web->external", "source", HealthHealthy, 1, 0, []string{"http1"}},
	}
	if len(g.Edges) != len(edges) {
		t.Fatalf("edges = %s", ids(g.Edges, func(e Edge) string { return e.ID }))
	}
	for i, want := range edges {
		e := g.Edges[i]
		if e.ID != want.id || e.SeenBy != want.seenBy || e.Health != want.health || !near(e.RPS, want.rps) ||
			!near(e.ErrorRate, want.errRate) || !reflect.DeepEqual(e.Protocols, want.protocols) {
			t.Errorf("edge %d = %+v, want %+v", i, e, want)
		}
	}
	// Latency and bytes come from the destination's (inbound) report:
	// 6 rps at 30 ms, 4 rps at 200 ms.
	wc := edgeByID(g, "web->catalog")
	if !near(wc.P50Ms, 25+25*5.0/6) || !near(wc.P95Ms, 100+150*3.5/4) || !near(wc.BytesPerSec, 10000) {
		t.Errorf("web->catalog p50 %v p95 %v bytes %v", wc.P50Ms, wc.P95Ms, wc.BytesPerSec)
	}
	if c := nodeByID(g, "catalog"); !near(c.P50Ms, wc.P50Ms) || !near(c.BytesPerSec, 10000) || !reflect.DeepEqual(c.Protocols, []string{"http1"}) {
		t.Errorf("catalog node = %+v", c)
	}
}

func TestVersionView(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls, shopProxies)
	g, err := top.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewVersion)
	if err != nil {
		t.Fatal(err)
	}
	wantNodes := "cart@v1 catalog@v1 catalog@v2 checkout@v1 external inventory payments@v1 unknown web@v1 "
	if got := ids(g.Nodes, func(n Node) string { return n.ID }); got != wantNodes {
		t.Errorf("nodes = %s, want %s", got, wantNodes)
	}
	wantEdges := "catalog@v1->inventory catalog@v2->inventory checkout@v1->payments@v1 unknown->web@v1 web@v1->catalog@v1 web@v1->catalog@v2 web@v1->checkout@v1 web@v1->external "
	if got := ids(g.Edges, func(e Edge) string { return e.ID }); got != wantEdges {
		t.Errorf("edges = %s, want %s", got, wantEdges)
	}
	for id, rps := range map[string]float64{"web@v1->catalog@v1": 6, "web@v1->catalog@v2": 4, "catalog@v1->inventory": 3, "catalog@v2->inventory": 1} {
		if e := edgeByID(g, id); e == nil || !near(e.RPS, rps) {
			t.Errorf("edge %s = %+v, want rps %v", id, e, rps)
		}
	}
	v2 := nodeByID(g, "catalog@v2")
	if v2.Service != "catalog" || v2.Version != "v2" || !reflect.DeepEqual(v2.Versions, []string{"v2"}) ||
		v2.Mode != ModeObserve || !near(v2.P50Ms, 100+150*2.0/4) {
		t.Errorf("catalog@v2 = %+v", v2)
	}
	// The versioned view sums to the service view.
	sg, err := top.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	var vs, ss float64
	for _, e := range g.Edges {
		vs += e.RPS
	}
	for _, e := range sg.Edges {
		ss += e.RPS
	}
	if !near(vs, ss) || !reflect.DeepEqual(g.Coverage, sg.Coverage) {
		t.Errorf("version view rps %v coverage %+v; service view %v %+v", vs, g.Coverage, ss, sg.Coverage)
	}
}

func TestCoverage(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls, shopProxies)
	g, err := top.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	want := Coverage{
		Services: 6, MeshedServices: 5, ServiceFraction: 5.0 / 6, RequestFraction: 1,
		ObserveServices: 3, EnforceServices: 2, Edges: 6, EdgesBothSides: 3,
		UnmeshedServices: []string{"inventory"}, EdgesMTLS: 2, EdgesPlaintext: 4,
	}
	if !near(g.Coverage.ServiceFraction, want.ServiceFraction) {
		t.Errorf("service fraction %v", g.Coverage.ServiceFraction)
	}
	g.Coverage.ServiceFraction = want.ServiceFraction
	if !reflect.DeepEqual(g.Coverage, want) {
		t.Errorf("coverage = %+v\nwant       %+v", g.Coverage, want)
	}
	// Each edge's tls state and mTLS share, from the side the edge uses
	// (the callee's inbound report where there is one): inventory is
	// unmeshed, so its callers' reports say plaintext.
	for id, w := range map[string]struct {
		tls   string
		share float64
	}{
		"web->checkout": {TLSMutual, 1}, "checkout->payments": {TLSMutual, 1}, "web->catalog": {TLSPartial, 0.6},
		"unknown->web": {TLSPlaintext, 0}, "catalog->inventory": {TLSPlaintext, 0}, "web->external": {TLSPlaintext, 0},
	} {
		if e := edgeByID(g, id); e == nil || e.TLS != w.tls || !near(e.MTLSFraction, w.share) {
			t.Errorf("edge %s = %+v, want tls %s share %v", id, e, w.tls, w.share)
		}
	}
}

// A brand-new edge has one sample: it shows at once, with a rate estimated
// from its first value until rate() has two samples.
func TestFreshEdge(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls[:1], shopProxies[:1])
	fresh := []call{{dir: "outbound", src: "web", srcVer: "v1", dst: "search", dstVer: "unknown", proto: "http1", rps: 1, latency: 0.01}}
	// The first push after 3 requests: counter value 3 (rps*60 at offset 60 would be 60; use offset 3).
	appendAt := func(sec int, count float64) {
		app := db.Appender(context.Background())
		l := []string{"__name__", metricRequests, "direction", "outbound", "source_service", "web", "source_version", "v1",
			"destination_service", "search", "destination_version", "unknown", "protocol", "http1", "outcome", "success", "status_code", "200"}
		mustAppend(t, app, labelsOf(l...), at(sec).UnixMilli(), count)
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	_ = fresh
	appendAt(60, 3)
	g, err := top.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	e := edgeByID(g, "web->search")
	if e == nil || !near(e.RPS, 3.0/60) || e.SeenBy != "source" {
		t.Fatalf("fresh edge = %+v in %s", e, ids(g.Edges, func(e Edge) string { return e.ID }))
	}
	if n := nodeByID(g, "search"); n == nil || n.Kind != KindUnmeshed {
		t.Errorf("search node = %+v", n)
	}
	appendAt(61, 5)
	g, err = top.Graph(context.Background(), at(61), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	if e := edgeByID(g, "web->search"); e == nil || e.RPS <= 0 {
		t.Fatalf("edge after second sample = %+v", e)
	}
}

// TestIngressGateway: a gateway's direction="ingress" reports make it the
// entry node, serving requests from outside the mesh with its own RED;
// the per-edge aggregates give the same graph as the raw series.
func TestIngressGateway(t *testing.T) {
	calls := []call{
		{dir: "ingress", src: "gateway", srcVer: "v1", dst: "web", dstVer: "unknown", proto: "http2", rps: 8, latency: 0.02, bytesPerReq: 100},
		{dir: "inbound", src: "gateway", srcVer: "v1", dst: "web", dstVer: "v1", proto: "http1", rps: 8, latency: 0.015, bytesPerReq: 100},
	}
	top, db, _ := newTestTopology(t, Config{})
	off := false
	rawTop, err := New(Config{EdgeAggregates: &off}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	aggregated(t, top, app, 1, 60, calls)
	if a := assembleAt(t, top, 60, DefaultDefaultWindow); !a.raw.aggregates {
		t.Fatal("the aggregates were not used")
	}
	g, err := rawTop.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	gw, in, out := nodeByID(g, "gateway"), edgeByID(g, "unknown->gateway"), edgeByID(g, "gateway->web")
	if gw == nil || in == nil || out == nil {
		t.Fatalf("nodes %s edges %s", ids(g.Nodes, func(n Node) string { return n.ID }), ids(g.Edges, func(e Edge) string { return e.ID }))
	}
	if !near(gw.RPS, 8) || !near(gw.P50Ms, in.P50Ms) || in.P50Ms == 0 || !near(in.RPS, 8) || in.SeenBy != "destination" || !near(out.RPS, 8) {
		t.Errorf("gateway node %+v, unknown->gateway %+v, gateway->web %+v", gw, in, out)
	}
	agg, err := top.Graph(context.Background(), at(60), DefaultDefaultWindow, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	graphsNear(t, agg, g)
}
