package policy

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRolloutDefaultsAndSteps(t *testing.T) {
	docs, err := Load([]byte(`kind: Rollout
name: inventory-v2
service: inventory
stable: v1
canary: v2
steps: [5, {weight: 20, pause: 2m}, 50, 100]
analysis:
  success_rate: {min: 99}
  latency: {p99_max: 500ms}
  slo_budget: {slo: inventory-availability}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := docs[0].Rollout()
	if r == nil {
		t.Fatal("no Rollout spec")
	}
	want := []Step{{Weight: 5}, {Weight: 20, Pause: Duration(2 * time.Minute)}, {Weight: 50}, {Weight: 100}}
	if len(r.Steps) != len(want) {
		t.Fatalf("steps %+v", r.Steps)
	}
	for i := range want {
		if r.Steps[i] != want[i] {
			t.Errorf("steps[%d] = %+v, want %+v", i, r.Steps[i], want[i])
		}
	}
	a := r.Analysis
	if r.Interval.D() != time.Minute || r.MinRequests != 50 || r.FailureLimit != 2 || a.Alpha != 0.05 || a.MaxDegradation != 10 ||
		a.MaxErrorIncrease != 1 || a.PassScore != 90 || a.MarginalScore != 60 || a.SLOBudget.MinRemaining != 20 {
		t.Errorf("defaults not filled: %+v %+v", r, a)
	}
	b, err := json.Marshal(docs[0])
	if err != nil {
		t.Fatal(err)
	}
	var back Document
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !Equal(&docs[0], &back) {
		t.Errorf("JSON round trip changed the document: %s", b)
	}
	// Without analysis the comparison defaults still apply.
	docs, err = Load([]byte("kind: Rollout\nname: r\nservice: s\nstable: v1\ncanary: v2\nsteps: [50]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a := docs[0].Rollout().Analysis; a == nil || a.Alpha != 0.05 {
		t.Errorf("analysis defaults missing: %+v", a)
	}
}

func TestRolloutErrors(t *testing.T) {
	const head = "kind: Rollout\nname: r\nservice: s\n"
	const ok = "stable: v1\ncanary: v2\nsteps: [10, 50]\n"
	cases := []struct{ in, want string }{
		{"canary: v2\nsteps: [10]\n", "stable: must be set"},
		{"stable: v1\nsteps: [10]\n", "canary: must be set"},
		{"stable: v1\ncanary: v1\nsteps: [10]\n", "canary: \"v1\": must differ"},
		{"stable: v1\ncanary: v2\n", "steps: must list"},
		{"stable: v1\ncanary: v2\nsteps: [50, 20]\n", "steps[1].weight: 20: must be above"},
		{"stable: v1\ncanary: v2\nsteps: [0]\n", "steps[0].weight: 0: must be 1..100"},
		{"stable: v1\ncanary: v2\nsteps: [{weight: 10, wait: 1m}]\n", "steps[0].wait: unknown field"},
		{"stable: v1\ncanary: v2\nsteps: [{weight: 10, pause: -1s}]\n", "steps[0].pause: must not be negative"},
		{ok + "interval: 10ms\n", "interval: 10ms: must be 1s..24h"},
		{ok + "failure_limit: 0\n", "failure_limit: must be 1..1000"},
		{ok + "mode: observe\n", "mode: a Rollout takes no mode"},
		{ok + "analysis: {alpha: 0}\n", "analysis.alpha"},
		{ok + "analysis: {alpha: .9}\n", "analysis.alpha"},
		{ok + "analysis: {pass_score: 50, marginal_score: 70}\n", "analysis.marginal_score"},
		{ok + "analysis: {success_rate: {min: 120}}\n", "analysis.success_rate.min"},
		{ok + "analysis: {latency: {p99_max: 0s}}\n", "analysis.latency.p99_max"},
		{ok + "analysis: {latency: {p99: 1s}}\n", "analysis.latency.p99: unknown field"},
		{ok + "analysis: {slo_budget: {min_remaining: 10}}\n", "analysis.slo_budget.slo"},
		{ok + "analysis: {slo_budget: {slo: x, min_remaining: 101}}\n", "analysis.slo_budget.min_remaining"},
		{ok + "match: {headers: [{name: x-canary}]}\n", "match.headers[0]: set exact or regex"},
		{ok + "thresholds: {}\n", "thresholds: unknown field"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, err := Load([]byte(head + c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	// One rollout per service.
	docs, err := Load([]byte(head + ok + "---\nkind: Rollout\nname: r2\nservice: s\n" + ok))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSet(docs); err == nil || !strings.Contains(err.Error(), "one Rollout per service") {
		t.Errorf("two rollouts of one service: %v", err)
	}
}
