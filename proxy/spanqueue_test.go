package proxy

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batchRecorder is a span exporter that records the size of each export.
type batchRecorder struct {
	mu      sync.Mutex
	batches []int
	got     chan int
}

func (r *batchRecorder) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	r.batches = append(r.batches, len(s))
	r.mu.Unlock()
	r.got <- len(s)
	return nil
}

func (r *batchRecorder) Shutdown(context.Context) error { return nil }

// next waits for the next export (the bound only keeps a broken queue from
// hanging the test).
func (r *batchRecorder) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-r.got:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("no export")
		return 0
	}
}

// TestSpanQueueExportsInBatches: spans are exported once a batch is queued
// or at shutdown, not one by one, and none is lost.
func TestSpanQueueExportsInBatches(t *testing.T) {
	cfg := baseConfig("queue")
	self, err := newSelfMetrics(prometheus.NewRegistry(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &batchRecorder{got: make(chan int, 16)}
	// A flush interval far beyond the test: only a full batch or shutdown exports.
	p := newBoundedSpanProcessor(rec, 16, 4, time.Hour, time.Second, self, nil)
	for range 3 {
		p.enqueue(newHopSpan())
	}
	select {
	case n := <-rec.got:
		t.Fatalf("exported %d spans before a batch was queued", n)
	default:
	}
	p.enqueue(newHopSpan()) // the 4th span completes a batch
	if n := rec.next(t); n != 4 {
		t.Errorf("first export has %d spans, want 4", n)
	}
	p.enqueue(newHopSpan())
	p.enqueue(newHopSpan())
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := rec.next(t); n != 2 {
		t.Errorf("shutdown flushed %d spans, want 2", n)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.batches) != 2 {
		t.Errorf("exports %v, want [4 2]", rec.batches)
	}
}

// TestSpanQueueFlushInterval: a partial batch leaves at the flush interval.
func TestSpanQueueFlushInterval(t *testing.T) {
	cfg := baseConfig("queue")
	self, err := newSelfMetrics(prometheus.NewRegistry(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := &batchRecorder{got: make(chan int, 16)}
	p := newBoundedSpanProcessor(rec, 16, 8, 5*time.Millisecond, time.Second, self, nil)
	defer p.Shutdown(context.Background())
	p.enqueue(newHopSpan())
	if n := rec.next(t); n != 1 {
		t.Errorf("interval flush exported %d spans, want 1", n)
	}
}
