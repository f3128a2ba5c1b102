// Command collector benchmarks Meshscope's trace ingest and embedded trace
// store side by side with Jaeger all-in-one (cmd/jaeger v1.75.0, Badger
// storage), on the same OTLP/gRPC load from the same external generator
// process (bench/collector/otlpgen), for realistic and adversarial data.
//
// For each system and data set it starts the server on a fresh data
// directory, sends the spans up to each checkpoint (1 M, 10 M), then stops
// the server, measures the data directory, restarts it with the data in
// place (start-up = until the query API answers with the stored services)
// and times trace-by-id and searches (limit 20) through the Jaeger query
// API, which both serve (Meshscope under /jaeger).
//
//	make bench WHAT=collector
//	go run ./bench/collector -quick
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/demo/freeport"
)

type options struct {
	quick       bool
	checkpoints []int
	datasets    []loadgen.TraceMode
	systems     []string
	senders     int
	batch       int
	queries     int
	jaegerBin   string
	serverBin   string
	jaegerSync  bool
	keep        bool
	// limits caps the checkpoints of one system on one data set
	// ("jaeger/adversarial" → spans), so a long comparator run can stop
	// earlier than the others.
	limits map[string]int
}

func main() {
	var o options
	spansFlag := flag.String("spans", "1000000,10000000", "checkpoints: spans stored when queries are measured (increasing, comma-separated)")
	dataFlag := flag.String("data", "realistic,adversarial", "data sets: realistic, adversarial")
	sysFlag := flag.String("systems", "meshscope,jaeger", "systems to measure: meshscope, jaeger")
	flag.BoolVar(&o.quick, "quick", false, "short run: 100k and 300k spans, 50 queries per kind")
	flag.IntVar(&o.senders, "senders", 4, "concurrent OTLP/gRPC senders of the generator")
	flag.IntVar(&o.batch, "batch", 1000, "spans per export request")
	flag.IntVar(&o.queries, "queries", 200, "queries per kind and checkpoint")
	flag.StringVar(&o.serverBin, "server-bin", "", "meshscope `binary` (default: go build ./cmd/meshscope)")
	flag.StringVar(&o.jaegerBin, "jaeger-bin", "", "jaeger `binary` (default: build bench/collector/jaeger's tool into bench/collector/jaeger/bin)")
	flag.BoolVar(&o.jaegerSync, "jaeger-sync", false, "run Badger with consistency: true (SyncWrites); the default is the shipped config-badger.yaml's false")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directories (bench/results/tmp/collector-*)")
	limitFlag := flag.String("limit", "", "stop one system on one data set at fewer spans: `system/data=spans`, comma-separated (e.g. jaeger/adversarial=1000000)")
	flag.Parse()
	if o.quick {
		*spansFlag = "100000,300000"
		o.queries = 50
	}
	for _, f := range strings.Split(*spansFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || (len(o.checkpoints) > 0 && n <= o.checkpoints[len(o.checkpoints)-1]) {
			log.Fatalf("-spans %q: want increasing positive counts", *spansFlag)
		}
		o.checkpoints = append(o.checkpoints, n)
	}
	for _, f := range strings.Split(*dataFlag, ",") {
		m, err := loadgen.ParseTraceMode(strings.TrimSpace(f))
		if err != nil {
			log.Fatalf("-data: %v", err)
		}
		o.datasets = append(o.datasets, m)
	}
	for _, f := range strings.Split(*sysFlag, ",") {
		if s := strings.TrimSpace(f); s != "meshscope" && s != "jaeger" {
			log.Fatalf("-systems: %q: want meshscope or jaeger", s)
		}
		o.systems = append(o.systems, strings.TrimSpace(f))
	}
	limits, err := parseLimits(*limitFlag)
	if err != nil {
		log.Fatalf("-limit: %v", err)
	}
	o.limits = limits
	r := report.New("collector")
	r.Title = "Trace ingest and storage: Meshscope vs Jaeger all-in-one (Badger)"
	r.Quick = o.quick
	if err := run(&o, r); err != nil {
		log.Fatal(err)
	}
	path, err := report.Write("collector", r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", path)
}

// parseLimits reads -limit's "system/data=spans" list.
func parseLimits(v string) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		key, val, ok := strings.Cut(f, "=")
		sys, data, ok2 := strings.Cut(key, "/")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%q: want system/data=spans", f)
		}
		if sys != "meshscope" && sys != "jaeger" {
			return nil, fmt.Errorf("%q: system %q: want meshscope or jaeger", f, sys)
		}
		if _, err := loadgen.ParseTraceMode(data); err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		n, err := strconv.Atoi(val)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: spans %q: want a positive count", f, val)
		}
		out[sys+"/"+data] = n
	}
	return out, nil
}

// server is one running system under test.
type server struct {
	name string
	cmd  *exec.Cmd
	otlp string // OTLP/gRPC host:port
	api  string // base URL of the Jaeger query API (…/api/services)
	log  string
	done chan struct{} // closed when the process exited
}

func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(120 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("%s did not stop within 120 s of SIGTERM (killed)", s.name)
	}
}

func freeAddr() string {
	a, err := freeport.Addrs(1)
	if err != nil {
		log.Fatal(err)
	}
	return a[0]
}

// launcher starts a system on a data directory, with the same ports on
// every start of that directory.
type launcher struct {
	name      string
	bin       string
	jaegerCfg string // jaeger only: config file
	otlp      string
	http      string
	extra     []string
}

func newLauncher(name, bin, dir string, o *options) (*launcher, error) {
	l := &launcher{name: name, bin: bin, otlp: freeAddr(), http: freeAddr()}
	if name == "jaeger" {
		l.jaegerCfg = filepath.Join(dir, "config.yaml")
		cfg := fmt.Sprintf(jaegerConfig, l.http, freeAddr(), filepath.Join(dir, "data", "keys"), filepath.Join(dir, "data", "values"), o.jaegerSync, l.otlp)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(l.jaegerCfg, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// jaegerConfig is cmd/jaeger's config-badger.yaml with loopback ports, no
// archive store, no health check and no self-metrics listener: OTLP/gRPC
// → batch processor → Badger, query API on http.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: main
    http:
      endpoint: %s
    grpc:
      endpoint: %s
  jaeger_storage:
    backends:
      main:
        badger:
          directories:
            keys: %s
            values: %s
          ephemeral: false
          consistency: %t
          ttl:
            spans: 48h
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
        max_recv_msg_size_mib: 64
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: main
`

// start launches the system on dir and waits until its query API answers
// (with at least one service when wantServices). It returns the server and
// how long it took.
func (l *launcher) start(dir string, wantServices bool) (*server, time.Duration, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, 0, err
	}
	s := &server{name: l.name, otlp: l.otlp, log: filepath.Join(dir, l.name+".log")}
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer logf.Close()
	if l.name == "jaeger" {
		s.cmd = exec.Command(l.bin, "--config", l.jaegerCfg)
		s.api = "http://" + l.http
	} else {
		s.cmd = exec.Command(l.bin, "server", "--data", filepath.Join(dir, "data"), "--http", l.http,
			"--otlp-grpc", l.otlp, "--otlp-http", "off", "--trace-max-bytes", "60GiB", "--log-level", "warn")
		s.api = "http://" + l.http + "/jaeger"
	}
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	t0 := time.Now()
	if err := s.cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", l.bin, err)
	}
	s.done = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.done) }() //nolint:errcheck // the exit is noticed through done
	for time.Since(t0) < 300*time.Second {
		var body struct {
			Data []string `json:"data"`
		}
		if err := getJSON(s.api+"/api/services", &body); err == nil && (!wantServices || len(body.Data) > 0) {
			return s, time.Since(t0), nil
		}
		select {
		case <-s.done:
			return nil, 0, fmt.Errorf("%s exited at start-up: %v; log tail:\n%s", l.name, s.cmd.ProcessState, logTail(s.log))
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.stop()
	return nil, 0, fmt.Errorf("%s did not answer /api/services within 300 s; log tail:\n%s", l.name, logTail(s.log))
}

func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

var httpc = &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

func get(u string) ([]byte, error) {
	resp, err := httpc.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %.300s", u, resp.StatusCode, b)
	}
	return b, nil
}

func getJSON(u string, v any) error {
	b, err := get(u)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// diskBytes is the space the files under dir take (allocated blocks, so
// sparse and preallocated files count as they use the disk).
func diskBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

type genSummary struct {
	Spans       int64   `json:"spans"`
	Retries     int64   `json:"retries"`
	Seconds     float64 `json:"seconds"`
	SpansPerSec float64 `json:"spans_per_sec"`
	RequestP50  float64 `json:"request_p50_ms"`
	RequestP99  float64 `json:"request_p99_ms"`
}

// checkpoint is what one system measured at one span count of one data set.
type checkpoint struct {
	spans         int64
	rate          float64 // spans/s accepted during this leg
	bytesPerSpan  float64
	peakIngestMiB float64
	rssMiB        float64 // after restart and queries
	startup       float64 // s
	lat           map[string][2]float64
	genP99        float64
	load1         string // 1-minute load average at the end of the leg
	retries       int64
}

var queryKinds = []string{"trace by id", "service", "service + operation", "tag (request.id of one trace)", "service + min duration 100ms"}

func run(o *options, r *report.Result) error {
	root, err := report.ModuleRoot()
	if err != nil {
		return err
	}
	tmp := filepath.Join(root, "bench", "results", "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	gen := filepath.Join(tmp, "otlpgen")
	if out, err := exec.Command("go", "build", "-o", gen, "./bench/collector/otlpgen").CombinedOutput(); err != nil {
		return fmt.Errorf("build otlpgen: %w\n%s", err, out)
	}
	bins := map[string]string{}
	for _, s := range o.systems {
		switch s {
		case "meshscope":
			bins[s] = o.serverBin
			if bins[s] == "" {
				bins[s] = filepath.Join(tmp, "meshscope")
				if out, err := exec.Command("go", "build", "-o", bins[s], "./cmd/meshscope").CombinedOutput(); err != nil {
					return fmt.Errorf("build meshscope: %w\n%s", err, out)
				}
			}
		}
	}

	results := map[string]map[loadgen.TraceMode][]checkpoint{}
	jaegerFailed := false
	for _, ds := range o.datasets {
		for _, sys := range o.systems {
			if sys == "jaeger" && bins[sys] == "" && !jaegerFailed {
				// Built when first needed, so Meshscope's runs overlap a cold build.
				bins[sys] = o.jaegerBin
				if bins[sys] == "" {
					b, err := buildJaeger(root)
					if err != nil {
						r.Note("Jaeger was not measured: building github.com/jaegertracing/jaeger/cmd/jaeger v1.75.0 (bench/collector/jaeger/go.mod) failed: %v", err)
						jaegerFailed = true
						continue
					}
					bins[sys] = b
				}
			}
			if bins[sys] == "" {
				continue
			}
			cps, err := measure(o, sys, bins[sys], gen, filepath.Join(tmp, "collector-"+sys+"-"+ds.String()), ds)
			if err != nil {
				return fmt.Errorf("%s, %s data: %w", sys, ds, err)
			}
			if results[sys] == nil {
				results[sys] = map[loadgen.TraceMode][]checkpoint{}
			}
			results[sys][ds] = cps
			// Write what is measured so far: a run stopped later keeps it.
			partial := *r
			partial.Tables, partial.Targets, partial.Notes = nil, nil, slices.Clone(r.Notes)
			partial.Note("Incomplete: written after %s on %s data; the run went on.", sys, ds)
			write(o, &partial, results)
			if _, err := report.Write("collector", &partial); err != nil {
				return err
			}
		}
	}
	write(o, r, results)
	return nil
}

// buildJaeger builds cmd/jaeger v1.75.0 from bench/collector/jaeger/go.mod
// into bench/collector/jaeger/bin (a no-op when the build cache is warm).
func buildJaeger(root string) (string, error) {
	bin := filepath.Join(root, "bench", "collector", "jaeger", "bin", "jaeger")
	t0 := time.Now()
	cmd := exec.Command("go", "build", "-o", bin, "github.com/jaegertracing/jaeger/cmd/jaeger")
	cmd.Dir = filepath.Join(root, "bench", "collector", "jaeger")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	log.Printf("jaeger built (or found in the build cache) in %.0f s", time.Since(t0).Seconds())
	return bin, nil
}

// measure runs one system through every checkpoint of one data set.
func measure(o *options, sys, bin, gen, dir string, ds loadgen.TraceMode) ([]checkpoint, error) {
	os.RemoveAll(dir)
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	l, err := newLauncher(sys, bin, dir, o)
	if err != nil {
		return nil, err
	}
	srv, _, err := l.start(dir, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if srv != nil {
			srv.stop()
		}
	}()
	// Span start times: the 50 minutes before the run; queries cover them.
	window := 50 * time.Minute
	dataStart := time.Now().Add(-55 * time.Minute).Truncate(time.Second)
	var samples []loadgen.TraceSample
	var out []checkpoint
	var stored int64
	rng := rand.New(rand.NewPCG(11, uint64(ds)))
	for ci, target := range o.checkpoints {
		if lim, ok := o.limits[sys+"/"+ds.String()]; ok && target > lim {
			log.Printf("%s %s: stopping at %d spans (-limit)", sys, ds, stored)
			break
		}
		cp := checkpoint{lat: map[string][2]float64{}}
		pid := srv.cmd.Process.Pid
		procstat.ResetPeakRSS(pid)
		sampleFile := filepath.Join(dir, fmt.Sprintf("samples-%d.json", ci))
		args := []string{"-addr", srv.otlp, "-spans", strconv.FormatInt(int64(target)-stored, 10),
			"-senders", strconv.Itoa(o.senders), "-batch", strconv.Itoa(o.batch), "-mode", ds.String(),
			"-seed", strconv.Itoa(ci + 1), "-start", strconv.FormatInt(dataStart.UnixNano(), 10),
			"-window", window.String(), "-samples", sampleFile}
		log.Printf("%s %s: sending %d spans", sys, ds, int64(target)-stored)
		cmd := exec.Command(gen, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		if err := cmd.Wait(); err != nil {
			return nil, fmt.Errorf("otlpgen: %w: %s", err, stderr.String())
		}
		var gs genSummary
		if err := json.Unmarshal(stdout.Bytes(), &gs); err != nil {
			return nil, fmt.Errorf("otlpgen output %q: %w", stdout.String(), err)
		}
		var more []loadgen.TraceSample
		if b, err := os.ReadFile(sampleFile); err != nil || json.Unmarshal(b, &more) != nil {
			return nil, fmt.Errorf("otlpgen samples %s: %v", sampleFile, err)
		}
		samples = append(samples, more...)
		stored += gs.Spans
		cp.spans, cp.rate, cp.genP99, cp.retries = stored, gs.SpansPerSec, gs.RequestP99, gs.Retries
		if b, err := os.ReadFile("/proc/loadavg"); err == nil {
			cp.load1 = strings.Fields(string(b))[0]
		}
		if peak, err := procstat.PeakRSS(pid); err == nil {
			cp.peakIngestMiB = float64(peak) / (1 << 20)
		}
		log.Printf("%s %s: %d spans stored, %.0f spans/s, peak RSS %.0f MiB", sys, ds, stored, cp.rate, cp.peakIngestMiB)
		// Restart with the data in place.
		if err := srv.stop(); err != nil {
			return nil, err
		}
		srv = nil
		b, err := diskBytes(filepath.Join(dir, "data"))
		if err != nil {
			return nil, err
		}
		cp.bytesPerSpan = float64(b) / float64(stored)
		s, took, err := l.start(dir, true)
		if err != nil {
			return nil, err
		}
		srv = s
		cp.startup = took.Seconds()
		if err := queries(o, srv, samples, rng, dataStart, window, &cp); err != nil {
			return nil, err
		}
		if rss, err := procstat.RSS(srv.cmd.Process.Pid); err == nil {
			cp.rssMiB = float64(rss) / (1 << 20)
		}
		log.Printf("%s %s: %.1f B/span, start-up %.2f s, RSS %.0f MiB, latency %v", sys, ds, cp.bytesPerSpan, cp.startup, cp.rssMiB, cp.lat)
		out = append(out, cp)
	}
	return out, nil
}

type jaegerTraces struct {
	Data []struct {
		TraceID string            `json:"traceID"`
		Spans   []json.RawMessage `json:"spans"`
	} `json:"data"`
}

// queries times every query kind o.queries times, sequentially, and checks
// the answers.
func queries(o *options, s *server, samples []loadgen.TraceSample, rng *rand.Rand, dataStart time.Time, window time.Duration, cp *checkpoint) error {
	span := fmt.Sprintf("&start=%d&end=%d&limit=20", dataStart.Add(-time.Minute).UnixMicro(), dataStart.Add(window+5*time.Minute).UnixMicro())
	for _, kind := range queryKinds {
		var lat []time.Duration
		empty := 0
		for range o.queries {
			smp := samples[rng.IntN(len(samples))]
			var u string
			switch kind {
			case "trace by id":
				u = s.api + "/api/traces/" + smp.TraceID
			case "service":
				u = s.api + "/api/traces?service=" + url.QueryEscape(smp.Service) + span
			case "service + operation":
				u = s.api + "/api/traces?service=" + url.QueryEscape(smp.Service) + "&operation=" + url.QueryEscape(smp.Operation) + span
			case "tag (request.id of one trace)":
				tags, _ := json.Marshal(map[string]string{"request.id": smp.RequestID})
				u = s.api + "/api/traces?service=" + url.QueryEscape(smp.Service) + "&tags=" + url.QueryEscape(string(tags)) + span
			default:
				u = s.api + "/api/traces?service=" + url.QueryEscape(smp.Service) + "&minDuration=100ms" + span
			}
			t0 := time.Now()
			b, err := get(u)
			lat = append(lat, time.Since(t0))
			if err != nil {
				return fmt.Errorf("%s query: %w", kind, err)
			}
			var tr jaegerTraces
			if err := json.Unmarshal(b, &tr); err != nil {
				return fmt.Errorf("%s query %s: %w", kind, u, err)
			}
			switch kind {
			case "trace by id":
				if len(tr.Data) != 1 || len(tr.Data[0].Spans) != smp.Spans {
					n := 0
					if len(tr.Data) > 0 {
						n = len(tr.Data[0].Spans)
					}
					return fmt.Errorf("%s: trace %s: %d traces, %d spans; want 1 trace of %d spans", s.name, smp.TraceID, len(tr.Data), n, smp.Spans)
				}
			case "tag (request.id of one trace)":
				if len(tr.Data) != 1 || strings.TrimLeft(tr.Data[0].TraceID, "0") != strings.TrimLeft(smp.TraceID, "0") {
					return fmt.Errorf("%s: %s: want exactly trace %s, got %d traces", s.name, u, smp.TraceID, len(tr.Data))
				}
			default:
				if len(tr.Data) > 20 {
					return fmt.Errorf("%s: %s: %d traces for limit 20", s.name, u, len(tr.Data))
				}
				if len(tr.Data) == 0 {
					empty++
				}
			}
		}
		if kind == "service" && empty > 0 {
			return fmt.Errorf("%s: %d of %d service searches found nothing", s.name, empty, o.queries)
		}
		cp.lat[kind] = [2]float64{pct(lat, 0.5), pct(lat, 0.95)}
	}
	return nil
}

func pct(d []time.Duration, p float64) float64 {
	slices.Sort(d)
	return float64(d[int(math.Ceil(float64(len(d))*p))-1]) / float64(time.Millisecond)
}

func mib(v float64) string { return report.Num(v) }

func label(n int64) string {
	if n >= 1_000_000 {
		return report.Num(float64(n)/1e6) + "M"
	}
	return report.Num(float64(n)/1e3) + "k"
}

// write turns the measurements into tables and targets.
func write(o *options, r *report.Result, res map[string]map[loadgen.TraceMode][]checkpoint) {
	ti := r.AddTable("Ingest, size and start-up (same OTLP/gRPC load from one external generator process)",
		"data", "spans stored", "system", "spans/s accepted", "B/span on disk", "peak RSS MiB (ingest)", "RSS MiB (after restart + queries)", "start-up s (to query API answering)", "load avg (1 min) after ingest")
	ti.Note("Generator: bench/collector/otlpgen, a separate process, %d concurrent OTLP/gRPC senders, requests of ~%d spans (whole traces), each sender waiting for its answer (closed loop); spans/s is per leg (from the previous checkpoint to this one).", o.senders, o.batch)
	ti.Note("Meshscope: `meshscope server` (fsync of the trace store before the OTLP answer). Jaeger: `cmd/jaeger` v1.75.0 built from bench/collector/jaeger/go.mod, its config-badger.yaml pipeline (OTLP → batch processor → Badger, consistency %t): the batch processor answers the client before Badger writes, and Badger does not fsync per write unless consistency is true.", o.jaegerSync)
	for _, k := range slices.Sorted(maps.Keys(o.limits)) {
		n := o.limits[k]
		ti.Note("%s stopped at %s spans (-limit %s=%d): its rows end there.", k, label(int64(n)), k, n)
	}
	ti.Note("Bytes on disk: allocated blocks of the data directory after a clean stop (Meshscope: traces and the metrics it derives from spans; Jaeger: Badger keys and values). Start-up: from exec to /api/services answering with the stored services, data in place.")
	qt := r.AddTable("Query latency through the Jaeger query API (sequential, limit=20, time range = the data's 55 minutes)",
		"data", "spans stored", "query", "Meshscope p50 ms", "Meshscope p95 ms", "Jaeger p50 ms", "Jaeger p95 ms")
	qt.Note("%d queries per kind and checkpoint, parameters drawn from the traces sent (a sample per request): the service and operation of a trace's root span, its request.id (a unique value: the answer must be exactly that trace); trace by id must return every span. Realistic data: 20 services x 8 operations, 5-40 spans per trace, start times spread over 50 minutes. Adversarial: one start time for all spans of a request, 90 %% of spans in one hot service, unique session.id/user.id on every span.", o.queries)
	for _, ds := range o.datasets {
		for ci := range o.checkpoints {
			var n int64
			for _, sys := range o.systems {
				cps := res[sys][ds]
				if ci >= len(cps) {
					continue
				}
				c := cps[ci]
				n = c.spans
				ti.AddRow(ds.String(), label(c.spans), sys, report.Num(c.rate), report.Num(c.bytesPerSpan), mib(c.peakIngestMiB), mib(c.rssMiB), report.Num(c.startup), c.load1)
			}
			for _, k := range queryKinds {
				row := []string{ds.String(), label(n), k}
				for _, sys := range []string{"meshscope", "jaeger"} {
					cps := res[sys][ds]
					if ci >= len(cps) {
						row = append(row, "", "")
						continue
					}
					l := cps[ci].lat[k]
					row = append(row, report.Num(l[0]), report.Num(l[1]))
				}
				qt.AddRow(row...)
			}
		}
	}

	// Targets: Meshscope at the largest checkpoint of the realistic data
	// (adversarial search latency as its own target).
	last := func(sys string, ds loadgen.TraceMode) (checkpoint, bool) {
		cps := res[sys][ds]
		if len(cps) == 0 {
			return checkpoint{}, false
		}
		return cps[len(cps)-1], true
	}
	ds := o.datasets[0]
	m, ok := last("meshscope", ds)
	if !ok {
		return
	}
	j, jok := last("jaeger", ds)
	at := label(m.spans) + " spans, " + ds.String()
	short := ""
	if m.spans < 10_000_000 {
		short = "measured at " + label(m.spans) + ", not the 10M of the target"
	}
	rss := math.Max(m.peakIngestMiB, m.rssMiB) * (1 << 20) / 1e6
	r.AtMost("RSS (peak of ingest and after restart+queries) at "+at, 300, rss, "MB").Note = short
	r.AtMost("start-up with the data in place at "+at, 5, m.startup, "s").Note = short
	worst := func(c checkpoint) (float64, string) {
		w, name := 0.0, ""
		for _, k := range queryKinds[1:] {
			if c.lat[k][1] > w {
				w, name = c.lat[k][1], k
			}
		}
		return w, name
	}
	w, wk := worst(m)
	t := r.AtMost("search limit=20 p95, worst kind ("+wk+") at "+at, 100, w, "ms")
	t.Note = short
	for _, d := range o.datasets[1:] {
		if a, ok := last("meshscope", d); ok {
			w, wk := worst(a)
			r.AtMost("search limit=20 p95, worst kind ("+wk+") at "+label(a.spans)+" spans, "+d.String(), 100, w, "ms")
		}
	}
	r.AtMost("trace by id p95 at "+at, 20, m.lat["trace by id"][1], "ms").Note = short
	r.AtLeast("ingest spans/s accepted (last leg) at "+at, 150_000, m.rate, "spans/s")
	if jok {
		r.AtLeast("ingest spans/s ≥ Jaeger's ("+report.Num(j.rate)+")", j.rate, m.rate, "spans/s")
	}
	r.AtMost("bytes/span on disk at "+at, 50, m.bytesPerSpan, "B")
	if jok {
		r.AtMost("bytes/span ≤ Jaeger's ("+report.Num(j.bytesPerSpan)+")", j.bytesPerSpan, m.bytesPerSpan, "B")
	}
	end := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		end = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	r.Note("Load average at start: %s; at the end: %s. The machine's %d cores are shared with other jobs and with the generator: rates and latencies vary run to run.", r.Machine.LoadAverage, end, runtime.NumCPU())
}
