package chain

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
	"github.com/meshscope/meshscope/proxy/policy/balancer"
	"github.com/meshscope/meshscope/proxy/policy/healthcheck"
	"github.com/meshscope/meshscope/proxy/policy/outlier"
	"github.com/meshscope/meshscope/proxy/policy/retry"
	"github.com/meshscope/meshscope/proxy/policy/route"
)

// backend answers its version; /fail answers 500 when failing.
func backend(t *testing.T, version string, failing bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, version)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func send(t *testing.T, e *Engine, service string, inbound bool, host string) (int, string, *policy.Request) {
	t.Helper()
	st := policy.NewRequest(service, nil)
	st.Inbound = inbound
	r := httptest.NewRequest("GET", "http://"+host+"/", nil)
	r.RequestURI = ""
	r = r.WithContext(policy.NewContext(r.Context(), st))
	res, err := e.RoundTrip(r)
	if err != nil {
		return 0, err.Error(), st
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), st
}

func splitSpec(mode string, eps []balancer.Address) Spec {
	return Spec{Version: 1, Services: []Service{{Name: "catalog", Endpoints: eps,
		Route:      &Route{Name: "split", Mode: mode, Rules: []route.Rule{{Backends: []route.Backend{{Version: "v2", Weight: 100}}}}},
		Resilience: &Resilience{Name: "rr", LoadBalancer: balancer.RoundRobin}}}}
}

func TestEngine(t *testing.T) {
	v1, v2 := backend(t, "v1", false), backend(t, "v2", false)
	eps := []balancer.Address{{Addr: v1, Version: "v1"}, {Addr: v2, Version: "v2"}}
	tests := []struct {
		name           string
		defaultEnforce bool
		mode           string
		want           map[string]bool
		enforced       bool
	}{
		{"enforced by the proxy's mode", true, "", map[string]bool{"v2": true}, true},
		{"observed by the proxy's mode", false, "", map[string]bool{"v1": true, "v2": true}, false},
		{"document enforces in an observing proxy", false, "enforce", map[string]bool{"v2": true}, true},
		{"document observes in an enforcing proxy", true, "observe", map[string]bool{"v1": true, "v2": true}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := New("web", tc.defaultEnforce, nil, nil, http.DefaultTransport, nil)
			defer e.Close()
			e.Apply(splitSpec(tc.mode, eps))
			seen := map[string]bool{}
			for range 40 {
				code, body, st := send(t, e, "catalog", false, "")
				if code != 200 {
					t.Fatalf("status %d %s", code, body)
				}
				seen[body] = true
				d := st.Decisions()
				if len(d) != 1 || d[0].Decision != "route:v2" || d[0].Enforce != tc.enforced {
					t.Fatalf("decisions %+v", d)
				}
				if _, v := st.Endpoint(); v != body {
					t.Fatalf("endpoint version %q, body %q", v, body)
				}
			}
			if len(seen) != len(tc.want) {
				t.Fatalf("reached %v, want %v", seen, tc.want)
			}
		})
	}
}

func TestStaticFallbackAndSwap(t *testing.T) {
	static, v2 := backend(t, "static", false), backend(t, "v2", false)
	e := New("web", true, map[string][]string{"catalog": {static}}, nil, http.DefaultTransport, nil)
	defer e.Close()
	if _, body, _ := send(t, e, "catalog", false, ""); body != "static" {
		t.Fatalf("before discovery: %q, want the static address", body)
	}
	old := e.Outbound("catalog")
	e.Apply(Spec{Version: 2, Services: []Service{{Name: "catalog", Endpoints: []balancer.Address{{Addr: v2, Version: "v2"}}}}})
	if _, body, _ := send(t, e, "catalog", false, ""); body != "v2" {
		t.Fatalf("after discovery: %q, want v2", body)
	}
	// A request that took the old chain keeps it.
	st := policy.NewRequest("catalog", nil)
	r := httptest.NewRequest("GET", "http://x/", nil)
	r.RequestURI = ""
	res, err := old.RoundTrip(r.WithContext(policy.NewContext(r.Context(), st)))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "static" {
		t.Fatalf("old chain answered %q", b)
	}
	if a := e.Addr("catalog"); a != v2 {
		t.Fatalf("Addr = %q, want the discovered %s", a, v2)
	}
	if a := e.Addr("nothing"); a != "" {
		t.Fatalf("Addr of an unknown service = %q", a)
	}
	if e.Version() != 2 {
		t.Fatalf("version %d", e.Version())
	}
	// Unknown services pass straight through.
	if code, body, _ := send(t, e, "other", false, v2); code != 200 || body != "v2" {
		t.Fatalf("unknown service: %d %q", code, body)
	}
}

func TestInboundRateLimit(t *testing.T) {
	app := backend(t, "app", false)
	e := New("web", true, nil, nil, http.DefaultTransport, nil)
	defer e.Close()
	e.Apply(Spec{Services: []Service{{Name: "web", Resilience: &Resilience{Name: "rl", RateLimit: &RateLimit{RequestsPerSecond: 0.001, Burst: 2}}}}})
	var codes []int
	for range 4 {
		code, _, _ := send(t, e, "web", true, app)
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 || codes[3] != 429 {
		t.Fatalf("codes %v, want 200 200 429 429", codes)
	}
}

func TestOutlierEjectsAndReports(t *testing.T) {
	good, bad := backend(t, "good", false), backend(t, "bad", true)
	e := New("web", true, nil, nil, http.DefaultTransport, nil)
	defer e.Close()
	e.Apply(Spec{Services: []Service{{Name: "catalog",
		Endpoints:  []balancer.Address{{Addr: good, Version: "v1"}, {Addr: bad, Version: "v1"}},
		Route:      &Route{Name: "r", Retry: retry.Config{}},
		Resilience: &Resilience{Name: "od", LoadBalancer: balancer.RoundRobin, Outlier: &outlier.Config{}}}}})
	fails := 0
	for range 100 {
		if code, _, _ := send(t, e, "catalog", false, ""); code != 200 {
			fails++
		}
	}
	if fails != 5 {
		t.Fatalf("%d failures, want exactly the 5 that trip the ejection", fails)
	}
	var ejected []EndpointState
	for _, s := range e.Endpoints(time.Now()) {
		if s.Ejected {
			ejected = append(ejected, s)
		}
	}
	if len(ejected) != 1 || ejected[0].Addr != bad || ejected[0].Reason != "outlier" || !ejected[0].Enforced {
		t.Fatalf("ejected %+v", ejected)
	}
}

func TestOwnHealth(t *testing.T) {
	var failing atomic.Bool
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()
	addr := strings.TrimPrefix(app.URL, "http://")
	for _, mode := range []string{"enforce", "observe"} {
		e := New("web", false, nil, []string{addr}, http.DefaultTransport, nil)
		failing.Store(false)
		e.Apply(Spec{Services: []Service{{Name: "web", Resilience: &Resilience{Name: "hc", Mode: mode,
			HealthCheck: &healthcheck.Config{Path: "/healthz", Interval: 20 * time.Millisecond, UnhealthyThreshold: 2}}}}})
		want := "healthy"
		if mode == "observe" {
			want = "" // not reported: callers must not skip it
		}
		waitHealth(t, e, want)
		failing.Store(true)
		if mode == "enforce" {
			waitHealth(t, e, "unhealthy")
		} else {
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, _, st := send(t, e, "web", true, addr)
				if len(st.Decisions()) == 1 && st.Decisions()[0].Decision == "unhealthy" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("observe: no unhealthy decision on inbound requests")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		e.Close()
	}
}

func waitHealth(t *testing.T, e *Engine, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.Health() != want {
		if time.Now().After(deadline) {
			t.Fatalf("health %q, want %q", e.Health(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
