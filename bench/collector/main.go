// Command collector benchmarks the collector's ingest path and the embedded
// trace store: OTLP/gRPC ingest rate into the durable store, bytes per span
// on disk, trace-by-id and service+duration search latency, and the memory
// ceiling of the process during ingest.
//
//	go run ./bench/collector [-quick] [-spans N]
package main

import (
	"context"
	"flag"
	"fmt"
	"iter"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/collector"
	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/collector/otlp"
	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
)

var (
	quick      = flag.Bool("quick", false, "short run (100k spans)")
	numSpans   = flag.String("spans", "1000000,10000000", "spans to ingest; a comma list (1000000,10000000) measures queries at each count")
	senders    = flag.Int("senders", 4, "concurrent OTLP/gRPC exporters")
	batchSize  = flag.Int("batch", 512, "spans per export request (the OTel SDK default)")
	queries    = flag.Int("queries", 500, "queries per latency measurement")
	cpuProfile = flag.String("cpuprofile", "", "write a CPU profile of the ingest phase to this file")
)

const services = 10

func kv(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func kvInt(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

// gen builds traces of 5–50 spans with 10 attributes each, spread over
// services, and cuts them into export requests of batchSize spans.
type gen struct {
	rng    *rand.Rand
	base   time.Time
	ids    []spans.TraceID
	reqIDs []string // request.id of each trace's first span
}

func (g *gen) trace() []*tracepb.Span {
	n := 5 + g.rng.IntN(46)
	var tid [16]byte
	for i := range tid {
		tid[i] = byte(g.rng.Uint32())
	}
	g.ids = append(g.ids, tid)
	start := g.base.Add(time.Duration(len(g.ids)) * time.Millisecond)
	out := make([]*tracepb.Span, n)
	var parent []byte
	for i := range out {
		sid := make([]byte, 8)
		for j := range sid {
			sid[j] = byte(g.rng.Uint32())
		}
		svc := g.rng.IntN(services)
		dur := time.Duration(g.rng.ExpFloat64() * float64(20*time.Millisecond))
		st := start.Add(time.Duration(i) * 100 * time.Microsecond)
		status := &tracepb.Status{}
		if g.rng.IntN(50) == 0 {
			status.Code = tracepb.Status_STATUS_CODE_ERROR
		}
		out[i] = &tracepb.Span{
			TraceId: tid[:], SpanId: sid, ParentSpanId: parent,
			Name:              fmt.Sprintf("GET /api/v1/resource%d", g.rng.IntN(20)),
			Kind:              tracepb.Span_SpanKind(1 + g.rng.IntN(3)),
			StartTimeUnixNano: uint64(st.UnixNano()), EndTimeUnixNano: uint64(st.Add(dur).UnixNano()),
			Status: status,
			Attributes: []*commonpb.KeyValue{
				kv("http.method", "GET"), kvInt("http.status_code", 200), kv("http.route", "/api/v1/resource/{id}"),
				kv("net.peer.name", fmt.Sprintf("svc-%d", svc)), kvInt("net.peer.port", 8080),
				kv("user_agent.original", "Go-http-client/1.1"), kv("mesh.direction", "inbound"),
				kv("mesh.source_service", fmt.Sprintf("svc-%d", g.rng.IntN(services))),
				kvInt("http.response_content_length", int64(g.rng.IntN(100000))),
				kv("request.id", fmt.Sprintf("%016x", g.rng.Uint64())),
			},
		}
		if i == 0 {
			g.reqIDs = append(g.reqIDs, out[i].Attributes[9].GetValue().GetStringValue())
		}
		parent = sid
	}
	return out
}

// requests yields export requests of batch spans (whole traces, so the
// last may be larger) until total spans were produced.
func requests(g *gen, total, batch int) iter.Seq[*coltracepb.ExportTraceServiceRequest] {
	return func(yield func(*coltracepb.ExportTraceServiceRequest) bool) {
		perSvc := map[int][]*tracepb.Span{}
		count, inBatch := 0, 0
		flush := func() bool {
			req := &coltracepb.ExportTraceServiceRequest{}
			for svc, sps := range perSvc {
				req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
					Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", fmt.Sprintf("svc-%d", svc)), kv("host.name", "node-1")}},
					ScopeSpans: []*tracepb.ScopeSpans{{Scope: &commonpb.InstrumentationScope{Name: "meshscope-proxy"}, Spans: sps}},
				})
			}
			perSvc = map[int][]*tracepb.Span{}
			inBatch = 0
			return yield(req)
		}
		for count < total {
			for _, sp := range g.trace() {
				svc := g.rng.IntN(services)
				perSvc[svc] = append(perSvc[svc], sp)
				count++
				inBatch++
			}
			if inBatch >= batch && !flush() {
				return
			}
		}
		if inBatch > 0 {
			flush()
		}
	}
}

// storeOnly measures the embedded store's own ingest rate: already
// translated spans written by 4 goroutines in 512-span batches, fsync on.
func storeOnly(dir string, n int) (float64, error) {
	st, err := embedded.New(embedded.Config{Dir: dir, MaxBytes: 100 << 30}, nil, nil)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	g := &gen{rng: rand.New(rand.NewPCG(9, 9)), base: time.Now().Add(-time.Hour)}
	var batches [][]spans.Span
	for req := range requests(g, min(n, 200_000), 512) {
		b, _ := otlp.Spans(nil, req)
		batches = append(batches, b)
	}
	total := 0
	rounds := max(1, n/200_000)
	var next atomic.Int64
	var wg sync.WaitGroup
	var werr error
	var once sync.Once
	t0 := time.Now()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches)*rounds {
					return
				}
				if err := st.WriteSpans(context.Background(), batches[i%len(batches)]); err != nil {
					once.Do(func() { werr = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, b := range batches {
		total += len(b)
	}
	return float64(total*rounds) / time.Since(t0).Seconds(), werr
}

// measureQueries runs the query mix against store and adds rows to qt.
// It returns the trace-by-id and service+duration p50 in ms.
func measureQueries(ctx context.Context, store *embedded.Store, gens []*gen, rng *rand.Rand, qt *report.Table, label string) (float64, float64, error) {
	var byID, search, searchAttr, searchRare []time.Duration
	for range *queries {
		g := gens[rng.IntN(len(gens))]
		id := g.ids[rng.IntN(len(g.ids))]
		t := time.Now()
		sps, err := store.Trace(ctx, id)
		byID = append(byID, time.Since(t))
		if err != nil || len(sps) < 5 {
			return 0, 0, fmt.Errorf("trace %s: %d spans, %v", id, len(sps), err)
		}
	}
	for range *queries {
		q := tracestore.Query{Service: fmt.Sprintf("svc-%d", rng.IntN(services)), MinDuration: 50 * time.Millisecond, Limit: 20}
		t := time.Now()
		if _, err := store.Search(ctx, q); err != nil {
			return 0, 0, err
		}
		search = append(search, time.Since(t))
	}
	for range *queries {
		g := gens[rng.IntN(len(gens))]
		k := rng.IntN(len(g.reqIDs))
		q := tracestore.Query{Attrs: map[string]string{"request.id": g.reqIDs[k]}, Limit: 20}
		t := time.Now()
		refs, err := store.Search(ctx, q)
		if err != nil {
			return 0, 0, err
		}
		searchRare = append(searchRare, time.Since(t))
		if len(refs) != 1 || refs[0].TraceID != g.ids[k] {
			return 0, 0, fmt.Errorf("search request.id=%s: got %v, want trace %s", g.reqIDs[k], refs, g.ids[k])
		}
	}
	for range max(*queries/10, 5) {
		q := tracestore.Query{Service: fmt.Sprintf("svc-%d", rng.IntN(services)), Attrs: map[string]string{"http.status_code": "200"}, Limit: 20}
		t := time.Now()
		if _, err := store.Search(ctx, q); err != nil {
			return 0, 0, err
		}
		searchAttr = append(searchAttr, time.Since(t))
	}
	qt.AddRow(label, "trace by id", report.Num(pct(byID, 0.5)), report.Num(pct(byID, 0.99)))
	qt.AddRow(label, "service + min duration, limit 20", report.Num(pct(search, 0.5)), report.Num(pct(search, 0.99)))
	qt.AddRow(label, "rare attribute (request.id of one span), limit 20", report.Num(pct(searchRare, 0.5)), report.Num(pct(searchRare, 0.99)))
	qt.AddRow(label, "service + common attribute (http.status_code=200 on every span), limit 20", report.Num(pct(searchAttr, 0.5)), report.Num(pct(searchAttr, 0.99)))
	return pct(byID, 0.5), pct(search, 0.5), nil
}

func pct(d []time.Duration, p float64) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000
}

func main() {
	flag.Parse()
	if *quick {
		*numSpans = "100000"
		*queries = 100
	}
	r := report.New("collector")
	r.Title = "Collector ingest and embedded trace store"
	r.Quick = *quick
	if err := run(r); err != nil {
		log.Fatal(err)
	}
	path, err := report.Write("collector", r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", path)
}

func run(r *report.Result) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "meshscope-bench-collector-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	base := time.Now().Add(-time.Hour)
	gens := make([]*gen, *senders)
	for i := range gens {
		gens[i] = &gen{rng: rand.New(rand.NewPCG(uint64(i), 2)), base: base}
	}
	var checkpoints []int
	for _, f := range strings.Split(*numSpans, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || (len(checkpoints) > 0 && n <= checkpoints[len(checkpoints)-1]) {
			return fmt.Errorf("-spans %q: want increasing positive counts", *numSpans)
		}
		checkpoints = append(checkpoints, n)
	}
	var sent atomic.Int64
	runtime.GC()
	procstat.ResetPeakRSS(os.Getpid())

	store, err := embedded.New(embedded.Config{Dir: dir + "/traces", MaxBytes: 100 << 30, Retention: 24 * time.Hour}, nil, nil)
	if err != nil {
		return err
	}
	defer store.Close()
	ms, err := metricstore.New(metricstore.Config{Dir: dir + "/metrics"}, nil, nil)
	if err != nil {
		return err
	}
	defer ms.Close()
	col, err := collector.New(collector.Config{OTLPGRPC: "127.0.0.1:0", OTLPHTTP: collector.Off},
		collector.Sinks{Spans: store, Metrics: ms}, prometheus.NewRegistry(), nil)
	if err != nil {
		return err
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- col.Run(cctx) }()
	conn, err := grpc.NewClient(col.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return err
	}
	client := coltracepb.NewTraceServiceClient(conn)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	t := r.AddTable("Ingest (OTLP/gRPC → batch → embedded store, fsync before ack)",
		"spans stored", "senders", "spans/request", "spans/s", "B/span on disk", "peak RSS MiB")
	t.Note("Load generator (which builds and marshals the OTLP requests while sending), collector and store share one process and the machine's %d cores.", runtime.NumCPU())
	qt := r.AddTable("Query latency", "spans stored", "query", "p50 ms", "p99 ms")
	rng := rand.New(rand.NewPCG(3, 4))
	var rate, bytesPerSpan, lastByID, lastSearch float64
	var label string
	var retries atomic.Int64
	var total int
	for pi, target := range checkpoints {
		perSender := (target - total) / *senders
		var wg sync.WaitGroup
		var sendErr error
		var once sync.Once
		t0 := time.Now()
		before := sent.Load()
		for w := range *senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Requests are generated while sending, one at a time, so memory
				// measures the collector, not a pre-built load.
				for req := range requests(gens[w], perSender, *batchSize) {
					for {
						_, err := client.Export(ctx, req)
						if err == nil {
							for _, rs := range req.ResourceSpans {
								sent.Add(int64(len(rs.ScopeSpans[0].Spans)))
							}
							break
						}
						if retries.Add(1) > 100000 {
							once.Do(func() { sendErr = err })
							return
						}
						time.Sleep(10 * time.Millisecond)
					}
				}
			}()
		}
		wg.Wait()
		if sendErr != nil {
			return fmt.Errorf("export: %w", sendErr)
		}
		total = int(sent.Load())
		rate = float64(total-int(before)) / time.Since(t0).Seconds()
		peak, _ := procstat.PeakRSS(os.Getpid())
		bytesPerSpan = float64(store.DiskBytes()) / float64(total)
		label = report.Num(float64(total)/1e6) + "M"
		t.AddRow(label, fmt.Sprint(*senders), fmt.Sprint(*batchSize), report.Num(rate), report.Num(bytesPerSpan), report.Num(float64(peak)/(1<<20)))
		last := pi == len(checkpoints)-1
		if last {
			// Reopen: measures replay time and queries a store as after a restart.
			conn.Close()
			stop()
			<-done
			store.Close()
			t1 := time.Now()
			store, err = embedded.New(embedded.Config{Dir: dir + "/traces", MaxBytes: 100 << 30, Retention: 24 * time.Hour}, nil, nil)
			if err != nil {
				return err
			}
			t.Note("Replay of %s spans at restart: %s s.", label, report.Num(time.Since(t1).Seconds()))
		}
		byID, search, err := measureQueries(ctx, store, gens, rng, qt, label)
		if err != nil {
			return err
		}
		lastByID, lastSearch = byID, search
	}
	runtime.GC()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	qt.Note("Heap in use at %s after queries and a GC: %s MiB (in-memory index plus a 32 MiB record cache). The last row set is measured after a restart.", label, report.Num(float64(mem.HeapInuse)/(1<<20)))
	storeRate, err := storeOnly(dir+"/store-only", min(total, 2_000_000))
	if err != nil {
		return err
	}
	t.AddRow("store only: WriteSpans, 4 writers", "4", "512", report.Num(storeRate), "", "")

	ti := r.AtLeast("ingest rate (last phase, OTLP/gRPC end to end)", 100_000, rate, "spans/s")
	r.AtMost("bytes per span on disk", 80, bytesPerSpan, "B")
	if rate < 100_000 {
		ti.Note = "one process runs the load generator (building and marshalling OTLP requests), the gRPC server, translation and the store on 2 shared cores; the store alone takes the rate in the store-only row"
	}
	tb := r.AtMost("trace by id p50 at "+label+" spans", 20, lastByID, "ms")
	ts := r.AtMost("service+duration search p50 at "+label+" spans", 50, lastSearch, "ms")
	if total < 10_000_000 {
		tb.Note = "measured at " + label + ", not the 10M of the target"
		ts.Note = tb.Note
	}
	end := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		end = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	r.Note("Load average at start: %s; at the end: %s (the machine is shared with other jobs: rates vary run to run).", r.Machine.LoadAverage, end)
	return nil
}
