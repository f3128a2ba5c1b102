package embedded

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type storeMetrics struct {
	bytes   prometheus.Gauge
	spans   prometheus.Gauge
	fsync   prometheus.Histogram
	deleted *prometheus.CounterVec

	corruptRecords prometheus.Counter
	corruptBytes   prometheus.Counter
	replayedBytes  prometheus.Counter
}

func newStoreMetrics(reg prometheus.Registerer) (*storeMetrics, error) {
	m := &storeMetrics{
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_collector_trace_store_bytes",
			Help: "Bytes of span data on disk in the embedded trace store.",
		}),
		spans: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_collector_trace_store_spans",
			Help: "Spans held by the embedded trace store.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshscope_collector_wal_fsync_duration_seconds",
			Help:    "Duration of one WAL fsync (one group commit) in the embedded trace store.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_collector_trace_segments_deleted_total",
			Help: "Trace store segments deleted by retention, by reason (age or size).",
		}, []string{"reason"}),
		corruptRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_collector_trace_store_corrupt_records_total",
			Help: "Damaged stretches of trace segments skipped when the embedded trace store opened (each held at least one record; its spans are lost).",
		}),
		corruptBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_collector_trace_store_corrupt_bytes_total",
			Help: "Bytes of trace segments skipped as damaged when the embedded trace store opened.",
		}),
		replayedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_collector_trace_store_replayed_bytes_total",
			Help: "Bytes of trace segments replayed record by record when the embedded trace store opened (the active segment, and sealed ones without a usable index file).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.bytes, m.spans, m.fsync, m.deleted, m.corruptRecords, m.corruptBytes, m.replayedBytes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("trace store: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
