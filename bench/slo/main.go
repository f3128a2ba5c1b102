// Command slo benchmarks the rules engine on SLO rules and writes
// bench/results/slo.json: the CPU, wall time and memory of one evaluation
// cycle of the rules generated for 1,000 SLOs over a 1,000-service mesh
// (the real rules engine over a real TSDB holding the golden metrics).
//
//	make bench WHAT=slo          # full run, a few minutes
//	make bench-quick WHAT=slo    # sanity run
//	go run ./bench/slo -h        # flags
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/slo"
	"github.com/meshscope/meshscope/ruler"
)

type options struct {
	quick    bool
	slos     int
	services int
	history  time.Duration
	interval time.Duration
	eval     time.Duration
	cycles   int
	out      string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench slo:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	fs := flag.NewFlagSet("slo", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "sanity run: shorter history, fewer cycles")
	fs.IntVar(&o.slos, "slos", 1000, "SLOs (one in five a latency SLO)")
	fs.IntVar(&o.services, "services", 1000, "services in the synthetic mesh")
	fs.DurationVar(&o.history, "history", 0, "metric history to append (default 2h; quick 20m)")
	fs.DurationVar(&o.interval, "interval", 15*time.Second, "sample interval of the metric history")
	fs.DurationVar(&o.eval, "eval", 15*time.Second, "rule evaluation interval (windows are never shorter than 4 of it)")
	fs.IntVar(&o.cycles, "cycles", 0, "measured evaluation cycles (default 5; quick 2)")
	fs.StringVar(&o.out, "out", "slo", "results `file`, or the part name for bench/results/slo[.quick].json")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if o.history == 0 {
		o.history = map[bool]time.Duration{false: 2 * time.Hour, true: 20 * time.Minute}[o.quick]
	}
	if o.cycles == 0 {
		o.cycles = map[bool]int{false: 8, true: 4}[o.quick]
	}
	if o.slos < 1 || o.services < 1 || o.interval <= 0 || o.eval <= 0 || o.cycles < 1 {
		return errors.New("-slos, -services, -cycles ≥ 1 and -interval, -eval > 0 required")
	}

	r := report.New("slo")
	r.Title = "SLO rules: evaluation cycle of 1,000 SLOs"
	r.Quick = o.quick
	dir, err := os.MkdirTemp("", "meshscope-bench-slo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)
	db, err := tsdb.Open(dir, logger, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return fmt.Errorf("opening TSDB: %w", err)
	}
	defer db.Close()
	now := time.Now().Truncate(time.Second)
	fillStart := time.Now()
	series, samples, err := fill(db, o, now)
	if err != nil {
		return err
	}
	fillTook := time.Since(fillStart)

	var docs []policy.Document
	for i := range o.slos {
		var y string
		if i%5 == 4 {
			y = fmt.Sprintf("kind: SLO\nname: svc-%d-latency\nservice: svc-%d\nobjective: 99\nindicator:\n  type: latency\n  threshold: 250ms\n", i, i%o.services)
		} else {
			y = fmt.Sprintf("kind: SLO\nname: svc-%d-availability\nservice: svc-%d\nobjective: 99.9\n", i, i%o.services)
		}
		d, err := policy.Load([]byte(y))
		if err != nil {
			return err
		}
		docs = append(docs, d...)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute})
	rl, err := ruler.New(ruler.Config{EvalInterval: o.eval}, engine, db, db, nil, logger)
	if err != nil {
		return err
	}
	groups, errs := slo.RuleGroups(docs, slo.Options{EvalInterval: o.eval})
	if len(errs) > 0 {
		return fmt.Errorf("generating rules: %v", errs)
	}
	if err := rl.SetGenerated(slo.RuleSource, groups); err != nil {
		return err
	}
	gs := rl.RuleGroups()
	nRules := 0
	for _, g := range gs {
		nRules += len(g.Rules())
	}

	ctx := context.Background()
	// Cycle k evaluates every group whose interval divides k evaluation
	// intervals: the page groups every cycle, the ticket groups every
	// SlowInterval. Cycle 0 (all groups) warms up.
	cycle := func(k int, ts time.Time) {
		for _, g := range gs {
			if every := int(g.Interval() / o.eval); every <= 1 || k%every == 0 {
				g.Eval(ctx, ts)
			}
		}
	}
	cycle(0, now)
	var walls, cpus, allocs []float64
	for i := range o.cycles {
		k := i + 1
		ts := now.Add(time.Duration(k) * o.eval)
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0 := cpuSeconds()
		start := time.Now()
		cycle(k, ts)
		walls = append(walls, time.Since(start).Seconds())
		cpus = append(cpus, cpuSeconds()-cpu0)
		runtime.ReadMemStats(&ms1)
		allocs = append(allocs, float64(ms1.TotalAlloc-ms0.TotalAlloc)/(1<<20))
	}
	failed := 0
	for _, g := range gs {
		for _, rule := range g.Rules() {
			if rule.LastError() != nil {
				failed++
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d rules failed to evaluate", failed)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	mean := func(v []float64) float64 {
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		return sum / float64(len(v))
	}
	avgWall, avgCPU, avgAlloc := mean(walls), mean(cpus), mean(allocs)
	slices.Sort(walls)
	slices.Sort(cpus)

	t := r.AddTable(fmt.Sprintf("%d SLOs over %d services, %s of history at %s", o.slos, o.services, o.history, o.interval),
		"SLOs", "rule groups", "rules", "input series", "cycles", "wall per cycle, mean (s)", "wall max (s)", "CPU per cycle, mean (s)", "CPU max (s)", "allocated per cycle (MiB)", "heap after GC (MiB)")
	t.AddRow(strconv.Itoa(o.slos), strconv.Itoa(len(gs)), strconv.Itoa(nRules), strconv.Itoa(series), strconv.Itoa(o.cycles),
		report.Num(avgWall), report.Num(walls[len(walls)-1]), report.Num(avgCPU), report.Num(cpus[len(cpus)-1]), report.Num(avgAlloc), report.Num(float64(ms.HeapAlloc)/(1<<20)))
	t.Note("a cycle is one evaluation interval: every page group (Group.Eval: the PromQL of each rule, then appending the results and ALERTS series to the TSDB) and, every %s, the ticket groups; groups evaluated one after another on one goroutine", slo.SlowInterval(o.eval))
	limit := 0.25 * o.eval.Seconds()
	tgt := r.AtMost(fmt.Sprintf("CPU of one evaluation cycle ≤ 25 %% of the %s evaluation interval", o.eval), limit, avgCPU, "s")
	tgt.Note = fmt.Sprintf("mean over %d cycles; the heaviest cycle (with the ticket groups) took %s s CPU; wall time %s s mean on the shared machine", o.cycles, report.Num(cpus[len(cpus)-1]), report.Num(avgWall))
	r.Note("history appended in %s (%d samples); 4 of 5 SLOs are availability (mesh_requests_total), 1 of 5 latency (mesh_request_duration_seconds buckets); windows 5m…3d over a %s history read every sample of the longer windows", fillTook.Round(time.Second), samples, o.history)
	r.Note("machine shared with other jobs (%d CPUs, load average %s at the start)", runtime.NumCPU(), r.Machine.LoadAverage)
	path, err := report.Write(o.out, r)
	if err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}

// fill appends the history of every service's inbound golden metrics.
func fill(db *tsdb.DB, o options, now time.Time) (series, samples int, err error) {
	type ser struct {
		l    labels.Labels
		rate float64 // increase per second
	}
	var ss []ser
	for i := range o.services {
		svc := "svc-" + strconv.Itoa(i)
		base := func(name string, kv ...string) labels.Labels {
			return labels.FromStrings(append([]string{"__name__", name, "direction", "inbound", "destination_service", svc, "destination_version", "v1", "source_service", "caller", "route", "unmatched", "protocol", "http1"}, kv...)...)
		}
		ss = append(ss,
			ser{base("mesh_requests_total", "outcome", "success", "status_code", "200"), 9.9},
			ser{base("mesh_requests_total", "outcome", "failure", "status_code", "503"), 0.1})
		for _, b := range []struct {
			le   string
			rate float64
		}{{"0.1", 9}, {"0.25", 9.9}, {"0.5", 9.95}, {"+Inf", 10}} {
			ss = append(ss, ser{base("mesh_request_duration_seconds_bucket", "outcome", "success", "le", b.le), b.rate})
		}
		ss = append(ss, ser{base("mesh_request_duration_seconds_count", "outcome", "success"), 10})
	}
	steps := int(o.history / o.interval)
	start := now.Add(-time.Duration(steps) * o.interval)
	for s := 0; s <= steps; s++ {
		app := db.Appender(context.Background())
		ts := start.Add(time.Duration(s) * o.interval).UnixMilli()
		for _, x := range ss {
			if _, err := app.Append(0, x.l, ts, x.rate*float64(s)*o.interval.Seconds()); err != nil {
				return 0, 0, err
			}
			samples++
		}
		if err := app.Commit(); err != nil {
			return 0, 0, err
		}
	}
	return len(ss), samples, nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
