package embedded

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
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
