package embedded

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

// Scale benchmarks: the store is filled with N spans (TRACESTORE_BENCH_SPANS,
// default 1,000,000) of traces of 4 spans over one hour, 10 services with one
// hot one (half the spans), 10 attributes per span among them a unique
// request id; in the "samestart" data every span of a trace shares one start
// time and 1,000 traces share each start time. Run with
//
//	TRACESTORE_BENCH_SPANS=1000000 go test ./collector/tracestore/embedded -run '^$' -bench 'Scale' -benchtime 20x -count=1
func benchSpans(b *testing.B) int {
	if v := os.Getenv("TRACESTORE_BENCH_SPANS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4000 {
			b.Fatalf("TRACESTORE_BENCH_SPANS=%q: want a number ≥ 4000", v)
		}
		return n
	}
	return 1_000_000
}

// fillScale writes n spans and returns the hour they span.
func fillScale(b *testing.B, dir string, n int, sameStart bool) time.Time {
	s, err := New(Config{Dir: dir, NoSync: true, MaxBytes: 100 << 30}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	traces := n / 4
	batch := make([]spans.Span, 0, 2048)
	for i := range traces {
		var id spans.TraceID
		id[0], id[1], id[2], id[3], id[15] = 0x5c, byte(i>>16), byte(i>>8), byte(i), 1
		st := start.Add(time.Duration(i) * time.Hour / time.Duration(traces)).UnixNano()
		if sameStart {
			st = start.Add(time.Duration(i/1000) * time.Hour / time.Duration(traces/1000+1)).UnixNano()
		}
		svc := "hot"
		if i%2 == 1 {
			svc = fmt.Sprintf("svc-%d", i%9)
		}
		for j := range 4 {
			d := int64(1+(i*7+j)%997) * 1e5
			sp := spans.Span{TraceID: id, SpanID: spans.SpanID{byte(j + 1), byte(i)}, Service: svc, Name: fmt.Sprintf("GET /api/%d", (i+j)%20),
				Kind: spans.KindServer, StartUnixNano: st, EndUnixNano: st + d,
				Attrs: []spans.Attr{spans.StringAttr("http.method", "GET"), spans.IntAttr("http.status_code", int64(200+100*((i+j)%1000/999))),
					spans.StringAttr("http.route", fmt.Sprintf("/api/%d", (i+j)%20)), spans.StringAttr("net.peer.name", "svc-3"),
					spans.IntAttr("net.peer.port", 8080), spans.StringAttr("user_agent.original", "Go-http-client/1.1"),
					spans.StringAttr("mesh.direction", "inbound"), spans.StringAttr("tenant", fmt.Sprintf("t-%d", i%1000)),
					spans.IntAttr("len", int64((i*4+j)*7919%100000)), spans.StringAttr("request.id", fmt.Sprintf("%016x", (i*4+j)*104729))},
				Resource: []spans.Attr{spans.StringAttr("host.name", fmt.Sprintf("node-%d", i%7))}}
			if !sameStart {
				sp.StartUnixNano += int64(j) * 1e3
				sp.EndUnixNano += int64(j) * 1e3
			}
			if j == 3 {
				sp.Kind, sp.Service = spans.KindClient, "hot"
				sp.Attrs = append(sp.Attrs, spans.StringAttr("peer.service", "db"))
			}
			batch = append(batch, sp)
		}
		if len(batch) >= 2000 {
			if err := s.WriteSpans(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := s.WriteSpans(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	return start
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkScaleOpen measures the Go heap held per retained span after the
// store opened N spans (the index it keeps in RAM), and the open time.
func BenchmarkScaleOpen(b *testing.B) {
	n := benchSpans(b)
	dir := b.TempDir()
	fillScale(b, dir, n, false)
	b.ResetTimer()
	var perSpan, heapMB float64
	for b.Loop() {
		before := heapAlloc()
		s, err := New(Config{Dir: dir, MaxBytes: 100 << 30}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		after := heapAlloc()
		perSpan = (float64(after) - float64(before)) / float64(n)
		heapMB = (float64(after) - float64(before)) / (1 << 20)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	var idx, all int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if st, err := e.Info(); err == nil {
			all += st.Size()
			if strings.HasSuffix(e.Name(), ".idx") {
				idx += st.Size()
			}
		}
	}
	b.ReportMetric(float64(all)/float64(n), "diskB/span")
	b.ReportMetric(float64(idx)/float64(n), "indexB/span")
	b.ReportMetric(perSpan, "heapB/span")
	b.ReportMetric(heapMB, "heapMiB")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "open-s")
}

// BenchmarkScaleSearch measures limit-20 searches over N spans.
func BenchmarkScaleSearch(b *testing.B) {
	n := benchSpans(b)
	for _, sameStart := range []bool{false, true} {
		name := "spread"
		if sameStart {
			name = "samestart"
		}
		dir := b.TempDir()
		start := fillScale(b, dir, n, sameStart)
		s, err := New(Config{Dir: dir, MaxBytes: 100 << 30}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		end := start.Add(time.Hour)
		for _, tc := range []struct {
			name string
			q    tracestore.Query
		}{
			{"service-hot", tracestore.Query{Service: "hot"}},
			{"service-rare", tracestore.Query{Service: "svc-3"}},
			{"service-op", tracestore.Query{Service: "hot", Operation: "GET /api/7"}},
			{"peer", tracestore.Query{Service: "db"}},
			{"tag-common", tracestore.Query{Service: "hot", Attrs: map[string]string{"http.method": "GET"}}},
			{"tag-rare", tracestore.Query{Attrs: map[string]string{"http.status_code": "300"}}},
			{"tag-highcard", tracestore.Query{Attrs: map[string]string{"request.id": fmt.Sprintf("%016x", (n/2)*104729)}}},
			{"duration", tracestore.Query{Service: "hot", MinDuration: 90 * time.Millisecond}},
			{"timerange", tracestore.Query{Service: "hot", Start: start.Add(20 * time.Minute), End: start.Add(21 * time.Minute)}},
			{"trace-by-id", tracestore.Query{}},
		} {
			b.Run(name+"/"+tc.name, func(b *testing.B) {
				q := tc.q
				q.Limit = 20
				if q.Start.IsZero() {
					q.Start, q.End = start, end
				}
				for i := 0; b.Loop(); i++ {
					if tc.name == "trace-by-id" {
						k := (i * 7919) % (n / 4)
						id := spans.TraceID{0x5c, byte(k >> 16), byte(k >> 8), byte(k), 15: 1}
						if got, err := s.Trace(context.Background(), id); err != nil || len(got) != 4 {
							b.Fatalf("trace %d: %d spans, %v", k, len(got), err)
						}
						continue
					}
					refs, err := s.Search(context.Background(), q)
					if err != nil || len(refs) == 0 {
						b.Fatalf("%d refs, %v", len(refs), err)
					}
				}
			})
		}
		s.Close()
	}
}
