package controlclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	cpolicy "github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/proxy/policy/chain"
)

// fakeEngine records applied specs and reports fixed endpoint states.
type fakeEngine struct {
	mu      sync.Mutex
	applied []chain.Spec
	eps     []chain.EndpointState
}

func (f *fakeEngine) Apply(s chain.Spec) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, s)
}

func (f *fakeEngine) Endpoints(time.Time) []chain.EndpointState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chain.EndpointState(nil), f.eps...)
}

func (f *fakeEngine) Health() string { return "unhealthy" }

func (f *fakeEngine) last() (chain.Spec, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return chain.Spec{}, 0
	}
	return f.applied[len(f.applied)-1], len(f.applied)
}

// controlServer speaks control/wire over a real WebSocket: it answers
// every hello with the current snapshot and records what proxies send.
type controlServer struct {
	*httptest.Server
	mu       sync.Mutex
	snapshot []byte
	hellos   []wire.Hello
	statuses []wire.Status
	conns    []*websocket.Conn
}

func newControlServer(t *testing.T, snap *wire.Snapshot) *controlServer {
	cs := &controlServer{}
	cs.set(t, snap)
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc(wire.Path, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_, data, err := c.ReadMessage()
		if err != nil {
			return
		}
		msg, err := wire.Decode(data)
		h, ok := msg.(*wire.Hello)
		if err != nil || !ok || h.Validate() != nil {
			b, _ := wire.Encode(&wire.Error{Message: "bad hello"})
			_ = c.WriteMessage(websocket.TextMessage, b)
			return
		}
		cs.mu.Lock()
		cs.hellos = append(cs.hellos, *h)
		cs.conns = append(cs.conns, c)
		snap := cs.snapshot
		cs.mu.Unlock()
		_ = c.WriteMessage(websocket.TextMessage, snap)
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			if m, err := wire.Decode(data); err == nil {
				if s, ok := m.(*wire.Status); ok {
					cs.mu.Lock()
					cs.statuses = append(cs.statuses, *s)
					cs.mu.Unlock()
				}
			}
		}
	})
	cs.Server = httptest.NewServer(mux)
	t.Cleanup(cs.Close)
	return cs
}

func (cs *controlServer) set(t *testing.T, snap *wire.Snapshot) {
	b, err := wire.Encode(snap)
	if err != nil {
		t.Fatal(err)
	}
	cs.mu.Lock()
	cs.snapshot = b
	cs.mu.Unlock()
}

// push sends snap to every connected proxy.
func (cs *controlServer) push(t *testing.T, snap *wire.Snapshot) {
	cs.set(t, snap)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.conns {
		_ = c.WriteMessage(websocket.TextMessage, cs.snapshot)
	}
}

func (cs *controlServer) dropAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.conns {
		_ = c.Close()
	}
	cs.conns = nil
}

func (cs *controlServer) counts() (hellos, statuses int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.hellos), len(cs.statuses)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func splitSnapshot(version uint64, v2weight int) *wire.Snapshot {
	return &wire.Snapshot{Version: version, Services: map[string]wire.Service{
		"catalog": {
			Endpoints: []wire.Endpoint{{Address: "127.0.0.1:1001", Version: "v1"}, {Address: "127.0.0.1:1002", Version: "v2"}},
			Policies: []cpolicy.Document{{Meta: cpolicy.Meta{Kind: cpolicy.KindRoute, Name: "split", Service: "catalog"},
				Spec: &cpolicy.Route{Rules: []cpolicy.RouteRule{{Backends: []cpolicy.Backend{{Version: "v1", Weight: 100 - v2weight}, {Version: "v2", Weight: v2weight}}}}}}},
		},
	}}
}

func newClient(t *testing.T, url, dir string, eng Engine) *Client {
	c, err := New(Config{URL: url, StateDir: dir, Service: "web", Version: "v1", Mode: "enforce",
		Inbound: []string{"127.0.0.1:4143"}, Upstreams: []string{"catalog"},
		StatusInterval: 20 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
		eng, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t *testing.T, c *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestApplyPersistRestore(t *testing.T) {
	cs := newControlServer(t, splitSnapshot(3, 20))
	dir := t.TempDir()
	eng := &fakeEngine{}
	c := newClient(t, cs.URL, dir, eng)
	run(t, c)
	waitFor(t, "snapshot applied", func() bool { return c.Current() == 3 })
	spec, _ := eng.last()
	if spec.Version != 3 || len(spec.Services) != 1 || spec.Services[0].Route == nil ||
		spec.Services[0].Route.Rules[0].Backends[1].Weight != 20 || len(spec.Services[0].Endpoints) != 2 {
		t.Fatalf("applied spec %+v", spec)
	}
	cs.mu.Lock()
	h := cs.hellos[0]
	cs.mu.Unlock()
	if h.Service != "web" || h.Mode != cpolicy.ModeEnforce || h.Upstreams[0] != "catalog" || h.ProxyID == "" {
		t.Fatalf("hello %+v", h)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err != nil {
		t.Fatalf("snapshot not persisted: %v", err)
	}

	// A second proxy on the same state dir, control plane unreachable:
	// it starts with the persisted snapshot.
	eng2 := &fakeEngine{}
	c2 := newClient(t, "http://127.0.0.1:1", dir, eng2)
	spec2, n := eng2.last()
	if n != 1 || spec2.Version != 3 || c2.Current() != 3 {
		t.Fatalf("restored %d specs, version %d", n, spec2.Version)
	}
}

func TestBadSnapshotKeepsPrevious(t *testing.T) {
	cs := newControlServer(t, splitSnapshot(1, 20))
	dir := t.TempDir()
	eng := &fakeEngine{}
	c := newClient(t, cs.URL, dir, eng)
	run(t, c)
	waitFor(t, "first snapshot", func() bool { return c.Current() == 1 })
	bad := splitSnapshot(2, 20)
	bad.Services["catalog"].Policies[0].Spec.(*cpolicy.Route).Rules[0].Match = &cpolicy.Match{PathRegex: "("}
	cs.push(t, bad)
	good := splitSnapshot(3, 50)
	time.Sleep(100 * time.Millisecond)
	if c.Current() != 1 {
		t.Fatalf("bad snapshot applied: version %d", c.Current())
	}
	b, _ := os.ReadFile(filepath.Join(dir, stateFile))
	var persisted wire.Snapshot
	if err := json.Unmarshal(b, &persisted); err != nil || persisted.Version != 1 {
		t.Fatalf("persisted %d (%v), want 1", persisted.Version, err)
	}
	cs.push(t, good)
	waitFor(t, "next good snapshot", func() bool { return c.Current() == 3 })
}

func TestReconnectsAndReports(t *testing.T) {
	cs := newControlServer(t, splitSnapshot(1, 20))
	eng := &fakeEngine{eps: []chain.EndpointState{
		{Service: "catalog", Addr: "127.0.0.1:1002", Version: "v2", Ejected: true, Reason: "outlier", Enforced: true},
		{Service: "catalog", Addr: "127.0.0.1:1001", Version: "v1"},
	}}
	c := newClient(t, cs.URL, t.TempDir(), eng)
	run(t, c)
	// A status may come before the snapshot is applied (a status tick
	// can win the race with the first read): it then truthfully reports
	// version 0. The one to check is the status sent once version 1 is
	// applied.
	var st wire.Status
	waitFor(t, "a status reporting version 1", func() bool {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		for _, s := range cs.statuses {
			if s.ConfigVersion == 1 {
				st = s
				return true
			}
		}
		return false
	})
	if st.ConfigVersion != 1 || st.Health != wire.HealthUnhealthy || len(st.Endpoints) != 1 || !st.Endpoints[0].Ejected || st.Endpoints[0].Address != "127.0.0.1:1002" {
		t.Fatalf("status %+v", st)
	}
	cs.dropAll()
	waitFor(t, "reconnect", func() bool { h, _ := cs.counts(); return h >= 2 })
	cs.mu.Lock()
	h := cs.hellos[1]
	first := cs.hellos[0]
	cs.mu.Unlock()
	if h.ConfigVersion != 1 || h.ProxyID != first.ProxyID {
		t.Fatalf("reconnect hello %+v, want config_version 1 and proxy id %s", h, first.ProxyID)
	}
}

// TestMovesToTheNextServer: with several servers, a proxy whose server
// dies reconnects to another one at once, keeping its config meanwhile.
func TestMovesToTheNextServer(t *testing.T) {
	a, b := newControlServer(t, splitSnapshot(4, 20)), newControlServer(t, splitSnapshot(5, 50))
	eng := &fakeEngine{}
	c := newClient(t, a.URL+","+b.URL, t.TempDir(), eng)
	run(t, c)
	waitFor(t, "the first server's snapshot", func() bool { return c.Current() == 4 })
	if h, _ := b.counts(); h != 0 {
		t.Fatalf("%d hellos on the second server while the first is up", h)
	}
	a.Close() // the first server dies
	a.dropAll()
	waitFor(t, "the second server's snapshot", func() bool { return c.Current() == 5 })
	if h, _ := b.counts(); h != 1 {
		t.Fatalf("%d hellos on the second server, want 1", h)
	}
	b.mu.Lock()
	has := b.hellos[0].ConfigVersion
	b.mu.Unlock()
	if has != 4 {
		t.Fatalf("hello to the second server says version %d, want 4 (the config kept meanwhile)", has)
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "127.0.0.1:7070", "http://", "http://a:1,", "http://a:1,ftp://b"} {
		if _, err := New(Config{URL: u, StateDir: t.TempDir()}, &fakeEngine{}, prometheus.NewRegistry(), nil); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}
