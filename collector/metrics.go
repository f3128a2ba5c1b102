package collector

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	received     *prometheus.CounterVec // spans, by transport
	dropped      *prometheus.CounterVec // spans rejected for good, by reason
	requests     *prometheus.CounterVec // requests, by signal, transport and result
	metricPoints *prometheus.CounterVec // OTLP metric data points, by transport

	metricPointsRejected prometheus.Counter
	requestLength        *prometheus.HistogramVec
	lingerBytes          prometheus.Counter // body bytes of refused requests read and discarded
	softLimit            prometheus.Gauge   // Go soft memory limit set by the collector
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_collector_spans_received_total",
			Help: "Spans received by the OTLP receivers, by transport (grpc, http).",
		}, []string{"transport"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_collector_spans_dropped_total",
			Help: "Spans rejected without retry (invalid ids: OTLP partial success), by reason.",
		}, []string{"reason"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_collector_requests_total",
			Help: "OTLP export requests, by signal (traces, metrics), transport and result (ok, invalid, overloaded, too_large, error).",
		}, []string{"signal", "transport", "result"}),
		metricPoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_collector_metric_points_received_total",
			Help: "OTLP metric data points received, by transport.",
		}, []string{"transport"}),
		metricPointsRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_collector_metric_points_rejected_total",
			Help: "OTLP metric data points rejected for good (partial success): unconvertible delta points, samples the TSDB refuses.",
		}),
		requestLength: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshscope_collector_request_bytes",
			Help:    "Size of OTLP/HTTP request bodies after decompression.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10),
		}, []string{"signal"}),
		softLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_collector_soft_memory_limit_bytes",
			Help: "Go soft memory limit the collector keeps at the non-ingest live heap + max_inflight_bytes + 128 MiB (0: not set, soft_memory_limit off or GOMEMLIMIT set).",
		}),
		lingerBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_collector_refused_body_bytes_discarded_total",
			Help: "Body bytes of requests refused before reading (429, 413) read and discarded after the answer, so the client can read it.",
		}),
	}
	for _, t := range []string{"grpc", "http"} {
		m.received.WithLabelValues(t)
		m.metricPoints.WithLabelValues(t)
	}
	m.dropped.WithLabelValues("invalid")
	for _, c := range []prometheus.Collector{m.received, m.dropped, m.requests, m.metricPoints, m.metricPointsRejected, m.requestLength, m.lingerBytes, m.softLimit} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register collector metrics: %w", err)
		}
	}
	return m, nil
}
