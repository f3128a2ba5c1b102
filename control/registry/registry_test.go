package registry

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/store"
	"github.com/meshscope/meshscope/control/wire"
)

type harness struct {
	t     *testing.T
	store *store.Store
	reg   *Registry
	srv   *httptest.Server
}

func newHarness(t *testing.T, grace time.Duration) *harness {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(t.TempDir(), prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Grace: grace}, st, st.Subscribe(), prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	srv := httptest.NewServer(r.Handler())
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
		st.Close()
	})
	return &harness{t, st, r, srv}
}

func (h *harness) apply(y string) uint64 {
	h.t.Helper()
	docs, err := policy.Load([]byte(y))
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := h.store.Apply(docs, store.ApplyOptions{Who: "test"})
	if err != nil {
		h.t.Fatal(err)
	}
	return res.Version
}

// client is a proxy's side of the stream, over a real WebSocket.
type client struct {
	t     *testing.T
	ws    *websocket.Conn
	mu    sync.Mutex
	last  *wire.Snapshot
	errs  []string
	certs []*wire.Cert
	got   chan struct{}
	done  chan struct{}
}

func (h *harness) connect(hello wire.Hello) *client {
	h.t.Helper()
	url := "ws" + strings.TrimPrefix(h.srv.URL, "http") + wire.Path
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		h.t.Fatalf("dial: %v", err)
	}
	if hello.Protocol == 0 {
		hello.Protocol = wire.Protocol
	}
	if hello.Mode == "" {
		hello.Mode = policy.ModeObserve
	}
	c := &client{t: h.t, ws: ws, got: make(chan struct{}, 1), done: make(chan struct{})}
	c.send(&hello)
	go c.read()
	h.t.Cleanup(func() { ws.Close(); <-c.done })
	return c
}

func (c *client) send(msg any) {
	c.t.Helper()
	b, err := wire.Encode(msg)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) read() {
	defer close(c.done)
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		msg, err := wire.Decode(data)
		if err != nil {
			continue
		}
		c.mu.Lock()
		switch m := msg.(type) {
		case *wire.Snapshot:
			c.last = m
		case *wire.Error:
			c.errs = append(c.errs, m.Message)
		case *wire.Cert:
			c.certs = append(c.certs, m)
		}
		c.mu.Unlock()
		select {
		case c.got <- struct{}{}:
		default:
		}
	}
}

// wait polls until cond holds for the latest snapshot.
func (c *client) wait(what string, cond func(s *wire.Snapshot) bool) *wire.Snapshot {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		s := c.last
		c.mu.Unlock()
		if s != nil && cond(s) {
			return s
		}
		select {
		case <-c.got:
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Fatalf("timed out waiting for %s; last snapshot %+v", what, c.last)
	return nil
}

func addrs(s *wire.Snapshot, svc string) string {
	var out []string
	for _, e := range s.Services[svc].Endpoints {
		out = append(out, e.Address+"/"+e.Version+"/"+e.Health)
	}
	return strings.Join(out, ",")
}

func TestDiscoveryPoliciesAndGrace(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond)
	h.connect(wire.Hello{ProxyID: "inv-1", Service: "inventory", Version: "v1", Inbound: []string{"127.0.0.1:9001"}})
	v2 := h.connect(wire.Hello{ProxyID: "inv-2", Service: "inventory", Version: "v2", Inbound: []string{"127.0.0.1:9002"}})
	web := h.connect(wire.Hello{ProxyID: "web-1", Service: "web", Version: "v1", Inbound: []string{"127.0.0.1:8080"}, Upstreams: []string{"inventory"}})

	s := web.wait("both inventory endpoints", func(s *wire.Snapshot) bool {
		return addrs(s, "inventory") == "127.0.0.1:9001/v1/unknown,127.0.0.1:9002/v2/unknown"
	})
	if own, ok := s.Services["web"]; !ok {
		t.Error("snapshot lacks the proxy's own service")
	} else if len(own.Endpoints) != 0 {
		t.Errorf("own service carries %d endpoints; a proxy gets endpoints of the services it calls only", len(own.Endpoints))
	}
	if len(s.Services) != 2 {
		t.Errorf("snapshot services = %v, want inventory and web only", s.Services)
	}

	ver := h.apply("kind: Route\nname: inv\nservice: inventory\nmode: enforce\nrules:\n- backends: [{version: v1, weight: 90}, {version: v2, weight: 10}]\n---\nkind: Resilience\nname: other\nservice: billing\n")
	s = web.wait("the route", func(s *wire.Snapshot) bool { return s.Version == ver && len(s.Services["inventory"].Policies) == 1 })
	if r := s.Services["inventory"].Policies[0].Route(); r == nil || r.Rules[0].Backends[1].Weight != 10 {
		t.Errorf("route = %+v", s.Services["inventory"].Policies[0])
	}
	if _, ok := s.Services["billing"]; ok {
		t.Error("snapshot carries a service the proxy does not call")
	}
	// The inventory proxies learn the version too.
	v2.wait("the new version", func(s *wire.Snapshot) bool { return s.Version == ver })

	// v2 goes away: it stays for the grace period, then leaves.
	v2.ws.Close()
	if vw := h.reg.View("inventory"); len(vw.Endpoints) != 2 {
		t.Errorf("right after disconnect: %d endpoints, want 2 (grace)", len(vw.Endpoints))
	}
	web.wait("v2 to leave after the grace period", func(s *wire.Snapshot) bool {
		return addrs(s, "inventory") == "127.0.0.1:9001/v1/unknown"
	})
}

func TestStatusHealthAndEjections(t *testing.T) {
	h := newHarness(t, time.Minute)
	inv := h.connect(wire.Hello{ProxyID: "inv-1", Service: "inventory", Version: "v1", Inbound: []string{"127.0.0.1:9001"}})
	h.connect(wire.Hello{ProxyID: "inv-2", Service: "inventory", Version: "v2", Inbound: []string{"127.0.0.1:9002"}})
	web := h.connect(wire.Hello{ProxyID: "web-1", Service: "web", Version: "v1", Upstreams: []string{"inventory"}})
	web.wait("endpoints", func(s *wire.Snapshot) bool { return len(s.Services["inventory"].Endpoints) == 2 })

	// inv-1's own health check fails: callers are told.
	inv.send(&wire.Status{ConfigVersion: 0, Health: wire.HealthUnhealthy})
	web.wait("inv-1 unhealthy", func(s *wire.Snapshot) bool {
		return addrs(s, "inventory") == "127.0.0.1:9001/v1/unhealthy,127.0.0.1:9002/v2/unknown"
	})
	// web ejects inv-2.
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	web.send(&wire.Status{ConfigVersion: 0, Endpoints: []wire.EndpointStatus{{Service: "inventory", Address: "127.0.0.1:9002", Ejected: true, Reason: "5 consecutive 5xx", Until: until}}})
	web.wait("inv-2 ejected", func(s *wire.Snapshot) bool {
		e := s.Services["inventory"].Endpoints
		return len(e) == 2 && e[1].Ejected && !e[0].Ejected
	})
	vw := h.reg.View("inventory")
	if len(vw.Endpoints) != 2 {
		t.Fatalf("view = %+v", vw)
	}
	e := vw.Endpoints[1]
	if !e.Ejected || len(e.EjectedBy) != 1 || e.EjectedBy[0].ProxyID != "web-1" || e.EjectedBy[0].Reason != "5 consecutive 5xx" || !e.EjectedBy[0].Until.Equal(until) {
		t.Errorf("ejected endpoint = %+v", e)
	}
	if vw.Endpoints[0].Health != wire.HealthUnhealthy || vw.Endpoints[0].HealthReason == "" {
		t.Errorf("unhealthy endpoint = %+v", vw.Endpoints[0])
	}
	// A short ejection runs out: callers are told without any other change.
	web.send(&wire.Status{ConfigVersion: 0, Endpoints: []wire.EndpointStatus{{Service: "inventory", Address: "127.0.0.1:9002", Ejected: true, Reason: "5 consecutive 5xx", Until: time.Now().Add(1500 * time.Millisecond)}}})
	web.wait("the short ejection to run out", func(s *wire.Snapshot) bool {
		e := s.Services["inventory"].Endpoints
		return len(e) == 2 && !e[1].Ejected
	})
	web.send(&wire.Status{ConfigVersion: 0, Endpoints: []wire.EndpointStatus{{Service: "inventory", Address: "127.0.0.1:9002", Ejected: true, Reason: "5 consecutive 5xx", Until: until}}})
	web.wait("inv-2 ejected again", func(s *wire.Snapshot) bool {
		e := s.Services["inventory"].Endpoints
		return len(e) == 2 && e[1].Ejected
	})
	// The caller disconnects: its ejections go with it.
	web.ws.Close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && h.reg.View("inventory").Endpoints[1].Ejected {
		time.Sleep(50 * time.Millisecond)
	}
	if h.reg.View("inventory").Endpoints[1].Ejected {
		t.Error("ejection outlived the disconnected caller")
	}
}

func TestBadHelloAndReconnect(t *testing.T) {
	h := newHarness(t, time.Minute)
	bad := h.connect(wire.Hello{ProxyID: "x", Service: "Not Valid"})
	<-bad.done
	if len(bad.errs) != 1 || !strings.Contains(bad.errs[0], "hello: service") {
		t.Errorf("errors = %q", bad.errs)
	}
	if n := len(h.reg.View("").Proxies); n != 0 {
		t.Errorf("%d proxies registered after a bad hello", n)
	}

	first := h.connect(wire.Hello{ProxyID: "inv-1", Service: "inventory", Version: "v1", Inbound: []string{"127.0.0.1:9001"}})
	first.wait("first snapshot", func(*wire.Snapshot) bool { return true })
	second := h.connect(wire.Hello{ProxyID: "inv-1", Service: "inventory", Version: "v1", Inbound: []string{"127.0.0.1:9001"}})
	second.wait("snapshot on the new stream", func(*wire.Snapshot) bool { return true })
	select {
	case <-first.done:
	case <-time.After(20 * time.Second):
		t.Fatal("old stream of a reconnected proxy stays open")
	}
	vw := h.reg.View("")
	if len(vw.Proxies) != 1 || !vw.Proxies[0].Connected || len(vw.Endpoints) != 1 {
		t.Errorf("after reconnect: %+v", vw)
	}
}

// TestGatewayDiscovery: an ingress gateway declares no upstreams; the
// services its Gateway document routes to become its upstreams.
func TestGatewayDiscovery(t *testing.T) {
	h := newHarness(t, 500*time.Millisecond)
	h.connect(wire.Hello{ProxyID: "inv-1", Service: "inventory", Version: "v1", Inbound: []string{"127.0.0.1:9001"}})
	gw := h.connect(wire.Hello{ProxyID: "edge-1", Service: "edge", Version: "v1"})
	gw.wait("the first snapshot", func(s *wire.Snapshot) bool { return len(s.Services) == 1 })
	h.apply("kind: Gateway\nname: edge\nservice: edge\nlisteners: [{address: \"127.0.0.1:8443\"}]\nroutes:\n  - {service: inventory, anonymous: true}\n  - {service: static@127.0.0.1:1, anonymous: true}\n")
	s := gw.wait("inventory's endpoint", func(s *wire.Snapshot) bool {
		return addrs(s, "inventory") == "127.0.0.1:9001/v1/unknown"
	})
	if _, ok := s.Services["static"]; ok {
		t.Error("a static route's service was subscribed")
	}
	h.connect(wire.Hello{ProxyID: "inv-2", Service: "inventory", Version: "v2", Inbound: []string{"127.0.0.1:9002"}})
	gw.wait("the new inventory endpoint", func(s *wire.Snapshot) bool {
		return addrs(s, "inventory") == "127.0.0.1:9001/v1/unknown,127.0.0.1:9002/v2/unknown"
	})
}

// fakeSigner signs for services it allows and records the credentials.
type fakeSigner struct {
	mu      sync.Mutex
	allowed map[string]bool
	tokens  []string
}

func (f *fakeSigner) SignProxyCert(_ context.Context, r *http.Request, service string, csr []byte) (*wire.Cert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, r.Header.Get("Authorization"))
	if !f.allowed[service] {
		return nil, fmt.Errorf("service %s not allowed", service)
	}
	return &wire.Cert{Chain: "chain for " + service + " of " + string(csr), SPIFFEID: "spiffe://t/service/" + service}, nil
}

// TestCertRequests: a cert_request is answered on the same stream for the
// hello's service, through the Signer; refusals come back as errors and
// the stream stays up; mtls addresses mark endpoints.
func TestCertRequests(t *testing.T) {
	h := newHarness(t, time.Minute)
	f := &fakeSigner{allowed: map[string]bool{"payments": true}}
	h.reg.SetSigner(f)
	pay := h.connect(wire.Hello{ProxyID: "p1", Service: "payments", Version: "v1", Inbound: []string{"127.0.0.1:9001"}, MTLS: []string{"127.0.0.1:9001"}})
	web := h.connect(wire.Hello{ProxyID: "w1", Service: "web", Version: "v1", Upstreams: []string{"payments"}})
	web.wait("payments endpoint marked mtls", func(s *wire.Snapshot) bool {
		eps := s.Services["payments"].Endpoints
		return len(eps) == 1 && eps[0].MTLS
	})
	pay.send(&wire.CertRequest{CSR: "csr1"})
	web.send(&wire.CertRequest{CSR: "csr2"})
	for _, c := range []*client{pay, web} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c.mu.Lock()
			n := len(c.certs)
			c.mu.Unlock()
			if n == 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	pay.mu.Lock()
	if len(pay.certs) != 1 || pay.certs[0].Chain != "chain for payments of csr1" || pay.certs[0].Error != "" {
		t.Errorf("payments got %+v", pay.certs)
	}
	pay.mu.Unlock()
	web.mu.Lock()
	if len(web.certs) != 1 || web.certs[0].Error == "" || !strings.Contains(web.certs[0].Error, "web not allowed") {
		t.Errorf("web got %+v, want a refusal", web.certs)
	}
	web.mu.Unlock()
	// The stream is still up after a refusal: a policy change arrives.
	v := h.apply("kind: Route\nname: r\nservice: payments\ntimeout: 1s\n")
	web.wait("snapshot after the refusal", func(s *wire.Snapshot) bool { return s.Version == v })
}
