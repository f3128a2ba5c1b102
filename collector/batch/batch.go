package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/collector/consumer"
	"github.com/meshscope/meshscope/collector/spans"
)

// Config configures the batcher.
type Config struct {
	// MaxSpans is the most spans one sink call carries. Default 8192. Unit: spans.
	MaxSpans int `yaml:"max_spans"`
	// MaxWait is how long a batch waits for more before it is flushed.
	// Default 0: a free worker takes whatever is queued at once (under load
	// requests queue while the workers are in the sink, so batches grow by
	// themselves without adding latency at low load). Unit: duration.
	MaxWait time.Duration `yaml:"max_wait"`
	// QueueSpans bounds the spans waiting or being written; a request that
	// would exceed it is refused as overloaded. Default 131072. Unit: spans.
	QueueSpans int `yaml:"queue_spans"`
	// Workers is the number of concurrent sink calls. Default 2.
	Workers int `yaml:"workers"`
}

// Defaults.
const (
	DefaultMaxSpans   = 8192
	DefaultMaxWait    = 0
	DefaultQueueSpans = 131072
	DefaultWorkers    = 2
)

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.MaxSpans < 0:
		return fmt.Errorf("batch.max_spans: %d must not be negative", c.MaxSpans)
	case c.MaxWait < 0:
		return fmt.Errorf("batch.max_wait: %v must not be negative", c.MaxWait)
	case c.QueueSpans < 0:
		return fmt.Errorf("batch.queue_spans: %d must not be negative", c.QueueSpans)
	case c.Workers < 0 || c.Workers > 64:
		return fmt.Errorf("batch.workers: %d out of range (0 to 64)", c.Workers)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.MaxSpans == 0 {
		c.MaxSpans = DefaultMaxSpans
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.QueueSpans == 0 {
		c.QueueSpans = DefaultQueueSpans
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	return c
}

type request struct {
	batch []spans.Span
	done  chan error
}

// Batcher is the batching stage. It implements consumer.Spans and
// lifecycle.Runner.
type Batcher struct {
	cfg    Config
	next   consumer.Spans
	logger *slog.Logger

	in chan *request

	mu       sync.Mutex
	queued   int  // spans accepted into the queue and not yet acknowledged
	stopping bool // Run is draining or done; new requests are refused
	running  bool // Run was called (requests queued before it wait for it)

	depth    prometheus.Gauge
	accepted prometheus.Counter
	refused  *prometheus.CounterVec
	flushes  prometheus.Histogram
}

// New returns a batcher feeding next. Call Run to start it.
func New(cfg Config, next consumer.Spans, reg prometheus.Registerer, logger *slog.Logger) (*Batcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if next == nil {
		return nil, errors.New("batch: next consumer is nil")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	b := &Batcher{
		cfg:    cfg,
		next:   next,
		logger: logger,
		in:     make(chan *request, cfg.QueueSpans), // never blocks: queued ≤ QueueSpans requests
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_collector_queue_spans",
			Help: "Spans accepted by the batcher and not yet acknowledged by the sinks.",
		}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_collector_spans_accepted_total",
			Help: "Spans the sinks acknowledged (durable in the trace store).",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_collector_spans_refused_total",
			Help: "Spans refused with a retryable error, by reason (overloaded, sink_error).",
		}, []string{"reason"}),
		flushes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshscope_collector_batch_spans",
			Help:    "Spans per sink call.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
	}
	b.refused.WithLabelValues("overloaded")
	b.refused.WithLabelValues("sink_error")
	if reg != nil {
		for _, c := range []prometheus.Collector{b.depth, b.accepted, b.refused, b.flushes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("batch: register metrics: %w", err)
			}
		}
	}
	return b, nil
}

// ConsumeSpans queues the batch and waits until the sink has taken it. It
// returns an error wrapping consumer.ErrOverloaded when the queue is full
// or Run has returned. Batches queued before Run starts wait for it.
func (b *Batcher) ConsumeSpans(ctx context.Context, batch []spans.Span) error {
	if len(batch) == 0 {
		return nil
	}
	n := len(batch)
	b.mu.Lock()
	switch {
	case b.stopping:
		b.mu.Unlock()
		b.refused.WithLabelValues("overloaded").Add(float64(n))
		return fmt.Errorf("collector is shutting down: %w", consumer.ErrOverloaded)
	case b.queued+n > b.cfg.QueueSpans && b.queued > 0:
		q := b.queued
		b.mu.Unlock()
		b.refused.WithLabelValues("overloaded").Add(float64(n))
		return fmt.Errorf("ingest queue full (%d of %d spans): %w", q, b.cfg.QueueSpans, consumer.ErrOverloaded)
	}
	b.queued += n
	b.depth.Set(float64(b.queued))
	if n <= b.cfg.MaxSpans {
		req := &request{batch: batch, done: make(chan error, 1)}
		b.in <- req // capacity ≥ QueueSpans ≥ number of queued requests
		b.mu.Unlock()
		// The request is queued: it will be written. Wait for the outcome even if
		// ctx ends, because the sink reads batch until then.
		return <-req.done
	}
	b.mu.Unlock()
	return b.consumeLarge(batch)
}

// consumeLarge writes a request above MaxSpans in pieces of at most
// MaxSpans, one piece in the queue at a time: requests that arrive
// meanwhile are queued between its pieces, so a small export waits for at
// most one piece of each large request ahead of it instead of the whole
// request. Its spans are already counted in queued (admission is all or
// nothing); a failed piece fails the rest of the request, which is
// answered with that error (the client retries the whole request: spans
// of the pieces already written are then stored twice, the usual
// at-least-once delivery of OTLP).
func (b *Batcher) consumeLarge(batch []spans.Span) error {
	var err error
	for len(batch) > 0 {
		k := min(len(batch), b.cfg.MaxSpans)
		piece := batch[:k:k]
		batch = batch[k:]
		if err != nil {
			b.release(len(piece), err)
			continue
		}
		req := &request{batch: piece, done: make(chan error, 1)}
		b.in <- req // this request counted all its pieces in queued
		err = <-req.done
	}
	return err
}

// release takes n spans that will not reach the sink off the queue.
func (b *Batcher) release(n int, err error) {
	reason := "sink_error"
	if errors.Is(err, consumer.ErrOverloaded) {
		reason = "overloaded"
	}
	b.refused.WithLabelValues(reason).Add(float64(n))
	b.mu.Lock()
	b.queued -= n
	b.depth.Set(float64(b.queued))
	b.mu.Unlock()
}

// Run flushes batches until ctx is cancelled, then refuses new requests,
// flushes everything queued and returns.
func (b *Batcher) Run(ctx context.Context) error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return errors.New("batch: already running")
	}
	b.running = true
	b.mu.Unlock()
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for range b.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.worker(quit)
		}()
	}
	<-ctx.Done()
	b.mu.Lock()
	b.stopping = true
	b.mu.Unlock()
	close(quit)
	wg.Wait()
	return nil
}

func (b *Batcher) worker(quit <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var group []*request
	var merged []spans.Span
	for {
		var first *request
		select {
		case first = <-b.in:
		case <-quit:
			// Drain: after stopping is set no new request arrives, but a
			// large request accepted before queues its remaining pieces
			// one by one: drain until nothing accepted is left.
			for {
				select {
				case r := <-b.in:
					merged = b.flush([]*request{r}, merged)
					continue
				default:
				}
				b.mu.Lock()
				q := b.queued
				b.mu.Unlock()
				if q == 0 {
					return
				}
				select {
				case r := <-b.in:
					merged = b.flush([]*request{r}, merged)
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		group = append(group[:0], first)
		n := len(first.batch)
		if b.cfg.MaxWait <= 0 {
		drain:
			for n < b.cfg.MaxSpans {
				select {
				case r := <-b.in:
					group = append(group, r)
					n += len(r.batch)
				default:
					break drain
				}
			}
			merged = b.flush(group, merged)
			continue
		}
		timer.Reset(b.cfg.MaxWait)
	collect:
		for n < b.cfg.MaxSpans {
			select {
			case r := <-b.in:
				group = append(group, r)
				n += len(r.batch)
			case <-timer.C:
				break collect
			case <-quit:
				break collect
			}
		}
		timer.Stop()
		merged = b.flush(group, merged)
	}
}

// flush hands the group to the sink as one batch and acknowledges each
// request with the result.
func (b *Batcher) flush(group []*request, buf []spans.Span) []spans.Span {
	var batch []spans.Span
	if len(group) == 1 {
		batch = group[0].batch
	} else {
		buf = buf[:0]
		for _, r := range group {
			buf = append(buf, r.batch...)
		}
		batch = buf
	}
	// Sinks must not keep the context past the call; shutdown waits for them.
	err := b.next.ConsumeSpans(context.Background(), batch)
	n := len(batch)
	if err != nil {
		reason := "sink_error"
		if errors.Is(err, consumer.ErrOverloaded) {
			reason = "overloaded"
		}
		b.refused.WithLabelValues(reason).Add(float64(n))
		b.logger.Warn("sink refused spans", "spans", n, "err", err)
	} else {
		b.accepted.Add(float64(n))
	}
	b.flushes.Observe(float64(n))
	b.mu.Lock()
	b.queued -= n
	b.depth.Set(float64(b.queued))
	b.mu.Unlock()
	for _, r := range group {
		r.done <- err
	}
	clear(buf) // drop references to the callers' attribute slices
	return buf
}
