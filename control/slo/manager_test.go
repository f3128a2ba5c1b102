package slo_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/control/store"
	"github.com/meshscope/meshscope/ruler"
)

// appendTraffic writes mesh_requests_total for the last span at 1 s steps:
// rps requests a second, failRatio of them failing, at payments' inbound
// proxy (and as many at the caller's outbound proxy, which must not count).
func appendTraffic(t *testing.T, db *metricstore.Store, span time.Duration, rps, failRatio float64) {
	t.Helper()
	app := db.Appender(context.Background())
	now := time.Now()
	series := func(direction, outcome string) labels.Labels {
		return labels.FromStrings("__name__", "mesh_requests_total", "direction", direction, "destination_service", "payments",
			"source_service", "checkout", "outcome", outcome, "route", "/pay", "status_code", map[string]string{"success": "200", "failure": "503"}[outcome])
	}
	for i, ts := 0, now.Add(-span); !ts.After(now); i, ts = i+1, ts.Add(time.Second) {
		n := float64(i) * rps
		for _, s := range []struct {
			l labels.Labels
			v float64
		}{
			{series("inbound", "success"), n * (1 - failRatio)},
			{series("inbound", "failure"), n * failRatio},
			{series("outbound", "failure"), n * 10},
		} {
			if _, err := app.Append(0, s.l, ts.UnixMilli(), s.v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestManagerStatus: an SLO applied to the policy store gets its rules in
// the rules engine; with half the requests failing the API reports the
// SLI, the overspent budget, the burn rates and the firing page alert;
// deleting the SLO removes its rules.
func TestManagerStatus(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	db, err := metricstore.New(metricstore.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := store.Open(t.TempDir(), prometheus.NewRegistry(), logger)
	if err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 5e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	const eval = 200 * time.Millisecond
	rl, err := ruler.New(ruler.Config{EvalInterval: eval}, engine, db, db, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	m, err := slo.NewManager(st, rl, engine, db, slo.Options{EvalInterval: eval, ExternalURL: "http://ui.example"}, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = rl.Run(ctx); done <- struct{}{} }()
	go func() { _ = m.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done; _ = st.Close() }()
	mux := http.NewServeMux()
	m.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	appendTraffic(t, db, 20*time.Minute, 10, 0.5)
	docs, err := policy.Load([]byte("kind: SLO\nname: pay\nservice: payments\nroute: /pay\nobjective: 99.5\nwindow: 1d\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(docs, store.ApplyOptions{Who: "test"}); err != nil {
		t.Fatal(err)
	}

	var s slo.Status
	deadline := time.Now().Add(60 * time.Second)
	for {
		code := getJSON(t, srv.URL+"/api/mesh/v1/slos/pay", &s)
		firing := 0
		for _, a := range s.Alerts {
			if a.State == "firing" {
				firing++
			}
		}
		// The ticket alert and its windows live in the slower group.
		if code == 200 && s.State == slo.StateFiring && s.FiringSeverity == slo.SeverityPage && firing == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("page and ticket alerts never fired: %d %+v", code, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	near := func(what string, got *float64, want, tol float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > tol {
			t.Errorf("%s = %v, want %v ± %v", what, deref(got), want, tol)
		}
	}
	near("sli", s.SLI, 50, 1)
	near("sli_now", s.SLINow, 50, 1)
	if s.ErrorBudget.Ratio != 0.005 || s.ErrorBudget.TotalMinutes != 7.2 {
		t.Errorf("budget = %+v, want ratio 0.005 and 7.2 minutes (1d × 0.5 %%)", s.ErrorBudget)
	}
	near("consumed_percent", s.ErrorBudget.ConsumedPercent, 10000, 200)
	near("remaining_percent", s.ErrorBudget.RemainingPercent, -9900, 200)
	near("remaining_minutes", s.ErrorBudget.RemainingMinutes, -712.8, 15)
	if len(s.BurnRates) != 4 || s.BurnRates[0].LongWindow != "2m" || s.BurnRates[0].ShortWindow != "10s" || s.BurnRates[0].Threshold != 0.072 {
		t.Fatalf("burn rates = %+v", s.BurnRates)
	}
	for _, b := range s.BurnRates {
		near("burn rate "+b.LongWindow, b.LongBurnRate, 100, 3)
		if !b.Exceeded {
			t.Errorf("%s/%s not exceeded", b.LongWindow, b.ShortWindow)
		}
	}
	sev := map[string]string{}
	for _, a := range s.Alerts {
		sev[a.Severity] = a.State
	}
	if sev["page"] != "firing" || sev["ticket"] != "firing" {
		t.Errorf("alerts = %+v", s.Alerts)
	}
	if s.Traces.API != "/api/mesh/traces?attr=http.route%3D%2Fpay&service=payments&status=error" || !strings.HasPrefix(s.Traces.UI, "http://ui.example/traces?") {
		t.Errorf("traces = %+v", s.Traces)
	}

	var list slo.ListView
	if code := getJSON(t, srv.URL+"/api/mesh/v1/slos", &list); code != 200 || len(list.SLOs) != 1 || list.SLOs[0].Name != "pay" || list.Version == 0 {
		t.Errorf("list = %d %+v", code, list)
	}
	resp, err := http.Get(srv.URL + "/api/mesh/v1/slos/pay/rules")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "record: slo:sli_error:ratio_rate10s") {
		t.Errorf("rules = %d %s", resp.StatusCode, b)
	}
	if code := getJSON(t, srv.URL+"/api/mesh/v1/slos/nope", &s); code != 404 {
		t.Errorf("unknown SLO: %d", code)
	}

	if n := len(rl.RuleGroups()); n != 2 {
		t.Errorf("%d rule groups for one SLO, want 2 (page, ticket)", n)
	}
	if _, err := st.Delete(policy.Key{Kind: policy.KindSLO, Name: "pay"}, store.ApplyOptions{Who: "test"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(rl.RuleGroups()) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rules not removed with the SLO: %d groups", len(rl.RuleGroups()))
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func getJSON(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}
