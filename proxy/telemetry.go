package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// telemetry owns the span sampler and the exporters that ship spans and
// metrics.
type telemetry struct {
	sampler hopSampler
	spans   *boundedSpanProcessor // nil without a collector or with tracing disabled
	pusher  *metricPusher         // nil without a collector
	timeout time.Duration
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// token (may be "") authenticates the exports to a collector run with
// --auth-file; tlsCfg holds the roots for an https:// collector.
func newTelemetry(cfg *Config, token string, tlsCfg *tls.Config, gatherer prometheus.Gatherer, self *selfMetrics, logger *slog.Logger) *telemetry {
	tc := cfg.Telemetry
	t := &telemetry{timeout: time.Duration(tc.ExportTimeout)}
	res := []attribute.KeyValue{
		attribute.String("service.name", cfg.Service),
		attribute.String("service.version", cfg.Version),
		attribute.String("service.instance.id", newInstanceID()),
		attribute.String("meshscope.proxy.mode", cfg.Mode),
		attribute.String("telemetry.sdk.name", "meshscope-proxy"),
		attribute.String("telemetry.sdk.language", "go"),
	}
	t.sampler = newHopSampler(tc.SampleRatio)
	if !tc.DisableTracing && tc.Collector != "" {
		exp := &otlpSpanExporter{c: newOTLPClient(tc.Collector, t.timeout, tlsCfg).withToken(token), res: res}
		t.spans = newBoundedSpanProcessor(exp, tc.SpanQueueSize, tc.SpanBatchSize,
			time.Duration(tc.SpanFlushInterval), t.timeout, self, logger)
	}
	if tc.Collector != "" {
		t.pusher = newMetricPusher(newOTLPClient(tc.Collector, t.timeout, tlsCfg).withToken(token), gatherer, res,
			time.Duration(tc.PushInterval), t.timeout, self, logger)
	}
	return t
}

// shutdown flushes pending spans and pushes metrics one last time.
func (t *telemetry) shutdown(ctx context.Context) error {
	var errs []error
	if t.spans != nil {
		if err := t.spans.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush spans: %w", err))
		}
	}
	if t.pusher != nil {
		if err := t.pusher.shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}

// rateLimitedWarn logs at most once a minute.
type rateLimitedWarn struct {
	mu   sync.Mutex
	last time.Time
}

func (r *rateLimitedWarn) warn(logger *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) < time.Minute {
		return
	}
	r.last = time.Now()
	logger.Warn(msg+" (dropped; next warning in 1m)", args...)
}

// metricPusher gathers the registry every interval and pushes it to the
// collector as one OTLP metrics export. A failed push is counted and
// dropped; the next push carries the cumulative values again.
type metricPusher struct {
	c        *otlpClient
	gatherer prometheus.Gatherer
	res      []attribute.KeyValue
	interval time.Duration
	timeout  time.Duration
	self     *selfMetrics
	logger   *slog.Logger
	start    time.Time
	warn     rateLimitedWarn
	buf      []byte
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
}

func newMetricPusher(c *otlpClient, g prometheus.Gatherer, res []attribute.KeyValue, interval, timeout time.Duration, self *selfMetrics, logger *slog.Logger) *metricPusher {
	m := &metricPusher{c: c, gatherer: g, res: res, interval: interval, timeout: timeout, self: self, logger: logger,
		start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go m.loop()
	return m
}

func (m *metricPusher) loop() {
	defer close(m.done)
	tick := time.NewTicker(m.interval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
			_ = m.push(ctx)
			cancel()
		case <-m.stop:
			return
		}
	}
}

func (m *metricPusher) push(ctx context.Context) error {
	mfs, err := m.gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return err
	}
	m.buf = appendMetricsRequest(append(m.buf[:0], make([]byte, grpcPrefix)...), m.res, mfs, m.start, time.Now())
	if err := m.c.call(ctx, otlpMetricsPath, m.buf); err != nil {
		m.self.exportErrors.WithLabelValues("metrics").Inc()
		m.self.droppedMetrics.Inc()
		m.warn.warn(m.logger, "metric export to collector failed", "err", err)
		return err
	}
	m.self.exported.WithLabelValues("metrics").Inc()
	return nil
}

// shutdown stops the loop and pushes once more, bounded by ctx.
func (m *metricPusher) shutdown(ctx context.Context) error {
	m.once.Do(func() { close(m.stop) })
	select {
	case <-m.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	err := m.push(ctx)
	m.c.close()
	return err
}

// boundedSpanProcessor queues finished spans in a bounded channel and
// exports them in batches from one goroutine. When the queue is full (the
// collector is slow or down) spans are dropped and counted; OnEnd never
// blocks the request path. The export goroutine is woken once a batch is
// queued (or by the flush interval), not once per span: a request does not
// pay for a goroutine hand-off.
type boundedSpanProcessor struct {
	exp      sdktrace.SpanExporter
	queue    chan sdktrace.ReadOnlySpan
	kick     chan struct{} // a batch is queued; capacity 1
	kickAt   int           // queue length that kicks the exporter
	batch    int
	interval time.Duration
	timeout  time.Duration
	self     *selfMetrics
	logger   *slog.Logger
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	warn     rateLimitedWarn
}

func newBoundedSpanProcessor(exp sdktrace.SpanExporter, queue, batch int, interval, timeout time.Duration, self *selfMetrics, logger *slog.Logger) *boundedSpanProcessor {
	p := &boundedSpanProcessor{
		exp: exp, queue: make(chan sdktrace.ReadOnlySpan, queue), batch: batch,
		kick: make(chan struct{}, 1), kickAt: max(1, min(batch, queue)),
		interval: interval, timeout: timeout, self: self, logger: logger,
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.loop()
	return p
}

func (p *boundedSpanProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (p *boundedSpanProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	p.enqueue(s)
}

// enqueue queues a finished sampled span, or drops and counts it when the
// queue is full.
func (p *boundedSpanProcessor) enqueue(s sdktrace.ReadOnlySpan) {
	select {
	case p.queue <- s:
		if len(p.queue) >= p.kickAt {
			select {
			case p.kick <- struct{}{}:
			default: // already kicked
			}
		}
	default:
		p.self.droppedSpans.Inc()
		if hs, ok := s.(*hopSpan); ok {
			hs.free()
		}
	}
}

func (p *boundedSpanProcessor) loop() {
	defer close(p.done)
	buf := make([]sdktrace.ReadOnlySpan, 0, p.batch)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	// drain exports everything queued, in batches.
	drain := func() {
		for {
			select {
			case s := <-p.queue:
				buf = append(buf, s)
				if len(buf) >= p.batch {
					buf = p.export(buf)
				}
			default:
				if len(buf) > 0 {
					buf = p.export(buf)
				}
				return
			}
		}
	}
	for {
		select {
		case <-p.kick:
			drain()
		case <-tick.C:
			drain()
		case <-p.stop:
			for {
				select {
				case s := <-p.queue:
					buf = append(buf, s)
					if len(buf) >= p.batch {
						buf = p.export(buf)
					}
				default:
					if len(buf) > 0 {
						p.export(buf)
					}
					return
				}
			}
		}
	}
}

func (p *boundedSpanProcessor) export(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	err := p.exp.ExportSpans(ctx, buf)
	cancel()
	if err != nil {
		p.self.exportErrors.WithLabelValues("spans").Inc()
		p.self.droppedSpans.Add(float64(len(buf)))
		p.warn.warn(p.logger, "span export to collector failed", "spans", len(buf), "err", err)
	} else {
		p.self.exported.WithLabelValues("spans").Add(float64(len(buf)))
	}
	for _, s := range buf { // encoded and sent: recycle the hop spans
		if hs, ok := s.(*hopSpan); ok {
			hs.free()
		}
	}
	clear(buf)
	return buf[:0]
}

// Shutdown exports what is queued (bounded by ctx) and closes the exporter.
func (p *boundedSpanProcessor) Shutdown(ctx context.Context) error {
	p.once.Do(func() { close(p.stop) })
	select {
	case <-p.done:
	case <-ctx.Done():
		return fmt.Errorf("span queue not flushed: %w", ctx.Err())
	}
	return p.exp.Shutdown(ctx)
}

// ForceFlush is a no-op: the queue is flushed by the export loop.
func (p *boundedSpanProcessor) ForceFlush(context.Context) error { return nil }
