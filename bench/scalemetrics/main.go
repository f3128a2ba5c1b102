// Command scalemetrics measures Meshscope servers over a shared metrics
// store (a real Prometheus, Debian package `prometheus`, with the
// remote-write receiver): the ingest throughput of 1, 2 and 3 `meshscope
// server --metrics-store remote` processes (OTLP spans and metric points
// accepted, samples landed in Prometheus), and the cost of one topology
// rebuild at 1,000 services over Prometheus — PromQL evaluated by the server
// over remote read (--remote-read-url) and by Prometheus over its HTTP API
// (--prometheus-url) — against the same data in the embedded TSDB.
//
//	make bench WHAT=scalemetrics
//	go run ./bench/scalemetrics -quick
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	colmetricspb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/collector/metricstore"
	"github.com/meshscope/meshscope/demo/freeport"
	"github.com/meshscope/meshscope/topology"
)

type options struct {
	quick     bool
	serverBin string
	duration  time.Duration
	clients   int
	services  int
	perSvc    int
	reps      int
	out       string
	keepTmp   bool
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "short run: 3 s per server count, 100 services")
	flag.StringVar(&o.serverBin, "server-bin", "", "meshscope `binary` (default: go build ./cmd/meshscope)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "load per server count")
	flag.IntVar(&o.clients, "clients", 6, "concurrent OTLP clients, spread round-robin over the servers")
	flag.IntVar(&o.services, "services", 1000, "services of the topology rebuild")
	flag.IntVar(&o.perSvc, "edges-per-service", 2, "edges per service of the topology rebuild")
	flag.IntVar(&o.reps, "reps", 3, "measured rebuilds per store")
	flag.BoolVar(&o.keepTmp, "keep-tmp", false, "keep the temp dir (data and logs)")
	flag.StringVar(&o.out, "out", "", "write the result here instead of bench/results/")
	flag.Parse()
	if o.quick {
		o.duration, o.services, o.reps = 3*time.Second, 100, 2
	}
	r := report.New("scalemetrics")
	r.Title = "Servers over a shared Prometheus (remote write; PromQL over remote read or the HTTP API)"
	r.Quick = o.quick
	if err := run(r, o); err != nil {
		log.Fatal(err)
	}
	dest := "scalemetrics"
	if o.out != "" {
		dest = o.out
	}
	path, err := report.Write(dest, r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", path)
}

func run(r *report.Result, o options) error {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		return errors.New("prometheus not installed (apt-get install prometheus)")
	}
	tmp, err := os.MkdirTemp("", "bench-scalemetrics-")
	if err != nil {
		return err
	}
	if o.keepTmp {
		fmt.Println("temp dir (kept):", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	bin := o.serverBin
	if bin == "" {
		bin = filepath.Join(tmp, "meshscope")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/meshscope").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}
	prom, err := startPrometheus(promBin, filepath.Join(tmp, "prom"))
	if err != nil {
		return err
	}
	defer prom.stop()

	// The rebuild first: the ingest's span-derived series would join its graph.
	topo := r.AddTable(fmt.Sprintf("One topology rebuild (window 1m, raw golden series, edge aggregates off), %d services, %d edges per service", o.services, o.perSvc),
		"store", "PromQL evaluated by", "series", "rebuild p50 ms", "rebuild max ms", "bytes received per rebuild, HTTP API", "bytes received per rebuild, remote read", "nodes", "edges")
	for _, remote := range []bool{false, true} {
		rows, err := rebuild(prom, filepath.Join(tmp, "topo-"+strconv.FormatBool(remote)), remote, o)
		if err != nil {
			return fmt.Errorf("topology rebuild (remote %v): %w", remote, err)
		}
		for _, row := range rows {
			bytes := [2]string{"-", "-"}
			if row.mode != modeEmbedded {
				bytes = [2]string{report.Num(row.bytes[0]), report.Num(row.bytes[1])}
			}
			topo.AddRow(row.mode, row.engine, strconv.Itoa(row.series), report.Num(ms(row.p50)), report.Num(ms(row.max)), bytes[0], bytes[1], strconv.Itoa(row.nodes), strconv.Itoa(row.edges))
		}
	}
	r.Note("remote read (--remote-read-url) ships every raw series of the window from Prometheus (chunked, snappy-compressed protobuf) and evaluates the PromQL in the server; its cost grows with the series, not with the samples per series. The remote PromQL engine (--prometheus-url) evaluates the rebuild's queries in Prometheus over its HTTP API and ships only their results (JSON, gzip); what the rebuild reads without PromQL still uses remote read. Bytes are counted on the server's connections to Prometheus (meshscope_metrics_remote_received_bytes_total), headers included")
	t := r.AddTable(fmt.Sprintf("Ingest into one shared Prometheus, %d OTLP/HTTP clients for %s per row (500 spans or 1,000 gauge points per request)", o.clients, o.duration),
		"servers", "spans/s accepted", "points/s accepted", "samples/s sent by the queues", "samples/s appended by Prometheus", "drain after load s", "failed requests")
	for n := 1; n <= 3; n++ {
		row, err := ingest(bin, prom, filepath.Join(tmp, "ingest-"+strconv.Itoa(n)), n, o)
		if err != nil {
			return fmt.Errorf("%d servers: %w", n, err)
		}
		t.AddRow(strconv.Itoa(n), report.Num(row.spansPerSec), report.Num(row.pointsPerSec), report.Num(row.sentPerSec), report.Num(row.landedPerSec),
			report.Num(row.drain.Seconds()), strconv.Itoa(row.failed))
	}
	r.Note("inconclusive for scaling: the servers, Prometheus and the load generator share this machine's %d CPUs (load average %s at the start), so more servers add no CPU here and the rows show the overhead of spreading the load, not the scaling of a cluster",
		r.Machine.Cores, r.Machine.LoadAverage)

	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// proc is a child process with its log in a file.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func start(logPath, bin string, readyURL string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(readyURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited (see %s)", bin, logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
	p.stop()
	return nil, fmt.Errorf("%s not ready within 90 s (see %s)", bin, logPath)
}

func freeAddr() (string, error) {
	a, err := freeport.Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

func startPrometheus(bin, dir string) (*proc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 10m\n"), 0o644); err != nil {
		return nil, err
	}
	p, err := start(dir+".log", bin, "http://"+addr+"/-/ready", "--config.file="+cfg, "--web.listen-address="+addr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.enable-remote-write-receiver", "--enable-feature=native-histograms")
	if err != nil {
		return nil, err
	}
	p.addr = addr
	return p, nil
}

// scrapeSum sums the samples of a metric family in a text exposition.
func scrapeSum(rawURL, name string) (float64, error) {
	resp, err := http.Get(rawURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, nil
}

type ingestRow struct {
	spansPerSec, pointsPerSec, sentPerSec, landedPerSec float64
	drain                                               time.Duration
	failed                                              int
}

// ingest starts n servers over prom and loads them for o.duration.
func ingest(bin string, prom *proc, dir string, n int, o options) (ingestRow, error) {
	var servers []*proc
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	var otlp []string
	for i := range n {
		var a [3]string
		for j := range a {
			addr, err := freeAddr()
			if err != nil {
				return ingestRow{}, err
			}
			a[j] = addr
		}
		sdir := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			return ingestRow{}, err
		}
		s, err := start(sdir+".log", bin, "http://"+a[0]+"/ready", "server", "--data", sdir, "--http", a[0], "--otlp-grpc", a[1], "--otlp-http", a[2],
			"--metrics-store", "remote", "--remote-write-url", "http://"+prom.addr+"/api/v1/write", "--prometheus-url", "http://"+prom.addr)
		if err != nil {
			return ingestRow{}, err
		}
		s.addr = a[0]
		servers = append(servers, s)
		otlp = append(otlp, a[2])
	}
	landed := func() (float64, error) {
		return scrapeSum("http://"+prom.addr+"/metrics", "prometheus_tsdb_head_samples_appended_total")
	}
	// Samples the servers' queues sent (their self-metrics and span-derived
	// series included).
	sentTotal := func() (float64, error) {
		total := 0.0
		for _, s := range servers {
			v, err := scrapeSum("http://"+s.addr+"/metrics", "prometheus_remote_storage_samples_total")
			if err != nil {
				return 0, err
			}
			total += v
		}
		return total, nil
	}
	landed0, err := landed()
	if err != nil {
		return ingestRow{}, err
	}
	sent0, err := sentTotal()
	if err != nil {
		return ingestRow{}, err
	}
	var spans, points atomic.Int64
	var failed atomic.Int64
	stop := time.Now().Add(o.duration)
	var wg sync.WaitGroup
	for c := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			target := otlp[c%len(otlp)]
			for i := 0; time.Now().Before(stop); i++ {
				var path string
				var body []byte
				var count int64
				if i%2 == 0 {
					path, body, count = "/v1/traces", mustMarshal(spanRequest(c, i, 250)), 500
				} else {
					path, body, count = "/v1/metrics", mustMarshal(pointsRequest(c, 1000)), 1000
				}
				resp, err := hc.Post("http://"+target+path, "application/x-protobuf", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Add(1)
					continue
				}
				if path == "/v1/traces" {
					spans.Add(count)
				} else {
					points.Add(count)
				}
			}
		}()
	}
	t0 := time.Now()
	wg.Wait()
	load := time.Since(t0)
	// Drained when, twice 500 ms apart, every server's queue has sent up to
	// the newest sample it appended (Prometheus' lag measure: highest
	// timestamp appended vs highest sent, a maximum over the shards) and
	// holds no sample in its shards.
	drainStart := time.Now()
	for calm := 0; calm < 2 && time.Since(drainStart) < 2*time.Minute; {
		behind := false
		for _, s := range servers {
			appended, err1 := scrapeSum("http://"+s.addr+"/metrics", "prometheus_remote_storage_highest_timestamp_in_seconds")
			sent, err2 := scrapeSum("http://"+s.addr+"/metrics", "prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
			pending, err3 := scrapeSum("http://"+s.addr+"/metrics", "prometheus_remote_storage_samples_pending")
			if err := errors.Join(err1, err2, err3); err != nil {
				return ingestRow{}, err
			}
			behind = behind || sent < appended || pending > 0
		}
		if behind {
			calm = 0
		} else {
			calm++
		}
		time.Sleep(500 * time.Millisecond)
	}
	drain := time.Since(drainStart)
	sent1, err := sentTotal()
	if err != nil {
		return ingestRow{}, err
	}
	landed1, err := landed()
	if err != nil {
		return ingestRow{}, err
	}
	return ingestRow{
		spansPerSec:  float64(spans.Load()) / load.Seconds(),
		pointsPerSec: float64(points.Load()) / load.Seconds(),
		sentPerSec:   (sent1 - sent0) / (load + drain).Seconds(),
		landedPerSec: (landed1 - landed0) / (load + drain).Seconds(),
		drain:        drain,
		failed:       int(failed.Load()),
	}, nil
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// spanRequest is pairs calls: a CLIENT span of svc-a and its SERVER child
// of svc-b, over 50 services.
func spanRequest(client, seq, pairs int) *coltracepb.ExportTraceServiceRequest {
	now := uint64(time.Now().UnixNano())
	var rs []*tracepb.ResourceSpans
	for i := range pairs {
		tid := make([]byte, 16)
		tid[0], tid[1], tid[2], tid[3], tid[4], tid[15] = byte(client), byte(seq), byte(seq>>8), byte(seq>>16), byte(i), 1
		tid[5] = byte(i >> 8)
		cid, sid := []byte{1, 0, 0, 0, 0, 0, 0, byte(i)}, []byte{2, 0, 0, 0, 0, 0, 0, byte(i)}
		src, dst := "svc-"+strconv.Itoa(i%50), "svc-"+strconv.Itoa((i*7+1)%50)
		rs = append(rs,
			&tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", src)}},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{TraceId: tid, SpanId: cid, Name: "GET /items", Kind: tracepb.Span_SPAN_KIND_CLIENT,
					StartTimeUnixNano: now, EndTimeUnixNano: now + 2_000_000}}}}},
			&tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", dst)}},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{TraceId: tid, SpanId: sid, ParentSpanId: cid, Name: "GET /items", Kind: tracepb.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: now + 100_000, EndTimeUnixNano: now + 1_900_000}}}}})
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: rs}
}

// pointsRequest is n gauge points of n series of one client.
func pointsRequest(client, n int) *colmetricspb.ExportMetricsServiceRequest {
	now := uint64(time.Now().UnixNano())
	dps := make([]*metricspb.NumberDataPoint, n)
	for i := range dps {
		dps[i] = &metricspb.NumberDataPoint{TimeUnixNano: now, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: float64(i)},
			Attributes: []*commonpb.KeyValue{strAttr("series", strconv.Itoa(i))}}
	}
	return &colmetricspb.ExportMetricsServiceRequest{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "load-"+strconv.Itoa(client))}},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{{Name: "bench_load_value",
			Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: dps}}}}}},
	}}}
}

type rebuildRow struct {
	mode, engine         string
	series, nodes, edges int
	bytes                [2]float64 // received from Prometheus per rebuild: HTTP API, remote read
	p50, max             time.Duration
}

// Rebuild modes.
const (
	modeEmbedded   = "embedded TSDB"
	modeRemoteRead = "shared Prometheus, --remote-read-url"
	modeRemoteAPI  = "shared Prometheus, --prometheus-url"
)

// rebuild loads the golden series of o.services services (10 s apart over
// 60 s) into an embedded TSDB or, through the remote store's write-ahead
// log and queue, into Prometheus, then times graph rebuilds over them: for
// Prometheus once with the server's engine over remote read and once with
// Prometheus' own engine over its HTTP API.
func rebuild(prom *proc, dir string, remote bool, o options) ([]rebuildRow, error) {
	var q storage.Queryable
	var app storage.Appendable
	var flush func() error
	var st *metricstore.Remote
	reg := prometheus.NewRegistry()
	if remote {
		var err error
		st, err = metricstore.OpenRemote(metricstore.RemoteConfig{
			WriteURL: "http://" + prom.addr + "/api/v1/write", PrometheusURL: "http://" + prom.addr, Server: "bench",
		}, dir, reg, nil)
		if err != nil {
			return nil, err
		}
		defer st.Close()
		before, err := scrapeSum("http://"+prom.addr+"/metrics", "prometheus_tsdb_head_samples_appended_total")
		if err != nil {
			return nil, err
		}
		q, app, flush = st, st, func() error { return waitLanded(prom, before) }
	} else {
		db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		q, app, flush = db, db, func() error { return nil }
	}
	ss := synth(o.services, o.perSvc, rand.New(rand.NewPCG(1, 2)))
	// Prometheus' queue sends only samples newer than its start, as
	// proxies' live samples are: the series' 7 samples, 10 s apart, start
	// just after it (a few are ahead of the clock, which Prometheus takes).
	at := time.Now().Add(62 * time.Second).Truncate(time.Second)
	for k := 6; k >= 0; k-- {
		a := app.Appender(context.Background())
		ts := at.Add(-time.Duration(k) * 10 * time.Second)
		for _, s := range ss {
			if _, err := a.Append(0, s.lset, ts.UnixMilli(), s.val(float64(ts.Unix()%100000))); err != nil {
				return nil, err
			}
		}
		if err := a.Commit(); err != nil {
			return nil, err
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	local := promql.NewEngine(promql.EngineOpts{MaxSamples: 500_000_000, Timeout: 10 * time.Minute, LookbackDelta: 5 * time.Minute, EnableAtModifier: true})
	type variant struct {
		mode, engine string
		e            promql.QueryEngine
	}
	variants := []variant{{modeEmbedded, "the server", local}}
	if remote {
		variants = []variant{{modeRemoteRead, "the server", local}, {modeRemoteAPI, "Prometheus " + promVersion(prom), st.Engine()}}
	}
	var rows []rebuildRow
	for _, v := range variants {
		off := false
		top, err := topology.New(topology.Config{QueryTimeout: 10 * time.Minute, EdgeAggregates: &off}, v.e, q, app, nil, nil)
		if err != nil {
			return nil, err
		}
		ctx := context.Background()
		g, err := top.Graph(ctx, at, time.Minute, topology.ViewService) // warm-up
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v.mode, err)
		}
		bytes0 := receivedBytes(reg)
		var durs []time.Duration
		for range o.reps {
			t0 := time.Now()
			if g, err = top.Graph(ctx, at, time.Minute, topology.ViewService); err != nil {
				return nil, fmt.Errorf("%s: %w", v.mode, err)
			}
			durs = append(durs, time.Since(t0))
		}
		if len(g.Edges) == 0 {
			return nil, fmt.Errorf("%s: the graph has no edges (%d nodes)", v.mode, len(g.Nodes))
		}
		slices.Sort(durs)
		rows = append(rows, rebuildRow{mode: v.mode, engine: v.engine, series: len(ss), nodes: len(g.Nodes), edges: len(g.Edges),
			bytes: perRebuild(receivedBytes(reg), bytes0, o.reps),
			p50:   durs[len(durs)/2], max: durs[len(durs)-1]})
	}
	return rows, nil
}

// receivedBytes are the bytes the remote store received from Prometheus:
// over the HTTP API, with remote read.
func receivedBytes(reg prometheus.Gatherer) [2]float64 {
	mfs, _ := reg.Gather()
	var out [2]float64
	for _, mf := range mfs {
		if mf.GetName() != "meshscope_metrics_remote_received_bytes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch {
				case l.GetName() == "api" && l.GetValue() == "query":
					out[0] += m.GetCounter().GetValue()
				case l.GetName() == "api" && l.GetValue() == "read":
					out[1] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func perRebuild(after, before [2]float64, reps int) [2]float64 {
	return [2]float64{(after[0] - before[0]) / float64(reps), (after[1] - before[1]) / float64(reps)}
}

// promVersion is the running Prometheus' version (its build info API).
func promVersion(prom *proc) string {
	resp, err := http.Get("http://" + prom.addr + "/api/v1/status/buildinfo")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	var bi struct {
		Data struct {
			Version string `json:"version"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&bi) != nil {
		return "?"
	}
	return bi.Data.Version
}

// waitLanded waits until Prometheus' head has grown past before and
// stopped growing (the queue sent everything).
func waitLanded(prom *proc, before float64) error {
	last, stable := -1.0, 0
	for range 1200 {
		v, err := scrapeSum("http://"+prom.addr+"/metrics", "prometheus_tsdb_head_samples_appended_total")
		if err != nil {
			return err
		}
		if v == last && v > before {
			stable++
			if stable >= 10 { // 2 s without a new sample, past the 1 s batch deadline
				return nil
			}
		} else {
			stable = 0
		}
		last = v
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("Prometheus still receiving samples after 4 minutes")
}

type series struct {
	lset labels.Labels
	val  func(sec float64) float64
}

var buckets = []string{"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "+Inf"}

// synth is the golden series of n services with perSvc edges each, both
// proxies of every call reporting.
func synth(n, perSvc int, rng *rand.Rand) []*series {
	var out []*series
	for i := range n {
		out = append(out, &series{labels.FromStrings("__name__", "meshscope_proxy_info", "service", "svc-"+strconv.Itoa(i), "version", "v1", "mode", "observe"),
			func(float64) float64 { return 1 }})
	}
	seen := map[[2]int]bool{}
	for len(seen) < n*perSvc {
		s, d := rng.IntN(n), rng.IntN(n)
		if s == d || seen[[2]int{s, d}] {
			continue
		}
		seen[[2]int{s, d}] = true
		rate, first := 1+9*rng.Float64(), rng.IntN(len(buckets)-1)
		for _, dir := range []string{"inbound", "outbound"} {
			common := []string{"direction", dir, "source_service", "svc-" + strconv.Itoa(s), "source_version", "v1",
				"destination_service", "svc-" + strconv.Itoa(d), "destination_version", "v1", "protocol", "http1", "route", "unmatched", "outcome", "success"}
			mk := func(name string, v func(float64) float64, extra ...string) {
				out = append(out, &series{labels.FromStrings(append(append([]string{"__name__", name}, common...), extra...)...), v})
			}
			mk("mesh_requests_total", func(t float64) float64 { return rate * t }, "status_code", "200")
			mk("mesh_request_bytes_total", func(t float64) float64 { return rate * t * 300 })
			mk("mesh_response_bytes_total", func(t float64) float64 { return rate * t * 2000 })
			for bi, le := range buckets {
				v := func(float64) float64 { return 0 }
				if bi >= first {
					v = func(t float64) float64 { return rate * t }
				}
				mk("mesh_request_duration_seconds_bucket", v, "le", le)
			}
			mk("mesh_request_duration_seconds_count", func(t float64) float64 { return rate * t })
			mk("mesh_request_duration_seconds_sum", func(t float64) float64 { return rate * t * 0.02 })
		}
	}
	return out
}
