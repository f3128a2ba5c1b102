package embedded

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/collector/otlp"
	"github.com/meshscope/meshscope/collector/spans"
)

// BenchmarkIngestMemory ingests TRACESTORE_BENCH_SPANS realistic spans
// (default 1,000,000; the generator of bench/collector, decoded as the
// OTLP receiver does) from 4 writers of ~1,000-span requests with fsync,
// and reports the peak heap in use, the peak RSS of the test process and
// the live heap after a GC at the end, and the spans per segment. With TRACESTORE_BENCH_HEAPPROF set
// it writes a heap profile there at 80 % of the spans.
//
//	TRACESTORE_BENCH_SPANS=1000000 go test ./collector/tracestore/embedded -run '^$' -bench IngestMemory -benchtime 1x -count=1
func BenchmarkIngestMemory(b *testing.B) {
	n := benchSpans(b)
	for b.Loop() {
		ingestMemory(b, n)
	}
}

func ingestMemory(b *testing.B, n int) {
	s, err := New(Config{Dir: b.TempDir(), MaxBytes: 100 << 30}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var peakLive uint64
		var lastGC uint32
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			if p := os.Getenv("TRACESTORE_BENCH_PEAKPROF"); p != "" && ms.HeapAlloc > peakLive {
				peakLive = ms.HeapAlloc
				if ms.NumGC != lastGC {
					lastGC = ms.NumGC
					writeHeapProfile(b, p, false)
				}
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	const writers = 4
	var sent atomic.Int64
	var profOnce sync.Once
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := loadgen.NewTraceGen(loadgen.Realistic, uint64(w+1), time.Now().Add(-time.Hour), time.Hour, n/writers)
			for sent.Load() < int64(n) {
				body, _, _ := gen.Request(1000)
				batch, _, err := otlp.DecodeSpans(nil, body)
				if err != nil {
					b.Error(err)
					return
				}
				if err := s.WriteSpans(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
				if sent.Add(int64(len(batch))) >= int64(n)*8/10 {
					if p := os.Getenv("TRACESTORE_BENCH_HEAPPROF"); p != "" {
						profOnce.Do(func() { writeHeapProfile(b, p, true) })
					}
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	close(stop)
	<-sampled
	b.ReportMetric(float64(sent.Load())/el.Seconds(), "spans/s")
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "peak-rss-MiB")
	s.sealing.Wait()
	s.mu.RLock()
	b.ReportMetric(float64(sent.Load())/float64(len(s.segs)), "spans/segment")
	s.mu.RUnlock()
	b.ReportMetric(float64(heapAlloc())/(1<<20), "live-heap-MiB")
}

func writeHeapProfile(b *testing.B, path string, gc bool) {
	if gc {
		runtime.GC()
	}
	f, err := os.Create(path)
	if err != nil {
		b.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Error(err)
	}
}

// vmHWM is the peak resident set size of this process (Linux), or 0.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

var _ = spans.Span{}
