package embedded

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/collector/otlp"
	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// BenchmarkScaleOTLP fills a store with the collector benchmark's data
// (bench/loadgen's TraceGen: TRACESTORE_BENCH_DATA=realistic or
// adversarial, TRACESTORE_BENCH_SPANS spans from 4 concurrent senders of
// 1,000-span requests over 50 minutes) and reports the bytes on disk per
// span, the ingest rate of the store alone and the p50/p95 of a search by a
// trace's unique request.id (with its root service, as the benchmark asks).
// TRACESTORE_BENCH_INDEX_CACHE sets index_cache_bytes for the searches (a
// small cache mimics more segments than the benchmark writes).
//
//	TRACESTORE_BENCH_DATA=realistic TRACESTORE_BENCH_SPANS=10000000 go test ./collector/tracestore/embedded -run '^$' -bench ScaleOTLP -benchtime 1x
func BenchmarkScaleOTLP(b *testing.B) {
	n := benchSpans(b)
	mode := loadgen.Realistic
	if os.Getenv("TRACESTORE_BENCH_DATA") == "adversarial" {
		mode = loadgen.Adversarial
	}
	switch os.Getenv("TRACESTORE_BENCH_SPANFMT") { // compare span formats: 1, 2 (default), 2nosort
	case "1":
		writeSpanFormat = 1
	case "2nosort":
		sortByTrace = false
	}
	defer func() { writeSpanFormat, sortByTrace = 2, true }()
	dir := b.TempDir()
	s, err := New(Config{Dir: dir, NoSync: true, MaxBytes: 100 << 30}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const senders = 4
	var mu sync.Mutex
	var samples []loadgen.TraceSample
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			g := loadgen.NewTraceGen(mode, 1024+uint64(w), start, 50*time.Minute, n/senders)
			var batch []spans.Span
			for sent, k := 0, 0; sent < n/senders; k++ {
				body, c, smp := g.Request(min(1000, n/senders-sent))
				sent += c
				if k%50 == 0 {
					mu.Lock()
					samples = append(samples, smp)
					mu.Unlock()
				}
				batch, _, err := otlp.DecodeSpans(batch[:0], body)
				if err != nil {
					b.Error(err)
					return
				}
				if err := s.WriteSpans(context.Background(), batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(t0).Seconds()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var idx, all int64
	var secs [nSections]uint64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if st, err := e.Info(); err == nil {
			all += st.Size()
			if strings.HasSuffix(e.Name(), idxSuffix) {
				idx += st.Size()
				if x, _, err := openIndexFile(filepath.Join(dir, e.Name()), -1, nil, nil); err == nil {
					for i, sec := range x.sec {
						secs[i] += sec.len
					}
					x.close()
				}
			}
		}
	}
	for i, v := range secs {
		b.Logf("index section %2d: %.2f B/span", i, float64(v)/float64(n))
	}
	cfg := Config{Dir: dir, NoSync: true, MaxBytes: 100 << 30}
	if v := os.Getenv("TRACESTORE_BENCH_INDEX_CACHE"); v != "" { // bytes: a store holding more segments than the bench
		if cfg.IndexCacheBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			b.Fatal(err)
		}
	}
	if s, err = New(cfg, nil, nil); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var lat []time.Duration
	for i := range 300 {
		smp := samples[(i*7919)%len(samples)]
		q := tracestore.Query{Service: smp.Service, Attrs: map[string]string{"request.id": smp.RequestID},
			Start: start.Add(-time.Minute), End: start.Add(55 * time.Minute), Limit: 20}
		t := time.Now()
		refs, err := s.Search(context.Background(), q)
		lat = append(lat, time.Since(t))
		if err != nil || len(refs) != 1 {
			b.Fatalf("%+v: %d refs, %v", q, len(refs), err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(all)/float64(n), "diskB/span")
	b.ReportMetric(float64(idx)/float64(n), "indexB/span")
	b.ReportMetric(float64(all-idx)/float64(n), "dataB/span")
	b.ReportMetric(rate, "spans/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "tag-p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "tag-p95-ms")
}
