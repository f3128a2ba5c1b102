// Command query benchmarks the query layer through its HTTP API and writes
// bench/results/query.json:
//
//   - PromQL latency of the UI's standard RED queries (request rate, success
//     rate, p99 per service, a 30-minute range of per-service rates) and of
//     the native RED tables (/api/mesh/services, /routes, /edges) over a real
//     TSDB holding the golden metrics of a 1,000-service mesh;
//
//   - trace search latency (Jaeger and native search, trace by id) over the
//     real embedded trace store.
//
//     make bench WHAT=query          # full run, about a minute
//     make bench-quick WHAT=query    # sanity run
//     go run ./bench/query -h        # flags
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
	"github.com/meshscope/meshscope/query"
	"github.com/meshscope/meshscope/topology"
)

type options struct {
	quick    bool
	services int
	fanout   int
	history  time.Duration
	interval time.Duration
	traces   int
	reps     int
	out      string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench query:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	fs.BoolVar(&o.quick, "quick", false, "sanity run: shorter history, fewer traces and repetitions")
	fs.IntVar(&o.services, "services", 1000, "services in the synthetic mesh")
	fs.IntVar(&o.fanout, "fanout", 2, "callees per service")
	fs.DurationVar(&o.history, "history", 0, "metric history to append (default 30m; quick 10m)")
	fs.DurationVar(&o.interval, "interval", 15*time.Second, "sample interval of the metric history")
	fs.IntVar(&o.traces, "traces", 0, "traces in the trace store (default 20000; quick 2000)")
	fs.IntVar(&o.reps, "reps", 0, "repetitions per measured request (default 30; quick 8)")
	fs.StringVar(&o.out, "out", "query", "results `file`, or the part name for bench/results/query[.quick].json")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured requests to this `file`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	def := func(v *int, full, quick int) {
		if *v == 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	def(&o.traces, 20000, 2000)
	def(&o.reps, 30, 8)
	if o.history == 0 {
		o.history = 30 * time.Minute
		if o.quick {
			o.history = 10 * time.Minute
		}
	}
	if o.services < 2 || o.fanout < 1 || o.interval <= 0 || o.traces < 1 || o.reps < 1 {
		return errors.New("-services ≥ 2, -fanout ≥ 1, -interval > 0, -traces ≥ 1 and -reps ≥ 1 required")
	}

	r := report.New("query")
	r.Title = "Query API: PromQL RED queries and trace search"
	r.Quick = o.quick
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "meshscope-bench-query-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	logger := slog.New(slog.DiscardHandler)
	db, err := tsdb.Open(dir+"/tsdb", logger, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return fmt.Errorf("opening TSDB: %w", err)
	}
	defer db.Close()
	now := time.Now().Truncate(time.Second)
	fillStart := time.Now()
	series, samples, err := fillMetrics(ctx, db, o, now)
	if err != nil {
		return err
	}
	fillTook := time.Since(fillStart)

	store, err := embedded.New(embedded.Config{Dir: dir + "/traces", NoSync: true}, nil, logger)
	if err != nil {
		return fmt.Errorf("opening trace store: %w", err)
	}
	defer store.Close()
	traceStart := time.Now()
	nSpans, ids, err := fillTraces(ctx, store, o, now)
	if err != nil {
		return err
	}
	traceTook := time.Since(traceStart)

	cfg := query.DefaultConfig()
	engine := promql.NewEngine(cfg.EngineOpts(nil, logger))
	topo, err := topology.New(topology.Config{}, engine, db, db, nil, logger)
	if err != nil {
		return err
	}
	api, err := query.New(cfg, engine, db, store, topo, nil, logger)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	svc := func(i int) string { return fmt.Sprintf("svc-%04d", i) }
	promq := func(q string) string { return "/api/v1/query?" + url.Values{"query": {q}, "time": {ts}}.Encode() }
	rangeq := func(q string) string {
		return "/api/v1/query_range?" + url.Values{"query": {q}, "start": {strconv.FormatInt(now.Add(-o.history).Unix(), 10)}, "end": {ts}, "step": {"30"}}.Encode()
	}
	at := "&at=" + ts
	promCases := []struct{ name, path string }{
		{"request rate per service", promq(`sum by (destination_service) (rate(mesh_requests_total{direction="inbound"}[1m]))`)},
		{"success rate per service", promq(`sum by (destination_service) (rate(mesh_requests_total{direction="inbound",outcome="success"}[1m])) / sum by (destination_service) (rate(mesh_requests_total{direction="inbound"}[1m]))`)},
		{"p99 latency per service", promq(`histogram_quantile(0.99, sum by (destination_service, le) (rate(mesh_request_duration_seconds_bucket{direction="inbound"}[1m])))`)},
		{"p99 latency of one service", promq(`histogram_quantile(0.99, sum by (le) (rate(mesh_request_duration_seconds_bucket{direction="inbound",destination_service="` + svc(7) + `"}[1m])))`)},
		{fmt.Sprintf("request rate per service, range %s step 30s", o.history), rangeq(`sum by (destination_service) (rate(mesh_requests_total{direction="inbound"}[1m]))`)},
		{fmt.Sprintf("one service's rps, range %s step 30s", o.history), rangeq(`sum(rate(mesh_requests_total{direction="inbound",destination_service="` + svc(7) + `"}[1m]))`)},
		{"native RED table per service (/api/mesh/services)", "/api/mesh/services?window=1m" + at},
		{"native RED table per route of one service", "/api/mesh/routes?window=1m&service=" + svc(7) + at},
		{"native RED table per edge (/api/mesh/edges)", "/api/mesh/edges?window=1m" + at},
		{"jaeger dependencies (1h)", "/jaeger/api/dependencies?endTs=" + strconv.FormatInt(now.UnixMilli(), 10) + "&lookback=3600000"},
		{"health (proxies reporting)", "/api/mesh/health"},
	}
	tbl := r.AddTable(fmt.Sprintf("PromQL through the HTTP API, %d services, %d edges (%d series, %d samples)", o.services, o.services*o.fanout, series, samples),
		"query", "p50 ms", "p95 ms", "max ms", "response KB")
	var worstRED, redP50 float64
	for _, c := range promCases {
		if c.path == "/api/mesh/health" {
			// Health looks at proxies seen in the last 2m of wall-clock time:
			// report them again now, as live proxies would.
			if err := touchProxies(ctx, db, o.services); err != nil {
				return err
			}
		}
		st, err := measure(ctx, srv.URL+c.path, o.reps)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		tbl.AddRow(c.name, report.Num(st.p50), report.Num(st.p95), report.Num(st.max), report.Num(float64(st.bytes)/1024))
		if c.name == "native RED table per service (/api/mesh/services)" {
			worstRED, redP50 = st.p95, st.p50
		}
	}
	tbl.Note("%d repetitions each after one warm-up request; TSDB filled with %s of history at %s intervals in %s", o.reps, o.history, o.interval, fillTook.Round(time.Millisecond))

	start := strconv.FormatInt(now.Add(-time.Hour).UnixMicro(), 10)
	end := strconv.FormatInt(now.UnixMicro(), 10)
	traceCases := []struct{ name, path string }{
		{"jaeger search by service, limit 20", "/jaeger/api/traces?" + url.Values{"service": {svc(7)}, "limit": {"20"}, "start": {start}, "end": {end}}.Encode()},
		{"jaeger search by service + tag + minDuration", "/jaeger/api/traces?" + url.Values{"service": {svc(7)}, "tags": {`{"http.response.status_code":"500"}`}, "minDuration": {"5ms"}, "limit": {"20"}, "start": {start}, "end": {end}}.Encode()},
		{"native search by service, limit 20", "/api/mesh/traces?" + url.Values{"service": {svc(7)}, "limit": {"20"}}.Encode()},
		{"native search errors of any service", "/api/mesh/traces?status=error&limit=20"},
		{"jaeger trace by id", "/jaeger/api/traces/" + ids[len(ids)/2].String()},
		{"native trace by id", "/api/mesh/traces/" + ids[len(ids)/3].String()},
		{"jaeger services", "/jaeger/api/services"},
	}
	tt := r.AddTable(fmt.Sprintf("Trace search through the HTTP API, embedded store, %d traces (%d spans)", len(ids), nSpans),
		"request", "p50 ms", "p95 ms", "max ms", "response KB")
	var worstSearch float64
	for _, c := range traceCases {
		st, err := measure(ctx, srv.URL+c.path, o.reps)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		tt.AddRow(c.name, report.Num(st.p50), report.Num(st.p95), report.Num(st.max), report.Num(float64(st.bytes)/1024))
		if c.name == "jaeger search by service, limit 20" {
			worstSearch = st.p95
		}
	}
	tt.Note("trace store filled in %s (NoSync); each trace has %d spans over %d services", traceTook.Round(time.Millisecond), spansPerTrace, spansPerTrace)

	tgt := r.AtMost("p95 of the per-service RED table at 1,000 services", 1000, worstRED, "ms")
	tgt.Note = fmt.Sprintf("p50 %s ms; the UI refreshes its tables every few seconds", report.Num(redP50))
	if !tgt.Met {
		tgt.Note += fmt.Sprintf("; missed on 2 CPUs shared with other jobs (load average %s at the start)", r.Machine.LoadAverage)
	}
	r.AtMost("p95 of a Jaeger trace search (limit 20)", 500, worstSearch, "ms")
	r.Note("server and client share the machine (%d CPUs, load average %s at the start, other jobs running); latencies include HTTP and JSON encoding", runtime.NumCPU(), r.Machine.LoadAverage)
	r.Note("the per-service and per-edge RED tables are 3 PromQL queries each (counts by outcome, bucket rates, a native-histogram probe; quantiles computed from the bucket rates with PromQL's own BucketQuantile) over all %d series of the mesh: their cost is the TSDB decoding each series' head chunk up to the window, which grows with the history kept in the head (rate[1m] at the end of a 2h head chunk reads the whole chunk)", series)
	path, err := report.Write(o.out, r)
	if err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return nil
}

type stats struct {
	p50, p95, max float64
	bytes         int
}

func measure(ctx context.Context, u string, reps int) (stats, error) {
	var st stats
	get := func() (time.Duration, int, error) {
		t0 := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return 0, 0, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, 0, err
		}
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("status %d: %.300s", resp.StatusCode, b)
		}
		return time.Since(t0), len(b), nil
	}
	if _, _, err := get(); err != nil { // warm-up
		return st, err
	}
	ds := make([]float64, 0, reps)
	for range reps {
		d, n, err := get()
		if err != nil {
			return st, err
		}
		ds = append(ds, float64(d)/float64(time.Millisecond))
		st.bytes = n
	}
	slices.Sort(ds)
	q := func(p float64) float64 { return ds[int(math.Ceil(p*float64(len(ds))))-1] }
	st.p50, st.p95, st.max = q(0.5), q(0.95), ds[len(ds)-1]
	return st, nil
}

var buckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// fillMetrics appends the golden metrics of a mesh where service i calls
// services (i*k+1) mod n for k = 1..fanout, through proxies on both sides.
func fillMetrics(ctx context.Context, app storage.Appendable, o options, now time.Time) (series, samples int, err error) {
	type ser struct {
		ls   labels.Labels
		rate float64 // increase per second
	}
	var all []ser
	rng := rand.New(rand.NewPCG(1, 2))
	svc := func(i int) string { return fmt.Sprintf("svc-%04d", i) }
	for i := range o.services {
		all = append(all, ser{labels.FromStrings("__name__", "meshscope_proxy_info", "service", svc(i), "version", "v1", "mode", "observe"), 0})
		for k := 1; k <= o.fanout; k++ {
			j := (i*k + 1) % o.services
			if j == i {
				j = (j + 1) % o.services
			}
			rps := 1 + rng.Float64()*20
			errFrac := 0.0
			if rng.IntN(10) == 0 {
				errFrac = 0.05
			}
			route := fmt.Sprintf("/api/r%d", k)
			for _, dir := range []string{"outbound", "inbound"} {
				for _, outcome := range []string{"success", "failure"} {
					frac := 1 - errFrac
					code := "200"
					if outcome == "failure" {
						frac, code = errFrac, "500"
					}
					if frac == 0 {
						continue
					}
					common := []string{"direction", dir, "source_service", svc(i), "source_version", "v1", "destination_service", svc(j),
						"destination_version", "v1", "outcome", outcome, "protocol", "http1", "route", route}
					rate := rps * frac
					all = append(all, ser{labels.FromStrings(append([]string{"__name__", "mesh_requests_total", "status_code", code}, common...)...), rate})
					median := 0.002 + rng.Float64()*0.05
					for _, le := range append(slices.Clone(buckets), math.Inf(1)) {
						cdf := 1 - math.Exp(-le/median*math.Ln2)
						leStr := strconv.FormatFloat(le, 'f', -1, 64)
						if math.IsInf(le, 1) {
							leStr, cdf = "+Inf", 1
						}
						all = append(all, ser{labels.FromStrings(append([]string{"__name__", "mesh_request_duration_seconds_bucket", "le", leStr}, common...)...), rate * cdf})
					}
					all = append(all,
						ser{labels.FromStrings(append([]string{"__name__", "mesh_request_duration_seconds_count"}, common...)...), rate},
						ser{labels.FromStrings(append([]string{"__name__", "mesh_request_duration_seconds_sum"}, common...)...), rate * median * 1.4})
				}
			}
		}
	}
	refs := make([]storage.SeriesRef, len(all))
	start := now.Add(-o.history)
	for t := start; !t.After(now); t = t.Add(o.interval) {
		a := app.Appender(ctx)
		el := t.Sub(start).Seconds()
		for i, s := range all {
			v := 1.0
			if s.rate > 0 || s.ls.Get("__name__") != "meshscope_proxy_info" {
				v = math.Floor(s.rate * el)
			}
			ref, err := a.Append(refs[i], s.ls, t.UnixMilli(), v)
			if err != nil {
				_ = a.Rollback()
				return 0, 0, fmt.Errorf("appending %s: %w", s.ls, err)
			}
			refs[i] = ref
			samples++
		}
		if err := a.Commit(); err != nil {
			return 0, 0, fmt.Errorf("committing samples: %w", err)
		}
	}
	return len(all), samples, nil
}

// touchProxies appends a current meshscope_proxy_info sample per service.
func touchProxies(ctx context.Context, app storage.Appendable, services int) error {
	a := app.Appender(ctx)
	t := time.Now().UnixMilli()
	for i := range services {
		ls := labels.FromStrings("__name__", "meshscope_proxy_info", "service", fmt.Sprintf("svc-%04d", i), "version", "v1", "mode", "observe")
		if _, err := a.Append(0, ls, t, 1); err != nil {
			_ = a.Rollback()
			return fmt.Errorf("appending proxy info: %w", err)
		}
	}
	return a.Commit()
}

const spansPerTrace = 4

// fillTraces writes traces of spansPerTrace spans along a call chain
// svc-a → svc-b → ... with 5 % errors, spread over the last 50 minutes.
func fillTraces(ctx context.Context, w interface {
	WriteSpans(context.Context, []spans.Span) error
}, o options, now time.Time) (int, []spans.TraceID, error) {
	rng := rand.New(rand.NewPCG(3, 4))
	svc := func(i int) string { return fmt.Sprintf("svc-%04d", i%o.services) }
	var batch []spans.Span
	ids := make([]spans.TraceID, 0, o.traces)
	n := 0
	for t := range o.traces {
		var tid spans.TraceID
		for i := range tid {
			tid[i] = byte(rng.UintN(256))
		}
		ids = append(ids, tid)
		start := now.Add(-time.Duration(rng.Int64N(int64(50 * time.Minute))))
		first := rng.IntN(o.services)
		isErr := rng.IntN(20) == 0
		var parent spans.SpanID
		for d := range spansPerTrace {
			var sid spans.SpanID
			for i := range sid {
				sid[i] = byte(rng.UintN(256))
			}
			s0 := start.Add(time.Duration(d) * time.Millisecond)
			dur := time.Duration(20-d*4)*time.Millisecond + time.Duration(rng.IntN(5000))*time.Microsecond
			code := int64(200)
			status := spans.StatusUnset
			if isErr {
				code, status = 500, spans.StatusError
			}
			batch = append(batch, spans.Span{
				TraceID: tid, SpanID: sid, ParentSpanID: parent,
				Service: svc(first + d*(t%7+1)), Name: fmt.Sprintf("GET /api/r%d", d%3), Kind: spans.KindServer,
				StartUnixNano: s0.UnixNano(), EndUnixNano: s0.Add(dur).UnixNano(), StatusCode: status,
				Attrs:    []spans.Attr{spans.StringAttr("http.request.method", "GET"), spans.IntAttr("http.response.status_code", code)},
				Resource: []spans.Attr{spans.StringAttr("service.version", "v1")},
			})
			parent = sid
			n++
		}
		if len(batch) >= 4096 {
			if err := w.WriteSpans(ctx, batch); err != nil {
				return 0, nil, fmt.Errorf("writing spans: %w", err)
			}
			batch = nil
		}
	}
	if len(batch) > 0 {
		if err := w.WriteSpans(ctx, batch); err != nil {
			return 0, nil, fmt.Errorf("writing spans: %w", err)
		}
	}
	return n, ids, nil
}
