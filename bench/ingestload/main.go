// Command ingestload measures how the server's ingest holds a flood of
// large OTLP requests: a normal client's latency and the server's peak RSS
// while 64 clients each send a legal 15.7 MB export (50,000 spans) at once,
// several floods in a row, over OTLP/HTTP and over OTLP/gRPC.
//
//	make bench WHAT=ingestload
//	go run ./bench/ingestload -quick
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/demo/freeport"
)

type options struct {
	quick     bool
	serverBin string
	floods    int
	clients   int
	spans     int
	boundMiB  int64
	out       string
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "one flood per transport")
	flag.StringVar(&o.serverBin, "server-bin", "", "meshscope `binary` (default: go build ./cmd/meshscope)")
	flag.IntVar(&o.floods, "floods", 3, "consecutive floods per transport, on one server")
	flag.IntVar(&o.clients, "clients", 64, "concurrent large requests per flood")
	flag.IntVar(&o.spans, "spans", 50_000, "spans per large request")
	flag.Int64Var(&o.boundMiB, "bound", 256, "--ingest-max-inflight-bytes of the server, in MiB")
	flag.StringVar(&o.out, "out", "", "write the result here instead of bench/results/")
	flag.Parse()
	if o.quick {
		o.floods = 1
	}
	r := report.New("ingestload")
	r.Title = "Ingest under a flood of large OTLP requests"
	r.Quick = o.quick
	if err := run(r, o); err != nil {
		log.Fatal(err)
	}
	dest := "ingestload"
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
	tmp, err := os.MkdirTemp("", "meshscope-bench-ingestload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := o.serverBin
	if bin == "" {
		bin = filepath.Join(tmp, "meshscope")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/meshscope").CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./cmd/meshscope: %w\n%s", err, out)
		}
	}
	body, err := proto.Marshal(traceRequest(1, o.spans))
	if err != nil {
		return err
	}
	bound := o.boundMiB << 20
	limit := bound + 300<<20
	t := r.AddTable(fmt.Sprintf("%d concurrent %s MB requests (%d spans each), --ingest-max-inflight-bytes %d MiB", o.clients, report.Num(float64(len(body))/1e6), o.spans, o.boundMiB),
		"transport", "flood", "answered 200", "answered 429", "failed", "flood s", "server peak RSS MiB", "normal client requests", "normal p99 HTTP ms", "normal p99 gRPC ms", "normal refused")
	worst := map[string]float64{}
	var worstRSS uint64
	for _, transport := range []string{"http", "grpc"} {
		s, err := startServer(bin, filepath.Join(tmp, transport), o.boundMiB)
		if err != nil {
			return err
		}
		for f := 1; f <= o.floods; f++ {
			fr, err := flood(s, body, o.clients, transport == "grpc")
			if err != nil {
				s.stop()
				return err
			}
			t.AddRow(transport, strconv.Itoa(f), strconv.Itoa(fr.codes[http.StatusOK]), strconv.Itoa(fr.codes[http.StatusTooManyRequests]),
				strconv.Itoa(fr.failed), report.Num(fr.took.Seconds()), report.Num(float64(fr.peakRSS)/(1<<20)),
				strconv.Itoa(fr.normal.n()), report.Num(ms(p99(fr.normal.http))), report.Num(ms(p99(fr.normal.grpc))), strconv.Itoa(len(fr.normal.errs)))
			worst["HTTP"] = max(worst["HTTP"], ms(p99(fr.normal.http)))
			worst["gRPC"] = max(worst["gRPC"], ms(p99(fr.normal.grpc)))
			worstRSS = max(worstRSS, fr.peakRSS)
			if len(fr.normal.errs) > 0 {
				t.Note("%s flood %d: normal client refused %d times, first: %s", transport, f, len(fr.normal.errs), fr.normal.errs[0])
			}
			if fr.firstErr != "" {
				t.Note("%s flood %d: a large request failed without an answer: %s", transport, f, fr.firstErr)
			}
		}
		s.stop()
	}
	t.Note("Each transport runs on a fresh server; its floods follow each other on that server (peak RSS is VmHWM, reset before each flood). " +
		"The normal client alternates OTLP/HTTP and OTLP/gRPC exports of 5 spans, one at a time with 20 ms pauses, during each flood; p99 is per transport.")
	// Latency on a machine loaded far beyond its cores measures the other
	// jobs' share of the CPU, not the server: such runs are inconclusive.
	load := loadAverage()
	for _, tr := range []string{"HTTP", "gRPC"} {
		tg := r.AtMost("normal client p99 during the floods, OTLP/"+tr, 1000, worst[tr], "ms")
		if load > 2*float64(runtime.NumCPU()) {
			tg.Inconclusive = true
			tg.Note = fmt.Sprintf("1-minute load average %.1f at the end, more than twice the %d cores", load, runtime.NumCPU())
		}
	}
	r.AtMost("server peak RSS (bound + 300 MiB)", float64(limit>>20), float64(worstRSS)/(1<<20), "MiB")
	r.Note("machine shared with other jobs; load average %s", r.Machine.LoadAverage)
	return nil
}

// loadAverage is the 1-minute load average (0 when unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type server struct {
	cmd                  *exec.Cmd
	http, grpc, otlpHTTP string
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

func freeAddr() (string, error) {
	a, err := freeport.Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

func startServer(bin, dir string, boundMiB int64) (*server, error) {
	s := &server{}
	for _, p := range []*string{&s.http, &s.grpc, &s.otlpHTTP} {
		a, err := freeAddr()
		if err != nil {
			return nil, err
		}
		*p = a
	}
	logf, err := os.Create(dir + ".log")
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, "server", "--data", dir, "--http", s.http, "--otlp-grpc", s.grpc, "--otlp-http", s.otlpHTTP,
		"--ingest-max-inflight-bytes", strconv.FormatInt(boundMiB, 10)+"MiB")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.http + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stop()
	return nil, errors.New("server not ready within 90 s (see " + dir + ".log)")
}

type floodResult struct {
	codes    map[int]int
	failed   int
	firstErr string
	took     time.Duration
	peakRSS  uint64
	normal   *normalClient
}

func flood(s *server, body []byte, clients int, overGRPC bool) (*floodResult, error) {
	pid := s.cmd.Process.Pid
	runtimeGCWait()
	if err := procstat.ResetPeakRSS(pid); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(32<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	httpc := &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{}}
	defer httpc.CloseIdleConnections()
	stop := make(chan struct{})
	ncDone := make(chan *normalClient)
	go func() { ncDone <- runNormalClient(s, stop) }()
	time.Sleep(500 * time.Millisecond) // the normal client is going before the flood

	res := &floodResult{codes: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			code, err := largeRequest(httpc, conn, s, body, overGRPC)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.failed++
				if res.firstErr == "" {
					res.firstErr = err.Error()
				}
				return
			}
			res.codes[code]++
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	res.normal = <-ncDone
	peak, err := procstat.PeakRSS(pid)
	if err != nil {
		return nil, err
	}
	res.peakRSS = peak
	return res, nil
}

// runtimeGCWait lets the server settle between floods.
func runtimeGCWait() { time.Sleep(2 * time.Second) }

func largeRequest(httpc *http.Client, conn *grpc.ClientConn, s *server, body []byte, overGRPC bool) (int, error) {
	if overGRPC {
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()
		var out []byte
		err := conn.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &body, &out, grpc.ForceCodec(loadgen.RawCodec{}))
		switch status.Code(err) {
		case codes.OK:
			return http.StatusOK, nil
		case codes.ResourceExhausted:
			return http.StatusTooManyRequests, nil
		default:
			return 0, err
		}
	}
	resp, err := httpc.Post("http://"+s.otlpHTTP+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

type normalClient struct {
	http, grpc []time.Duration
	errs       []string
}

func (nc *normalClient) n() int { return len(nc.http) + len(nc.grpc) }

func runNormalClient(s *server, stop <-chan struct{}) *normalClient {
	nc := &normalClient{}
	conn, err := grpc.NewClient(s.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		nc.errs = append(nc.errs, err.Error())
		return nc
	}
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{}}
	defer httpc.CloseIdleConnections()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nc
		default:
		}
		req := traceRequest(1_000_000+i, 5)
		start := time.Now()
		if i%2 == 0 {
			b, _ := proto.Marshal(req)
			resp, err := httpc.Post("http://"+s.otlpHTTP+"/v1/traces", "application/x-protobuf", bytes.NewReader(b))
			if err != nil {
				nc.errs = append(nc.errs, err.Error())
			} else {
				rb, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					nc.errs = append(nc.errs, fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, rb))
				}
			}
			nc.http = append(nc.http, time.Since(start))
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := client.Export(ctx, req); err != nil {
				nc.errs = append(nc.errs, "gRPC: "+err.Error())
			}
			cancel()
			nc.grpc = append(nc.grpc, time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	l := slices.Clone(d)
	slices.Sort(l)
	return l[(len(l)*99+99)/100-1]
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// traceRequest builds a legal OTLP trace request of n server spans (the
// same shape as e2e's flood: about 323 bytes per span).
func traceRequest(seed, n int) *coltracepb.ExportTraceServiceRequest {
	now := uint64(time.Now().UnixNano())
	sps := make([]*tracepb.Span, n)
	for i := range sps {
		tid := make([]byte, 16)
		sid := make([]byte, 8)
		for j, v := range []int{seed, i} {
			for k := range 4 {
				tid[j*4+k] = byte(v >> (8 * k))
			}
		}
		tid[15], sid[0], sid[1], sid[2], sid[7] = 1, byte(i), byte(i>>8), byte(i>>16), 1
		sps[i] = &tracepb.Span{TraceId: tid, SpanId: sid, Name: "GET /api/v1/items/{id}",
			StartTimeUnixNano: now, EndTimeUnixNano: now + 1000, Kind: tracepb.Span_SPAN_KIND_SERVER,
			Attributes: []*commonpb.KeyValue{strAttr("http.request.method", "GET"), strAttr("http.route", "/api/v1/items/{id}"),
				strAttr("url.full", "http://catalog.internal:8080/api/v1/items/12345?x=y"), strAttr("server.address", "catalog.internal"),
				strAttr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64) meshscope-load/1.0")}}
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{strAttr("service.name", "load")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: sps}},
	}}}
}
