//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/ruler/rulertest"
)

// flakyApp answers 500 to every other request while failing is set and
// sleeps 250 ms before answering while slow is set.
type flakyApp struct {
	addr          string
	failing, slow atomic.Bool
	n             atomic.Int64
}

func startFlakyApp(t *testing.T) *flakyApp {
	t.Helper()
	a := &flakyApp{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.slow.Load() {
			time.Sleep(250 * time.Millisecond)
		}
		if a.failing.Load() && a.n.Add(1)%2 == 0 {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
	EndsAt       time.Time         `json:"endsAt"`
}

// amActive returns the Alertmanager's active alerts matching labels.
func amActive(am string, match map[string]string) ([]amAlert, error) {
	var all []amAlert
	if err := getJSON(am+"/api/v2/alerts?active=true&silenced=false&inhibited=false", &all); err != nil {
		return nil, err
	}
	var out []amAlert
next:
	for _, a := range all {
		for k, v := range match {
			if a.Labels[k] != v {
				continue next
			}
		}
		if a.EndsAt.IsZero() || a.EndsAt.After(time.Now()) {
			out = append(out, a)
		}
	}
	return out, nil
}

const sloDocs = `kind: SLO
name: payments-availability
service: payments
objective: 99.5
window: 1d
---
kind: SLO
name: catalog-latency
service: catalog
objective: 99
window: 1d
indicator:
  type: latency
  threshold: 100ms
alerting:
  ticket: false
  labels:
    team: shop
`

const userRuleFile = `groups:
  - name: user-rules
    rules:
      - record: service:mesh_requests:rate1m
        expr: sum by (destination_service) (rate(mesh_requests_total{direction="inbound"}[1m]))
`

// TestSLOAlerts: real proxies in front of an upstream that starts failing
// half its requests fire the page alert of a 99.5 % availability SLO over
// 1d (windows scaled to 2m/10s and 12m/1m) within 90 s; a real
// Alertmanager receives it with links to the UI; the alert resolves after
// the failures stop. A latency SLO fires on a slow upstream. User rule
// files load unchanged and a bad one is refused on reload.
func TestSLOAlerts(t *testing.T) {
	am := rulertest.StartAlertmanager(t)
	rulesDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(rulesDir, "user.yml"), []byte(userRuleFile), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, "--rule-eval-interval", "1s", "--alertmanager", am,
		"--external-url", "http://meshscope.example:7070/", "--rule-files", filepath.Join(rulesDir, "*.yml"))
	payApp, catApp := startFlakyApp(t), startFlakyApp(t)
	catApp.slow.Store(true)
	in := freeAddrs(t, 2)
	pay, _ := startProxy(t, "proxy-payments", "--service", "payments", "--version", "v1", "--inbound", in[0]+"="+payApp.addr, "--collector", srv.otlpGRPC)
	cat, _ := startProxy(t, "proxy-catalog", "--service", "catalog", "--version", "v1", "--inbound", in[1]+"="+catApp.addr, "--collector", srv.otlpGRPC)
	procs := []*proc{srv.proc, pay, cat}

	var res control.ResultView
	if code := post(t, srv.url(control.APIPrefix+"/apply"), sloDocs, &res); code != 200 || !res.Changed {
		t.Fatalf("apply SLOs: %d %+v", code, res)
	}

	// Steady load: ~25 rps to each service.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, addr := range in {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(40 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					go func() {
						if r, err := httpClient.Get("http://" + addr + "/pay"); err == nil {
							_, _ = io.Copy(io.Discard, r.Body)
							r.Body.Close()
						}
					}()
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	status := func(name string) (slo.Status, error) {
		var s slo.Status
		err := getJSON(srv.url(slo.APIPrefix+"/"+name), &s)
		return s, err
	}
	// Healthy traffic first: the SLO reports data and no alert.
	poll(t, 60*time.Second, "payments SLO with data and no alert", func() (bool, string) {
		s, err := status("payments-availability")
		if err != nil {
			return false, err.Error()
		}
		return s.State == slo.StateOK && s.SLI != nil && *s.SLI == 100, fmt.Sprintf("%+v", s)
	}, procs...)

	payApp.failing.Store(true)
	failStart := time.Now()
	poll(t, 90*time.Second, "payments page alert firing", func() (bool, string) {
		s, err := status("payments-availability")
		if err != nil {
			return false, err.Error()
		}
		return s.State == slo.StateFiring && s.FiringSeverity == slo.SeverityPage, fmt.Sprintf("state %s %s burn %+v", s.State, s.FiringSeverity, s.BurnRates)
	}, procs...)
	fired := time.Since(failStart)
	t.Logf("page alert fired %v after the upstream started failing", fired.Round(time.Second))
	if fired > 90*time.Second {
		t.Errorf("page alert took %v, want ≤ 90s", fired)
	}

	page := map[string]string{"alertname": slo.AlertName, "slo": "payments-availability", "severity": "page"}
	var got []amAlert
	poll(t, 60*time.Second, "the page alert in Alertmanager", func() (bool, string) {
		var err error
		got, err = amActive(am, page)
		if err != nil {
			return false, err.Error()
		}
		return len(got) == 1, fmt.Sprintf("%d matching alerts", len(got))
	}, procs...)
	if a := got[0]; a.Annotations["traces_url"] != "http://meshscope.example:7070/traces?service=payments&status=error" ||
		a.Annotations["slo_url"] != "http://meshscope.example:7070/slos/payments-availability" ||
		!strings.HasPrefix(a.GeneratorURL, "http://meshscope.example:7070/") || a.Labels["service"] != "payments" {
		t.Errorf("alert in Alertmanager = %+v", a)
	}

	t.Run("prometheus API and TSDB", func(t *testing.T) {
		v, err := promQuery(srv, `ALERTS{alertname="SLOErrorBudgetBurn",slo="payments-availability",severity="page",alertstate="firing"}`)
		if err != nil || len(v) != 1 {
			t.Errorf("ALERTS series: %v %v", v, err)
		}
		if v, err := promQuery(srv, `ALERTS_FOR_STATE{slo="payments-availability"}`); err != nil || len(v) == 0 {
			t.Errorf("ALERTS_FOR_STATE series: %v %v", v, err)
		}
		var alerts struct {
			Data struct {
				Alerts []struct {
					Labels map[string]string `json:"labels"`
					State  string            `json:"state"`
				} `json:"alerts"`
			} `json:"data"`
		}
		if err := getJSON(srv.url("/api/v1/alerts"), &alerts); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range alerts.Data.Alerts {
			found = found || (a.Labels["slo"] == "payments-availability" && a.Labels["severity"] == "page" && a.State == "firing")
		}
		if !found {
			t.Errorf("/api/v1/alerts lacks the page alert: %+v", alerts.Data.Alerts)
		}
		var rules struct {
			Data struct {
				Groups []struct {
					Name, File string
					Rules      []map[string]any
				} `json:"groups"`
			} `json:"data"`
		}
		if err := getJSON(srv.url("/api/v1/rules"), &rules); err != nil {
			t.Fatal(err)
		}
		groups := map[string]string{}
		for _, g := range rules.Data.Groups {
			groups[g.Name] = g.File
		}
		if groups["slo:payments-availability"] == "" || groups["slo:payments-availability:ticket"] == "" || groups["slo:catalog-latency"] == "" || groups["user-rules"] != filepath.Join(rulesDir, "user.yml") {
			t.Errorf("rule groups = %v", groups)
		}
		if v, err := promQuery(srv, `service:mesh_requests:rate1m{destination_service="payments"}`); err != nil || len(v) != 1 {
			t.Errorf("user recording rule: %v %v", v, err)
		}
	})

	t.Run("bad rule file refused on reload", func(t *testing.T) {
		bad := filepath.Join(rulesDir, "bad.yml")
		if err := os.WriteFile(bad, []byte("groups:\n  - name: bad\n    rules:\n      - record: x\n        expr: sum(\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(bad)
		r, err := httpClient.Post(srv.url("/-/reload"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 500 || !strings.Contains(string(b), bad+": 5:15:") || !strings.Contains(string(b), "could not parse expression") {
			t.Errorf("reload with a bad file: %d %s", r.StatusCode, b)
		}
		var rules struct {
			Data struct {
				Groups []struct{ Name string } `json:"groups"`
			} `json:"data"`
		}
		if err := getJSON(srv.url("/api/v1/rules"), &rules); err != nil || len(rules.Data.Groups) != 5 {
			t.Errorf("rules after the refused reload: %+v %v", rules, err)
		}
		// SIGHUP with the bad file still there: refused, logged, kept.
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		poll(t, 30*time.Second, "the refused SIGHUP reload in the log", func() (bool, string) {
			return strings.Contains(srv.output(), "rule reload on SIGHUP refused"), srv.tail(2)
		}, srv.proc)
		// A good new file is picked up on SIGHUP.
		os.Remove(bad)
		second := strings.ReplaceAll(userRuleFile, "user-rules", "more-rules")
		if err := os.WriteFile(filepath.Join(rulesDir, "more.yml"), []byte(second), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		poll(t, 30*time.Second, "the new rule file after SIGHUP", func() (bool, string) {
			if err := getJSON(srv.url("/api/v1/rules"), &rules); err != nil {
				return false, err.Error()
			}
			return len(rules.Data.Groups) == 6, fmt.Sprintf("%+v", rules.Data.Groups)
		}, srv.proc)
	})

	t.Run("cli", func(t *testing.T) {
		bin, _ := binaries(t)
		out, err := exec.Command(bin, "slo", "status", "payments-availability", "--server", srv.url("")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "state:        firing:page") || !strings.Contains(string(out), "error budget:") {
			t.Errorf("slo status: %v\n%s", err, out)
		}
		out, err = exec.Command(bin, "slo", "list", "--server", srv.url("")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "payments-availability") || !strings.Contains(string(out), "catalog-latency") {
			t.Errorf("slo list: %v\n%s", err, out)
		}
		rules, err := exec.Command(bin, "slo", "rules", "payments-availability", "--server", srv.url("")).Output()
		if err != nil || !strings.Contains(string(rules), "slo:sli_error:ratio_rate10s") {
			t.Fatalf("slo rules: %v\n%s", err, rules)
		}
		if promtool, err := exec.LookPath("promtool"); err == nil {
			f := filepath.Join(t.TempDir(), "r.yml")
			os.WriteFile(f, rules, 0o644)
			if out, err := exec.Command(promtool, "check", "rules", f).CombinedOutput(); err != nil {
				t.Errorf("promtool check rules on `meshscope slo rules`: %v\n%s", err, out)
			}
		}
	})

	// The slow upstream burns the latency SLO.
	poll(t, 90*time.Second, "catalog latency page alert firing", func() (bool, string) {
		s, err := status("catalog-latency")
		if err != nil {
			return false, err.Error()
		}
		return s.State == slo.StateFiring && s.FiringSeverity == slo.SeverityPage, fmt.Sprintf("state %s burn %+v", s.State, s.BurnRates)
	}, procs...)
	poll(t, 60*time.Second, "the latency alert in Alertmanager", func() (bool, string) {
		got, err := amActive(am, map[string]string{"slo": "catalog-latency", "severity": "page", "team": "shop"})
		if err != nil {
			return false, err.Error()
		}
		return len(got) == 1, fmt.Sprintf("%d matching alerts", len(got))
	}, procs...)

	// Failures stop: once the short windows (10s, 1m) are clean the page
	// alert resolves, here and in Alertmanager.
	payApp.failing.Store(false)
	healed := time.Now()
	poll(t, 150*time.Second, "payments page alert resolved", func() (bool, string) {
		s, err := status("payments-availability")
		if err != nil {
			return false, err.Error()
		}
		for _, a := range s.Alerts {
			if a.Severity == slo.SeverityPage {
				return false, fmt.Sprintf("page alert %s; burn %+v", a.State, s.BurnRates)
			}
		}
		return true, ""
	}, procs...)
	t.Logf("page alert resolved %v after the failures stopped", time.Since(healed).Round(time.Second))
	poll(t, 90*time.Second, "the page alert resolved in Alertmanager", func() (bool, string) {
		got, err := amActive(am, page)
		if err != nil {
			return false, err.Error()
		}
		return len(got) == 0, fmt.Sprintf("%d active", len(got))
	}, procs...)
	var list slo.ListView
	if err := getJSON(srv.url(slo.APIPrefix), &list); err != nil || len(list.SLOs) != 2 {
		t.Fatalf("SLO list: %+v %v", list, err)
	}
	b, _ := json.Marshal(list.SLOs[1].ErrorBudget)
	t.Logf("payments error budget after the incident: %s", b)
}

// TestDemoSLOPage: `meshscope demo` applies its SLOs and the payments
// availability SLO pages within 2 minutes of the demo being up, while the
// SLOs whose objectives the shop meets stay quiet.
func TestDemoSLOPage(t *testing.T) {
	p, httpAddr, _ := startDemo(t, "4m")
	up := time.Now()
	var list slo.ListView
	poll(t, 120*time.Second, "payments-availability paging in the demo", func() (bool, string) {
		if err := getJSON("http://"+httpAddr+slo.APIPrefix, &list); err != nil {
			return false, err.Error()
		}
		for _, s := range list.SLOs {
			if s.Name == "payments-availability" {
				return s.State == slo.StateFiring && s.FiringSeverity == slo.SeverityPage, fmt.Sprintf("state %s, SLI %v", s.State, s.SLINow)
			}
		}
		return false, fmt.Sprintf("%d SLOs, no payments-availability", len(list.SLOs))
	}, p)
	t.Logf("payments page alert fired %v after the demo was up", time.Since(up).Round(time.Second))
	if len(list.SLOs) < 7 {
		t.Errorf("demo has %d SLOs, want one per service", len(list.SLOs))
	}
	for _, s := range list.SLOs {
		if s.Name != "payments-availability" && s.State == slo.StateFiring {
			t.Errorf("%s fires in the demo (SLI %v over %s)", s.Name, s.SLINow, s.NowWindow)
		}
	}
}
