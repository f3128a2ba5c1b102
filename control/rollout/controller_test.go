package rollout

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/rollout/judge"
	"github.com/meshscope/meshscope/control/store"
)

// fakeSampler answers fixed samples per call; our own interface.
type fakeSampler struct {
	mu             sync.Mutex
	canary, stable judge.Sample
}

func (f *fakeSampler) set(c, s judge.Sample) {
	f.mu.Lock()
	f.canary, f.stable = c, s
	f.mu.Unlock()
}

func (f *fakeSampler) Collect(context.Context, string, string, string, time.Time, time.Time) (judge.Sample, judge.Sample, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.canary, f.stable, judge.SourceTraces, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type budget struct{ v *float64 }

func (b budget) RemainingBudget(context.Context, string) (*float64, error) { return b.v, nil }

type guard map[string]bool

func (g guard) Firing(s string) bool { return g[s] }

func lat(n int, ms float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = ms/1000 + float64(i%17)*0.0001
	}
	return out
}

var (
	healthy    = judge.Sample{Requests: 300, Errors: 0, Latencies: lat(300, 10)}
	baseline   = judge.Sample{Requests: 900, Errors: 1, Latencies: lat(900, 10)}
	failing    = judge.Sample{Requests: 300, Errors: 60, Latencies: lat(300, 10)}
	slow       = judge.Sample{Requests: 300, Latencies: lat(300, 20)}
	fewSamples = judge.Sample{Requests: 3, Latencies: lat(3, 10)}
)

const doc = `kind: Rollout
name: inv
service: inventory
stable: v1
canary: v2
steps: [10, 50, 100]
interval: 5s
analysis: {success_rate: {min: 90}}
`

type env struct {
	t    *testing.T
	dir  string
	st   *store.Store
	clk  *clock
	samp *fakeSampler
	c    *Controller
	opts Options
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clk: &clock{t: time.Unix(1_800_000_000, 0)}, samp: &fakeSampler{}}
	var err error
	e.st, err = store.Open(e.dir+"/control", prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.st.Close() })
	opts.Now = e.clk.now
	e.opts = opts
	e.c, err = New(Config{Dir: e.dir + "/rollouts"}, e.st, e.samp, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) apply(y string) {
	e.t.Helper()
	docs, err := policy.Load([]byte(y))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Apply(docs, store.ApplyOptions{Who: "test"}); err != nil {
		e.t.Fatal(err)
	}
	e.c.reconcile(context.Background())
}

// interval advances the clock by one interval and judges.
func (e *env) interval() State {
	e.clk.add(5 * time.Second)
	e.c.judgeDue(context.Background())
	s, _ := e.c.Get("inv")
	return s
}

// split returns the canary weight of the service's route rules (the last
// rule that sends to v1 or v2).
func (e *env) routeWeights() map[string]int {
	e.t.Helper()
	_, items := e.st.List(policy.KindRoute, "inventory")
	if len(items) != 1 {
		e.t.Fatalf("%d routes for inventory", len(items))
	}
	r := items[0].Route()
	out := map[string]int{}
	rule := r.Rules[len(r.Rules)-1]
	for _, b := range rule.Backends {
		out[b.Version] = b.Weight
	}
	return out
}

func TestHealthyCanaryPromoted(t *testing.T) {
	e := newEnv(t, Options{})
	e.apply(doc)
	if w := e.routeWeights(); w["v2"] != 10 || w["v1"] != 90 {
		t.Fatalf("first step route %v", w)
	}
	e.samp.set(healthy, baseline)
	if s := e.interval(); s.Weight != 50 || s.Step != 1 || s.Phase != PhaseProgressing {
		t.Fatalf("after one passing interval: step %d weight %d %s", s.Step, s.Weight, s.Phase)
	}
	s := e.interval()
	if s.Phase != PhasePromoted || s.Weight != 100 {
		t.Fatalf("not promoted: %+v", s.Events)
	}
	if w := e.routeWeights(); w["v2"] != 100 || len(w) != 1 {
		t.Fatalf("promoted route %v", w)
	}
	var types []string
	for _, ev := range s.Events {
		types = append(types, ev.Type)
	}
	if got := strings.Join(types, ","); got != "started,advanced,promoted" {
		t.Errorf("events %s", got)
	}
	if !strings.Contains(s.Events[1].Message, "canary 300 req 0 err") {
		t.Errorf("event without its numbers: %s", s.Events[1].Message)
	}
	// Judging goes on no more.
	if s := e.interval(); len(s.Intervals) != 2 {
		t.Errorf("judged after promotion: %d intervals", len(s.Intervals))
	}
}

func TestRollback(t *testing.T) {
	cases := []struct {
		name   string
		canary judge.Sample
		metric string
	}{
		{"20% errors", failing, "success_rate"},
		{"2x latency", slow, "latency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			e.apply(doc)
			e.samp.set(c.canary, baseline)
			s := e.interval()
			if s.Phase != PhaseProgressing || s.Failures != 1 || s.Weight != 10 {
				t.Fatalf("after one failure: %s failures %d weight %d", s.Phase, s.Failures, s.Weight)
			}
			s = e.interval()
			if s.Phase != PhaseRolledBack {
				t.Fatalf("not rolled back after failure_limit 2: %s", s.Phase)
			}
			if w := e.routeWeights(); w["v1"] != 100 || len(w) != 1 {
				t.Fatalf("route after rollback %v", w)
			}
			last := s.Intervals[len(s.Intervals)-1]
			failed := false
			for _, m := range last.Result.Metrics {
				if m.Name == c.metric && m.Verdict == judge.Fail {
					failed = true
				}
			}
			if !failed {
				t.Errorf("%s did not fail: %+v", c.metric, last.Result.Metrics)
			}
		})
	}
}

func TestHolds(t *testing.T) {
	low, high := 5.0, 80.0
	b := &budget{v: &low}
	e := newEnv(t, Options{Budget: b})
	e.apply(strings.Replace(doc, "analysis: {", "analysis: {slo_budget: {slo: inv-avail}, ", 1))
	e.samp.set(healthy, baseline)
	for range 3 {
		if s := e.interval(); s.Weight != 10 || !strings.Contains(s.Held, "budget 5.0% < min_remaining 20%") {
			t.Fatalf("budget gate did not hold: weight %d held %q", s.Weight, s.Held)
		}
	}
	b.v = &high
	if s := e.interval(); s.Weight != 50 {
		t.Fatalf("did not advance once the budget recovered: %d %q", s.Weight, s.Held)
	}
	e.samp.set(fewSamples, baseline)
	if s := e.interval(); s.Weight != 50 || !strings.HasPrefix(s.Held, "no_data") || s.Failures != 0 {
		t.Fatalf("too few requests: weight %d held %q failures %d", s.Weight, s.Held, s.Failures)
	}
}

func TestGuardRollsBack(t *testing.T) {
	g := guard{}
	e := newEnv(t, Options{Guard: g})
	e.apply(doc)
	e.c.guardCheck(context.Background())
	if s, _ := e.c.Get("inv"); s.Phase != PhaseProgressing {
		t.Fatalf("rolled back without a firing guard: %s", s.Phase)
	}
	g["inventory"] = true
	e.c.guardCheck(context.Background())
	if s, _ := e.c.Get("inv"); s.Phase != PhaseRolledBack || e.routeWeights()["v1"] != 100 {
		t.Fatalf("firing guard: %s %v", s.Phase, e.routeWeights())
	}
}

func TestRestartResumesAtStep(t *testing.T) {
	e := newEnv(t, Options{})
	e.apply(doc)
	e.samp.set(healthy, baseline)
	e.interval()
	// A second controller over the same state dir is the restarted server.
	c2, err := New(Config{Dir: e.dir + "/rollouts"}, e.st, e.samp, e.opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2.reconcile(context.Background())
	s, _ := c2.Get("inv")
	if s.Step != 1 || s.Weight != 50 || s.Phase != PhaseProgressing || s.Events[len(s.Events)-1].Type != EventResumed {
		t.Fatalf("after restart: step %d weight %d %s", s.Step, s.Weight, s.Phase)
	}
	e.c = c2
	if s := e.interval(); s.Phase != PhasePromoted {
		t.Fatalf("restarted rollout did not finish: %s", s.Phase)
	}
}

func TestOperatorActions(t *testing.T) {
	e := newEnv(t, Options{})
	e.apply(doc)
	e.samp.set(healthy, baseline)
	if _, err := e.c.Act(context.Background(), "inv", ActionPause, "me"); err != nil {
		t.Fatal(err)
	}
	if s := e.interval(); s.Weight != 10 || len(s.Intervals) != 0 {
		t.Fatalf("paused rollout judged: %+v", s.Intervals)
	}
	if _, err := e.c.Act(context.Background(), "inv", ActionResume, "me"); err != nil {
		t.Fatal(err)
	}
	if s := e.interval(); s.Weight != 50 {
		t.Fatalf("resumed rollout did not advance: %d", s.Weight)
	}
	s, err := e.c.Act(context.Background(), "inv", ActionAbort, "me")
	if err != nil || s.Phase != PhaseAborted || e.routeWeights()["v1"] != 100 {
		t.Fatalf("abort: %v %s %v", err, s.Phase, e.routeWeights())
	}
	if _, err := e.c.Act(context.Background(), "inv", ActionPromote, "me"); err == nil {
		t.Error("promoted a finished rollout")
	}
	if _, err := e.c.Act(context.Background(), "nope", ActionPause, "me"); err == nil {
		t.Error("paused a missing rollout")
	}
	// A changed document starts again.
	e.apply(strings.Replace(doc, "steps: [10, 50, 100]", "steps: [20, 100]", 1))
	if s, _ := e.c.Get("inv"); s.Phase != PhaseProgressing || s.Weight != 20 {
		t.Fatalf("changed document: %s %d", s.Phase, s.Weight)
	}
}

func TestRouteKeepsOtherRulesAndMatch(t *testing.T) {
	e := newEnv(t, Options{})
	e.apply(`kind: Route
name: inventory-routes
service: inventory
timeout: 2s
rules:
  - match: {headers: [{name: x-debug, exact: "1"}]}
    backends: [{version: v9}]
  - backends: [{version: v1}]
`)
	e.apply(strings.Replace(doc, "interval: 5s", "interval: 5s\nmatch: {headers: [{name: x-canary, exact: \"1\"}]}", 1))
	_, items := e.st.List(policy.KindRoute, "inventory")
	if len(items) != 1 || items[0].Name != "inventory-routes" {
		t.Fatalf("routes %+v", items)
	}
	r := items[0].Route()
	if len(r.Rules) != 3 || r.Timeout != policy.Duration(2*time.Second) {
		t.Fatalf("rules %+v", r.Rules)
	}
	if r.Rules[0].Match == nil || r.Rules[0].Match.Headers[0].Name != "x-canary" || r.Rules[0].Backends[1].Weight != 10 {
		t.Errorf("match rule %+v", r.Rules[0])
	}
	if r.Rules[1].Backends[0].Version != "v9" {
		t.Errorf("other rule changed: %+v", r.Rules[1])
	}
	if b := r.Rules[2].Backends; len(b) != 1 || b[0].Version != "v1" || b[0].Weight != 100 {
		t.Errorf("unmatched requests not on stable: %+v", b)
	}
}

// memState is a StateStore shared by two controllers, as etcd is by the
// servers of a cluster.
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memState) Load() (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

func (s *memState) Save(name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = b
	return nil
}

type leadFlag struct{ v atomic.Bool }

func (l *leadFlag) IsLeader() bool { return l.v.Load() }

// TestFollowerTakesOver: a follower neither starts a rollout nor accepts
// actions; when it becomes the leader it resumes the rollout at the step
// the last leader saved, without starting it again.
func TestFollowerTakesOver(t *testing.T) {
	shared := &memState{m: map[string][]byte{}}
	first := newEnv(t, Options{State: shared})
	first.apply(doc) // a controller without Leader leads alone: it starts the rollout
	if w := first.routeWeights(); w["v2"] != 10 {
		t.Fatalf("first step route %v", w)
	}
	var lead leadFlag
	follower, err := New(Config{Dir: t.TempDir(), Tick: 5 * time.Millisecond}, first.st, first.samp,
		Options{State: shared, Leader: &lead, Now: first.clk.now}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = follower.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	time.Sleep(50 * time.Millisecond)
	if _, ok := follower.Get("inv"); ok {
		t.Fatal("a follower took a rollout on")
	}
	if _, err := follower.Act(context.Background(), "inv", ActionPause, "alice"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Act on a follower: %v, want ErrNotLeader", err)
	}
	versions := first.st.Version()
	lead.v.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, ok := follower.Get("inv")
		if ok {
			started, resumed := 0, 0
			for _, e := range s.Events {
				switch e.Type {
				case EventStarted:
					started++
				case EventResumed:
					resumed++
				}
			}
			if started != 1 || resumed != 1 || s.Weight != 10 || s.Phase != PhaseProgressing {
				t.Fatalf("taken over: %d started, %d resumed, weight %d, %s", started, resumed, s.Weight, s.Phase)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new leader did not take the rollout over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v := first.st.Version(); v != versions {
		t.Fatalf("the take-over wrote policy versions %d..%d", versions+1, v)
	}
}

// TestResumeSetsTheSavedWeight: a server that died between a route write
// and the save of the state that decided it leaves a route that does not
// match the state; the next server to run the rollout (restart or new
// leader) sets the route to the saved weight, so the judged weight is the
// one on the wire, and the rollout's first route write always has its
// state (with the original route) saved before it.
func TestResumeSetsTheSavedWeight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		crash func(e *env, shared *memState) // leaves the unsaved change
		want  int                            // canary weight after the resume
	}{
		{"advance written, not saved", func(e *env, shared *memState) {
			saved, _ := shared.Load()
			e.samp.set(healthy, baseline)
			if s := e.interval(); s.Weight != 50 || e.routeWeights()["v2"] != 50 {
				t.Fatalf("no advance: %d %v", s.Weight, e.routeWeights())
			}
			_ = shared.Save("inv", saved["inv"]) // the state from before the advance
		}, 10},
		{"start saved, route not written", func(e *env, _ *memState) {
			if _, err := e.st.Rollback(e.st.Version()-1, store.ApplyOptions{Who: "test"}); err != nil {
				t.Fatal(err)
			}
			if _, items := e.st.List(policy.KindRoute, "inventory"); len(items) != 0 {
				t.Fatalf("the rollback left %d routes", len(items))
			}
		}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared := &memState{m: map[string][]byte{}}
			e := newEnv(t, Options{State: shared})
			e.apply(doc)
			tc.crash(e, shared)
			next, err := New(Config{Dir: t.TempDir()}, e.st, e.samp, Options{State: shared, Now: e.clk.now}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			s, _ := next.Get("inv")
			if w := e.routeWeights(); w["v2"] != tc.want || s.Weight != tc.want || s.Phase != PhaseProgressing {
				t.Fatalf("after the resume: route %v, state weight %d %s; want canary %d", w, s.Weight, s.Phase, tc.want)
			}
			if last := s.Events[len(s.Events)-1]; last.Type != EventResumed || !strings.Contains(last.Message, "set back") {
				t.Errorf("last event %+v, want the route set back", last)
			}
			before := e.st.Version()
			next.reconcile(context.Background()) // the rollout is known: not started again
			if v := e.st.Version(); v != before {
				t.Errorf("reconcile after the resume wrote versions %d..%d", before+1, v)
			}
		})
	}
}
