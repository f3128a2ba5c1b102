// Command rollout benchmarks the rollout controller and writes
// bench/results/rollout.json: the CPU of one analysis interval for 100
// concurrent rollouts (each gathering its samples with PromQL from a real
// TSDB and, on the trace path, from the real embedded trace store, then
// judging them) and the decision latency from an interval's end to the
// route change in the policy store (fsynced).
//
//	make bench WHAT=rollout          # full run, about a minute
//	make bench-quick WHAT=rollout    # sanity run
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/rollout"
	"github.com/meshscope/meshscope/control/store"
	"github.com/meshscope/meshscope/query/red"
)

type options struct {
	quick     bool
	rollouts  int
	interval  time.Duration
	intervals int
	stableRPS int
	canaryRPS int
	out       string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench rollout:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "sanity run: shorter intervals, fewer of them")
	fs.IntVar(&o.rollouts, "rollouts", 100, "concurrent rollouts (one service each)")
	fs.DurationVar(&o.interval, "interval", 0, "analysis interval (default 5s; quick 2s)")
	fs.IntVar(&o.intervals, "intervals", 0, "measured intervals per path (default 6; quick 3)")
	fs.IntVar(&o.stableRPS, "stable-rps", 40, "requests per second of each stable version")
	fs.IntVar(&o.canaryRPS, "canary-rps", 10, "requests per second of each canary")
	fs.StringVar(&o.out, "out", "rollout", "results `file`, or the part name for bench/results/rollout[.quick].json")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if o.interval == 0 {
		o.interval = map[bool]time.Duration{false: 5 * time.Second, true: 2 * time.Second}[o.quick]
	}
	if o.intervals == 0 {
		o.intervals = map[bool]int{false: 6, true: 3}[o.quick]
	}
	if o.rollouts < 1 || o.intervals < 1 || o.interval < time.Second {
		return errors.New("-rollouts, -intervals ≥ 1 and -interval ≥ 1s required")
	}
	r := report.New("rollout")
	r.Title = fmt.Sprintf("Rollouts: analysis of %d concurrent rollouts", o.rollouts)
	r.Quick = o.quick
	dir, err := os.MkdirTemp("", "meshscope-bench-rollout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logger := slog.New(slog.DiscardHandler)

	// Telemetry covering the whole run: samples at 1 s from 30 s before
	// now to the end of both measured runs.
	now := time.Now().Truncate(time.Second)
	span := 30*time.Second + 2*time.Duration(o.intervals+2)*o.interval + 10*time.Second
	db, err := tsdb.Open(filepath.Join(dir, "tsdb"), logger, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return fmt.Errorf("opening TSDB: %w", err)
	}
	defer db.Close()
	fillStart := time.Now()
	series, err := fillMetrics(db, o, now.Add(-30*time.Second), span)
	if err != nil {
		return err
	}
	traces, err := embedded.New(embedded.Config{Dir: filepath.Join(dir, "traces")}, prometheus.NewRegistry(), logger)
	if err != nil {
		return err
	}
	defer traces.Close()
	nSpans, err := fillSpans(traces, o, now.Add(-30*time.Second), span)
	if err != nil {
		return err
	}
	r.Note("fixture: %d series and %d spans written in %s (one span per request, stable %d rps and canary %d rps per service)",
		series, nSpans, time.Since(fillStart).Round(time.Second), o.stableRPS, o.canaryRPS)

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	t := r.AddTable(fmt.Sprintf("%d rollouts, interval %s, %d intervals per path", o.rollouts, o.interval, o.intervals),
		"latency source", "intervals judged", "CPU per interval, all rollouts (s)", "CPU per rollout-interval (ms)",
		"decision latency p50 (ms)", "p99 (ms)", "max (ms)")
	var histCPU float64
	for _, withTraces := range []bool{false, true} {
		coll := rollout.Collector{Metrics: red.Source{Engine: engine, Queryable: db}}
		name := "histogram"
		if withTraces {
			coll.Traces = traces
			name = "traces"
		}
		res, err := measure(filepath.Join(dir, name), o, coll, logger)
		if err != nil {
			return fmt.Errorf("%s path: %w", name, err)
		}
		if res.source != name {
			return fmt.Errorf("%s path used %q latencies", name, res.source)
		}
		perInterval := res.cpu / float64(o.intervals)
		if !withTraces {
			histCPU = perInterval
		}
		slices.Sort(res.decisions)
		q := func(p float64) float64 { return 1000 * res.decisions[int(p*float64(len(res.decisions)-1))] }
		t.AddRow(name, strconv.Itoa(res.judged), report.Num(perInterval), report.Num(1000*perInterval/float64(o.rollouts)),
			report.Num(q(0.5)), report.Num(q(0.99)), report.Num(1000*res.decisions[len(res.decisions)-1]))
		if withTraces {
			r.AtMost(fmt.Sprintf("CPU per %s interval for %d rollouts, trace path, ≤ 10 %% of the interval", o.interval, o.rollouts),
				0.1*o.interval.Seconds(), perInterval, "s")
			r.AtMost("decision latency p99 (interval end → route fsynced), trace path", 1000, q(0.99), "ms").Note =
				"four workers judge the due rollouts; on the trace path each reads every matching trace by id, so the last of 100 rollouts waits for the trace reads of the others on 2 shared cores"
		}
	}
	t.Note("CPU is the process's user+system time over the measured intervals divided by their number; each rollout-interval is two PromQL queries (request counts by version and outcome; on the histogram path also the bucket increases), on the trace path a trace search per version and a read of every matching trace, the statistics, and a Route write to the policy store (fsync)")
	r.Note("histogram path: %s s CPU per interval for %d rollouts", report.Num(histCPU), o.rollouts)
	r.Note("machine shared with other jobs (%d CPUs, load average %s at the start)", runtime.NumCPU(), r.Machine.LoadAverage)
	path, err := report.Write(o.out, r)
	if err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}

type result struct {
	cpu       float64
	judged    int
	decisions []float64
	source    string
}

// measure runs a controller over o.rollouts Rollout documents for
// o.intervals intervals.
func measure(dir string, o options, coll rollout.Collector, logger *slog.Logger) (result, error) {
	var res result
	st, err := store.Open(filepath.Join(dir, "control"), prometheus.NewRegistry(), logger)
	if err != nil {
		return res, err
	}
	defer st.Close()
	var b strings.Builder
	for i := range o.rollouts {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "kind: Rollout\nname: svc-%d-v2\nservice: svc-%d\nstable: v1\ncanary: v2\nsteps: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]\ninterval: %s\nmin_requests: 10\nanalysis: {success_rate: {min: 99}}\n", i, i, o.interval)
	}
	docs, err := policy.Load([]byte(b.String()))
	if err != nil {
		return res, err
	}
	if _, err := st.Apply(docs, store.ApplyOptions{Who: "bench"}); err != nil {
		return res, err
	}
	c, err := rollout.New(rollout.Config{Dir: filepath.Join(dir, "rollouts"), Tick: 20 * time.Millisecond, Settle: -1}, st, coll, rollout.Options{}, prometheus.NewRegistry(), logger)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	// Wait for every rollout to start, skip the first interval (warm-up),
	// then measure.
	judged := func() int {
		n := 0
		for _, s := range c.List() {
			n += len(s.Intervals)
		}
		return n
	}
	deadline := time.Now().Add(time.Duration(o.intervals+3) * o.interval * 3)
	for judged() < o.rollouts {
		if time.Now().After(deadline) {
			cancel()
			return res, errors.New("warm-up interval not judged")
		}
		time.Sleep(10 * time.Millisecond)
	}
	base := judged()
	cpu0 := cpuSeconds()
	for judged() < base+o.intervals*o.rollouts {
		if time.Now().After(deadline) {
			cancel()
			return res, fmt.Errorf("judged %d of %d intervals", judged()-base, o.intervals*o.rollouts)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.cpu = cpuSeconds() - cpu0
	cancel()
	if err := <-done; err != nil {
		return res, err
	}
	for _, s := range c.List() {
		for i, iv := range s.Intervals {
			if i == 0 {
				continue // warm-up
			}
			res.judged++
			res.source = iv.Result.LatencySource
			if iv.Action != rollout.EventAdvanced {
				return res, fmt.Errorf("%s interval %d: %s (%s)", s.Name, i, iv.Action, iv.Result.Reason)
			}
			res.decisions = append(res.decisions, iv.DecisionSeconds)
		}
	}
	return res, nil
}

// fillMetrics appends the inbound golden metrics of every service's two
// versions at 1 s resolution over [from, from+span].
func fillMetrics(db *tsdb.DB, o options, from time.Time, span time.Duration) (int, error) {
	type ser struct {
		l    labels.Labels
		rate float64
	}
	var ss []ser
	for i := range o.rollouts {
		svc := "svc-" + strconv.Itoa(i)
		for _, v := range []struct {
			version string
			rps     float64
		}{{"v1", float64(o.stableRPS)}, {"v2", float64(o.canaryRPS)}} {
			base := func(name string, kv ...string) labels.Labels {
				return labels.FromStrings(append([]string{"__name__", name, "direction", "inbound", "destination_service", svc, "destination_version", v.version, "source_service", "caller", "route", "unmatched", "protocol", "http1"}, kv...)...)
			}
			ss = append(ss, ser{base("mesh_requests_total", "outcome", "success", "status_code", "200"), v.rps})
			for _, b := range []struct {
				le    string
				share float64
			}{{"0.005", 0.2}, {"0.01", 0.7}, {"0.025", 0.95}, {"0.05", 1}, {"+Inf", 1}} {
				ss = append(ss, ser{base("mesh_request_duration_seconds_bucket", "outcome", "success", "le", b.le), v.rps * b.share})
			}
		}
	}
	for s := 0; s <= int(span/time.Second); s++ {
		app := db.Appender(context.Background())
		ts := from.Add(time.Duration(s) * time.Second).UnixMilli()
		for _, x := range ss {
			if _, err := app.Append(0, x.l, ts, x.rate*float64(s)); err != nil {
				return 0, err
			}
		}
		if err := app.Commit(); err != nil {
			return 0, err
		}
	}
	return len(ss), nil
}

// fillSpans writes one SERVER span per request of every version.
func fillSpans(w *embedded.Store, o options, from time.Time, span time.Duration) (int, error) {
	n := 0
	var id uint64
	batch := make([]spans.Span, 0, 4096)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := w.WriteSpans(context.Background(), batch)
		n += len(batch)
		batch = batch[:0]
		return err
	}
	for s := 0; s < int(span/time.Second); s++ {
		sec := from.Add(time.Duration(s) * time.Second)
		for i := range o.rollouts {
			svc := "svc-" + strconv.Itoa(i)
			for _, v := range []struct {
				version string
				rps     int
			}{{"v1", o.stableRPS}, {"v2", o.canaryRPS}} {
				for k := range v.rps {
					id++
					var sp spans.Span
					binary.BigEndian.PutUint64(sp.TraceID[8:], id)
					binary.BigEndian.PutUint64(sp.SpanID[:], id)
					start := sec.Add(time.Duration(k) * time.Second / time.Duration(v.rps))
					// Durations vary (8.0–8.4 ms) but not enough to matter:
					// k runs with the time within each second, so an
					// interval that cuts a second skews a version's
					// median; with this spread the skew stays under 5 %,
					// inside the judge's 10 % tolerance, and a healthy
					// canary always advances. (4–12 ms let a 2 s interval
					// read +14 % and hold the canary.)
					dur := 8*time.Millisecond + time.Duration(k%9)*50*time.Microsecond
					sp.Service, sp.Name, sp.Kind = svc, "GET /items", spans.KindServer
					sp.StartUnixNano, sp.EndUnixNano = start.UnixNano(), start.Add(dur).UnixNano()
					sp.Attrs = []spans.Attr{spans.StringAttr("mesh.direction", "inbound"), spans.StringAttr("http.request.method", "GET")}
					sp.Resource = []spans.Attr{spans.StringAttr("service.version", v.version)}
					batch = append(batch, sp)
					if len(batch) == cap(batch) {
						if err := flush(); err != nil {
							return n, err
						}
					}
				}
			}
		}
	}
	return n, flush()
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
