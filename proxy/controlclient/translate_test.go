package controlclient

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	cpolicy "github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/proxy/policy/retry"
)

func TestCompile(t *testing.T) {
	docs, err := cpolicy.Load([]byte(`
kind: Route
name: r
service: catalog
mode: observe
rules:
  - match: {path_regex: "/items/[0-9]+", headers: [{name: x-user, regex: "a|b"}]}
    backends: [{version: v2, weight: 100}]
timeout: 2s
retries:
  attempts: 3
  per_try_timeout: 500ms
  on: [5xx, connect-failure, "429"]
mirror: {version: v3, percent: 5}
fault:
  delay: {duration: 100ms, percent: 10}
  abort: {percent: 1}
---
kind: Resilience
name: res
service: catalog
load_balancer: round-robin
outlier_detection: {}
rate_limit: {requests_per_second: 5}
health_check: {path: /ready}
`))
	if err != nil {
		t.Fatal(err)
	}
	snap := &wire.Snapshot{Version: 9, Services: map[string]wire.Service{"catalog": {
		Endpoints: []wire.Endpoint{{Address: "a:1", Version: "v1", Health: wire.HealthHealthy}, {Address: "b:1", Version: "v2", Health: wire.HealthUnhealthy}},
		Policies:  docs,
	}}}
	spec, err := Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	s := spec.Services[0]
	if len(s.Endpoints) != 1 || s.Endpoints[0].Addr != "a:1" {
		t.Errorf("endpoints %+v: the unhealthy one should be skipped", s.Endpoints)
	}
	r := s.Route
	if r.Mode != "observe" || r.Retry.Timeout != 2*time.Second || r.Retry.Retries != 3 || r.Retry.PerTryTimeout != 500*time.Millisecond ||
		r.Retry.On != retry.On5xx|retry.OnConnectFailure || len(r.Retry.Statuses) != 1 || r.Retry.Statuses[0] != 429 {
		t.Errorf("retry %+v", r.Retry)
	}
	if r.Budget == nil || r.Budget.Ratio != 0.2 || r.Budget.MinPerSecond != 10 {
		t.Errorf("budget %+v, want the Linkerd defaults", r.Budget)
	}
	if r.Mirror.Version != "v3" || r.Mirror.Percent != 5 || r.Fault.Delay != 100*time.Millisecond || r.Fault.DelayPercent != 10 || r.Fault.AbortStatus != 503 {
		t.Errorf("mirror %+v fault %+v", r.Mirror, r.Fault)
	}
	m := r.Rules[0].Match
	for path, want := range map[string]bool{"/items/12": true, "/items/12/x": false, "/x/items/1": false} {
		if got := m.PathRegex.MatchString(path); got != want {
			t.Errorf("path_regex on %s: %v, want %v (whole path)", path, got, want)
		}
	}
	req := httptest.NewRequest("GET", "/items/1", nil)
	req.Header.Set("X-User", "ab")
	if m.Matches(req) {
		t.Error("header regex must match the whole value")
	}
	req.Header.Set("X-User", "b")
	if !m.Matches(req) {
		t.Error("header regex b|a should match b")
	}
	res := s.Resilience
	if res.LoadBalancer != "round-robin" || res.Outlier.Consecutive5xx != 5 || res.Outlier.BaseEjectionTime != 30*time.Second ||
		res.RateLimit.RequestsPerSecond != 5 || res.HealthCheck.Path != "/ready" || res.HealthCheck.UnhealthyThreshold != 3 {
		t.Errorf("resilience %+v", res)
	}
}

func TestCompileRejects(t *testing.T) {
	snap := splitSnapshot(1, 20)
	snap.Services["catalog"].Policies[0].Spec.(*cpolicy.Route).Rules[0].Backends[0].Weight = 10 // sums to 30
	_, err := Compile(snap)
	if err == nil || !strings.Contains(err.Error(), "catalog") || !strings.Contains(err.Error(), "weights") {
		t.Fatalf("error %v, want one naming the service and the weights", err)
	}
}

// FuzzCompile: any message the control plane could send either decodes
// and compiles or is refused with an error — never a panic.
func FuzzCompile(f *testing.F) {
	for _, s := range []*wire.Snapshot{splitSnapshot(1, 20), splitSnapshot(2, 0), {Version: 3}} {
		b, err := wire.Encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"type":"snapshot","version":1,"services":{"a":{"endpoints":[{"address":"x:1","version":"v1"}],"policies":[{"kind":"Route","name":"r","service":"a","rules":[{"match":{"path_regex":"(","headers":[{"name":"h","regex":"["}]},"backends":[{"version":"v1","weight":100}]}],"retries":{"attempts":3,"on":["999","5xx"]}}]}}}`))
	f.Add([]byte(`{"type":"snapshot","services":{"a":{"policies":[{"kind":"Resilience","name":"r","service":"a","load_balancer":"p2c-ewma","outlier_detection":{"consecutive_5xx":0}}]}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := wire.Decode(data)
		if err != nil {
			return
		}
		if s, ok := msg.(*wire.Snapshot); ok {
			_, _ = Compile(s)
		}
	})
}
