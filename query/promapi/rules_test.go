package promapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/query/promapi"
	"github.com/meshscope/meshscope/ruler"
)

// TestRulesAndAlerts runs a real rules engine and checks /api/v1/rules and
// /api/v1/alerts field by field against Prometheus' format, with filters.
func TestRulesAndAlerts(t *testing.T) {
	db, err := metricstore.New(metricstore.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	file := filepath.Join(t.TempDir(), "r.yml")
	if err := os.WriteFile(file, []byte(`groups:
  - name: g
    rules:
      - record: x:answer
        expr: vector(42)
      - alert: Always
        expr: vector(1)
        labels: {severity: page}
        annotations: {summary: always}
      - alert: Never
        expr: vector(1) > 2
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rl, err := ruler.New(ruler.Config{RuleFiles: []string{file}, EvalInterval: 100 * time.Millisecond}, engine, db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rl.Run(ctx) }()
	defer func() { cancel(); <-done }()

	api := promapi.New(promapi.Options{Timeout: time.Minute}, engine, db)
	api.SetRules(rl)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v: %s", path, err, b)
		}
		return v
	}
	deadline := time.Now().Add(60 * time.Second)
	var alerts []any
	for {
		alerts = get("/api/v1/alerts")["data"].(map[string]any)["alerts"].([]any)
		if len(alerts) == 1 && alerts[0].(map[string]any)["state"] == "firing" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no firing alert: %v", alerts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a := alerts[0].(map[string]any)
	if keys(a) != "activeAt annotations labels state value" || a["value"] != "1e+00" ||
		a["labels"].(map[string]any)["alertname"] != "Always" || a["annotations"].(map[string]any)["summary"] != "always" {
		t.Errorf("alert = %v", a)
	}

	v := get("/api/v1/rules")
	if v["status"] != "success" {
		t.Fatalf("rules: %v", v)
	}
	groups := v["data"].(map[string]any)["groups"].([]any)
	if len(groups) != 1 {
		t.Fatalf("groups = %v", groups)
	}
	g := groups[0].(map[string]any)
	if keys(g) != "evaluationTime file interval lastEvaluation limit name rules" || g["file"] != file || g["interval"] != 0.1 {
		t.Errorf("group = %v", g)
	}
	rs := g["rules"].([]any)
	if len(rs) != 3 {
		t.Fatalf("rules = %v", rs)
	}
	rec, alert, never := rs[0].(map[string]any), rs[1].(map[string]any), rs[2].(map[string]any)
	if keys(rec) != "evaluationTime health labels lastEvaluation name query type" || rec["type"] != "recording" || rec["health"] != "ok" || rec["query"] != "vector(42)" {
		t.Errorf("recording rule = %v", rec)
	}
	if keys(alert) != "alerts annotations duration evaluationTime health keepFiringFor labels lastEvaluation name query state type" || alert["state"] != "firing" || len(alert["alerts"].([]any)) != 1 {
		t.Errorf("alerting rule = %v", alert)
	}
	if never["state"] != "inactive" || len(never["alerts"].([]any)) != 0 {
		t.Errorf("inactive rule = %v", never)
	}

	count := func(path string) int {
		n := 0
		for _, g := range get(path)["data"].(map[string]any)["groups"].([]any) {
			n += len(g.(map[string]any)["rules"].([]any))
		}
		return n
	}
	for path, want := range map[string]int{
		"/api/v1/rules?type=record":                 1,
		"/api/v1/rules?type=alert":                  2,
		"/api/v1/rules?rule_name[]=Always":          1,
		"/api/v1/rules?rule_group[]=other":          0,
		"/api/v1/rules?file[]=" + file:              3,
		`/api/v1/rules?match[]={severity="page"}`:   1,
		"/api/v1/rules?type=alert&exclude_alerts=1": 2,
	} {
		if got := count(path); got != want {
			t.Errorf("%s: %d rules, want %d", path, got, want)
		}
	}
	ex := get("/api/v1/rules?exclude_alerts=true")["data"].(map[string]any)["groups"].([]any)[0].(map[string]any)["rules"].([]any)[1].(map[string]any)
	if ex["alerts"] != nil {
		t.Errorf("exclude_alerts kept the alerts: %v", ex["alerts"])
	}
	if bad := get("/api/v1/rules?type=foo"); bad["errorType"] != "bad_data" {
		t.Errorf("type=foo: %v", bad)
	}
}

func keys(m map[string]any) string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}
