package guard

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/meshscope/meshscope/control/policy"
)

func load(t *testing.T, y string) *policy.Document {
	t.Helper()
	docs, err := policy.Load([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return &docs[0]
}

func TestMakePlan(t *testing.T) {
	route := "kind: Route\nname: split\nservice: inv\nmode: observe\ntimeout: 2s\nrules:\n  - match: {headers: [{name: x-canary, exact: \"1\"}]}\n    backends: [{version: v2, weight: 100}]\n  - backends: [{version: v1, weight: 70}, {version: v2, weight: 20}, {version: v3, weight: 10}]\n"
	guardDoc := func(then string) string {
		return "kind: Guard\nname: g\nservice: inv\nmode: enforce\nwhen: {slo: inv-avail}\nthen: " + then + "\n"
	}
	tests := []struct {
		name      string
		then      string
		route     bool
		versions  []string
		instances int
		rate      float64
		// want is the route's rules summary or the rate limit, wantErr a reason not to act.
		wantRules   string
		wantFault   string
		wantRate    float64
		wantTargets string
		wantErr     string
	}{
		{name: "shift to v1 rewrites every rule", then: "{shift: {to: v1}}", route: true, wantRules: "v1:100 | v1:100", wantTargets: "v1"},
		{name: "shift weights", then: "{shift: {weights: {v1: 90, v2: 10}}}", route: true, wantRules: "v1:90,v2:10 | v1:90,v2:10", wantTargets: "v1,v2"},
		{name: "shift without a route creates one", then: "{shift: {to: v1}}", wantRules: "v1:100", wantTargets: "v1"},
		{name: "eject spreads the weight", then: "{eject: {version: v2}}", route: true, wantErr: "eject v2: it is the only version left"},
		{name: "eject without a route", then: "{eject: {version: v2}}", versions: []string{"v1", "v2", "v3"}, wantRules: "v1:50,v3:50", wantTargets: "v1,v3"},
		{name: "break keeps the rules", then: "{break: {probe_percent: 10}}", route: true, wantRules: "v2:100 | v1:70,v2:20,v3:10", wantFault: "90% 503 g"},
		{name: "shed rps split over instances", then: "{shed: {requests_per_second: 90}}", instances: 3, rate: 120, wantRate: 30},
		{name: "shed rps raised to max_shed_percent", then: "{shed: {requests_per_second: 10}}", instances: 2, rate: 100, wantRate: 25},
		{name: "shed percent capped", then: "{shed: {percent: 80}}", instances: 1, rate: 100, wantRate: 50},
		{name: "shed percent without a rate", then: "{shed: {percent: 10}}", instances: 1, rate: math.NaN(), wantErr: "inbound rate is not known"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := planInput{guard: load(t, guardDoc(tt.then)), versions: tt.versions, instances: tt.instances, inboundRate: tt.rate}
			if tt.route {
				in.route = load(t, route)
			}
			orig := ""
			if in.route != nil {
				orig = Summary(in.route)
			}
			p, err := makePlan(in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.route != nil && Summary(in.route) != orig {
				t.Error("planning modified the stored route")
			}
			if strings.Join(p.targets, ",") != tt.wantTargets {
				t.Errorf("targets %v, want %s", p.targets, tt.wantTargets)
			}
			for _, put := range p.puts {
				if err := put.After.Validate(); err != nil {
					t.Errorf("planned document invalid: %v", err)
				}
				if put.After.Mode != policy.ModeEnforce {
					t.Errorf("planned %s in mode %q", put.Key, put.After.Mode)
				}
				if r := put.After.Route(); r != nil {
					if got := Summary(put.After); got != tt.wantRules {
						t.Errorf("rules %s, want %s", got, tt.wantRules)
					}
					if tt.route && r.Timeout.D().Seconds() != 2 {
						t.Error("the route's other settings were lost")
					}
					if tt.wantFault != "" {
						a := r.Fault.Abort
						if got := strings.TrimSpace(strings.Join([]string{ftoa(a.Percent) + "%", itoa(a.Status), a.Headers[HeaderGuard]}, " ")); got != tt.wantFault {
							t.Errorf("fault %s, want %s", got, tt.wantFault)
						}
					}
				}
				if r := put.After.Resilience(); r != nil {
					if got := r.RateLimit.RequestsPerSecond; math.Abs(got-tt.wantRate) > 1e-9 || r.RateLimit.Burst < 1 {
						t.Errorf("rate limit %+v, want %v rps", r.RateLimit, tt.wantRate)
					}
				}
			}
			rev := revertPuts(p.puts)
			for i := range rev {
				if rev[i].After != p.puts[i].Expect || rev[i].Expect != p.puts[i].After {
					t.Error("revert does not restore the revert point")
				}
			}
		})
	}
}

// Summary writes a route's rules as v1:70,v2:30 | ...
func Summary(d *policy.Document) string {
	var rules []string
	for _, r := range d.Route().Rules {
		var bs []string
		for _, b := range r.Backends {
			bs = append(bs, b.Version+":"+itoa(b.Weight))
		}
		rules = append(rules, strings.Join(bs, ","))
	}
	return strings.Join(rules, " | ")
}

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestEject(t *testing.T) {
	tests := []struct {
		in   []policy.Backend
		want string
	}{
		{[]policy.Backend{{Version: "v1", Weight: 70}, {Version: "v2", Weight: 20}, {Version: "v3", Weight: 10}}, "v1:88,v3:12"},
		{[]policy.Backend{{Version: "v1", Weight: 0}, {Version: "v2", Weight: 100}, {Version: "v3", Weight: 0}}, "v1:50,v3:50"},
		{[]policy.Backend{{Version: "v1", Weight: 33}, {Version: "v2", Weight: 33}, {Version: "v3", Weight: 34}}, "v1:49,v3:51"},
	}
	for _, tt := range tests {
		out, err := eject(tt.in, "v2")
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		sum := 0
		for _, b := range out {
			parts = append(parts, b.Version+":"+itoa(b.Weight))
			sum += b.Weight
		}
		if got := strings.Join(parts, ","); got != tt.want || sum != 100 {
			t.Errorf("eject v2 from %v = %s (sum %d), want %s", tt.in, got, sum, tt.want)
		}
	}
}
