package batch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/spans"
)

func start(t *testing.T, cfg Config, next consumer.Spans) (*Batcher, func()) {
	t.Helper()
	b, err := New(cfg, next, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.Run(ctx); close(done) }()
	// Wait until Run marked itself running.
	for {
		b.mu.Lock()
		r := b.running
		b.mu.Unlock()
		if r {
			break
		}
	}
	return b, func() { cancel(); <-done }
}

func TestMergesConcurrentRequestsAndAcksEach(t *testing.T) {
	var calls, total atomic.Int64
	sink := consumer.SpansFunc(func(ctx context.Context, batch []spans.Span) error {
		calls.Add(1)
		total.Add(int64(len(batch)))
		return nil
	})
	b, stop := start(t, Config{MaxSpans: 64}, sink)
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.ConsumeSpans(context.Background(), make([]spans.Span, 3)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	stop()
	if total.Load() != 600 {
		t.Fatalf("sink got %d spans, want 600", total.Load())
	}
	if got := testutil.ToFloat64(b.accepted); got != 600 {
		t.Fatalf("accepted = %v", got)
	}
	t.Logf("%d requests in %d sink calls", 200, calls.Load())
}

func TestOverloadAndSinkErrors(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 10)
	fail := errors.New("disk full")
	sink := consumer.SpansFunc(func(ctx context.Context, batch []spans.Span) error {
		entered <- struct{}{}
		<-release
		if len(batch) == 2 {
			return fail
		}
		return nil
	})
	b, stop := start(t, Config{QueueSpans: 5, Workers: 1}, sink)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- b.ConsumeSpans(context.Background(), make([]spans.Span, 4)) }()
	<-entered
	err := b.ConsumeSpans(context.Background(), make([]spans.Span, 2))
	if !errors.Is(err, consumer.ErrOverloaded) {
		t.Fatalf("over the queue bound: %v, want ErrOverloaded", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := b.ConsumeSpans(context.Background(), make([]spans.Span, 2)); !errors.Is(err, fail) {
		t.Fatalf("sink error not passed back: %v", err)
	}
	if got := testutil.ToFloat64(b.refused.WithLabelValues("overloaded")); got != 2 {
		t.Fatalf("refused overloaded = %v", got)
	}
}

func TestStoppedRefusesAsOverloaded(t *testing.T) {
	b, stop := start(t, Config{}, consumer.SpansFunc(func(context.Context, []spans.Span) error { return nil }))
	stop()
	if err := b.ConsumeSpans(context.Background(), make([]spans.Span, 1)); !errors.Is(err, consumer.ErrOverloaded) {
		t.Fatalf("after stop: %v", err)
	}
}
