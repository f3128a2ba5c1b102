// Command guard benchmarks the guard controller and writes
// bench/results/guard.json:
//
//   - alert-to-traffic-change latency: the real binaries (meshscope and
//     meshscope-proxy, built from this checkout, or -bin), inventory v1 and v2
//     behind inbound proxies and a caller proxy under 200 rps; v2 starts
//     failing half its requests, the SLO's page alert fires and the
//     enforced shift guard sends everything to v1. Measured from the
//     alert's firing evaluation to the first request after which every
//     request reaches v1, over N trials (20; quick 5);
//
//   - controller cost: one evaluation of 1,000 guards, in process over a
//     real policy store and a real rules group (armed, and with all 1,000
//     alerts firing in dry-run).
//
//     make build && make bench WHAT=guard
//     make bench-quick WHAT=guard
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control/guard"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/control/store"
	"github.com/meshscope/meshscope/demo/freeport"
)

type options struct {
	quick  bool
	trials int
	guards int
	bin    string
	out    string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench guard:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	fs := flag.NewFlagSet("guard", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "sanity run: fewer trials")
	fs.IntVar(&o.trials, "trials", 0, "latency trials (default 20; quick 5)")
	fs.IntVar(&o.guards, "guards", 1000, "guards for the controller cost")
	fs.StringVar(&o.bin, "bin", "", "directory of meshscope and meshscope-proxy (default: built from this checkout into a temp dir)")
	fs.StringVar(&o.out, "out", "guard", "results `file`, or the part name for bench/results/guard[.quick].json")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if o.trials == 0 {
		o.trials = map[bool]int{false: 20, true: 5}[o.quick]
	}
	if o.bin == "" {
		dir, err := buildBinaries()
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.bin = dir
	}
	r := report.New("guard")
	r.Title = "Guards: alert-to-traffic-change latency and controller cost"
	r.Quick = o.quick

	if err := controllerCost(r, o); err != nil {
		return fmt.Errorf("controller cost: %w", err)
	}
	if err := latency(r, o); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	r.Note("machine shared with other jobs (%d CPUs, load average %s at the start)", runtime.NumCPU(), r.Machine.LoadAverage)
	path, err := report.Write(o.out, r)
	if err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}

// controllerCost times Evaluate over o.guards guards.
func controllerCost(r *report.Result, o options) error {
	dir, err := os.MkdirTemp("", "meshscope-bench-guard-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	st, err := store.Open(filepath.Join(dir, "control"), prometheus.NewRegistry(), logger)
	if err != nil {
		return err
	}
	defer st.Close()
	var b strings.Builder
	for i := range o.guards {
		fmt.Fprintf(&b, "kind: Guard\nname: g%d\nservice: s%d\nwhen: {slo: s%d-availability}\nthen: {shift: {to: v1}}\n---\nkind: Route\nname: r%d\nservice: s%d\nrules: [{backends: [{version: v1, weight: 50}, {version: v2, weight: 50}]}]\n---\n", i, i, i, i, i)
	}
	docs, err := policy.Load([]byte(b.String()))
	if err != nil {
		return err
	}
	if _, err := st.Apply(docs, store.ApplyOptions{Who: "bench"}); err != nil {
		return err
	}
	// One rules group with an alert per guard, firing from its first
	// evaluation (vector(1), no for).
	var rs []rules.Rule
	for i := range o.guards {
		expr, _ := parser.NewParser(parser.Options{}).ParseExpr("vector(1)")
		rs = append(rs, rules.NewAlertingRule(slo.AlertName, expr, 0, 0,
			labels.FromStrings("slo", fmt.Sprintf("s%d-availability", i), "severity", "page"), labels.EmptyLabels(), labels.EmptyLabels(), "", true, nil))
	}
	armed := &alerts{}
	c, err := guard.New(guard.Options{Dir: filepath.Join(dir, "guards"), EvalInterval: time.Second}, st, armed, nil, nil, nil, nil, nil, logger)
	if err != nil {
		return err
	}
	measure := func(n int) (wall, cpu float64) {
		cpu0 := cpuSeconds()
		start := time.Now()
		for range n {
			c.Evaluate(context.Background())
		}
		return time.Since(start).Seconds() / float64(n), (cpuSeconds() - cpu0) / float64(n)
	}
	n := map[bool]int{false: 50, true: 10}[o.quick]
	armedWall, armedCPU := measure(n)

	// Fire every alert: the first evaluation records 1,000 would-act
	// events (fsync'd each); later ones find every guard triggered.
	qf := func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
		return promql.Vector{{T: t.UnixMilli(), F: 1, Metric: labels.EmptyLabels()}}, nil
	}
	now := time.Now()
	for _, rule := range rs {
		if _, err := rule.(*rules.AlertingRule).Eval(context.Background(), 0, now, qf, nil, 0); err != nil {
			return err
		}
	}
	g := rules.NewGroup(rules.GroupOptions{Name: "bench", Interval: time.Second, Rules: rs, Opts: &rules.ManagerOptions{Context: context.Background(), Logger: logger}})
	armed.groups = []*rules.Group{g}
	firstWall, firstCPU := measure(1)
	firingWall, firingCPU := measure(n)
	t := r.AddTable(fmt.Sprintf("One evaluation of %d guards (shift, dry-run)", o.guards), "case", "wall ms", "CPU ms")
	t.AddRow("armed: no alert firing", report.Num(armedWall*1000), report.Num(armedCPU*1000))
	t.AddRow("all alerts fire: first evaluation (1,000 events, fsync each)", report.Num(firstWall*1000), report.Num(firstCPU*1000))
	t.AddRow("all alerts firing: steady evaluations", report.Num(firingWall*1000), report.Num(firingCPU*1000))
	t.Note("mean over %d evaluations (first: one); the controller evaluates after every rule evaluation and every 1 s", n)
	r.AtMost(fmt.Sprintf("CPU of one steady evaluation of %d guards", o.guards), 100, firingCPU*1000, "ms")
	return nil
}

// buildBinaries builds meshscope and meshscope-proxy from this checkout
// into a new temp dir, which it returns, so that the part measures the
// sources it runs from (a stale bin/ would not).
func buildBinaries() (string, error) {
	root, err := report.ModuleRoot()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "meshscope-bench-guard-bin-")
	if err != nil {
		return "", err
	}
	for _, b := range []string{"meshscope", "meshscope-proxy"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, b), "./cmd/"+b)
		build.Dir, build.Stderr = root, os.Stderr
		if err := build.Run(); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("building %s: %w", b, err)
		}
	}
	return dir, nil
}

// latency runs the real binaries and measures alert → traffic change.
func latency(r *report.Result, o options) error {
	for _, b := range []string{"meshscope", "meshscope-proxy"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("-bin %s: %w", o.bin, err)
		}
	}
	tmp, err := os.MkdirTemp("", "meshscope-bench-guard-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var procs []*exec.Cmd
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			_ = procs[i].Process.Signal(syscall.SIGTERM)
			_ = procs[i].Wait()
		}
	}()
	start := func(name string, args ...string) error {
		f, err := os.Create(filepath.Join(tmp, name+".log"))
		if err != nil {
			return err
		}
		cmd := exec.Command(filepath.Join(o.bin, strings.Fields(name)[0]), args...)
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		return nil
	}
	a := freeAddrs(7)
	srv := "http://" + a[0]
	if err := start("meshscope", "server", "--data", filepath.Join(tmp, "data"), "--http", a[0], "--otlp-grpc", a[1], "--otlp-http", "off", "--rule-eval-interval", "1s"); err != nil {
		return err
	}
	if err := waitOK(srv+"/ready", 90*time.Second); err != nil {
		return err
	}
	apps := map[string]*app{"v1": startApp("v1"), "v2": startApp("v2")}
	for i, v := range []string{"v1", "v2"} {
		if err := start("meshscope-proxy", "--service", "inventory", "--version", v, "--inbound", a[2+i]+"="+apps[v].addr,
			"--control-plane", srv, "--state-dir", filepath.Join(tmp, v), "--collector", a[1], "--no-tracing", "--admin", a[4+i]); err != nil {
			return err
		}
	}
	if err := start("meshscope-proxy", "--service", "web", "--mode", "enforce", "--upstream", a[6]+"=inventory",
		"--control-plane", srv, "--state-dir", filepath.Join(tmp, "web"), "--collector", a[1], "--no-tracing", "--admin", freeAddrs(1)[0]); err != nil {
		return err
	}
	docs := `kind: SLO
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
---
kind: Guard
name: inventory-shift
service: inventory
mode: enforce
when: {slo: inventory-availability}
then: {shift: {to: v1}}
revert_after: 1s
cooldown: 0s
`
	res, err := http.Post(srv+"/api/mesh/v1/apply", "application/yaml", strings.NewReader(docs))
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("apply: %s", res.Status)
	}
	load := startLoad("http://"+a[6]+"/", 200)
	defer load.close()

	var lat, evToTraffic []float64
	var lastSeq uint64
	for trial := 0; trial < o.trials; trial++ {
		// Healthy, split and armed.
		if err := waitFor(120*time.Second, func() bool {
			var s slo.Status
			var g guard.View
			if getJSON(srv+slo.APIPrefix+"/inventory-availability", &s) != nil || getJSON(srv+guard.APIPrefix+"/guards/inventory-shift", &g) != nil {
				return false
			}
			recent := load.between(time.Now().Add(-1500*time.Millisecond), time.Now().Add(-300*time.Millisecond))
			v2 := 0
			for _, s := range recent {
				if s.body == "v2" {
					v2++
				}
			}
			return s.State == slo.StateOK && s.SLINow != nil && g.State == guard.StateArmed && v2 > len(recent)/4
		}); err != nil {
			return fmt.Errorf("trial %d: waiting for a healthy split: %w", trial, err)
		}
		apps["v2"].fail.Store(true)
		failAt := time.Now()
		var acted guard.Event
		if err := waitFor(60*time.Second, func() bool {
			var v guard.EventsView
			if getJSON(srv+guard.APIPrefix+"/events?guard=inventory-shift&limit=5", &v) != nil {
				return false
			}
			for _, e := range v.Events {
				if e.Kind == guard.EventActed && e.Seq > lastSeq {
					acted = e
					return true
				}
			}
			return false
		}); err != nil {
			return fmt.Errorf("trial %d: waiting for the guard: %w", trial, err)
		}
		lastSeq = acted.Seq
		var changed time.Time
		if err := waitFor(30*time.Second, func() bool { changed = load.allTo("v1", failAt); return !changed.IsZero() }); err != nil {
			return fmt.Errorf("trial %d: waiting for every request to reach v1: %w", trial, err)
		}
		fired := acted.Condition.ActiveAt
		lat = append(lat, changed.Sub(fired).Seconds())
		evToTraffic = append(evToTraffic, changed.Sub(acted.Time).Seconds())
		fmt.Printf("trial %d: alert fired %.2fs after the failure, traffic changed %.3fs after the alert fired\n", trial, fired.Sub(failAt).Seconds(), changed.Sub(fired).Seconds())
		apps["v2"].fail.Store(false)
	}
	slices.Sort(lat)
	slices.Sort(evToTraffic)
	t := r.AddTable(fmt.Sprintf("Alert firing → every request on v1 (%d trials, 200 rps, shift guard in enforce)", o.trials), "measure", "p50 s", "p99 s", "max s")
	t.AddRow("alert fired → traffic changed", report.Num(pct(lat, 50)), report.Num(pct(lat, 99)), report.Num(lat[len(lat)-1]))
	t.AddRow("guard event (policy written) → traffic changed", report.Num(pct(evToTraffic, 50)), report.Num(pct(evToTraffic, 99)), report.Num(evToTraffic[len(evToTraffic)-1]))
	t.Note("the alert's firing time is the rules engine's evaluation timestamp (ActiveAt; the generated alerts have no for:); traffic changed = the first request after which every request reached v1, at 200 rps (5 ms resolution; with a 50/50 split the last few requests before the change may go to v1 by chance, so a trial can read up to ~15 ms early)")
	r.AtMost("alert to traffic change p99", 2, pct(lat, 99), "s")
	return nil
}

func pct(sorted []float64, p float64) float64 {
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

type app struct {
	addr string
	fail atomic.Bool
	n    atomic.Int64
}

func startApp(version string) *app {
	a := &app{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	a.addr = ln.Addr().String()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.fail.Load() && a.n.Add(1)%2 == 0 {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, version)
	}))
	return a
}

type shot struct {
	at   time.Time
	body string
}

type loadGen struct {
	mu    sync.Mutex
	shots []shot
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startLoad(url string, rate int) *loadGen {
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
					s.body = string(b)
				}
				l.mu.Lock()
				l.shots = append(l.shots, s)
				if len(l.shots) > 200_000 {
					l.shots = append([]shot(nil), l.shots[100_000:]...)
				}
				l.mu.Unlock()
			}()
		}
	}()
	return l
}

func (l *loadGen) close() { close(l.stop); l.wg.Wait() }

func (l *loadGen) between(from, to time.Time) []shot {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []shot
	for _, s := range l.shots {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b shot) int { return a.at.Compare(b.at) })
	return out
}

// allTo is when every request sent from then on (for at least 1 s) went
// to version; zero if not yet.
func (l *loadGen) allTo(version string, from time.Time) time.Time {
	shots := l.between(from, time.Now().Add(-300*time.Millisecond))
	last := -1
	for i, s := range shots {
		if s.body != version {
			last = i
		}
	}
	if last+1 >= len(shots) || shots[len(shots)-1].at.Sub(shots[last+1].at) < time.Second {
		return time.Time{}
	}
	return shots[last+1].at
}

func freeAddrs(n int) []string {
	out, err := freeport.Addrs(n)
	if err != nil {
		panic(err)
	}
	return out
}

func getJSON(url string, v any) error {
	res, err := http.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return errors.New(res.Status)
	}
	return json.NewDecoder(res.Body).Decode(v)
}

func waitOK(url string, timeout time.Duration) error {
	return waitFor(timeout, func() bool {
		res, err := http.Get(url)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
}

func waitFor(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// alerts is the rules engine as the controller sees it.
type alerts struct{ groups []*rules.Group }

func (a *alerts) RuleGroups() []*rules.Group { return a.groups }
