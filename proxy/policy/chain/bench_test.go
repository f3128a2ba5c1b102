package chain

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
	"github.com/meshscope/meshscope/proxy/policy/balancer"
	"github.com/meshscope/meshscope/proxy/policy/breaker"
	"github.com/meshscope/meshscope/proxy/policy/fault"
	"github.com/meshscope/meshscope/proxy/policy/outlier"
	"github.com/meshscope/meshscope/proxy/policy/retry"
	"github.com/meshscope/meshscope/proxy/policy/route"
)

// BenchmarkChain measures what the policy layers add per request: the
// endpoint is a transport that answers at once, so only the chain (and
// the per-request policy state the proxy attaches) is timed.
//
//	go test -run '^$' -bench Chain -benchmem ./proxy/policy/chain/
func BenchmarkChain(b *testing.B) {
	eps := []balancer.Address{{Addr: "10.0.0.1:80", Version: "v1"}, {Addr: "10.0.0.2:80", Version: "v1"}, {Addr: "10.0.0.3:80", Version: "v2"}}
	full := func(mode string) Spec {
		return Spec{Services: []Service{{Name: "catalog", Endpoints: eps,
			Route: &Route{Name: "r", Mode: mode,
				Rules: []route.Rule{
					{Match: route.Match{PathPrefix: "/admin"}, Backends: []route.Backend{{Version: "v2", Weight: 100}}},
					{Backends: []route.Backend{{Version: "v1", Weight: 80}, {Version: "v2", Weight: 20}}},
				},
				Retry:  retry.Config{Timeout: 2 * time.Second, Retries: 2, On: retry.OnGatewayError | retry.OnConnectFailure},
				Budget: &Budget{Ratio: 0.2, MinPerSecond: 10},
				Fault:  &fault.Config{AbortPercent: 0.001, AbortStatus: 503}},
			Resilience: &Resilience{Name: "res", Mode: mode, Breaker: &breaker.Config{MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024},
				Outlier: &outlier.Config{}}}}}
	}
	cases := []struct {
		name   string
		spec   Spec
		policy bool // attach policy state (the proxy does so only with --control-plane)
	}{
		{"no-policies", Spec{}, false},
		{"discovery-only", Spec{Services: []Service{{Name: "catalog", Endpoints: eps}}}, true},
		{"enforce", full("enforce"), true},
		{"observe", full("observe"), true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			body := strings.Repeat("x", 1024)
			var tr http.RoundTripper = policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
			})
			e := New("web", true, map[string][]string{"catalog": {"10.0.0.9:80"}}, nil, tr, nil)
			defer e.Close()
			e.Apply(c.spec)
			base := httptest.NewRequest("GET", "http://catalog/api/items/1", nil)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r := base
				if c.policy {
					r = base.WithContext(policy.NewContext(base.Context(), policy.NewRequest("catalog", nil)))
				}
				res, err := e.RoundTrip(r)
				if err != nil {
					b.Fatal(res, err)
				}
				res.Body.Close()
			}
		})
	}
}
