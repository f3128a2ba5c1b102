package batch

import (
	"context"
	"errors"
	"runtime"
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

// TestLargeRequestDoesNotHoldUpSmallOnes: a request above MaxSpans goes to
// the sink in pieces of at most MaxSpans, and a small request that arrives
// while the first piece is being written is written before the large
// request's last piece, not after all of it.
func TestLargeRequestDoesNotHoldUpSmallOnes(t *testing.T) {
	const maxSpans, large = 8192, 50_000
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	var mu sync.Mutex
	var largeWritten, largeAtSmall, biggest int
	smallSeen := false
	sink := consumer.SpansFunc(func(ctx context.Context, batch []spans.Span) error {
		select {
		case entered <- struct{}{}:
			<-gate // hold the first call until the small request is queued
		default:
		}
		mu.Lock()
		defer mu.Unlock()
		biggest = max(biggest, len(batch))
		for _, s := range batch {
			if s.Name == "large" {
				largeWritten++
			}
		}
		for _, s := range batch {
			if s.Name == "small" {
				smallSeen = true
				largeAtSmall = largeWritten
			}
		}
		return nil
	})
	b, stop := start(t, Config{MaxSpans: maxSpans, Workers: 1, QueueSpans: 100_000}, sink)
	defer stop()
	mk := func(n int, name string) []spans.Span {
		s := make([]spans.Span, n)
		for i := range s {
			s[i].Name = name
		}
		return s
	}
	largeDone := make(chan error, 1)
	go func() { largeDone <- b.ConsumeSpans(context.Background(), mk(large, "large")) }()
	<-entered
	smallDone := make(chan error, 1)
	go func() { smallDone <- b.ConsumeSpans(context.Background(), mk(5, "small")) }()
	// Wait until the small request is queued, then let the sink go on.
	for {
		b.mu.Lock()
		q := b.queued
		b.mu.Unlock()
		if q == large+5 {
			break
		}
		runtime.Gosched()
	}
	close(gate)
	if err := <-smallDone; err != nil {
		t.Fatal(err)
	}
	if err := <-largeDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !smallSeen {
		t.Fatal("small request never reached the sink")
	}
	if largeWritten != large {
		t.Fatalf("sink got %d spans of the large request, want %d", largeWritten, large)
	}
	if largeAtSmall >= large {
		t.Errorf("small request written after all %d spans of the large one: it waited for the whole request", large)
	}
	if largeAtSmall > 2*maxSpans {
		t.Errorf("small request written after %d spans of the large one, want at most 2 pieces (%d)", largeAtSmall, 2*maxSpans)
	}
	if biggest > maxSpans {
		t.Errorf("a sink call carried %d spans, above max_spans=%d", biggest, maxSpans)
	}
	if d := testutil.ToFloat64(b.depth); d != 0 {
		t.Errorf("queue depth %v after both requests, want 0", d)
	}
}

// TestLargeRequestFinishesOnShutdown: a large request accepted before Run
// is stopped is written completely (its later pieces are queued after the
// stop).
func TestLargeRequestFinishesOnShutdown(t *testing.T) {
	var total atomic.Int64
	entered := make(chan struct{}, 1)
	gate := make(chan struct{})
	sink := consumer.SpansFunc(func(ctx context.Context, batch []spans.Span) error {
		select {
		case entered <- struct{}{}:
			<-gate
		default:
		}
		total.Add(int64(len(batch)))
		return nil
	})
	b, stop := start(t, Config{MaxSpans: 100, Workers: 2}, sink)
	done := make(chan error, 1)
	go func() { done <- b.ConsumeSpans(context.Background(), make([]spans.Span, 1000)) }()
	<-entered
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	for {
		b.mu.Lock()
		s := b.stopping
		b.mu.Unlock()
		if s {
			break
		}
		runtime.Gosched()
	}
	close(gate)
	<-stopped
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if total.Load() != 1000 {
		t.Fatalf("sink got %d spans, want 1000", total.Load())
	}
}
