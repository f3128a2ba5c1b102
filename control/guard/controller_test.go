package guard

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/control/store"
)

// fakeAlerts is the rules engine: one alerting rule per SLO whose firing
// state the test sets by evaluating it over a query answering 1 or nothing.
type fakeAlerts struct {
	rules map[string]*rules.AlertingRule
}

func (f *fakeAlerts) RuleGroups() []*rules.Group {
	var rs []rules.Rule
	for _, r := range f.rules {
		rs = append(rs, r)
	}
	return []*rules.Group{rules.NewGroup(rules.GroupOptions{Name: "t", Interval: time.Second, Rules: rs, Opts: &rules.ManagerOptions{Context: context.Background()}})}
}

func (f *fakeAlerts) set(t *testing.T, sloName string, firing bool) {
	t.Helper()
	r := f.rules[sloName]
	if r == nil {
		expr, _ := parser.NewParser(parser.Options{}).ParseExpr("vector(1)")
		r = rules.NewAlertingRule(slo.AlertName, expr, 0, 0, labels.FromStrings("slo", sloName, "severity", "page"), labels.EmptyLabels(), labels.EmptyLabels(), "", true, nil)
		f.rules[sloName] = r
	}
	qf := func(context.Context, string, time.Time) (promql.Vector, error) {
		if !firing {
			return nil, nil
		}
		return promql.Vector{{F: 1, Metric: labels.EmptyLabels()}}, nil
	}
	if _, err := r.Eval(context.Background(), 0, time.Now(), qf, nil, 0); err != nil {
		t.Fatal(err)
	}
}

type fixture struct {
	st     *store.Store
	alerts *fakeAlerts
	c      *Controller
	now    time.Time
	dir    string
}

func newFixture(t *testing.T, docs string) *fixture {
	t.Helper()
	f := &fixture{alerts: &fakeAlerts{rules: map[string]*rules.AlertingRule{}}, now: time.Unix(1_800_000_000, 0), dir: t.TempDir()}
	var err error
	f.st, err = store.Open(filepath.Join(f.dir, "control"), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.st.Close() })
	f.apply(t, docs)
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	c, err := New(Options{Dir: filepath.Join(f.dir, "guards"), EvalInterval: time.Second}, f.st, f.alerts, nil, nil, nil, nil, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return f.now }
	f.c = c
}

func (f *fixture) apply(t *testing.T, y string) {
	t.Helper()
	docs, err := policy.Load([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Apply(docs, store.ApplyOptions{Who: "test"}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) route(t *testing.T) string {
	t.Helper()
	it, ok := f.st.Get(policy.Key{Kind: policy.KindRoute, Name: "split"})
	if !ok {
		t.Fatal("route gone")
	}
	return Summary(&it.Document) + " mode=" + string(it.Mode)
}

func (f *fixture) kinds() []string {
	var out []string
	for i := len(f.c.events.(*eventLog).recent) - 1; i >= 0; i-- {
		out = append([]string{f.c.events.(*eventLog).recent[i].Kind}, out...)
	}
	return out
}

const fixtureDocs = `kind: Route
name: split
service: inv
rules: [{backends: [{version: v1, weight: 50}, {version: v2, weight: 50}]}]
---
kind: Guard
name: g
service: inv
mode: %s
when: {slo: inv-avail}
then: {shift: {to: v1}}
revert_after: 10s
cooldown: 1m
max_duration: 10m
`

func TestControllerLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, strings.Replace(fixtureDocs, "%s", "dry-run", 1))
	orig := f.route(t)
	f.alerts.set(t, "inv-avail", true)
	f.c.Evaluate(ctx)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != orig {
		t.Fatalf("dry-run changed the route: %s", got)
	}
	if k := f.kinds(); strings.Join(k, ",") != EventWouldAct || f.c.Firing("inv") {
		t.Fatalf("dry-run events %v, firing %v", k, f.c.Firing("inv"))
	}

	// Promote: it acts at the next evaluation.
	if _, err := f.c.Operate(ctx, "g", OpPromote, "op"); err != nil {
		t.Fatal(err)
	}
	f.c.Evaluate(ctx)
	if got := f.route(t); got != "v1:100 mode=enforce" || !f.c.Firing("inv") {
		t.Fatalf("after promote: %s firing %v; events %v", got, f.c.Firing("inv"), f.kinds())
	}

	// Restart: the action and its revert point survive.
	f.open(t)
	if !f.c.Firing("inv") {
		t.Fatal("restart lost the active action")
	}

	// Paused: the condition clears, but nothing is reverted.
	if _, err := f.c.Operate(ctx, "g", OpPause, "op"); err != nil {
		t.Fatal(err)
	}
	f.alerts.set(t, "inv-avail", false)
	f.now = f.now.Add(time.Minute)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != "v1:100 mode=enforce" {
		t.Fatalf("paused guard reverted: %s", got)
	}
	if _, err := f.c.Operate(ctx, "g", OpResume, "op"); err != nil {
		t.Fatal(err)
	}
	f.c.Evaluate(ctx) // the condition is false from now
	f.now = f.now.Add(9 * time.Second)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != "v1:100 mode=enforce" {
		t.Fatalf("reverted before revert_after: %s", got)
	}
	f.now = f.now.Add(2 * time.Second)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != orig || f.c.Firing("inv") {
		t.Fatalf("after auto revert: %s (want %s)", got, orig)
	}
	// Cooldown: a new burn within a minute does not act.
	f.alerts.set(t, "inv-avail", true)
	f.now = f.now.Add(30 * time.Second)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != orig {
		t.Fatalf("acted during the cooldown: %s", got)
	}
	f.now = f.now.Add(31 * time.Second)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != "v1:100 mode=enforce" {
		t.Fatalf("did not act after the cooldown: %s", got)
	}
	want := "would-act,promoted,acted,paused,resumed,reverted,acted"
	if got := strings.Join(f.kinds(), ","); got != want {
		t.Errorf("events %s, want %s", got, want)
	}

	// An operator changes the route meanwhile: the revert does not
	// overwrite it.
	f.apply(t, "kind: Route\nname: split\nservice: inv\nrules: [{backends: [{version: v1, weight: 70}, {version: v3, weight: 30}]}]\n")
	_, err := f.c.Operate(ctx, "g", OpRevert, "op")
	if !errors.As(err, new(*store.StaleError)) {
		t.Fatalf("revert over an operator's change: %v", err)
	}
	if got := f.route(t); got != "v1:70,v3:30 mode=" {
		t.Errorf("operator's route overwritten: %s", got)
	}
	if _, err := f.c.Operate(ctx, "nope", OpPause, "op"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown guard: %v", err)
	}
}

func TestControllerMaxDurationAndDelete(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, strings.Replace(fixtureDocs, "%s", "enforce", 1))
	orig := f.route(t)
	f.alerts.set(t, "inv-avail", true)
	f.c.Evaluate(ctx)
	f.now = f.now.Add(10 * time.Minute)
	f.c.Evaluate(ctx)
	if got := f.route(t); got != orig {
		t.Fatalf("not reverted after max_duration: %s", got)
	}
	if e := f.c.events.(*eventLog).recent[len(f.c.events.(*eventLog).recent)-1]; e.Kind != EventReverted || e.Who != "max_duration" {
		t.Errorf("revert event %+v", e)
	}
	f.now = f.now.Add(2 * time.Minute)
	f.c.Evaluate(ctx)
	if !f.c.Firing("inv") {
		t.Fatal("did not act again after the cooldown")
	}
	if _, err := f.st.Delete(policy.Key{Kind: policy.KindGuard, Name: "g"}, store.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	f.c.Evaluate(ctx)
	if got := f.route(t); got != orig || f.c.Firing("inv") {
		t.Fatalf("deleted guard's action left in place: %s", got)
	}
}
