//go:build unix

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/rollout"
	"github.com/meshscope/meshscope/control/rollout/judge"
)

// canaryApp is one version of catalog: it answers after delay and fails one
// request in failEvery (0 = never); /fail always fails.
type canaryApp struct {
	addr      string
	delay     atomic.Int64 // ns
	failEvery atomic.Int64
	n         atomic.Int64
}

func startCanaryApp(t *testing.T, delay time.Duration) *canaryApp {
	t.Helper()
	a := &canaryApp{}
	a.delay.Store(int64(delay))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(a.delay.Load()))
		if r.URL.Path == "/fail" {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		if k := a.failEvery.Load(); k > 0 && a.n.Add(1)%k == 0 {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})}
	ln := listen(t)
	a.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

// rolloutMesh is a server (control plane + collector), catalog v1 and v2
// behind inbound proxies that report to it, and an enforcing caller proxy
// with steady load through it.
type rolloutMesh struct {
	s      *server
	addrs  []string // http, otlp grpc: kept across restarts
	stable *canaryApp
	canary *canaryApp
	caller string
	procs  []*proc
}

func (m *rolloutMesh) startServer(t *testing.T, extra ...string) {
	t.Helper()
	bin, _ := binaries(t)
	m.s = &server{http: m.addrs[0], otlpGRPC: m.addrs[1], data: m.s.data}
	m.s.proc = startProc(t, "meshscope-server", bin, append([]string{"server", "--data", m.s.data, "--http", m.s.http,
		"--otlp-grpc", m.s.otlpGRPC, "--otlp-http", "off", "--rule-eval-interval", "1s"}, extra...)...)
	waitReady(t, m.s.proc, m.s.url("/ready"), 90*time.Second)
}

func startRolloutMesh(t *testing.T, stableDelay, canaryDelay time.Duration, extra ...string) *rolloutMesh {
	t.Helper()
	m := &rolloutMesh{addrs: freeAddrs(t, 2), s: &server{data: t.TempDir()}}
	m.startServer(t, extra...)
	m.stable, m.canary = startCanaryApp(t, stableDelay), startCanaryApp(t, canaryDelay)
	cp := "http://" + m.s.http
	for _, v := range []struct {
		version string
		app     *canaryApp
	}{{"v1", m.stable}, {"v2", m.canary}} {
		in := freeAddrs(t, 1)[0]
		p, _ := startProxy(t, "catalog-"+v.version, "--service", "catalog", "--version", v.version,
			"--inbound", in+"="+v.app.addr, "--control-plane", cp, "--collector", m.s.otlpGRPC, "--state-dir", t.TempDir())
		m.procs = append(m.procs, p)
	}
	m.caller = freeAddrs(t, 1)[0]
	callerProc, callerAdmin := startProxy(t, "web", "--service", "web", "--mode", "enforce", "--upstream", m.caller+"=catalog",
		"--control-plane", cp, "--state-dir", t.TempDir(), "--no-tracing")
	m.procs = append(m.procs, callerProc)
	mm := &mesh{callerAdmin: callerAdmin, callerProc: callerProc}
	mm.waitEndpoints(t, 2)
	return m
}

// load sends ~rps requests per second to path through the caller until the
// test ends; failPath gets one request in failShare.
func (m *rolloutMesh) load(t *testing.T, rps int, failShare int) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rps))
		defer tick.Stop()
		var n int
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				n++
				path := "/items"
				if failShare > 0 && n%failShare == 0 {
					path = "/fail"
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					if r, err := client.Get("http://" + m.caller + path); err == nil {
						_, _ = io.Copy(io.Discard, r.Body)
						r.Body.Close()
					}
				}()
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait(); client.CloseIdleConnections() })
}

func (m *rolloutMesh) start(t *testing.T, doc string) {
	t.Helper()
	var v rollout.ListView
	if code := post(t, m.s.url(rollout.APIPrefix), doc, &v); code != http.StatusOK || len(v.Rollouts) != 1 {
		t.Fatalf("start rollout: %d %+v", code, v)
	}
}

func (m *rolloutMesh) state(name string) (rollout.State, error) {
	var s rollout.State
	err := getJSON(m.s.url(rollout.APIPrefix+"/"+name), &s)
	return s, err
}

// routeWeights reads the catalog route's catch-all split from the store.
func (m *rolloutMesh) routeWeights(t *testing.T) map[string]int {
	t.Helper()
	var v control.PoliciesView
	if err := getJSON(m.s.url(control.APIPrefix+"/policies?kind=Route&service=catalog"), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Policies) != 1 {
		t.Fatalf("%d catalog routes", len(v.Policies))
	}
	b, _ := json.Marshal(v.Policies[0])
	var r struct {
		Rules []policy.RouteRule `json:"rules"`
	}
	_ = json.Unmarshal(b, &r)
	out := map[string]int{}
	for _, be := range r.Rules[len(r.Rules)-1].Backends {
		out[be.Version] = be.Weight
	}
	return out
}

// waitPhase polls until the rollout reaches phase and returns its state.
func (m *rolloutMesh) waitPhase(t *testing.T, name, phase string, timeout time.Duration) rollout.State {
	t.Helper()
	var s rollout.State
	poll(t, timeout, "rollout "+name+" "+phase, func() (bool, string) {
		var err error
		s, err = m.state(name)
		if err != nil {
			return false, err.Error()
		}
		return s.Phase == phase, fmt.Sprintf("phase %s step %d weight %d held %q events %s", s.Phase, s.Step, s.Weight, s.Held, lastEvents(s, 3))
	}, append(m.procs, m.s.proc)...)
	return s
}

func lastEvents(s rollout.State, n int) string {
	var parts []string
	for _, e := range s.Events[max(0, len(s.Events)-n):] {
		parts = append(parts, e.Type+": "+e.Message)
	}
	return strings.Join(parts, " | ")
}

func rolloutDoc(name, steps, interval, extra string) string {
	return fmt.Sprintf(`kind: Rollout
name: %s
service: catalog
stable: v1
canary: v2
steps: %s
interval: %s
min_requests: 20
%s`, name, steps, interval, extra)
}

// TestRolloutHealthyPromoted: a canary as good as stable goes through every
// step and is promoted; the route ends at 100 % v2 and every step is an
// event with its numbers.
func TestRolloutHealthyPromoted(t *testing.T) {
	m := startRolloutMesh(t, 5*time.Millisecond, 5*time.Millisecond)
	m.load(t, 80, 0)
	// Started with the CLI.
	file := filepath.Join(t.TempDir(), "rollout.yaml")
	if err := os.WriteFile(file, []byte(rolloutDoc("catalog-v2", "[20, 50, 80, 100]", "3s", "analysis: {success_rate: {min: 99}, latency: {p99_max: 500ms}}\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := m.cli(t, "rollout", "start", "-f", file); code != 0 || !strings.Contains(out, "progressing") {
		t.Fatalf("rollout start: exit %d\n%s", code, out)
	}
	if w := m.routeWeights(t); w["v2"] != 20 || w["v1"] != 80 {
		t.Fatalf("first step route %v", w)
	}
	started := time.Now()
	s := m.waitPhase(t, "catalog-v2", rollout.PhasePromoted, 90*time.Second)
	t.Logf("promoted after %v: %s", time.Since(started).Round(time.Second), lastEvents(s, 5))
	var weights []int
	for _, e := range s.Events {
		if e.Type == rollout.EventAdvanced {
			weights = append(weights, e.Weight)
			if !strings.Contains(e.Message, "canary ") || !strings.Contains(e.Message, "req") {
				t.Errorf("advance event without numbers: %s", e.Message)
			}
		}
	}
	if fmt.Sprint(weights) != "[50 80]" {
		t.Errorf("advanced through %v, want [50 80]", weights)
	}
	if w := m.routeWeights(t); w["v2"] != 100 || len(w) != 1 {
		t.Errorf("route after promotion %v", w)
	}
	for _, iv := range s.Intervals {
		if iv.Result.Verdict != judge.Pass && iv.Action != rollout.EventHeld {
			t.Errorf("interval %+v", iv.Result)
		}
		if iv.Result.LatencySource == "" {
			t.Errorf("interval without latency source")
		}
	}
	t.Logf("latency source of the last interval: %s", s.Intervals[len(s.Intervals)-1].Result.LatencySource)
	out, code := m.cli(t, "rollout", "status", "catalog-v2")
	if code != 0 || !strings.Contains(out, "Phase:    promoted") || !strings.Contains(out, "mann-whitney") || !strings.Contains(out, "two-proportion") {
		t.Errorf("rollout status: exit %d\n%s", code, out)
	}
	t.Logf("meshscope rollout status catalog-v2:\n%s", out)
	if out, code := m.cli(t, "rollout", "pause", "catalog-v2"); code != 1 || !strings.Contains(out, "has finished") {
		t.Errorf("pausing a promoted rollout: exit %d\n%s", code, out)
	}
}

// cli runs `meshscope ARGS --server URL` and returns its output and exit code.
func (m *rolloutMesh) cli(t *testing.T, args ...string) (string, int) {
	t.Helper()
	bin, _ := binaries(t)
	cmd := exec.Command(bin, append(args, "--server", "http://"+m.s.http)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

// TestRolloutFailingRolledBack: a canary failing 20 % of its requests is
// rolled back within two intervals and the route returns to 100 % stable.
func TestRolloutFailingRolledBack(t *testing.T) {
	m := startRolloutMesh(t, 5*time.Millisecond, 5*time.Millisecond)
	m.canary.failEvery.Store(5)
	m.load(t, 80, 0)
	m.start(t, rolloutDoc("catalog-v2", "[30, 60, 100]", "3s", "analysis: {success_rate: {min: 95}}\n"))
	started := time.Now()
	s := m.waitPhase(t, "catalog-v2", rollout.PhaseRolledBack, 60*time.Second)
	took := time.Since(started)
	t.Logf("rolled back after %v (%d intervals): %s", took.Round(100*time.Millisecond), len(s.Intervals), lastEvents(s, 2))
	judged := 0
	for _, iv := range s.Intervals {
		if iv.Result.Verdict != judge.NoData {
			judged++
		}
	}
	if judged > 2 {
		t.Errorf("rolled back after %d judged intervals, want ≤ 2", judged)
	}
	if w := m.routeWeights(t); w["v1"] != 100 || len(w) != 1 {
		t.Errorf("route after rollback %v", w)
	}
	last := s.Intervals[len(s.Intervals)-1].Result
	if rate := last.Canary.SuccessRate; rate == nil || *rate > 90 || *rate < 70 {
		t.Errorf("canary success rate %v, want about 80", rate)
	}
}

// TestRolloutSlowCanaryRolledBack: a canary with twice the latency and no
// errors is rolled back by the latency comparison (no fixed threshold set).
func TestRolloutSlowCanaryRolledBack(t *testing.T) {
	m := startRolloutMesh(t, 15*time.Millisecond, 30*time.Millisecond)
	m.load(t, 80, 0)
	m.start(t, rolloutDoc("catalog-v2", "[40, 100]", "3s", "analysis: {success_rate: {min: 99}}\n"))
	s := m.waitPhase(t, "catalog-v2", rollout.PhaseRolledBack, 60*time.Second)
	last := s.Intervals[len(s.Intervals)-1].Result
	var lat *judge.Metric
	for i := range last.Metrics {
		if last.Metrics[i].Name == "latency" {
			lat = &last.Metrics[i]
		}
	}
	if lat == nil || lat.Verdict != judge.Fail || lat.P == nil || *lat.P >= 0.05 || lat.Effect == nil || *lat.Effect < 50 {
		t.Fatalf("latency comparison did not fail the canary: %+v", last.Metrics)
	}
	t.Logf("latency: %s (%s, source %s)", lat.Reason, lat.Test, last.LatencySource)
	if w := m.routeWeights(t); w["v1"] != 100 {
		t.Errorf("route after rollback %v", w)
	}
}

// TestRolloutSlightlyWorseJudgedByComparison: a canary failing 5 % stays
// above the fixed 90 % success-rate threshold but the two-proportion test
// against the stable version fails it.
func TestRolloutSlightlyWorseJudgedByComparison(t *testing.T) {
	m := startRolloutMesh(t, 5*time.Millisecond, 5*time.Millisecond)
	m.canary.failEvery.Store(20)
	m.load(t, 100, 0)
	m.start(t, rolloutDoc("catalog-v2", "[50, 80, 100]", "8s", "analysis: {success_rate: {min: 90}}\n"))
	s := m.waitPhase(t, "catalog-v2", rollout.PhaseRolledBack, 90*time.Second)
	for _, iv := range s.Intervals {
		if iv.Action == rollout.EventPromoted {
			t.Fatalf("promoted on %+v", iv.Result)
		}
	}
	last := s.Intervals[len(s.Intervals)-1].Result
	verdicts := map[string]string{}
	for _, mt := range last.Metrics {
		verdicts[mt.Name] = mt.Verdict
	}
	if verdicts["success_rate"] != judge.Pass || verdicts["error_rate"] != judge.Fail {
		t.Fatalf("want the threshold passed and the comparison failed: %v (%s)", verdicts, last.Reason)
	}
	t.Logf("last interval: %s; canary %d/%d errors, stable %d/%d", last.Reason, last.Canary.Errors, last.Canary.Requests, last.Stable.Errors, last.Stable.Requests)
}

// TestRolloutBudgetGate: while the service's SLO budget is spent the
// rollout holds at its first step although every interval passes.
func TestRolloutBudgetGate(t *testing.T) {
	m := startRolloutMesh(t, 5*time.Millisecond, 5*time.Millisecond)
	var res control.ResultView
	if code := post(t, m.s.url(control.APIPrefix+"/apply"), `kind: SLO
name: catalog-availability
service: catalog
objective: 99.9
window: 1h
`, &res); code != http.StatusOK {
		t.Fatalf("apply SLO: %d", code)
	}
	m.load(t, 80, 10) // 10 % of requests fail on both versions
	time.Sleep(3 * time.Second)
	m.start(t, rolloutDoc("catalog-v2", "[20, 100]", "3s", "failure_limit: 10\nanalysis: {alpha: 0.01, success_rate: {min: 80}, slo_budget: {slo: catalog-availability, min_remaining: 20}}\n"))
	var s rollout.State
	poll(t, 60*time.Second, "three intervals held by the budget", func() (bool, string) {
		var err error
		s, err = m.state("catalog-v2")
		if err != nil {
			return false, err.Error()
		}
		held := 0
		for _, iv := range s.Intervals {
			if iv.Action == rollout.EventHeld && iv.Result.Verdict == judge.Pass && strings.Contains(s.Held, "budget") {
				held++
			}
		}
		return held >= 3, fmt.Sprintf("phase %s weight %d held %q events %s", s.Phase, s.Weight, s.Held, lastEvents(s, 2))
	}, append(m.procs, m.s.proc)...)
	if s.Phase != rollout.PhaseProgressing || s.Weight != 20 || s.Step != 0 {
		t.Fatalf("budget gate let it move: %s step %d weight %d", s.Phase, s.Step, s.Weight)
	}
	t.Logf("held: %s", s.Held)
}

// TestRolloutResumesAfterRestart: a server stopped mid-rollout resumes at
// the same step and finishes.
func TestRolloutResumesAfterRestart(t *testing.T) {
	m := startRolloutMesh(t, 5*time.Millisecond, 5*time.Millisecond)
	m.load(t, 80, 0)
	m.start(t, rolloutDoc("catalog-v2", "[20, 50, 80, 100]", "5s", ""))
	poll(t, 60*time.Second, "the rollout at its second step", func() (bool, string) {
		s, err := m.state("catalog-v2")
		if err != nil {
			return false, err.Error()
		}
		return s.Step >= 1, fmt.Sprintf("step %d %s", s.Step, lastEvents(s, 2))
	}, append(m.procs, m.s.proc)...)
	m.s.proc.stop(t, 30*time.Second)
	b, err := os.ReadFile(filepath.Join(m.s.data, "rollouts", "catalog-v2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var before rollout.State
	if err := json.Unmarshal(b, &before); err != nil {
		t.Fatal(err)
	}
	m.startServer(t)
	after, err := m.state("catalog-v2")
	if err != nil {
		t.Fatal(err)
	}
	ev := after.Events[len(after.Events)-1]
	if after.Step != before.Step || after.Weight != before.Weight || ev.Type != rollout.EventResumed || ev.Step != before.Step {
		t.Fatalf("after restart: step %d weight %d (before %d %d), last event %+v", after.Step, after.Weight, before.Step, before.Weight, ev)
	}
	if w := m.routeWeights(t); w["v2"] != before.Weight {
		t.Errorf("route after restart %v, want canary %d", w, before.Weight)
	}
	t.Logf("resumed at step %d (canary %d%%)", after.Step+1, after.Weight)
	m.waitPhase(t, "catalog-v2", rollout.PhasePromoted, 90*time.Second)
}
