//go:build unix

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/guard"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/ruler/rulertest"
)

// guardApp is an inventory instance that answers with its version and
// fails failPct percent of its requests (evenly spread).
type guardApp struct {
	version string
	addr    string
	failPct atomic.Int64
	n, hits atomic.Int64
}

func startGuardApp(t *testing.T, version string) *guardApp {
	t.Helper()
	a := &guardApp{version: version}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		if n := a.n.Add(1); n%100 < a.failPct.Load() {
			http.Error(w, a.version+" failing", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, a.version)
	})}
	ln := listen(t)
	a.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

// guardMesh is a server (1 s rule evaluation, OTLP on), inventory v1 and
// v2 behind inbound proxies, and a caller proxy (service web) reaching
// inventory by discovery, under steady load.
type guardMesh struct {
	srv        *server
	httpAddr   string
	data       string
	extra      []string
	apps       map[string]*guardApp
	admins     []string
	caller     string
	callerProc *proc
	procs      []*proc
	load       *loadGen
}

// guardSLO burns at page level within seconds: objective 99 over 1h
// scales the page windows to 5s/4s (with 1s evaluation).
const guardSLO = `kind: SLO
name: inventory-availability
service: inventory
objective: 99
window: 1h
alerting: {ticket: false}
---
kind: Route
name: inventory-split
service: inventory
mode: enforce
rules:
  - backends: [{version: v1, weight: 50}, {version: v2, weight: 50}]
`

func startGuardServer(t *testing.T, data, httpAddr, otlp string, extra ...string) *server {
	t.Helper()
	bin, _ := binaries(t)
	s := &server{http: httpAddr, otlpGRPC: otlp, data: data}
	args := append([]string{"server", "--data", data, "--http", httpAddr, "--otlp-grpc", otlp, "--otlp-http", "off",
		"--rule-eval-interval", "1s"}, extra...)
	s.proc = startProc(t, "meshscope-server", bin, args...)
	waitReady(t, s.proc, s.url("/ready"), 90*time.Second)
	return s
}

func startGuardMesh(t *testing.T, extra ...string) *guardMesh {
	t.Helper()
	a := freeAddrs(t, 2)
	m := &guardMesh{httpAddr: a[0], data: t.TempDir(), extra: extra, apps: map[string]*guardApp{}}
	m.srv = startGuardServer(t, m.data, a[0], a[1], extra...)
	cp := "http://" + m.srv.http
	for _, v := range []string{"v1", "v2"} {
		app := startGuardApp(t, v)
		m.apps[v] = app
		in := freeAddrs(t, 1)[0]
		p, admin := startProxy(t, "inventory-"+v, "--service", "inventory", "--version", v, "--inbound", in+"="+app.addr,
			"--control-plane", cp, "--state-dir", t.TempDir(), "--collector", m.srv.otlpGRPC, "--no-tracing")
		m.admins = append(m.admins, admin)
		m.procs = append(m.procs, p)
	}
	m.caller = freeAddrs(t, 1)[0]
	var admin string
	m.callerProc, admin = startProxy(t, "web", "--service", "web", "--mode", "enforce", "--upstream", m.caller+"=inventory",
		"--control-plane", cp, "--state-dir", t.TempDir(), "--collector", m.srv.otlpGRPC, "--no-tracing")
	m.admins = append(m.admins, admin)
	m.procs = append(m.procs, m.callerProc)
	poll(t, 30*time.Second, "caller to discover both inventory versions", func() (bool, string) {
		var v struct {
			Endpoints []struct{ Service, Version string } `json:"endpoints"`
		}
		if err := getJSON("http://"+admin+"/policy/endpoints", &v); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, e := range v.Endpoints {
			if e.Service == "inventory" && e.Version != "" {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%+v", v.Endpoints)
	}, m.callerProc)
	m.apply(t, guardSLO)
	m.load = startLoad(t, "http://"+m.caller+"/item", 100)
	// Healthy first: the SLO has data and does not burn.
	poll(t, 60*time.Second, "inventory SLO with data and no alert", func() (bool, string) {
		var s slo.Status
		if err := getJSON(m.srv.url(slo.APIPrefix+"/inventory-availability"), &s); err != nil {
			return false, err.Error()
		}
		return s.State == slo.StateOK && s.SLINow != nil, fmt.Sprintf("state %s sli_now %v", s.State, s.SLINow)
	}, m.all()...)
	return m
}

func (m *guardMesh) all() []*proc { return append([]*proc{m.srv.proc}, m.procs...) }

// apply posts YAML and waits until every proxy has the version.
func (m *guardMesh) apply(t *testing.T, doc string) uint64 {
	t.Helper()
	var res control.ResultView
	if code := post(t, m.srv.url(control.APIPrefix+"/apply"), doc, &res); code != http.StatusOK {
		t.Fatalf("apply: status %d: %+v", code, res)
	}
	m.waitVersion(t, res.Version)
	return res.Version
}

func (m *guardMesh) waitVersion(t *testing.T, v uint64) {
	t.Helper()
	for _, admin := range m.admins {
		poll(t, 30*time.Second, fmt.Sprintf("proxy %s to apply policy version %d", admin, v), func() (bool, string) {
			got, _, err := scrape("http://"+admin+"/metrics", "meshscope_proxy_policy_version")
			if err != nil {
				return false, err.Error()
			}
			return got >= float64(v), fmt.Sprintf("version %v", got)
		}, m.all()...)
	}
}

func (m *guardMesh) guard(t *testing.T, name string) guard.View {
	t.Helper()
	var v guard.View
	if err := getJSON(m.srv.url(guard.APIPrefix+"/guards/"+name), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (m *guardMesh) events(t *testing.T, name string) []guard.Event {
	t.Helper()
	var v guard.EventsView
	if err := getJSON(m.srv.url(guard.APIPrefix+"/events?limit=500&guard="+name), &v); err != nil {
		t.Fatal(err)
	}
	return v.Events
}

// waitEvent waits for an event of kind of the guard and returns it.
func (m *guardMesh) waitEvent(t *testing.T, name, kind string, timeout time.Duration) guard.Event {
	t.Helper()
	var got guard.Event
	poll(t, timeout, fmt.Sprintf("guard %s event %s", name, kind), func() (bool, string) {
		evs := m.events(t, name)
		for _, e := range evs {
			if e.Kind == kind {
				got = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", evs)
	}, m.all()...)
	return got
}

func (m *guardMesh) policyJSON(t *testing.T, kind, name string) string {
	t.Helper()
	var v control.PolicyView
	if err := getJSON(m.srv.url(control.APIPrefix+"/policies/"+kind+"/"+name), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v.Policy)
	return string(b)
}

func (m *guardMesh) op(t *testing.T, name, op string) guard.OpResult {
	t.Helper()
	res, err := httpClient.Post(m.srv.url(guard.APIPrefix+"/guards/"+name+"/"+op), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var r guard.OpResult
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &r) != nil {
		t.Fatalf("%s %s: %d %s", op, name, res.StatusCode, b)
	}
	return r
}

// shot is one request of the load and its answer.
type shot struct {
	at     time.Time
	code   int
	body   string
	header string // x-meshscope-guard
}

// loadGen sends rate GETs a second and records every answer.
type loadGen struct {
	mu    sync.Mutex
	shots []shot
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(t *testing.T, url string, rate int) *loadGen {
	l := &loadGen{stop: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				s := shot{at: time.Now()}
				if res, err := client.Get(url); err == nil {
					b, _ := io.ReadAll(res.Body)
					res.Body.Close()
					s.code, s.body, s.header = res.StatusCode, string(b), res.Header.Get(guard.HeaderGuard)
				}
				l.mu.Lock()
				l.shots = append(l.shots, s)
				l.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() { close(l.stop); l.wg.Wait(); client.CloseIdleConnections() })
	return l
}

// since returns the answers to requests sent in [from, to).
func (l *loadGen) between(from, to time.Time) []shot {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []shot
	for _, s := range l.shots {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// allTo returns when every request sent from then on (for at least 1 s,
// until now) went to version; zero if not (yet).
func (l *loadGen) allTo(version string, from time.Time) time.Time {
	shots := l.between(from, time.Now().Add(-300*time.Millisecond))
	last := -1
	for i, s := range shots {
		if s.body != version {
			last = i
		}
	}
	if last+1 >= len(shots) {
		return time.Time{}
	}
	first := shots[last+1].at
	if shots[len(shots)-1].at.Sub(first) < time.Second {
		return time.Time{}
	}
	return first
}

func count(shots []shot, f func(shot) bool) int {
	n := 0
	for _, s := range shots {
		if f(s) {
			n++
		}
	}
	return n
}

const shiftGuard = `kind: Guard
name: inventory-shift
service: inventory
mode: %s
when: {slo: inventory-availability, burn: page}
then: {shift: {to: v1}}
revert: auto
revert_after: 5s
cooldown: %s
`

// TestGuardShift: v2 fails half its requests; the enforced shift guard
// sends every request to v1 within the alert windows + 2 s, success is
// ≥ 99 % after, an event records it with the policy diff (and reaches a
// real Alertmanager); once healthy the automatic revert restores the
// previous route exactly.
func TestGuardShift(t *testing.T) {
	am := rulertest.StartAlertmanager(t)
	m := startGuardMesh(t, "--alertmanager", am)
	before := m.policyJSON(t, "Route", "inventory-split")
	m.apply(t, fmt.Sprintf(shiftGuard, "enforce", "30s"))
	if g := m.guard(t, "inventory-shift"); g.State != guard.StateArmed || g.Mode != "enforce" {
		t.Fatalf("guard before the failure: %+v", g)
	}

	m.apps["v2"].failPct.Store(50)
	failStart := time.Now()
	acted := m.waitEvent(t, "inventory-shift", guard.EventActed, 60*time.Second)
	var allV1 time.Time
	poll(t, 30*time.Second, "every request to v1", func() (bool, string) {
		allV1 = m.load.allTo("v1", failStart)
		return !allV1.IsZero(), ""
	}, m.all()...)
	took := allV1.Sub(failStart)
	t.Logf("v2 failing → guard acted after %v, 100%% v1 after %v (event → traffic %v)",
		acted.Time.Sub(failStart).Round(10*time.Millisecond), took.Round(10*time.Millisecond), allV1.Sub(acted.Time).Round(10*time.Millisecond))
	// The page alert needs its 5 s window; 2 s to act; headroom for a
	// loaded machine.
	if took > 5*time.Second+2*time.Second+8*time.Second {
		t.Errorf("100%% v1 only %v after v2 started failing", took)
	}
	if acted.Condition == nil || acted.Condition.Labels["slo"] != "inventory-availability" || acted.Condition.Labels["severity"] != "page" ||
		len(acted.Changes) != 1 || acted.Changes[0].Kind != "Route" || acted.Changes[0].Op != "update" || acted.Version == 0 ||
		!strings.Contains(acted.Summary, "shift inventory to v1 100%") || acted.Mode != "enforce" {
		t.Errorf("acted event: %+v", acted)
	}
	poll(t, 30*time.Second, "the acted event in Alertmanager", func() (bool, string) {
		got, err := amActive(am, map[string]string{"alertname": guard.AlertName, "guard": "inventory-shift", "event": guard.EventActed, "severity": "info"})
		if err != nil {
			return false, err.Error()
		}
		return len(got) == 1 && strings.Contains(got[0].Annotations["summary"], "shift inventory to v1"), fmt.Sprintf("%+v", got)
	}, m.all()...)
	time.Sleep(2 * time.Second)
	after := m.load.between(allV1.Add(time.Second), time.Now())
	ok := count(after, func(s shot) bool { return s.code == 200 })
	if len(after) < 100 || float64(ok)/float64(len(after)) < 0.99 {
		t.Errorf("after the shift %d of %d succeeded, want ≥ 99%%", ok, len(after))
	}
	if g := m.guard(t, "inventory-shift"); g.State != guard.StateActing || g.Action == nil || g.Action.Version != acted.Version {
		t.Errorf("guard while acting: %+v", g)
	}

	// Recovery: v2 healthy, the alert resolves, the revert restores the
	// exact previous route.
	m.apps["v2"].failPct.Store(0)
	rev := m.waitEvent(t, "inventory-shift", guard.EventReverted, 90*time.Second)
	if rev.Who != "auto-revert" || rev.Version <= acted.Version {
		t.Errorf("revert event: %+v", rev)
	}
	m.waitVersion(t, rev.Version)
	if got := m.policyJSON(t, "Route", "inventory-split"); got != before {
		t.Errorf("route after the revert:\n%s\nbefore the guard:\n%s", got, before)
	}
	poll(t, 20*time.Second, "traffic to v2 again", func() (bool, string) {
		s := m.load.between(time.Now().Add(-2*time.Second), time.Now().Add(-300*time.Millisecond))
		v2 := count(s, func(s shot) bool { return s.body == "v2" })
		return v2 > len(s)/4, fmt.Sprintf("%d of %d to v2", v2, len(s))
	}, m.all()...)
	if g := m.guard(t, "inventory-shift"); g.State != guard.StateCooling {
		t.Errorf("guard after the revert: %+v", g)
	}
}

// TestGuardDryRun: the same guard in dry-run changes nothing on the wire
// and records a "would have shifted" event; `meshscope guard promote`
// then makes it act.
func TestGuardDryRun(t *testing.T) {
	m := startGuardMesh(t)
	before := m.policyJSON(t, "Route", "inventory-split")
	v := m.apply(t, fmt.Sprintf(shiftGuard, "dry-run", "30s"))
	m.apps["v2"].failPct.Store(50)
	failStart := time.Now()
	would := m.waitEvent(t, "inventory-shift", guard.EventWouldAct, 60*time.Second)
	if would.Mode != "dry-run" || !strings.Contains(would.Summary, "would have acted: shift inventory to v1 100%") ||
		len(would.Changes) != 1 || would.Changes[0].After == nil || would.Version != 0 {
		t.Errorf("would-act event: %+v", would)
	}
	time.Sleep(4 * time.Second)
	shots := m.load.between(failStart, time.Now())
	v2 := count(shots, func(s shot) bool { return s.body == "v2" || strings.Contains(s.body, "v2 failing") })
	if len(shots) < 200 || !within(float64(v2)/float64(len(shots)), 0.5, 0.1) {
		t.Errorf("dry-run: %d of %d requests to v2, want about half", v2, len(shots))
	}
	var pv control.PoliciesView
	if err := getJSON(m.srv.url(control.APIPrefix+"/policies"), &pv); err != nil || pv.Version != v {
		t.Errorf("dry-run wrote a policy version: %d (was %d) %v", pv.Version, v, err)
	}
	if got := m.policyJSON(t, "Route", "inventory-split"); got != before {
		t.Errorf("dry-run changed the route: %s", got)
	}
	g := m.guard(t, "inventory-shift")
	if g.State != guard.StateDryRun || g.Action == nil || !g.Action.DryRun {
		t.Errorf("dry-run guard: %+v", g)
	}

	// The operator reviewed it: promote with the CLI; it acts at once.
	bin, _ := binaries(t)
	out, err := exec.Command(bin, "guard", "promote", "inventory-shift", "--server", m.srv.url("")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "promoted from dry-run to enforce") {
		t.Fatalf("guard promote: %v\n%s", err, out)
	}
	promoted := time.Now()
	acted := m.waitEvent(t, "inventory-shift", guard.EventActed, 30*time.Second)
	poll(t, 30*time.Second, "every request to v1 after promote", func() (bool, string) {
		return !m.load.allTo("v1", promoted).IsZero(), ""
	}, m.all()...)
	// The audit log has the operator's promote and the controller's
	// action, each with its diff and version; the dry run is not in it.
	var page audit.Page
	if err := getJSON(m.srv.url(audit.Path+"?action=guard."), &page); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, e.Action+" by "+e.Who)
	}
	if len(page.Entries) != 2 || page.Entries[1].Action != "guard.promoted" || page.Entries[1].Who == guard.ControllerWho ||
		!strings.Contains(page.Entries[1].Diff, "+ mode: enforce") || page.Entries[1].Version <= v {
		t.Errorf("audit entries %v, want guard.promoted by the operator then guard.acted: %+v", got, page.Entries)
	} else if a := page.Entries[0]; a.Action != "guard.acted" || a.Who != guard.ControllerWho || a.Auth != "controller" || a.Version != acted.Version ||
		!strings.Contains(a.Diff, "# update Route/inventory-split") || a.Detail["by"] != "guard" || a.Detail["mode"] != "enforce" {
		t.Errorf("guard.acted audit entry: %+v", a)
	}
	out, err = exec.Command(bin, "guard", "status", "inventory-shift", "--server", m.srv.url("")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "state:    acting") || !strings.Contains(string(out), "revert point: update Route/inventory-split") {
		t.Errorf("guard status: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "guard", "list", "--server", m.srv.url("")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "inventory-shift") || !strings.Contains(string(out), "SLO inventory-availability burns at page level") {
		t.Errorf("guard list: %v\n%s", err, out)
	}
}

// TestGuardRestart: the control plane restarts while a guard acts; the
// action and its revert point survive, and a manual revert (CLI) restores
// the route exactly.
func TestGuardRestart(t *testing.T) {
	m := startGuardMesh(t)
	before := m.policyJSON(t, "Route", "inventory-split")
	m.apply(t, strings.Replace(fmt.Sprintf(shiftGuard, "enforce", "30s"), "revert: auto", "revert: manual", 1))
	m.apps["v2"].failPct.Store(50)
	acted := m.waitEvent(t, "inventory-shift", guard.EventActed, 60*time.Second)
	g0 := m.guard(t, "inventory-shift")

	m.srv.proc.stop(t, 20*time.Second)
	m.apps["v2"].failPct.Store(0)
	m.srv = startGuardServer(t, m.data, m.httpAddr, m.srv.otlpGRPC, m.extra...)
	g1 := m.guard(t, "inventory-shift")
	b0, _ := json.Marshal(g0.Action)
	b1, _ := json.Marshal(g1.Action)
	if g1.State != guard.StateActing || !bytes.Equal(b0, b1) {
		t.Fatalf("after restart:\n%s %s\nbefore:\n%s", g1.State, b1, b0)
	}
	if evs := m.events(t, "inventory-shift"); len(evs) == 0 || evs[len(evs)-1].Seq != 1 || count2(evs, guard.EventActed) != 1 {
		t.Errorf("events after restart: %+v", evs)
	}
	// Manual revert only: the guard waits for the operator.
	time.Sleep(3 * time.Second)
	if got := m.policyJSON(t, "Route", "inventory-split"); got == before {
		t.Fatal("manual-revert guard reverted by itself")
	}
	bin, _ := binaries(t)
	out, err := exec.Command(bin, "guard", "revert", "inventory-shift", "--server", m.srv.url("")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "reverted: shift inventory to v1 100%") {
		t.Fatalf("guard revert: %v\n%s", err, out)
	}
	if got := m.policyJSON(t, "Route", "inventory-split"); got != before {
		t.Errorf("route after the revert:\n%s\nbefore:\n%s", got, before)
	}
	t.Logf("acted at policy version %d; restored after a restart", acted.Version)
}

func count2(evs []guard.Event, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// TestGuardLimits: a shift never goes to a version that is burning too.
func TestGuardLimits(t *testing.T) {
	m := startGuardMesh(t)
	before := m.policyJSON(t, "Route", "inventory-split")
	m.apps["v1"].failPct.Store(50)
	m.apps["v2"].failPct.Store(50)
	// The guard is applied once v1's error ratio, over the 15 s the guard
	// reads a target over, is above the page threshold (14.4 % here): a
	// version whose failures began a moment ago has a diluted ratio and is
	// not yet known to burn (docs/guards.md).
	v1Sel := `direction="inbound",destination_service="inventory",destination_version="v1"`
	v1Failing := `sum(rate(mesh_requests_total{` + v1Sel + `,outcome="failure"}[15s])) / sum(rate(mesh_requests_total{` + v1Sel + `}[15s])) > 0.25`
	poll(t, 60*time.Second, "v1's error ratio over 15 s in the metrics store above the threshold", func() (bool, string) {
		r, err := promQuery(m.srv, v1Failing)
		if err != nil {
			return false, err.Error()
		}
		return len(r) == 1, fmt.Sprintf("%d samples", len(r))
	}, m.all()...)
	m.apply(t, fmt.Sprintf(shiftGuard, "enforce", "30s"))
	sk := m.waitEvent(t, "inventory-shift", guard.EventSkipped, 60*time.Second)
	if !strings.Contains(sk.Summary, "target version v1 is burning too") {
		t.Errorf("skipped event: %+v", sk)
	}
	time.Sleep(3 * time.Second)
	if got := m.policyJSON(t, "Route", "inventory-split"); got != before {
		t.Errorf("route changed although v1 burns: %s", got)
	}
	if n := count2(m.events(t, "inventory-shift"), guard.EventActed); n != 0 {
		t.Errorf("%d acted events", n)
	}
	// v1 recovers while v2 still burns: now the shift is allowed.
	m.apps["v1"].failPct.Store(0)
	m.waitEvent(t, "inventory-shift", guard.EventActed, 60*time.Second)
}

// TestGuardCooldown: under an oscillating failure the guard acts once,
// reverts, and does not act again within its cooldown.
func TestGuardCooldown(t *testing.T) {
	m := startGuardMesh(t)
	m.apply(t, strings.Replace(fmt.Sprintf(shiftGuard, "enforce", "10m"), "revert_after: 5s", "revert_after: 2s", 1))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // v2 fails 8 s, heals 8 s, ...
		defer wg.Done()
		for fail := true; ; fail = !fail {
			if fail {
				m.apps["v2"].failPct.Store(50)
			} else {
				m.apps["v2"].failPct.Store(0)
			}
			select {
			case <-stop:
				return
			case <-time.After(8 * time.Second):
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	m.waitEvent(t, "inventory-shift", guard.EventReverted, 90*time.Second)
	v2Before := m.apps["v2"].hits.Load()
	time.Sleep(30 * time.Second)
	evs := m.events(t, "inventory-shift")
	if n := count2(evs, guard.EventActed); n != 1 {
		t.Errorf("%d acted events under an oscillating failure, want 1 (cooldown): %+v", n, evs)
	}
	if m.apps["v2"].hits.Load()-v2Before < 200 {
		t.Errorf("v2 got no traffic after the revert: the failure did not oscillate back")
	}
	if g := m.guard(t, "inventory-shift"); g.State != guard.StateCooling || g.CooldownUntil == nil {
		t.Errorf("guard: %+v", g)
	}
}

// TestGuardBreakAndShed: a break guard fails callers fast with 503 and
// the guard header while the probe share still reaches the service; a
// shed guard caps the inbound rate within ±10 %.
func TestGuardBreakAndShed(t *testing.T) {
	m := startGuardMesh(t)
	m.apply(t, `kind: Guard
name: inventory-break
service: inventory
mode: enforce
when: {slo: inventory-availability}
then: {break: {probe_percent: 20}}
revert: manual
`)
	m.apps["v2"].failPct.Store(50)
	acted := m.waitEvent(t, "inventory-break", guard.EventActed, 60*time.Second)
	m.waitVersion(t, acted.Version)
	from := time.Now()
	hits0 := m.apps["v1"].hits.Load() + m.apps["v2"].hits.Load()
	time.Sleep(5 * time.Second)
	shots := m.load.between(from, time.Now().Add(-time.Second))
	hits := m.apps["v1"].hits.Load() + m.apps["v2"].hits.Load() - hits0
	broken := count(shots, func(s shot) bool { return s.code == 503 && s.header == "inventory-break" })
	if len(shots) < 200 || !within(float64(broken)/float64(len(shots)), 0.8, 0.06) {
		t.Errorf("break: %d of %d answered 503 with the guard header, want 80%% ± 6", broken, len(shots))
	}
	if probe := float64(hits) / float64(len(shots)); probe < 0.12 || probe > 0.3 {
		t.Errorf("break: the service got %d requests for %d sent (%.0f%%), want the 20%% probe share", hits, len(shots), 100*probe)
	}
	m.op(t, "inventory-break", guard.OpRevert)
	m.remove(t, "inventory-break")

	m.apply(t, `kind: Guard
name: inventory-shed
service: inventory
mode: enforce
when: {slo: inventory-availability}
then: {shed: {requests_per_second: 40}}
limits: {max_shed_percent: 80}
revert: manual
`)
	acted = m.waitEvent(t, "inventory-shed", guard.EventActed, 60*time.Second)
	if !strings.Contains(acted.Summary, "20 rps at each of 2 instances") {
		t.Errorf("shed event: %+v", acted)
	}
	m.waitVersion(t, acted.Version)
	time.Sleep(2 * time.Second) // past the buckets' initial burst
	from = time.Now()
	time.Sleep(10 * time.Second)
	to := time.Now()
	shots = m.load.between(from, to)
	passed := count(shots, func(s shot) bool { return s.code != 429 && s.code != 0 })
	rate := float64(passed) / to.Sub(from).Seconds()
	t.Logf("shed to 40 rps: %.1f rps passed of %.1f rps sent", rate, float64(len(shots))/to.Sub(from).Seconds())
	if !within(rate, 40, 4) {
		t.Errorf("shed: %.1f rps passed, want 40 ± 10%%", rate)
	}
}

// remove deletes a policy and waits for the proxies.
func (m *guardMesh) remove(t *testing.T, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, m.srv.url(control.APIPrefix+"/policies/Guard/"+name), nil)
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r control.ResultView
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("delete guard %s: %d %v", name, res.StatusCode, err)
	}
	m.waitVersion(t, r.Version)
}
