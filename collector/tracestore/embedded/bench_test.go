package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
)

func BenchmarkWriteSpans(b *testing.B) {
	s, err := New(Config{Dir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	batch := make([]spans.Span, 512)
	for i := range batch {
		batch[i] = spans.Span{TraceID: spans.TraceID{byte(i), 9}, SpanID: spans.SpanID{byte(i), 1}, Service: fmt.Sprintf("svc-%d", i%10),
			Name: fmt.Sprintf("GET /api/%d", i%20), StartUnixNano: now.UnixNano(), EndUnixNano: now.UnixNano() + 1e6,
			Attrs: []spans.Attr{spans.StringAttr("http.method", "GET"), spans.IntAttr("http.status_code", 200), spans.StringAttr("http.route", "/api/v1/resource/{id}"),
				spans.StringAttr("net.peer.name", "svc-3"), spans.IntAttr("net.peer.port", 8080), spans.StringAttr("user_agent.original", "Go-http-client/1.1"),
				spans.StringAttr("mesh.direction", "inbound"), spans.StringAttr("mesh.source_service", "svc-2"), spans.IntAttr("len", int64(i*7919)),
				spans.StringAttr("request.id", fmt.Sprintf("%016x", i*104729))},
			Resource: []spans.Attr{spans.StringAttr("host.name", "node-1")}}
	}
	b.SetBytes(512)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.WriteSpans(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N*512)/b.Elapsed().Seconds(), "spans/s")
}

func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	s, err := New(Config{Dir: dir, NoSync: true}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := range 400 {
		batch := make([]spans.Span, 512)
		for j := range batch {
			batch[j] = spans.Span{TraceID: spans.TraceID{byte(i), byte(j), 9}, SpanID: spans.SpanID{byte(j), 1}, Service: fmt.Sprintf("svc-%d", j%10),
				Name: fmt.Sprintf("GET /api/%d", j%20), StartUnixNano: now.UnixNano(), EndUnixNano: now.UnixNano() + 1e6,
				Attrs: []spans.Attr{spans.StringAttr("http.method", "GET"), spans.IntAttr("http.status_code", 200), spans.StringAttr("http.route", "/api/v1/resource/{id}"),
					spans.StringAttr("net.peer.name", "svc-3"), spans.IntAttr("net.peer.port", 8080), spans.StringAttr("user_agent.original", "Go-http-client/1.1"),
					spans.StringAttr("mesh.direction", "inbound"), spans.StringAttr("mesh.source_service", "svc-2"), spans.IntAttr("len", int64(j*7919+i)),
					spans.StringAttr("request.id", fmt.Sprintf("%016x", (i*512+j)*104729))},
				Resource: []spans.Attr{spans.StringAttr("host.name", "node-1")}}
		}
		if err := s.WriteSpans(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	b.ResetTimer()
	for b.Loop() {
		s, err := New(Config{Dir: dir}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(float64(b.N*400*512)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkSearchSort compares the newest-first search (which stops at the
// limit) with the sorted ones (which aggregate every matching trace) over
// 100,000 traces of 2 spans spread over an hour.
func BenchmarkSearchSort(b *testing.B) {
	s, err := New(Config{Dir: b.TempDir(), NoSync: true}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now().Add(-time.Hour)
	const traces = 100_000
	batch := make([]spans.Span, 0, 2000)
	for i := range traces {
		var id spans.TraceID
		id[0], id[1], id[2], id[3] = 0xbe, byte(i>>16), byte(i>>8), byte(i)
		st := start.Add(time.Duration(i) * time.Hour / traces).UnixNano()
		d := int64(1+i%997) * 1e6
		root := spans.Span{TraceID: id, SpanID: spans.SpanID{1}, Service: "web", Name: "GET /", Kind: spans.KindServer, StartUnixNano: st, EndUnixNano: st + d}
		child := spans.Span{TraceID: id, SpanID: spans.SpanID{2}, ParentSpanID: spans.SpanID{1}, Service: "web", Name: "GET /prices", Kind: spans.KindClient,
			StartUnixNano: st, EndUnixNano: st + d/2, Attrs: []spans.Attr{spans.StringAttr("mesh.destination.service", "pricing")}}
		if i%10 == 0 {
			child.StatusCode = spans.StatusError
		}
		batch = append(batch, root, child)
		if len(batch) == cap(batch) {
			if err := s.WriteSpans(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	for _, o := range []tracestore.SortOrder{tracestore.SortNewest, tracestore.SortLongest, tracestore.SortErrors} {
		for _, svc := range []string{"web", "pricing"} {
			b.Run(o.String()+"/"+svc, func(b *testing.B) {
				q := tracestore.Query{Service: svc, Start: start, End: start.Add(time.Hour), Limit: 20, Sort: o}
				for b.Loop() {
					refs, err := s.Search(context.Background(), q)
					if err != nil || len(refs) != 20 {
						b.Fatalf("%d refs, %v", len(refs), err)
					}
				}
			})
		}
	}
}
