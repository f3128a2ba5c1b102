package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	promBridge "go.opentelemetry.io/contrib/bridges/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/prometheus/client_golang/prometheus"
)

// telemetry owns the tracer and the exporters that ship spans and metrics.
type telemetry struct {
	tracer   trace.Tracer
	tp       *sdktrace.TracerProvider // nil when tracing is disabled
	spans    *boundedSpanProcessor    // nil without a collector
	mp       *metric.MeterProvider    // nil without a collector
	timeout  time.Duration
	resource *resource.Resource
}

func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newTelemetry(ctx context.Context, cfg *Config, gatherer prometheus.Gatherer, self *selfMetrics, logger *slog.Logger) (*telemetry, error) {
	tc := cfg.Telemetry
	t := &telemetry{timeout: time.Duration(tc.ExportTimeout)}
	t.resource = resource.NewSchemaless(
		attribute.String("service.name", cfg.Service),
		attribute.String("service.version", cfg.Version),
		attribute.String("service.instance.id", newInstanceID()),
		attribute.String("meshscope.proxy.mode", cfg.Mode),
	)
	if tc.DisableTracing {
		t.tracer = noop.NewTracerProvider().Tracer("meshscope-proxy")
	} else {
		opts := []sdktrace.TracerProviderOption{
			sdktrace.WithResource(t.resource),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tc.SampleRatio))),
		}
		if tc.Collector != "" {
			exp, err := otlptracegrpc.New(ctx,
				otlptracegrpc.WithEndpoint(tc.Collector),
				otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithTimeout(t.timeout),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}),
			)
			if err != nil {
				return nil, fmt.Errorf("telemetry.collector %s: span exporter: %w", tc.Collector, err)
			}
			t.spans = newBoundedSpanProcessor(exp, tc.SpanQueueSize, tc.SpanBatchSize,
				time.Duration(tc.SpanFlushInterval), t.timeout, self, logger)
			opts = append(opts, sdktrace.WithSpanProcessor(t.spans))
		}
		t.tp = sdktrace.NewTracerProvider(opts...)
		t.tracer = t.tp.Tracer("meshscope-proxy")
	}
	if tc.Collector != "" {
		exp, err := otlpmetricgrpc.New(ctx,
			otlpmetricgrpc.WithEndpoint(tc.Collector),
			otlpmetricgrpc.WithInsecure(),
			otlpmetricgrpc.WithTimeout(t.timeout),
			otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
		)
		if err != nil {
			return nil, fmt.Errorf("telemetry.collector %s: metric exporter: %w", tc.Collector, err)
		}
		reader := metric.NewPeriodicReader(&countingMetricExporter{Exporter: exp, self: self, logger: logger},
			metric.WithInterval(time.Duration(tc.PushInterval)),
			metric.WithTimeout(t.timeout),
			metric.WithProducer(promBridge.NewMetricProducer(promBridge.WithGatherer(gatherer))),
		)
		t.mp = metric.NewMeterProvider(metric.WithReader(reader), metric.WithResource(t.resource))
	}
	return t, nil
}

// shutdown flushes pending spans and pushes metrics one last time.
func (t *telemetry) shutdown(ctx context.Context) error {
	var errs []error
	if t.tp != nil {
		if err := t.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush spans: %w", err))
		}
	}
	if t.mp != nil {
		if err := t.mp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("flush metrics: %w", err))
		}
	}
	return errors.Join(errs...)
}

// countingMetricExporter counts metric export failures and swallows them,
// so a missing collector is visible in self-metrics instead of log noise.
type countingMetricExporter struct {
	metric.Exporter
	self   *selfMetrics
	logger *slog.Logger
	mu     sync.Mutex
	last   time.Time
}

func (e *countingMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if err := e.Exporter.Export(ctx, rm); err != nil {
		e.self.exportErrors.WithLabelValues("metrics").Inc()
		e.self.droppedMetrics.Inc()
		e.mu.Lock()
		if time.Since(e.last) > time.Minute {
			e.last = time.Now()
			e.logger.Warn("metric export to collector failed (dropped; next warning in 1m)", "err", err)
		}
		e.mu.Unlock()
		return nil
	}
	e.self.exported.WithLabelValues("metrics").Inc()
	return nil
}

// boundedSpanProcessor queues finished spans in a bounded channel and
// exports them in batches from one goroutine. When the queue is full (the
// collector is slow or down) spans are dropped and counted; OnEnd never
// blocks the request path.
type boundedSpanProcessor struct {
	exp      sdktrace.SpanExporter
	queue    chan sdktrace.ReadOnlySpan
	batch    int
	interval time.Duration
	timeout  time.Duration
	self     *selfMetrics
	logger   *slog.Logger
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	lastWarn time.Time
}

func newBoundedSpanProcessor(exp sdktrace.SpanExporter, queue, batch int, interval, timeout time.Duration, self *selfMetrics, logger *slog.Logger) *boundedSpanProcessor {
	p := &boundedSpanProcessor{
		exp: exp, queue: make(chan sdktrace.ReadOnlySpan, queue), batch: batch,
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
	select {
	case p.queue <- s:
	default:
		p.self.droppedSpans.Inc()
	}
}

func (p *boundedSpanProcessor) loop() {
	defer close(p.done)
	buf := make([]sdktrace.ReadOnlySpan, 0, p.batch)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case s := <-p.queue:
			buf = append(buf, s)
			if len(buf) >= p.batch {
				buf = p.export(buf)
			}
		case <-tick.C:
			if len(buf) > 0 {
				buf = p.export(buf)
			}
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
		if time.Since(p.lastWarn) > time.Minute {
			p.lastWarn = time.Now()
			p.logger.Warn("span export to collector failed (dropped; next warning in 1m)", "spans", len(buf), "err", err)
		}
	} else {
		p.self.exported.WithLabelValues("spans").Add(float64(len(buf)))
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
