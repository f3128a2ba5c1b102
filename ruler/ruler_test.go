package ruler

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"

	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/ruler/rulertest"
)

type env struct {
	db     *metricstore.Store
	engine *promql.Engine
}

func newEnv(t *testing.T) env {
	t.Helper()
	db, err := metricstore.New(metricstore.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return env{db: db, engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})}
}

func (e env) new(t *testing.T, cfg Config) (*Ruler, error) {
	if cfg.EvalInterval == 0 {
		cfg.EvalInterval = 100 * time.Millisecond
	}
	return New(cfg, e.engine, e.db, e.db, nil, nil)
}

func run(t *testing.T, r *Ruler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not stop")
		}
	})
}

// query returns the value of expr now, or false when it has no sample.
func (e env) query(t *testing.T, expr string) (float64, bool) {
	t.Helper()
	q, err := e.engine.NewInstantQuery(context.Background(), e.db, nil, expr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v, _ := res.Vector()
	if len(v) == 0 {
		return 0, false
	}
	return v[0].F, true
}

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const userRules = `groups:
  - name: user
    rules:
      - record: job:answer:sum
        expr: vector(42)
      - alert: AlwaysFiring
        expr: vector(1)
        labels:
          severity: info
        annotations:
          summary: always
`

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUserRulesAndAlertSeries: a user rule file loads unchanged, its
// recording rule and ALERTS / ALERTS_FOR_STATE land in the TSDB, and the
// hook sees every evaluation.
func TestUserRulesAndAlertSeries(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.rules.yml"), userRules)
	r, err := e.new(t, Config{RuleFiles: []string{filepath.Join(dir, "*.yml")}})
	if err != nil {
		t.Fatal(err)
	}
	var evals atomic.Int64
	r.AfterEval(func(_ context.Context, g *rules.Group, _ time.Time) {
		if g.Name() == "user" {
			evals.Add(1)
		}
	})
	run(t, r)
	eventually(t, "the recording rule's samples", func() bool { v, ok := e.query(t, "job:answer:sum"); return ok && v == 42 })
	eventually(t, "ALERTS firing", func() bool {
		_, ok := e.query(t, `ALERTS{alertname="AlwaysFiring",alertstate="firing",severity="info"}`)
		return ok
	})
	eventually(t, "ALERTS_FOR_STATE", func() bool { _, ok := e.query(t, `ALERTS_FOR_STATE{alertname="AlwaysFiring"}`); return ok })
	if evals.Load() == 0 {
		t.Error("the after-evaluation hook never ran")
	}
	gs := r.RuleGroups()
	if len(gs) != 1 || gs[0].File() != filepath.Join(dir, "a.rules.yml") || len(gs[0].Rules()) != 2 {
		t.Fatalf("groups = %v", gs)
	}
}

// leaderFlag is a switchable Leadership.
type leaderFlag struct{ on atomic.Bool }

func (l *leaderFlag) IsLeader() bool { return l.on.Load() }

// TestRulesEvaluatedOnlyByLeader: a server that is not the leader neither
// records nor runs the hooks; once it leads, it evaluates.
func TestRulesEvaluatedOnlyByLeader(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.rules.yml"), userRules)
	r, err := e.new(t, Config{RuleFiles: []string{filepath.Join(dir, "*.yml")}})
	if err != nil {
		t.Fatal(err)
	}
	var evals atomic.Int64
	r.AfterEval(func(context.Context, *rules.Group, time.Time) { evals.Add(1) })
	var leader leaderFlag
	r.SetLeadership(&leader)
	run(t, r)
	eventually(t, "skipped evaluations", func() bool { return testutil.ToFloat64(r.skips) >= 3 })
	if _, ok := e.query(t, "job:answer:sum"); ok || evals.Load() != 0 {
		t.Fatalf("a follower evaluated: recorded %v, %d hook runs", ok, evals.Load())
	}
	leader.on.Store(true)
	eventually(t, "the leader's recording", func() bool { v, ok := e.query(t, "job:answer:sum"); return ok && v == 42 })
	if evals.Load() == 0 {
		t.Error("the leader's evaluations ran no hook")
	}
}

// TestBadRuleFileRefused: a reload with a broken file is refused naming
// the file, line and reason, and the previous rules keep running; at
// start-up a broken file is an error.
func TestBadRuleFileRefused(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "a.yml")
	writeFile(t, good, userRules)
	r, err := e.new(t, Config{RuleFiles: []string{filepath.Join(dir, "*.yml")}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	mux := http.NewServeMux()
	r.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct{ name, content, want string }{
		{"bad expression", "groups:\n  - name: g\n    rules:\n      - record: x:y\n        expr: sum(rate(x[5m])\n", "b.yml: 5:15: group \"g\", rule 1, \"x:y\": could not parse expression"},
		{"bad yaml", "groups:\n  - name: g\n    rules:\n    - record: [\n", "b.yml: yaml: line 4: did not find expected node content"},
		{"unknown field", "groups:\n  - name: g\n    rulez: []\n", "b.yml: yaml: unmarshal errors: line 3: field rulez not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, "b.yml")
			writeFile(t, bad, tc.content)
			defer os.Remove(bad)
			err := r.Reload()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reload() = %v, want an error containing %q", err, tc.want)
			}
			resp, err := http.Post(srv.URL+"/-/reload", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), tc.want) {
				t.Errorf("POST /-/reload = %d %s", resp.StatusCode, body)
			}
			if gs := r.RuleGroups(); len(gs) != 1 || gs[0].File() != good {
				t.Errorf("previous rules not kept: %v", gs)
			}
		})
	}
	_, err = e.new(t, Config{RuleFiles: []string{filepath.Join(dir, "*.yml"), filepath.Join(dir, "c.yaml")}})
	if err != nil {
		t.Fatalf("good files refused: %v", err)
	}
	writeFile(t, filepath.Join(dir, "c.yaml"), "groups: [\n")
	if _, err := e.new(t, Config{RuleFiles: []string{filepath.Join(dir, "*.yaml")}}); err == nil || !strings.Contains(err.Error(), "c.yaml") {
		t.Errorf("New with a bad file: %v", err)
	}
	// A new good file is picked up by POST /-/reload.
	writeFile(t, filepath.Join(dir, "d.yml"), strings.ReplaceAll(userRules, "name: user", "name: second"))
	resp, err := http.Post(srv.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(r.RuleGroups()) != 2 {
		t.Errorf("reload with a new file: %d, %d groups", resp.StatusCode, len(r.RuleGroups()))
	}
}

// TestSetGenerated: generated groups run next to the files, are replaced
// on the next SetGenerated, and an invalid generated group is refused.
func TestSetGenerated(t *testing.T) {
	e := newEnv(t)
	r, err := e.new(t, Config{})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	g := rulefmt.RuleGroup{Name: "gen", Rules: []rulefmt.Rule{{Record: "gen:value", Expr: "vector(7)"}}}
	if err := r.SetGenerated("test", []rulefmt.RuleGroup{g}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the generated rule's samples", func() bool { v, ok := e.query(t, "gen:value"); return ok && v == 7 })
	if gs := r.RuleGroups(); len(gs) != 1 || gs[0].File() != "meshscope:test" {
		t.Fatalf("groups = %v", gs)
	}
	bad := rulefmt.RuleGroup{Name: "gen", Rules: []rulefmt.Rule{{Record: "gen:value", Expr: "sum("}}}
	if err := r.SetGenerated("test", []rulefmt.RuleGroup{bad}); err == nil {
		t.Error("invalid generated group accepted")
	}
	if gs := r.RuleGroups(); len(gs) != 1 || gs[0].Rules()[0].Query().String() != "vector(7)" {
		t.Errorf("previous generated group not kept: %v", gs)
	}
	if err := r.SetGenerated("test", nil); err != nil {
		t.Fatal(err)
	}
	if gs := r.RuleGroups(); len(gs) != 0 {
		t.Errorf("groups after removal = %v", gs)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "eval_interval"},
		{Config{EvalInterval: time.Second, RuleFiles: []string{"["}}, "rule_files[0]"},
		{Config{EvalInterval: time.Second, Alertmanagers: []string{"localhost:9093"}}, "alertmanagers[0]"},
		{Config{EvalInterval: time.Second, ExternalURL: "ui"}, "external_url"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// TestAlertmanagerReceives: a firing alert reaches a real Alertmanager
// through the Prometheus notifier, with the external URL in its link.
func TestAlertmanagerReceives(t *testing.T) {
	am := rulertest.StartAlertmanager(t)
	e := newEnv(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yml"), userRules)
	r, err := e.new(t, Config{RuleFiles: []string{filepath.Join(dir, "a.yml")}, Alertmanagers: []string{am}, ExternalURL: "http://meshscope.example:7070/"})
	if err != nil {
		t.Fatal(err)
	}
	run(t, r)
	eventually(t, "the alert in Alertmanager", func() bool {
		resp, err := http.Get(am + "/api/v2/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var alerts []struct {
			Labels       map[string]string `json:"labels"`
			GeneratorURL string            `json:"generatorURL"`
		}
		if json.NewDecoder(resp.Body).Decode(&alerts) != nil {
			return false
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == "AlwaysFiring" && strings.HasPrefix(a.GeneratorURL, "http://meshscope.example:7070/") {
				return true
			}
		}
		return false
	})
}
