// Command otlpgen is the external OTLP/gRPC load generator of the collector
// benchmark: several concurrent senders export requests of about -batch
// spans (whole traces) built by loadgen.TraceGen, each waiting for its
// answer before sending the next (closed loop), until -spans spans were
// accepted. It prints one JSON summary line on stdout and writes a sample
// of the traces it sent (one per request) to -samples, for the query phase.
//
//	go run ./bench/collector/otlpgen -addr 127.0.0.1:4317 -spans 1000000 -mode realistic -samples s.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/bench/loadgen"
)

// Summary is what otlpgen prints.
type Summary struct {
	Spans       int64   `json:"spans"`    // accepted (sent minus rejected)
	Rejected    int64   `json:"rejected"` // partial success rejections
	Requests    int64   `json:"requests"`
	Retries     int64   `json:"retries"` // RESOURCE_EXHAUSTED / UNAVAILABLE answers retried
	Seconds     float64 `json:"seconds"`
	SpansPerSec float64 `json:"spans_per_sec"`
	RequestP50  float64 `json:"request_p50_ms"`
	RequestP99  float64 `json:"request_p99_ms"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:4317", "OTLP/gRPC `address` of the server")
	total := flag.Int("spans", 1_000_000, "spans to send")
	senders := flag.Int("senders", 4, "concurrent senders (one connection each)")
	batch := flag.Int("batch", 1000, "spans per request (whole traces: a request may hold a few more)")
	modeName := flag.String("mode", "realistic", "trace data: realistic or adversarial")
	seed := flag.Uint64("seed", 1, "generator seed (the same seed sends the same bytes)")
	startNS := flag.Int64("start", time.Now().Add(-time.Hour).UnixNano(), "earliest span start, Unix `ns`")
	window := flag.Duration("window", 50*time.Minute, "span start times spread over this window")
	samples := flag.String("samples", "", "write a JSON array of one trace sample per request to this `file`")
	flag.Parse()
	mode, err := loadgen.ParseTraceMode(*modeName)
	if err != nil {
		log.Fatal(err)
	}
	if *total <= 0 || *senders <= 0 || *batch <= 0 {
		log.Fatalf("-spans %d, -senders %d, -batch %d: want positive values", *total, *senders, *batch)
	}
	sum, smp, err := run(context.Background(), *addr, *total, *senders, *batch, mode, *seed, time.Unix(0, *startNS), *window)
	if err != nil {
		log.Fatal(err)
	}
	if *samples != "" {
		b, _ := json.Marshal(smp)
		if err := os.WriteFile(*samples, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	b, _ := json.Marshal(sum)
	fmt.Println(string(b))
}

const exportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

func run(ctx context.Context, addr string, total, senders, batch int, mode loadgen.TraceMode, seed uint64, start time.Time, window time.Duration) (Summary, []loadgen.TraceSample, error) {
	var sum Summary
	var accepted, rejected, requests, retries atomic.Int64
	hist := &loadgen.Histogram{}
	var mu sync.Mutex
	var all []loadgen.TraceSample
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range senders {
		share := total / senders
		if w == 0 {
			share += total % senders
		}
		wg.Go(func() {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.ForceCodec(loadgen.RawCodec{})))
			if err != nil {
				once.Do(func() { firstErr = err })
				return
			}
			defer conn.Close()
			// Each sender's data is its own seeded stream over the whole window.
			g := loadgen.NewTraceGen(mode, seed*1024+uint64(w), start, window, share)
			var mine []loadgen.TraceSample
			own := &loadgen.Histogram{}
			for sent := 0; sent < share; {
				body, n, s := g.Request(min(batch, share-sent))
				var out []byte
				for attempt := 0; ; attempt++ {
					t := time.Now()
					err := conn.Invoke(ctx, exportMethod, &body, &out)
					own.Record(time.Since(t))
					if err == nil {
						break
					}
					if c := status.Code(err); (c != codes.ResourceExhausted && c != codes.Unavailable) || attempt > 1000 {
						once.Do(func() { firstErr = fmt.Errorf("export of %d spans: %w", n, err) })
						return
					}
					retries.Add(1)
					time.Sleep(time.Duration(min(attempt+1, 20)) * 10 * time.Millisecond)
				}
				resp := &coltracepb.ExportTraceServiceResponse{}
				if err := proto.Unmarshal(out, resp); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("export answer: %w", err) })
					return
				}
				rej := resp.GetPartialSuccess().GetRejectedSpans()
				if rej > 0 {
					once.Do(func() {
						firstErr = fmt.Errorf("server rejected %d of %d spans: %s", rej, n, resp.GetPartialSuccess().GetErrorMessage())
					})
					return
				}
				accepted.Add(int64(n))
				requests.Add(1)
				mine = append(mine, s)
				sent += n
			}
			mu.Lock()
			all = append(all, mine...)
			hist.Merge(own)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return sum, nil, firstErr
	}
	if accepted.Load() == 0 {
		return sum, nil, errors.New("no span accepted")
	}
	sum.Seconds = time.Since(t0).Seconds()
	sum.Spans, sum.Rejected, sum.Requests, sum.Retries = accepted.Load(), rejected.Load(), requests.Load(), retries.Load()
	sum.SpansPerSec = float64(sum.Spans) / sum.Seconds
	sum.RequestP50 = float64(hist.Quantile(0.5)) / 1e6
	sum.RequestP99 = float64(hist.Quantile(0.99)) / 1e6
	return sum, all, nil
}
