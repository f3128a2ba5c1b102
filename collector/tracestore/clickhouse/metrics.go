package clickhouse

import "github.com/prometheus/client_golang/prometheus"

// metrics are the store's self-metrics (meshscope_collector_clickhouse_*).
type metrics struct {
	spansWritten   prometheus.Counter
	spansRefused   prometheus.Counter
	spansFailed    prometheus.Counter
	inserts        *prometheus.CounterVec // result: ok, retried, failed
	insertErrors   *prometheus.CounterVec // cause: retryable, permanent
	insertDuration prometheus.Histogram
	batchSpans     prometheus.Histogram
	queueSpans     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "meshscope", "collector_clickhouse"
	m := &metrics{
		spansWritten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "spans_written_total", Help: "Spans inserted into ClickHouse and acknowledged."}),
		spansRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "spans_refused_total", Help: "Spans refused because the insert queue was full (answered as overload)."}),
		spansFailed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "spans_failed_total", Help: "Spans whose batch failed after every attempt (their writers got the error)."}),
		inserts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "inserts_total", Help: "Batch inserts by final result: ok (first attempt), retried (ok after retries), failed."}, []string{"result"}),
		insertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_errors_total", Help: "Failed insert attempts by cause: retryable (network, timeouts, too many parts, ...) or permanent."}, []string{"cause"}),
		insertDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "insert_duration_seconds", Help: "Duration of one insert attempt.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}}),
		batchSpans: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "batch_spans", Help: "Spans per insert.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10)}),
		queueSpans: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "queue_spans", Help: "Spans accepted and not yet inserted (queued and in flight)."}),
	}
	for _, r := range []string{"ok", "retried", "failed"} {
		m.inserts.WithLabelValues(r)
	}
	for _, c := range []string{"retryable", "permanent"} {
		m.insertErrors.WithLabelValues(c)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.spansWritten, m.spansRefused, m.spansFailed, m.inserts,
			m.insertErrors, m.insertDuration, m.batchSpans, m.queueSpans} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
