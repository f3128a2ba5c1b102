package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func serve(t *testing.T, top *Topology) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	top.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", u, ct)
	}
	return resp.StatusCode, b
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// canon re-encodes a JSON graph so that encodings can be compared.
func canon(t *testing.T, b []byte) string {
	t.Helper()
	var g Graph
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return mustJSON(t, &g)
}

func TestHistoryEqualsLive(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls, shopProxies)
	now := at(60).Add(250 * time.Millisecond)
	top.now = func() time.Time { return now }
	top.step(context.Background())
	// Traffic goes on after the live build; the replay must not see it.
	appendGolden(t, db, 61, 120, shopCalls[:4], shopProxies)
	srv := serve(t, top)
	for _, view := range []string{ViewService, ViewVersion} {
		code, live := getJSON(t, srv.URL+"/api/mesh/graph?view="+view)
		if code != 200 {
			t.Fatalf("live: %d %s", code, live)
		}
		if got, want := canon(t, live), mustJSON(t, top.liveGraph(time.Minute, view)); got != want {
			t.Fatalf("GET without at is not the live graph")
		}
		now = at(200) // the replay is built from the store, not the cache
		code, past := getJSON(t, srv.URL+"/api/mesh/graph?window=1m&view="+view+"&at="+url.QueryEscape(at(60).Add(250*time.Millisecond).Format(time.RFC3339Nano)))
		if code != 200 {
			t.Fatalf("replay: %d %s", code, past)
		}
		if canon(t, live) != canon(t, past) {
			t.Errorf("%s view: replay differs from live\nlive   %s\nreplay %s", view, live, past)
		}
		now = at(60).Add(250 * time.Millisecond)
	}
	// And a window the live loop does not build is still computed on demand.
	if code, b := getJSON(t, srv.URL+"/api/mesh/graph?window=5m&at=1750000060"); code != 200 || !strings.Contains(string(b), `"window":"5m"`) {
		t.Errorf("5m replay: %d %s", code, b)
	}
}

func TestBadParams(t *testing.T) {
	top, _, _ := newTestTopology(t, Config{})
	srv := serve(t, top)
	for _, tc := range []struct{ path, param string }{
		{"/api/mesh/graph?window=abc", "window"},
		{"/api/mesh/graph?window=0s", "window"},
		{"/api/mesh/graph?window=30d", "window"},
		{"/api/mesh/graph?view=workload", "view"},
		{"/api/mesh/graph?at=yesterday", "at"},
		{"/api/mesh/graph/stream?window=2m", "window"},
		{"/api/mesh/graph/stream?view=x", "view"},
	} {
		code, b := getJSON(t, srv.URL+tc.path)
		var e apiError
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v: %s", tc.path, err, b)
		}
		if code != http.StatusBadRequest || e.Status != "error" || e.ErrorType != "bad_data" || !strings.Contains(e.Error, `"`+tc.param+`"`) {
			t.Errorf("%s: %d %+v, want 400 naming %q", tc.path, code, e, tc.param)
		}
	}
}

func wsURL(srv *httptest.Server, query string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/mesh/graph/stream" + query
}

func waitClients(t *testing.T, top *Topology, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(top.hub.clients) != float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("stream clients = %v, want %d", testutil.ToFloat64(top.hub.clients), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFrame(t *testing.T, c *websocket.Conn) StreamMessage {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	var m StreamMessage
	if err := c.ReadJSON(&m); err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	return m
}

func TestStreamSnapshotThenDiffs(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	ctx := context.Background()
	appendGolden(t, db, 1, 60, shopCalls[:3], shopProxies)
	now := at(60)
	top.now = func() time.Time { return now }
	srv := serve(t, top)
	c1, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?view=service"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	waitClients(t, top, 1)

	want := func(sec int) string {
		g, err := top.Graph(ctx, at(sec), time.Minute, ViewService)
		if err != nil {
			t.Fatal(err)
		}
		return mustJSON(t, g)
	}
	top.step(ctx)
	snap := readFrame(t, c1)
	if snap.Type != "snapshot" || snap.Seq != 1 || snap.Graph == nil || mustJSON(t, snap.Graph) != want(60) {
		t.Fatalf("first frame = %+v", snap)
	}
	cur := snap.Graph

	// New edges and changed rates: one diff.
	appendGolden(t, db, 61, 70, shopCalls, shopProxies)
	now = at(70)
	top.step(ctx)
	top.step(ctx) // nothing changed: no frame
	d := readFrame(t, c1)
	if d.Type != "diff" || d.Seq != 2 || d.Graph != nil || len(d.UpsertedEdges) == 0 || d.Coverage == nil {
		t.Fatalf("second frame = %+v", d)
	}
	cur = ApplyDiff(cur, d)
	if mustJSON(t, cur) != want(70) {
		t.Fatalf("snapshot + diff != graph at 70\ngot  %s\nwant %s", mustJSON(t, cur), want(70))
	}

	// Edges without traffic for a window disappear.
	appendGolden(t, db, 71, 140, shopCalls[:3], shopProxies)
	now = at(140)
	top.step(ctx)
	d = readFrame(t, c1)
	if d.Seq != 3 || !d.At.Equal(at(140)) || len(d.RemovedEdges) == 0 || len(d.RemovedNodes) == 0 {
		t.Fatalf("third frame = %+v", d)
	}
	cur = ApplyDiff(cur, d)
	if mustJSON(t, cur) != want(140) {
		t.Fatalf("after removals: got %s\nwant %s", mustJSON(t, cur), want(140))
	}

	// A late client starts from the current graph.
	c2, _, err := websocket.DefaultDialer.Dial(wsURL(srv, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	s2 := readFrame(t, c2)
	if s2.Type != "snapshot" || s2.Seq != 3 || mustJSON(t, s2.Graph) != want(140) {
		t.Fatalf("late snapshot = %+v", s2)
	}
}

func TestStreamOrigin(t *testing.T) {
	top, _, _ := newTestTopology(t, Config{AllowedOrigins: []string{"https://ops.example.com"}})
	srv := serve(t, top)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"https://ops.example.com", true},
		{"http://evil.example", false},
		{"http://" + host + ".evil.example", false},
	} {
		h := http.Header{}
		if tc.origin != "" {
			h.Set("Origin", tc.origin)
		}
		c, resp, err := websocket.DefaultDialer.Dial(wsURL(srv, ""), h)
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", tc.origin, err)
				continue
			}
			c.Close()
			continue
		}
		if err == nil {
			c.Close()
			t.Errorf("origin %q accepted", tc.origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: %v %v, want 403", tc.origin, resp, err)
		}
	}
}

func TestSlowClientDropped(t *testing.T) {
	clients := prometheus.NewGauge(prometheus.GaugeOpts{Name: "c"})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "d"})
	h := newHub(2, clients, dropped)
	key := streamKey{time.Minute, ViewService}
	slow := h.subscribe(key)
	fast := h.subscribe(key)
	n := 0
	for i := range 10 {
		g := &Graph{At: at(i), Nodes: []Node{{ID: "a", Stats: Stats{RPS: float64(i)}}}, Edges: []Edge{}}
		h.publish(key, g) // must never block on the slow client
		// The fast client keeps up: it reads every frame at once.
		for len(fast.send) > 0 {
			<-fast.send
			n++
		}
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("slow client not dropped")
	}
	select {
	case <-fast.done:
		t.Fatal("fast client dropped")
	default:
	}
	if !slow.slow.Load() || testutil.ToFloat64(dropped) != 1 || testutil.ToFloat64(clients) != 1 {
		t.Errorf("slow=%v dropped=%v clients=%v", slow.slow.Load(), testutil.ToFloat64(dropped), testutil.ToFloat64(clients))
	}
	if n != 10 {
		t.Errorf("fast client got %d frames, want 10", n)
	}
	h.closeAll()
	if testutil.ToFloat64(clients) != 0 {
		t.Errorf("clients after closeAll = %v", testutil.ToFloat64(clients))
	}
}

func TestRunServesAndShutsDown(t *testing.T) {
	top, _, _ := newTestTopology(t, Config{BuildInterval: 100 * time.Millisecond})
	srv := serve(t, top)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- top.Run(ctx) }()
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, "?window=5m&view=version"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := readFrame(t, c)
	if m.Type != "snapshot" || m.Graph.Window != "5m" || m.Graph.View != ViewVersion {
		t.Fatalf("first frame = %+v", m)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("after shutdown: %v, want close 1001", err)
		}
		break
	}
}

// A real WebSocket client that stops reading is dropped once its queue is
// full, and the builder side never blocks on it.
func TestStreamSlowWebSocketClientDropped(t *testing.T) {
	top, _, reg := newTestTopology(t, Config{StreamBuffer: 1})
	srv := serve(t, top)
	c, _, err := websocket.DefaultDialer.Dial(wsURL(srv, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitClients(t, top, 1)
	key := streamKey{time.Minute, ViewService}
	big := func(i int) *Graph {
		g := &Graph{At: at(i), Window: "1m", View: ViewService, Edges: []Edge{}}
		for n := range 5000 {
			g.Nodes = append(g.Nodes, Node{ID: strings.Repeat("n", 100) + string(rune('a'+n%26)) + time.Duration(n).String(), Stats: Stats{RPS: float64(i)}})
		}
		return g
	}
	dropped := false
	for i := 0; i < 2000 && !dropped; i++ {
		top.hub.publish(key, big(i)) // the client reads nothing
		dropped = testutil.ToFloat64(top.hub.dropped) == 1
	}
	if !dropped {
		t.Fatal("a client that does not read was never dropped")
	}
	waitClients(t, top, 0)
	// The client finds the close frame after the frames that were sent.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) && ce.Code != websocket.CloseTryAgainLater {
			t.Errorf("close = %v, want 1013", err)
		}
		break
	}
	if n, err := testutil.GatherAndCount(reg, "meshscope_topology_stream_dropped_clients_total"); err != nil || n != 1 {
		t.Errorf("dropped metric: %d %v", n, err)
	}
}

// TestWindowCoverage: graphs accept windows up to 7d (Prometheus
// durations) and say how much of the window has data.
func TestWindowCoverage(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	appendGolden(t, db, 1, 60, shopCalls, shopProxies)
	srv := serve(t, top)
	for _, c := range []struct {
		window string
		at     int
		want   float64
	}{
		{"30s", 60, 30},      // data reaches back past the window's start
		{"1m", 60, 59},       // the first sample is at 1 s
		{"6h", 60, 59},       // far longer than the data
		{"2d", 60, 59},       //
		{"7d", 60, 59},       //
		{"1m", 3600 * 3, 0},  // no data in the window
		{"10s", 60 + 200, 0}, // after the data ended
	} {
		code, b := getJSON(t, fmt.Sprintf("%s/api/mesh/graph?window=%s&at=%d", srv.URL, c.window, base.Unix()+int64(c.at)))
		if code != 200 {
			t.Fatalf("window %s: %d %s", c.window, code, b)
		}
		var g Graph
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatal(err)
		}
		if g.CoveredSeconds != c.want {
			t.Errorf("window %s at %d: covered_seconds %v, want %v", c.window, c.at, g.CoveredSeconds, c.want)
		}
	}
	if code, b := getJSON(t, srv.URL+"/api/mesh/graph?window=8d"); code != 400 || !strings.Contains(string(b), "window") {
		t.Errorf("8d window: %d %s", code, b)
	}
}

// TestParseAtUnixSecondsToTheMillisecond: Unix seconds with a fraction
// name the millisecond written, as Prometheus' time= does, even where the
// float is a hair below it.
func TestParseAtUnixSecondsToTheMillisecond(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // Unix ms
	}{
		{"1796507386.266", 1796507386266},
		{"1796507386.001", 1796507386001},
		{"1796507386", 1796507386000},
		{"2026-12-05T21:49:46.266Z", 1796507386266},
	} {
		got, err := parseAt(tc.in)
		if err != nil || got.UnixMilli() != tc.want {
			t.Errorf("parseAt(%q) = %v (%d ms), %v; want %d ms", tc.in, got, got.UnixMilli(), err, tc.want)
		}
	}
}
