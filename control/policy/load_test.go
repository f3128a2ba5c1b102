package policy

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestLoadGolden loads the demo set and compares the documents, defaults
// filled, with the golden JSON.
func TestLoadGolden(t *testing.T) {
	for _, name := range []string{"demo"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			docs, err := Load(in)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, err := json.MarshalIndent(docs, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Errorf("documents differ from %s (run with -update to accept):\n%s", golden, got)
			}
			roundTrip(t, docs)
		})
	}
}

// roundTrip checks that JSON and YAML renderings load back unchanged.
func roundTrip(t *testing.T, docs []Document) {
	t.Helper()
	js, err := json.Marshal(docs)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	var back []Document
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatalf("json back: %v\n%s", err, js)
	}
	ys, err := yaml.Marshal(docs)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	// A YAML sequence of documents is one document; render one by one.
	var ydocs []string
	for i := range docs {
		y, err := yaml.Marshal(docs[i])
		if err != nil {
			t.Fatal(err)
		}
		ydocs = append(ydocs, string(y))
	}
	fromYAML, err := Load([]byte(strings.Join(ydocs, "---\n")))
	if err != nil {
		t.Fatalf("yaml back: %v\n%s", err, ys)
	}
	if len(back) != len(docs) || len(fromYAML) != len(docs) {
		t.Fatalf("round trip: %d documents, JSON %d, YAML %d", len(docs), len(back), len(fromYAML))
	}
	for i := range docs {
		if !Equal(&docs[i], &back[i]) {
			t.Errorf("document %d changed through JSON", i+1)
		}
		if !Equal(&docs[i], &fromYAML[i]) {
			t.Errorf("document %d changed through YAML:\n%s", i+1, ydocs[i])
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	docs, err := Load([]byte(`
kind: Route
name: r
service: s
retries: {}
---
kind: Resilience
name: x
service: s
circuit_breaker: {max_requests: 7}
outlier_detection:
rate_limit: {requests_per_second: 2.5}
health_check: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := docs[0].Route()
	if r == nil || r.Retries == nil || r.Retries.Attempts != 2 || r.Retries.Budget == nil ||
		r.Retries.Budget.Ratio != 0.2 || r.Retries.Budget.MinPerSecond != 10 ||
		strings.Join(r.Retries.On, ",") != "gateway-error,connect-failure,reset" {
		t.Errorf("retries defaults: %+v", r.Retries)
	}
	x := docs[1].Resilience()
	if x.LoadBalancer != LoadBalancerP2CEWMA {
		t.Errorf("load_balancer = %q", x.LoadBalancer)
	}
	if c := x.CircuitBreaker; c.MaxRequests != 7 || c.MaxConnections != 1024 || c.MaxPending != 1024 {
		t.Errorf("circuit_breaker = %+v", c)
	}
	// "outlier_detection:" with no value is absent: no section.
	if x.OutlierDetection != nil {
		t.Errorf("outlier_detection = %+v, want nil for a null value", x.OutlierDetection)
	}
	if x.RateLimit.Burst != 3 {
		t.Errorf("burst = %d, want 3 (rate rounded up)", x.RateLimit.Burst)
	}
	if h := x.HealthCheck; h.Path != "/healthz" || h.Interval.D().Seconds() != 10 || h.UnhealthyThreshold != 3 {
		t.Errorf("health_check = %+v", h)
	}
	// Explicit values, including zeros, are kept.
	docs, err = Load([]byte("kind: Route\nname: r\nservice: s\nmirror: {version: v2, percent: 0}\nretries: {attempts: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := docs[0].Route().Mirror; m.Percent != 0 {
		t.Errorf("explicit percent 0 became %v", m.Percent)
	}
	if a := docs[0].Route().Retries.Attempts; a != 0 {
		t.Errorf("explicit attempts 0 became %d", a)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown top key", "kind: Route\nname: r\nservice: s\ntimeout: 1s\nretry: {}\n",
			"document 1 (line 5): retry: unknown field (known: fault, kind, mirror, mode, name, retries, rules, service, timeout)"},
		{"unknown nested key in 2nd doc", "kind: Route\nname: a\nservice: s\ntimeout: 1s\n---\nkind: Route\nname: r\nservice: s\nrules:\n  - match: {pathprefix: /x}\n    backends: [{version: v1}]\n",
			"document 2 (line 10): rules[0].match.pathprefix: unknown field"},
		{"weight out of range", "kind: Route\nname: inv\nservice: inventory\nrules:\n- backends:\n  - {version: v1, weight: 90}\n  - {version: v2,\n     weight: 110}\n",
			`document 1 (line 8): route "inv": rules[0].backends[1].weight: must be 0..100`},
		{"weights sum", "kind: Route\nname: inv\nservice: inventory\nrules:\n- backends:\n  - {version: v1, weight: 50}\n  - {version: v2, weight: 20}\n",
			`route "inv": rules[0].backends: weights sum to 70, want 100`},
		{"no kind", "name: r\nservice: s\n", "document 1 (line 1): kind: must be set"},
		{"unknown kind", "kind: VirtualService\nname: r\nservice: s\n", `kind: unknown kind "VirtualService" (want one of Route, Resilience, SLO`},
		{"kind case", "kind: route\nname: r\nservice: s\n", `kind: "route": spell it "Route"`},
		{"no name", "kind: Resilience\nservice: s\n", `resilience "": name: must be set`},
		{"bad service", "kind: Resilience\nname: x\nservice: Bad Name\n", `resilience "x": service: "Bad Name"`},
		{"bad mode", "kind: Resilience\nname: x\nservice: s\nmode: audit\n", `document 1 (line 4): resilience "x": mode: "audit": only an Authorization has audit mode; want observe or enforce`},
		{"type mismatch", "kind: Route\nname: r\nservice: s\nretries: {attempts: many}\n", "document 1 (line 4): route \"r\": retries.attempts: cannot unmarshal !!str `many` into int"},
		{"bad duration", "kind: Route\nname: r\nservice: s\ntimeout: 5\n", `document 1 (line 4): route "r": timeout: "5" is not a duration`},
		{"negative timeout", "kind: Route\nname: r\nservice: s\ntimeout: -1s\n", `document 1 (line 4): route "r": timeout: must not be negative`},
		{"retry on", "kind: Route\nname: r\nservice: s\nretries:\n  on: [5xx, sometimes]\n", `route "r": retries.on[1]: "sometimes": want`},
		{"budget ratio", "kind: Route\nname: r\nservice: s\nretries:\n  budget: {ratio: 1.5}\n", `document 1 (line 5): route "r": retries.budget.ratio: must be 0..1`},
		{"attempts", "kind: Route\nname: r\nservice: s\nretries: {attempts: 11}\n", `retries.attempts: must be 0..10`},
		{"mirror version", "kind: Route\nname: r\nservice: s\nmirror: {percent: 5}\n", `mirror.version: must be set`},
		{"fault empty", "kind: Route\nname: r\nservice: s\nfault: {}\n", `fault: want delay or abort`},
		{"fault delay duration", "kind: Route\nname: r\nservice: s\nfault: {delay: {percent: 5}}\n", `fault.delay.duration: must be positive`},
		{"abort status", "kind: Route\nname: r\nservice: s\nfault: {abort: {status: 99}}\n", `fault.abort.status: must be 200..599`},
		{"percent", "kind: Route\nname: r\nservice: s\nfault: {abort: {percent: 101}}\n", `fault.abort.percent: must be 0..100`},
		{"route sets nothing", "kind: Route\nname: r\nservice: s\n", `route "r": sets nothing`},
		{"path regex", "kind: Route\nname: r\nservice: s\nrules:\n- match: {path_regex: '(['}\n  backends: [{version: v1}]\n", `rules[0].match.path_regex: error parsing regexp`},
		{"path prefix", "kind: Route\nname: r\nservice: s\nrules:\n- match: {path_prefix: api}\n  backends: [{version: v1}]\n", `rules[0].match.path_prefix: "api": must start with /`},
		{"header both", "kind: Route\nname: r\nservice: s\nrules:\n- match: {headers: [{name: x, exact: a, regex: b}]}\n  backends: [{version: v1}]\n", `rules[0].match.headers[0]: set exact or regex, not both`},
		{"header none", "kind: Route\nname: r\nservice: s\nrules:\n- match: {headers: [{name: x}]}\n  backends: [{version: v1}]\n", `rules[0].match.headers[0]: set exact or regex`},
		{"no backends", "kind: Route\nname: r\nservice: s\nrules:\n- match: {method: GET}\n", `rules[0].backends: must list at least one backend`},
		{"dup backend", "kind: Route\nname: r\nservice: s\nrules:\n- backends: [{version: v1}, {version: v1}]\n", `rules[0].backends[1].version: "v1" listed twice`},
		{"method", "kind: Route\nname: r\nservice: s\nrules:\n- match: {method: 'G T'}\n  backends: [{version: v1}]\n", `rules[0].match.method: "G T" is not an HTTP method`},
		{"lb", "kind: Resilience\nname: x\nservice: s\nload_balancer: random\n", `document 1 (line 4): resilience "x": load_balancer: "random": want p2c-ewma or round-robin`},
		{"breaker", "kind: Resilience\nname: x\nservice: s\ncircuit_breaker: {max_pending: 0}\n", `circuit_breaker.max_pending: must be at least 1`},
		{"outlier", "kind: Resilience\nname: x\nservice: s\noutlier_detection: {consecutive_5xx: 0}\n", `outlier_detection.consecutive_5xx: must be at least 1`},
		{"outlier interval", "kind: Resilience\nname: x\nservice: s\noutlier_detection: {interval: 0s}\n", `outlier_detection.interval: must be positive`},
		{"ejection percent", "kind: Resilience\nname: x\nservice: s\noutlier_detection: {max_ejection_percent: -1}\n", `outlier_detection.max_ejection_percent: must be 0..100`},
		{"rate", "kind: Resilience\nname: x\nservice: s\nrate_limit: {burst: 3}\n", `rate_limit.requests_per_second: must be positive`},
		{"rate nan", "kind: Resilience\nname: x\nservice: s\nrate_limit: {requests_per_second: .nan}\n", `rate_limit.requests_per_second: must be positive`},
		{"health path", "kind: Resilience\nname: x\nservice: s\nhealth_check: {path: ready}\n", `health_check.path: "ready": must start with /`},
		{"health threshold", "kind: Resilience\nname: x\nservice: s\nhealth_check: {unhealthy_threshold: 0}\n", `health_check.unhealthy_threshold: must be at least 1`},
		{"repeated key", "kind: Resilience\nname: x\nservice: s\nname: y\n", `document 1 (line 4): name: given twice (first on line 2)`},
		{"not a mapping", "- kind: Route\n", "document 1 (line 1): want a mapping"},
		{"syntax", "kind: Route\nname: [\n", "document 1: "},
		{"third doc", "kind: Resilience\nname: a\nservice: s\n---\n---\nkind: Resilience\nname: b\nservice: s\nhealth_check: {intervals: 1s}\n", "document 3 (line 9): health_check.intervals: unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Load([]byte(tc.in))
			if err == nil {
				t.Fatalf("Load succeeded with %d documents, want error containing %q", len(docs), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestLoadEmpty(t *testing.T) {
	for _, in := range []string{"", "---\n", "# only a comment\n", "---\n---\n"} {
		docs, err := Load([]byte(in))
		if err != nil || len(docs) != 0 {
			t.Errorf("Load(%q) = %d docs, %v; want none", in, len(docs), err)
		}
	}
}

func TestLoadJSON(t *testing.T) {
	docs, err := Load([]byte(`{"kind":"Route","name":"r","service":"s","rules":[{"backends":[{"version":"v1","weight":80},{"version":"v2","weight":20}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := docs[0].Route().Rules[0].Backends; b[1].Weight != 20 {
		t.Errorf("backends = %+v", b)
	}
}

func TestEvenWeights(t *testing.T) {
	docs, err := Load([]byte("kind: Route\nname: r\nservice: s\nrules:\n- backends: [{version: a}, {version: b}, {version: c}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	b := docs[0].Route().Rules[0].Backends
	if b[0].Weight != 34 || b[1].Weight != 33 || b[2].Weight != 33 {
		t.Errorf("weights = %+v, want 34/33/33", b)
	}
}

func TestCheckSet(t *testing.T) {
	docs, err := Load([]byte("kind: Route\nname: a\nservice: s\ntimeout: 1s\n---\nkind: Route\nname: b\nservice: s\ntimeout: 2s\n---\nkind: Resilience\nname: a\nservice: s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSet(docs[1:]); err != nil {
		t.Errorf("route b + resilience a: %v", err)
	}
	if err := CheckSet(docs); err == nil || !strings.Contains(err.Error(), `route "b": service "s" already has route "a"`) {
		t.Errorf("two routes for one service: %v", err)
	}
	if err := CheckSet([]Document{docs[0], docs[0]}); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("same document twice: %v", err)
	}
}

func TestUnknownKindJSON(t *testing.T) {
	in := `{"kind":"Gadget","name":"g","service":"s","knob":3}`
	var d Document
	if err := json.Unmarshal([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	if d.Spec != nil || d.Kind != "Gadget" {
		t.Fatalf("unknown kind: %+v", d)
	}
	out, err := json.Marshal(d)
	if err != nil || string(out) != in {
		t.Errorf("re-marshal = %s, %v; want the original", out, err)
	}
	if err := d.Validate(); err == nil {
		t.Error("Validate accepted an unknown kind")
	}
}

// FuzzLoad: Load never panics, and what it accepts validates and survives
// JSON and YAML round trips.
func FuzzLoad(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "demo.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		"kind: Route\nname: r\nservice: s\ntimeout: 1s\n",
		"kind: Resilience\nname: x\nservice: s\nrate_limit: {requests_per_second: 1e308}\n",
		"kind: Route\nname: r\nservice: s\nrules: [{backends: [{version: a}]}]\n",
		"kind: Rollout\nname: r\nservice: s\nstable: v1\ncanary: v2\nsteps: [5, {weight: 50, pause: 1m}]\nanalysis: {success_rate: {min: 99}, latency: {p99_max: 500ms}, slo_budget: {slo: a}}\n",
		"kind: Rollout\nname: r\nservice: s\nstable: v1\ncanary: v2\nsteps: [5]\nmatch: {headers: [{name: x-canary, exact: \"1\"}]}\n",
		"a: &a [*a]\n",
		"kind: Route\n---\n- 1\n",
		"kind: Guard\nname: g\nservice: s\nmode: enforce\nwhen: {slo: s-availability}\nthen: {shift: {to: v1}}\n",
		"kind: Guard\nname: g\nservice: s\nwhen: {alert: HighErrors, labels: {team: a}}\nthen: {break: {probe_percent: 10}, shed: {percent: 30}}\nrevert: manual\n",
		"kind: Guard\nname: g\nservice: s\nwhen: {slo: x}\nthen: {eject: {version: v2}, shed: {requests_per_second: 1e308}}\nlimits: {max_shed_percent: 20}\n",
		"kind: PeerAuthentication\nname: p\nservice: payments\ntls: strict\n",
		"kind: PeerAuthentication\nname: p\nservice: payments\ntls: permissive\nextra: 1\n",
		"kind: Authorization\nname: a\nservice: payments\nmode: audit\nrules: [{identities: [checkout, \"spiffe://mesh.local/service/web\"], methods: [POST], paths: [/api/pay*], headers: [{name: x-a, exact: b}]}, {unauthenticated: true}]\n",
		"kind: Authorization\nname: a\nservice: payments\nmode: enforce\nrules: [{identities: [\"*\"]}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		docs, err := Load(in)
		if err != nil {
			return
		}
		for i := range docs {
			if err := docs[i].Validate(); err != nil {
				t.Fatalf("loaded document does not validate: %v", err)
			}
		}
		roundTrip(t, docs)
	})
}
