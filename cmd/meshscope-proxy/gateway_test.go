package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/meshscope/meshscope/proxy/policy/balancer"
	"github.com/meshscope/meshscope/proxy/policy/chain"
)

func TestParseGateway(t *testing.T) {
	if !isGateway([]string{"--service", "edge", "--gateway"}) || isGateway([]string{"--service", "edge"}) {
		t.Fatal("isGateway")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gateway", "--service", "edge"}, "needs --config FILE"},
		{[]string{"--gateway", "--service", "edge", "--config", "g.yaml", "--opaque", "127.0.0.1:1"}, "--opaque does not apply"},
		{[]string{"--gateway", "--service", "edge", "--config", "g.yaml", "extra"}, `unexpected argument "extra"`},
	} {
		if _, _, err := parseGateway(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	cfg, file, err := parseGateway([]string{"--gateway", "--service", "edge", "--config", "g.yaml", "--admin", "127.0.0.1:0"}, io.Discard)
	if err != nil || file != "g.yaml" || cfg.Service != "edge" || cfg.Admin != "127.0.0.1:0" {
		t.Fatalf("%+v %q %v", cfg, file, err)
	}
}

// TestStaticRoutesKeepTheirAddresses: the services of static routes come
// with the snapshot (for their mTLS peers) but get no outbound chain, so
// the balancer never replaces the route's address; other services do.
func TestStaticRoutesKeepTheirAddresses(t *testing.T) {
	eng := chain.New("gateway", false, nil, nil, http.DefaultTransport, nil)
	defer eng.Close()
	spec := chain.Spec{Version: 3, Services: []chain.Service{
		{Name: "web", Endpoints: []balancer.Address{{Addr: "127.0.0.1:1001", Version: "v1"}}},
		{Name: "catalog", Endpoints: []balancer.Address{{Addr: "127.0.0.1:1002", Version: "v1"}}},
	}}
	for _, tc := range []struct {
		static       []string
		web, catalog bool // has an outbound chain
	}{
		{nil, true, true},
		{[]string{"web"}, false, true},
		{[]string{"web", "catalog"}, false, false},
	} {
		staticRoutes{eng, tc.static}.Apply(spec)
		if got := eng.Outbound("web") != nil; got != tc.web {
			t.Errorf("static %v: web has a chain: %v, want %v", tc.static, got, tc.web)
		}
		if got := eng.Outbound("catalog") != nil; got != tc.catalog {
			t.Errorf("static %v: catalog has a chain: %v, want %v", tc.static, got, tc.catalog)
		}
		if eng.Version() != 3 {
			t.Errorf("static %v: version %d, want 3", tc.static, eng.Version())
		}
	}
}
