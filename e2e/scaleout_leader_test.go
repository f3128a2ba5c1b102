//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/ca"
	"github.com/meshscope/meshscope/control/guard"
	"github.com/meshscope/meshscope/query/promapi"
	"github.com/meshscope/meshscope/ruler/rulertest"
)

// leaderRules is the user rule file every server loads: a recorded series
// and an alert that fires from the first evaluation on.
const leaderRules = `groups:
  - name: leader-test
    rules:
      - record: leader_test:one
        expr: vector(1)
      - alert: LeaderTestAlways
        expr: vector(1)
        labels: {severity: page, service: catalog}
`

// leaderGuard shifts catalog to v1 while LeaderTestAlways fires (always).
const leaderGuard = `kind: Route
name: catalog-split
service: catalog
mode: enforce
rules:
  - backends: [{version: v1, weight: 50}, {version: v2, weight: 50}]
---
kind: Guard
name: catalog-shift
service: catalog
mode: enforce
when: {alert: LeaderTestAlways}
then: {shift: {to: v1}}
revert: manual
`

// webhook is an Alertmanager webhook receiver: it keeps every
// notification.
type webhook struct {
	mu    sync.Mutex
	notes []amNotification
}

type amNotification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

func startWebhook(t *testing.T) (*webhook, string) {
	t.Helper()
	w := &webhook{}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n amNotification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.notes = append(w.notes, n)
		w.mu.Unlock()
	})}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return w, "http://" + ln.Addr().String() + "/"
}

// alerts counts the notified alerts with these labels, by status.
func (w *webhook) alerts(match map[string]string) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
next:
	for _, n := range w.notes {
		for _, a := range n.Alerts {
			for k, v := range match {
				if a.Labels[k] != v {
					continue next
				}
			}
			out[a.Status]++
		}
	}
	return out
}

// lastEvaluation answers when the server last evaluated the leader-test
// rule group (zero: never).
func lastEvaluation(s *server) (time.Time, error) {
	var v struct {
		Data promapi.RuleDiscovery `json:"data"`
	}
	if err := getJSON(s.url("/api/v1/rules"), &v); err != nil {
		return time.Time{}, err
	}
	for _, g := range v.Data.RuleGroups {
		if g.Name == "leader-test" {
			return g.LastEvaluation, nil
		}
	}
	return time.Time{}, fmt.Errorf("no leader-test group in %+v", v.Data.RuleGroups)
}

// guardAudit answers the guard entries of the shared audit log as
// "action version" lines, oldest first.
func guardAudit(t *testing.T, s *server) []string {
	t.Helper()
	var p audit.Page
	if err := getJSON(s.url(audit.Path+"?action=guard.&limit=1000"), &p); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(p.Entries) - 1; i >= 0; i-- {
		e := p.Entries[i]
		out = append(out, fmt.Sprintf("%d %s v%d %s", e.Seq, e.Action, e.Version, e.Who))
	}
	return out
}

func guardEvents(t *testing.T, s *server) []guard.Event {
	t.Helper()
	var v guard.EventsView
	if err := getJSON(s.url(guard.APIPrefix+"/events?guard=catalog-shift"), &v); err != nil {
		t.Fatal(err)
	}
	return v.Events
}

func countKind(evs []guard.Event, kind string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// TestScaleOutLeaderFailover runs three servers over a 3-member etcd and a
// shared Prometheus, with rules evaluated once per cluster and a guard
// that acts on an alert. It kills the leader (kill -9) and checks that
// another server leads within 15 s; that rules are evaluated by the new
// leader only; that the guard's action happened exactly once across the
// cluster (one audit entry, one event, one policy version, one
// notification), every server's audit and event APIs answering the same;
// and that a proxy whose server died moved on without a failed request.
func TestScaleOutLeaderFailover(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus); skipping the leader failover test")
	}
	endpoints := startEtcdCluster(t)

	dir := t.TempDir()
	promAddr := freeAddrs(t, 1)[0]
	promCfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(promCfg, []byte("global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 10m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startProc(t, "prometheus", promBin, "--config.file="+promCfg,
		"--web.listen-address="+promAddr, "--storage.tsdb.path="+filepath.Join(dir, "prom"),
		"--web.enable-remote-write-receiver", "--enable-feature=native-histograms")
	waitReady(t, prom, "http://"+promAddr+"/-/ready", 60*time.Second)

	hook, hookURL := startWebhook(t)
	am := rulertest.StartAlertmanagerConfig(t, "route:\n  receiver: hook\n  group_by: [alertname, event]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n"+
		"receivers:\n  - name: hook\n    webhook_configs:\n      - url: "+hookURL+"\n")

	rulesPath := filepath.Join(dir, "leader.yml")
	if err := os.WriteFile(rulesPath, []byte(leaderRules), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--state-store", "etcd", "--etcd-endpoints", endpoints, "--endpoint-grace", "30s",
		"--metrics-store", "remote", "--remote-write-url", "http://" + promAddr + "/api/v1/write", "--prometheus-url", "http://" + promAddr,
		"--rule-eval-interval", "1s", "--rule-files", rulesPath, "--alertmanager", am}
	first := startControlServer(t, t.TempDir(), args...)
	args = append(args, "--ca-cert", filepath.Join(first.data, "ca", ca.CertName), "--ca-key", filepath.Join(first.data, "ca", ca.KeyName))
	servers := []*server{first, startControlServer(t, t.TempDir(), args...), startControlServer(t, t.TempDir(), args...)}
	procs := []*proc{prom}
	for _, s := range servers {
		procs = append(procs, s.proc)
	}

	leaderOf := func(among []*server) (*server, []*server, string) {
		var leader *server
		var others []*server
		var seen []string
		for _, s := range among {
			st, err := meshStatus(s)
			if err != nil {
				return nil, nil, err.Error()
			}
			seen = append(seen, fmt.Sprintf("%s leader=%v leader_id=%s", st.ID, st.Leader, st.LeaderID))
			if st.Leader {
				if leader != nil {
					return nil, nil, "two leaders: " + strings.Join(seen, "; ")
				}
				leader = s
			} else {
				others = append(others, s)
			}
		}
		return leader, others, strings.Join(seen, "; ")
	}
	var leader *server
	var others []*server
	poll(t, 20*time.Second, "one leader", func() (bool, string) {
		var seen string
		leader, others, seen = leaderOf(servers)
		return leader != nil, seen
	}, procs...)

	// catalog v1 and v2 report to the followers; the caller to the leader
	// first, then to a follower.
	apps := map[string]*guardApp{}
	for i, v := range []string{"v1", "v2"} {
		apps[v] = startGuardApp(t, v)
		in := freeAddrs(t, 1)[0]
		p, _ := startProxy(t, "catalog-"+v, "--service", "catalog", "--version", v, "--inbound", in+"="+apps[v].addr,
			"--control-plane", "http://"+others[i].http, "--state-dir", t.TempDir(), "--no-tracing")
		procs = append(procs, p)
	}
	caller := freeAddrs(t, 1)[0]
	callerProc, callerAdmin := startProxy(t, "web", "--service", "web", "--mode", "enforce", "--upstream", caller+"=catalog",
		"--control-plane", "http://"+leader.http+",http://"+others[0].http, "--state-dir", t.TempDir(), "--no-tracing")
	procs = append(procs, callerProc)
	(&mesh{callerAdmin: callerAdmin, callerProc: callerProc}).waitEndpoints(t, 2)

	// Rules: the leader evaluates them, the followers never do.
	poll(t, 20*time.Second, "the leader evaluating the rules", func() (bool, string) {
		at, err := lastEvaluation(leader)
		return err == nil && time.Since(at) < 3*time.Second, fmt.Sprintf("%v %v", at, err)
	}, procs...)
	for _, s := range others {
		if at, err := lastEvaluation(s); err != nil || !at.IsZero() {
			t.Errorf("follower %s evaluated the rules at %v (%v), want never", s.http, at, err)
		}
	}

	// The guard acts once, on the leader.
	var res control.ResultView
	if code := post(t, others[1].url(control.APIPrefix+"/apply"), leaderGuard, &res); code != http.StatusOK || !res.Changed {
		t.Fatalf("apply the guard on a follower: %d %+v", code, res)
	}
	poll(t, 20*time.Second, "the guard's action in the shared event log", func() (bool, string) {
		evs := guardEvents(t, others[0])
		return countKind(evs, guard.EventActed) == 1, fmt.Sprintf("%+v", evs)
	}, procs...)
	acted := guardEvents(t, others[0])[0]
	poll(t, 10*time.Second, fmt.Sprintf("the caller at version %d", acted.Version), func() (bool, string) {
		v, _, err := scrape("http://"+callerAdmin+"/metrics", "meshscope_proxy_policy_version")
		return err == nil && uint64(v) >= acted.Version, fmt.Sprintf("%v %v", v, err)
	}, callerProc)
	poll(t, 20*time.Second, "the alert and the guard's event notified", func() (bool, string) {
		a := hook.alerts(map[string]string{"alertname": "LeaderTestAlways"})
		g := hook.alerts(map[string]string{"alertname": guard.AlertName, "event": guard.EventActed})
		return a["firing"] >= 1 && g["firing"] >= 1, fmt.Sprintf("alert %v guard %v", a, g)
	}, procs...)

	// Load through the caller while its server, the leader, dies.
	load := startLoad(t, "http://"+caller+"/items", 50)
	time.Sleep(time.Second)
	if err := syscall.Kill(leader.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	alive := others
	procs = slicesWithout(procs, leader.proc)
	var next *server
	var rest []*server
	poll(t, 15*time.Second, "a new leader", func() (bool, string) {
		var seen string
		next, rest, seen = leaderOf(alive)
		return next != nil, seen
	}, procs...)
	failover := time.Since(killed)
	t.Logf("leadership moved %s after kill -9 (lease_ttl 5s)", failover.Round(time.Millisecond))
	if v, ok, err := scrape(next.url("/metrics"), "meshscope_control_leader"); err != nil || !ok || v != 1 {
		t.Fatalf("new leader's meshscope_control_leader = %v (found %v, %v), want 1", v, ok, err)
	}
	if v, ok, err := scrape(rest[0].url("/metrics"), "meshscope_control_leader"); err != nil || !ok || v != 0 {
		t.Fatalf("follower's meshscope_control_leader = %v (found %v, %v), want 0", v, ok, err)
	}

	// Rules go on at the new leader, and only there.
	poll(t, 10*time.Second, "the new leader evaluating the rules", func() (bool, string) {
		at, err := lastEvaluation(next)
		return err == nil && at.After(killed), fmt.Sprintf("%v %v", at, err)
	}, procs...)
	evaluated, _ := lastEvaluation(next)
	t.Logf("rules evaluated again %s after kill -9", evaluated.Sub(killed).Round(time.Millisecond))

	// Give the new leader's guard controller several evaluations with the
	// alert firing: it must hold the action it took over, not repeat it.
	time.Sleep(6 * time.Second)
	load.stop <- struct{}{}
	if at, err := lastEvaluation(next); err != nil || time.Since(at) > 3*time.Second {
		t.Errorf("the new leader stopped evaluating: last %v (%v)", at, err)
	}
	if at, err := lastEvaluation(rest[0]); err != nil || !at.IsZero() {
		t.Errorf("follower %s evaluated the rules at %v (%v), want never", rest[0].http, at, err)
	}

	// Exactly one action across the cluster, the same on every server.
	auditA, auditB := guardAudit(t, next), guardAudit(t, rest[0])
	if !reflect.DeepEqual(auditA, auditB) {
		t.Errorf("the servers' audit logs differ:\n%s\n---\n%s", strings.Join(auditA, "\n"), strings.Join(auditB, "\n"))
	}
	if n := countPrefix(auditA, "guard.acted "); n != 1 || countPrefix(auditA, "guard.failed ") != 0 {
		t.Errorf("audit entries of the guard: %q, want one guard.acted and no failure", auditA)
	}
	evA, evB := guardEvents(t, next), guardEvents(t, rest[0])
	if !reflect.DeepEqual(evA, evB) {
		t.Errorf("the servers' guard events differ:\n%+v\n---\n%+v", evA, evB)
	}
	if countKind(evA, guard.EventActed) != 1 || countKind(evA, guard.EventFailed) != 0 || countKind(evA, guard.EventReverted) != 0 {
		t.Errorf("guard events after the failover: %+v, want the one action only", evA)
	}
	if n := historyBy(t, next, "guard:catalog-shift"); n != 1 {
		t.Errorf("%d policy versions written by the guard, want 1", n)
	}
	var gv guard.View
	if err := getJSON(next.url(guard.APIPrefix+"/guards/catalog-shift"), &gv); err != nil || gv.State != guard.StateActing || gv.Action == nil || gv.Action.Version != acted.Version {
		t.Errorf("the guard on the new leader: %+v (%v), want acting with version %d", gv, err, acted.Version)
	}

	// One notification of the action and of the alert: nothing sent twice,
	// nothing resolved while leadership moved.
	time.Sleep(3 * time.Second) // past the Alertmanager's group_interval
	if a := hook.alerts(map[string]string{"alertname": "LeaderTestAlways"}); a["firing"] != 1 || a["resolved"] != 0 {
		t.Errorf("LeaderTestAlways notified %v, want firing once", a)
	}
	if g := hook.alerts(map[string]string{"alertname": guard.AlertName, "event": guard.EventActed}); g["firing"] != 1 {
		t.Errorf("the guard's action notified %v, want once", g)
	}

	// The recorded series is one series whoever evaluated it.
	if v, err := instantQuery("http://"+promAddr, "count(leader_test:one)", time.Now()); err != nil || len(v) != 1 || v[0].float() != 1 {
		t.Errorf("count(leader_test:one) = %v (%v), want 1", v, err)
	}

	// The caller moved to the follower without a failed request, and
	// every request went to v1 (the guard's shift).
	shots := load.between(time.Time{}, time.Now())
	failed := count(shots, func(s shot) bool { return s.code != http.StatusOK })
	toV2 := count(shots, func(s shot) bool { return s.body == "v2" })
	if failed > 0 || len(shots) < 200 || toV2 > 0 {
		t.Errorf("%d of %d requests through the caller failed and %d reached v2 during the failover, want none", failed, len(shots), toV2)
	}
	t.Logf("%d requests through the caller during the failover, %d failed", len(shots), failed)
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if _, rest, ok := strings.Cut(l, " "); ok && strings.HasPrefix(rest, prefix) {
			n++
		}
	}
	return n
}

func slicesWithout(ps []*proc, p *proc) []*proc {
	out := make([]*proc, 0, len(ps))
	for _, q := range ps {
		if q != p {
			out = append(out, q)
		}
	}
	return out
}
