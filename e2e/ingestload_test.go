//go:build unix

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
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
)

// ingestBound is the --ingest-max-inflight-bytes the attack tests run with.
const ingestBound = 256 << 20

func startIngestServer(t *testing.T) *server {
	t.Helper()
	bin, _ := binaries(t)
	a := freeAddrs(t, 3)
	s := &server{http: a[0], otlpGRPC: a[1], otlpHTTP: a[2], data: t.TempDir()}
	s.proc = startProc(t, "meshscope-server", bin, "server",
		"--data", s.data, "--http", s.http, "--otlp-grpc", s.otlpGRPC, "--otlp-http", s.otlpHTTP,
		"--ingest-max-inflight-bytes", strconv.Itoa(ingestBound>>20)+"MiB")
	waitReady(t, s.proc, s.url("/ready"), 90*time.Second)
	return s
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// traceRequest builds a legal OTLP trace request of n server spans, ids
// derived from seed.
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

// normalClient exports one small trace request at a time, alternating
// OTLP/HTTP and OTLP/gRPC, until stop is closed; it reports every
// request's latency and the failures.
type normalClient struct {
	lat  []time.Duration
	errs []string
}

func runNormalClient(t *testing.T, s *server, stop <-chan struct{}) *normalClient {
	t.Helper()
	conn, err := grpc.NewClient(s.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	grpcClient := coltracepb.NewTraceServiceClient(conn)
	httpc := &http.Client{Timeout: 30 * time.Second}
	nc := &normalClient{}
	for i := 0; ; i++ {
		select {
		case <-stop:
			conn.Close()
			return nc
		default:
		}
		req := traceRequest(1_000_000+i, 5)
		start := time.Now()
		if i%2 == 0 {
			body, _ := proto.Marshal(req)
			resp, err := httpc.Post("http://"+s.otlpHTTP+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				nc.errs = append(nc.errs, err.Error())
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					nc.errs = append(nc.errs, fmt.Sprintf("HTTP %d: %.200s", resp.StatusCode, b))
				}
			}
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := grpcClient.Export(ctx, req); err != nil {
				nc.errs = append(nc.errs, "gRPC: "+err.Error())
			}
			cancel()
		}
		nc.lat = append(nc.lat, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
}

func (nc *normalClient) p99() time.Duration {
	l := slices.Clone(nc.lat)
	slices.Sort(l)
	if len(l) == 0 {
		return 0
	}
	return l[(len(l)*99+99)/100-1]
}

// TestSlowClientsDoNotStarveIngest: 64 clients declare a 100,000-byte OTLP
// body and send one byte every 2 s. They hold no request slot and only the
// memory of what they declared; they are cut with 408 once the body falls
// below the minimum rate, while a normal client keeps being served.
func TestSlowClientsDoNotStarveIngest(t *testing.T) {
	s := startIngestServer(t)
	const slow = 64
	type result struct {
		status  string
		elapsed time.Duration
	}
	results := make(chan result, slow)
	conns := make([]net.Conn, 0, slow)
	for range slow {
		c, err := net.Dial("tcp", s.otlpHTTP)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /v1/traces HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100000\r\n\r\n", s.otlpHTTP)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	start := time.Now()
	for _, c := range conns {
		go func(c net.Conn) {
			done := make(chan struct{})
			go func() { // one byte every 2 s until the server answers
				for {
					select {
					case <-done:
						return
					case <-time.After(2 * time.Second):
						if _, err := c.Write([]byte{0x0a}); err != nil {
							return
						}
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(90 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			close(done)
			if err != nil {
				line = "no answer: " + err.Error()
			}
			results <- result{strings.TrimSpace(line), time.Since(start)}
		}(c)
	}

	stop := make(chan struct{})
	ncDone := make(chan *normalClient)
	go func() { ncDone <- runNormalClient(t, s, stop) }()
	var got []result
	for range slow {
		got = append(got, <-results)
	}
	time.Sleep(time.Second) // the normal client also runs after the cut
	close(stop)
	nc := <-ncDone

	for _, r := range got {
		if !strings.HasPrefix(r.status, "HTTP/1.1 408") {
			t.Errorf("slow client answered %q after %s, want 408", r.status, r.elapsed.Round(time.Millisecond))
		}
	}
	last := slices.MaxFunc(got, func(a, b result) int { return int(a.elapsed - b.elapsed) })
	t.Logf("slow clients: all answered within %s; normal client: %d requests, p99 %s, %d failed",
		last.elapsed.Round(time.Millisecond), len(nc.lat), nc.p99().Round(time.Millisecond), len(nc.errs))
	if len(nc.errs) > 0 {
		t.Errorf("normal client refused while slow clients were connected: %d of %d failed, first: %s", len(nc.errs), len(nc.lat), nc.errs[0])
	}
	if len(nc.lat) < 20 {
		t.Errorf("normal client made only %d requests", len(nc.lat))
	}
	if p := nc.p99(); p > time.Second {
		t.Errorf("normal client p99 %s, want ≤ 1s", p)
	}
}

// rssBytes reads a process's current and peak resident set size.
func rssBytes(pid int) (cur, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return cur, peak, nil
}

// TestLargeRequestsStayWithinMemoryBound: 64 concurrent legal 15.7 MB OTLP
// requests (50,000 spans each), over OTLP/HTTP and over OTLP/gRPC (one
// connection, 64 streams). The server admits what fits in
// --ingest-max-inflight-bytes and refuses the rest with 429 /
// RESOURCE_EXHAUSTED before reading them; its peak RSS stays under the
// bound + 300 MB and a normal client keeps being served.
func TestLargeRequestsStayWithinMemoryBound(t *testing.T) {
	t.Run("http", func(t *testing.T) { largeRequests(t, false) })
	t.Run("grpc", func(t *testing.T) { largeRequests(t, true) })
}

func largeRequests(t *testing.T, overGRPC bool) {
	s := startIngestServer(t)
	body, err := proto.Marshal(traceRequest(1, 50_000))
	if err != nil {
		t.Fatal(err)
	}
	if len(body) < 15<<20 || len(body) > 17<<20 {
		t.Fatalf("request of %d bytes, want about 15.7 MB", len(body))
	}
	pid := s.cmd.Process.Pid

	const clients = 64
	type result struct {
		code int
		err  error
		took time.Duration
	}
	results := make(chan result, clients)
	httpc := &http.Client{Timeout: 120 * time.Second}
	conn, err := grpc.NewClient(s.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(32<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			if overGRPC {
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				defer cancel()
				var out []byte
				err := conn.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &body, &out,
					grpc.ForceCodec(rawCodec{})) // marshalled once, as over HTTP
				switch status.Code(err) {
				case codes.OK:
					results <- result{code: http.StatusOK, took: time.Since(t0)}
				case codes.ResourceExhausted:
					results <- result{code: http.StatusTooManyRequests, took: time.Since(t0)}
				default:
					results <- result{err: err, took: time.Since(t0)}
				}
				return
			}
			resp, err := httpc.Post("http://"+s.otlpHTTP+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
			if err != nil {
				results <- result{err: err, took: time.Since(t0)}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- result{code: resp.StatusCode, took: time.Since(t0)}
		}()
	}
	stop := make(chan struct{})
	ncDone := make(chan *normalClient)
	go func() { ncDone <- runNormalClient(t, s, stop) }()
	var maxRSS int64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-time.After(50 * time.Millisecond):
		}
		if cur, _, err := rssBytes(pid); err == nil && cur > maxRSS {
			maxRSS = cur
		}
	}
	close(stop)
	nc := <-ncDone
	close(results)
	_, peak, _ := rssBytes(pid)
	maxRSS = max(maxRSS, peak)

	codes := map[int]int{}
	var slowest time.Duration
	for r := range results {
		if r.err != nil {
			t.Errorf("large request failed without an answer after %s: %v", r.took.Round(time.Millisecond), r.err)
			continue
		}
		codes[r.code]++
		slowest = max(slowest, r.took)
	}
	t.Logf("64 × %d-byte requests in %s: answers %v, slowest %s; server peak RSS %d MiB (bound %d MiB + 300 MiB); normal client %d requests, p99 %s, %d refused",
		len(body), time.Since(start).Round(time.Millisecond), codes, slowest.Round(time.Millisecond), maxRSS>>20, ingestBound>>20,
		len(nc.lat), nc.p99().Round(time.Millisecond), len(nc.errs))
	if codes[http.StatusOK] == 0 {
		t.Errorf("no large request accepted: %v", codes)
	}
	if codes[http.StatusOK]+codes[http.StatusTooManyRequests] != clients {
		t.Errorf("answers %v, want only 200 and 429", codes)
	}
	if limit := int64(ingestBound + 300<<20); maxRSS > limit {
		t.Errorf("server peak RSS %d MiB, above the bound + 300 MiB (%d MiB)", maxRSS>>20, limit>>20)
	}
	// The normal client shares 2 cores and the store's sink with the
	// admitted 50,000-span requests: it must be served (no refusal, no
	// stall), the latency goal itself is reported above.
	if len(nc.errs) > 0 {
		t.Errorf("normal client refused during the large requests: %d of %d failed, first: %s", len(nc.errs), len(nc.lat), nc.errs[0])
	}
	if p := nc.p99(); p > 5*time.Second {
		t.Errorf("normal client p99 %s during the large requests: stalled", p)
	}
	// The server keeps Go's soft memory limit at its non-ingest heap +
	// the bound + 128 MiB.
	if v, ok, err := scrape(s.url("/metrics"), "meshscope_collector_soft_memory_limit_bytes"); err != nil || !ok || v < ingestBound || v > ingestBound+1<<30 {
		t.Errorf("meshscope_collector_soft_memory_limit_bytes = %v (found %v, %v), want the bound + the server's own heap + 128 MiB", v, ok, err)
	}
}

// rawCodec sends an already marshalled protobuf message as it is.
type rawCodec struct{}

func (rawCodec) Name() string                  { return "proto" }
func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
