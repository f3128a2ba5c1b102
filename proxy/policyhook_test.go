package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/meshscope/meshscope/proxy/policy/balancer"
	"github.com/meshscope/meshscope/proxy/policy/breaker"
	"github.com/meshscope/meshscope/proxy/policy/chain"
	"github.com/meshscope/meshscope/proxy/policy/retry"
	"github.com/meshscope/meshscope/proxy/policy/route"
)

// TestPoliciesInRequestPath: with a policy engine the outbound hop labels
// the chosen version, counts decisions, and upgrades still work through
// the retry/timeout and breaker layers.
func TestPoliciesInRequestPath(t *testing.T) {
	up := websocket.Upgrader{}
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		mt, m, err := c.ReadMessage()
		if err == nil {
			_ = c.WriteMessage(mt, append([]byte("echo:"), m...))
		}
	}))
	cfg := baseConfig("web")
	cfg.Mode = ModeEnforce
	cfg.ControlPlane = "http://127.0.0.1:1" // engine only; no client in this test
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "catalog"}}
	col := startCollector(t)
	cfg.Telemetry.Collector = col.addr
	p := startProxy(t, cfg)
	p.Policies().Apply(chain.Spec{Version: 4, Services: []chain.Service{{Name: "catalog",
		Endpoints: []balancer.Address{{Addr: app, Version: "v7"}},
		Route: &chain.Route{Name: "r", Rules: []route.Rule{{Backends: []route.Backend{{Version: "v7", Weight: 100}}}},
			Retry: retry.Config{Timeout: 300 * time.Millisecond, Retries: 2, On: retry.On5xx}},
		Resilience: &chain.Resilience{Name: "res", Breaker: &breaker.Config{MaxConnections: 10, MaxPending: 10, MaxRequests: 10}}}}})
	addr := p.ListenAddrs()[0]

	res, err := http.Get("http://" + addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("got %d %q", res.StatusCode, b)
	}
	eventually(t, "outbound request labelled with the chosen version", func() bool {
		return p.value(t, "mesh_requests_total", map[string]string{"direction": "outbound", "destination_version": "v7", "status_code": "200"}) == 1
	})
	if got := p.value(t, "mesh_policy_decisions_total", map[string]string{"decision": "route:v7", "enforced": "true", "policy": "r", "service": "catalog"}); got != 1 {
		t.Fatalf("route decisions %v, want 1", got)
	}
	eventually(t, "the span with the version, attempts and a decision event", func() bool {
		for _, sp := range col.snapshot() {
			if spanAttr(sp, "url.path") != "/x" {
				continue
			}
			if spanAttr(sp, "mesh.destination.version") != "v7" || intAttr(sp, "mesh.attempts") != 1 || len(sp.GetEvents()) != 1 {
				t.Fatalf("span attributes %v events %v", sp.GetAttributes(), sp.GetEvents())
			}
			ev := sp.GetEvents()[0]
			got := map[string]string{}
			for _, a := range ev.GetAttributes() {
				got[a.GetKey()] = a.GetValue().GetStringValue()
			}
			if ev.GetName() != "policy.decision" || got["mesh.policy.decision"] != "route:v7" || got["mesh.policy.enforced"] != "true" ||
				got["mesh.policy.kind"] != "Route" || got["mesh.policy.name"] != "r" {
				t.Fatalf("event %s %v", ev.GetName(), got)
			}
			return true
		}
		return false
	})

	// The WebSocket outlives the 300ms timeout.
	c, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	defer c.Close()
	time.Sleep(400 * time.Millisecond)
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "echo:hi" {
		t.Fatalf("got %q %v", got, err)
	}
}

func intAttr(sp *tracepb.Span, key string) int64 {
	for _, a := range sp.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetIntValue()
		}
	}
	return -1
}

// TestOpaqueToDiscoveredService: opaque TCP to an upstream without static
// addresses goes to a discovered endpoint.
func TestOpaqueToDiscoveredService(t *testing.T) {
	backend := startTCPServer(t, "")
	cfg := baseConfig("web")
	cfg.ControlPlane = "http://127.0.0.1:1"
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "db", Protocol: ProtocolOpaque}}
	p := startProxy(t, cfg)
	p.Policies().Apply(chain.Spec{Services: []chain.Service{{Name: "db", Endpoints: []balancer.Address{{Addr: backend, Version: "v1"}}}}})
	c, err := net.Dial("tcp", p.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ECHO hello\n" {
		t.Fatalf("got %q %v", line, err)
	}
	c.Close()
	eventually(t, "the spliced connection to end before shutdown", func() bool {
		return p.value(t, "mesh_tcp_open_connections", map[string]string{"destination_service": "db"}) == 0
	})
}
