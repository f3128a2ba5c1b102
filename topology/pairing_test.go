package topology

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshscope/meshscope/collector/spans"
)

func tid(b byte) spans.TraceID { return spans.TraceID{15: b} }
func sid(b byte) spans.SpanID  { return spans.SpanID{7: b} }

func span(trace, id, parent byte, svc string, kind spans.Kind, attrs ...spans.Attr) spans.Span {
	s := spans.Span{TraceID: tid(trace), SpanID: sid(id), Service: svc, Kind: kind, Name: "op",
		StartUnixNano: at(50).UnixNano(), EndUnixNano: at(50).Add(20 * time.Millisecond).UnixNano(), Attrs: attrs}
	if parent != 0 {
		s.ParentSpanID = sid(parent)
	}
	return s
}

func TestPairingRules(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{PairingExpiry: 5 * time.Second})
	ctx := context.Background()
	appendGolden(t, db, 1, 60, []call{
		{dir: "inbound", src: "unknown", srcVer: "unknown", dst: "web", dstVer: "v1", proto: "http1", rps: 4, latency: 0.01},
		{dir: "inbound", src: "web", srcVer: "v1", dst: "catalog", dstVer: "v1", proto: "http1", rps: 3, latency: 0.01},
	}, []proxy{{"web", "v1", "observe"}, {"catalog", "v1", "enforce"}})

	now := at(55)
	top.pair.now = func() time.Time { return now }

	failedServer := span(1, 2, 1, "stock", spans.KindServer, spans.IntAttr("http.response.status_code", 503))
	batch1 := []spans.Span{
		failedServer, // arrives before its client
		span(2, 1, 0, "frontend", spans.KindServer, spans.StringAttr("http.request.method", "GET")),
		span(3, 1, 0, "shop", spans.KindClient, spans.StringAttr("db.system", "postgresql"), spans.StringAttr("db.namespace", "orders")),
		span(4, 1, 0, "shop", spans.KindClient, spans.StringAttr("peer.service", "ledger")),
		span(5, 1, 0, "shop", spans.KindClient, spans.StringAttr("server.address", "api.stripe.com:443"), spans.StringAttr("http.request.method", "POST")),
		span(6, 1, 0, "shop", spans.KindClient, spans.StringAttr("server.address", "127.0.0.1")),
		span(7, 1, 0, "shop", spans.KindClient, spans.StringAttr("peer.service", "proxied"), spans.StringAttr("mesh.direction", "outbound")),
		span(8, 2, 0, "shop", spans.KindClient, spans.StringAttr("peer.service", "scoped")),
		span(9, 2, 5, "orphan", spans.KindServer),
		// A call the proxies also saw: their numbers win.
		span(10, 1, 0, "web", spans.KindClient, spans.StringAttr("peer.service", "catalog")),
		span(10, 2, 1, "catalog", spans.KindServer),
		span(11, 3, 0, "worker", spans.KindInternal),
	}
	batch1[7].Scope = "github.com/meshscope/meshscope/proxy"
	if err := top.ConsumeSpans(ctx, batch1); err != nil {
		t.Fatal(err)
	}
	batch2 := []spans.Span{span(1, 1, 0, "shop", spans.KindClient, spans.StringAttr("server.address", "stock"), spans.StringAttr("http.request.method", "GET"))}
	if err := top.ConsumeSpans(ctx, batch2); err != nil {
		t.Fatal(err)
	}
	top.pair.expire(now)
	if err := top.pair.flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	now = at(60)
	top.pair.expire(now)
	if err := top.pair.flush(ctx, now); err != nil {
		t.Fatal(err)
	}

	g, err := top.Graph(ctx, at(60), time.Minute, ViewService)
	if err != nil {
		t.Fatal(err)
	}
	wantEdges := "shop->api.stripe.com shop->ledger shop->orders shop->stock unknown->frontend unknown->web web->catalog "
	if got := ids(g.Edges, func(e Edge) string { return e.ID }); got != wantEdges {
		t.Errorf("edges = %s\nwant    %s", got, wantEdges)
	}
	kinds := map[string]string{
		"api.stripe.com": KindExternal, "catalog": KindService, "frontend": KindUnmeshed, "ledger": KindUnmeshed,
		"orders": KindDatabase, "shop": KindUnmeshed, "stock": KindUnmeshed, "unknown": KindUser, "web": KindService,
	}
	if len(g.Nodes) != len(kinds) {
		t.Errorf("nodes = %s", ids(g.Nodes, func(n Node) string { return n.ID }))
	}
	for id, kind := range kinds {
		if n := nodeByID(g, id); n == nil || n.Kind != kind {
			t.Errorf("node %s = %+v, want kind %s", id, n, kind)
		}
	}
	for _, id := range []string{"shop->stock", "shop->orders", "shop->ledger", "shop->api.stripe.com", "unknown->frontend"} {
		e := edgeByID(g, id)
		if e == nil || e.SeenBy != "spans" || e.RPS <= 0 || e.P50Ms <= 0 {
			t.Errorf("edge %s = %+v, want a span-derived edge with traffic and latency", id, e)
		}
	}
	if e := edgeByID(g, "shop->stock"); e == nil || e.ErrorRate != 1 || e.Health != HealthFailing || !reflect.DeepEqual(e.Protocols, []string{"http1"}) {
		t.Errorf("shop->stock = %+v, want all failed over http1", e)
	}
	if e := edgeByID(g, "shop->orders"); e == nil || !reflect.DeepEqual(e.Protocols, []string{"postgresql"}) {
		t.Errorf("shop->orders = %+v", e)
	}
	if e := edgeByID(g, "web->catalog"); e == nil || e.SeenBy != "destination" || !near(e.RPS, 3) {
		t.Errorf("web->catalog = %+v, want the proxies' numbers", e)
	}
	c := g.Coverage
	if c.Services != 6 || c.MeshedServices != 2 || c.RequestFraction <= 0 || c.RequestFraction >= 1 ||
		!reflect.DeepEqual(c.UnmeshedServices, []string{"frontend", "ledger", "shop", "stock"}) {
		t.Errorf("coverage = %+v", c)
	}
	var spanRPS float64
	for _, e := range g.Edges {
		if e.SeenBy == "spans" {
			spanRPS += e.RPS
		}
	}
	if want := 7 / (7 + spanRPS); !near(c.RequestFraction, want) {
		t.Errorf("request fraction = %v, want %v", c.RequestFraction, want)
	}

	for result, want := range map[string]float64{
		"paired": 4, "user": 1, "database": 1, "virtual": 1, "external": 1, "skipped_proxy": 2, "skipped_kind": 1, "expired": 2,
	} {
		if got := testutil.ToFloat64(top.pair.m.spans.WithLabelValues(result)); got != want {
			t.Errorf("pairing_spans_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

func TestPairingOverflowAndIdle(t *testing.T) {
	top, _, _ := newTestTopology(t, Config{PairingMaxPending: 2, SpanSeriesIdle: time.Minute})
	ctx := context.Background()
	now := at(0)
	top.pair.now = func() time.Time { return now }
	batch := []spans.Span{
		span(1, 1, 0, "a", spans.KindClient, spans.StringAttr("peer.service", "b")),
		span(2, 1, 0, "a", spans.KindClient, spans.StringAttr("peer.service", "b")),
		span(3, 1, 0, "a", spans.KindClient, spans.StringAttr("peer.service", "b")),
	}
	if err := top.ConsumeSpans(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(top.pair.m.spans.WithLabelValues("overflow")); got != 1 {
		t.Errorf("overflow = %v, want 1", got)
	}
	now = at(20)
	top.pair.expire(now)
	if err := top.pair.flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := len(top.pair.series); n != 1 {
		t.Fatalf("series = %d, want 1", n)
	}
	now = at(100)
	if err := top.pair.flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := len(top.pair.series); n != 0 {
		t.Errorf("idle series kept: %d", n)
	}
}
