package proxy

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DurationBuckets are the mesh_request_duration_seconds buckets (seconds),
// resolving 100 µs to 30 s (docs/metrics.md).
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Native histogram settings of mesh_request_duration_seconds: bucket
// growth factor at most 1.1 (schema 3: 2^(1/8) ≈ 1.09) and at most this
// many buckets (the resolution is halved beyond it; 100 µs .. 30 s at
// schema 3 takes about 150).
const (
	NativeBucketFactor = 1.1
	NativeMaxBuckets   = 160
)

// Label values.
const (
	dirInbound  = "inbound"
	dirOutbound = "outbound"

	outcomeSuccess = "success"
	outcomeFailure = "failure"

	protoHTTP1     = "http1"
	protoHTTP2     = "http2"
	protoGRPC      = "grpc"
	protoWebSocket = "websocket"
	protoTCP       = "tcp"

	tlsPlaintext = "plaintext" // the tls label; mtls from proxy/meshtls

	serviceUnknown  = "unknown"
	serviceExternal = "external"
	versionUnknown  = "unknown"
)

var commonLabels = []string{"direction", "source_service", "source_version", "destination_service", "destination_version", "outcome", "protocol", "route", "tls"}
var tcpLabels = []string{"direction", "source_service", "destination_service", "destination_version", "protocol"}

// peerLabels identify the two ends of a request or connection.
type peerLabels struct {
	direction, srcService, srcVersion, dstService, dstVersion string
}

// requestKey is one label set of the request metrics.
type requestKey struct {
	peerLabels
	outcome, protocol, route, statusCode, grpcStatus string
	// tls is mtls when the hop ran over mesh mTLS, else plaintext.
	tls string
}

// requestSeries holds the resolved metric children of one label set, so the
// hot path does one map lookup instead of hashing label values per metric.
type requestSeries struct {
	requests  prometheus.Counter
	duration  prometheus.Observer
	reqBytes  prometheus.Counter
	respBytes prometheus.Counter
}

type tcpSeries struct {
	conns    prometheus.Counter
	open     prometheus.Gauge
	sent     prometheus.Counter
	received prometheus.Counter
}

// goldenMetrics records the golden metrics of docs/metrics.md.
type goldenMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	reqBytes  *prometheus.CounterVec
	respBytes *prometheus.CounterVec
	tcpConns  *prometheus.CounterVec
	tcpOpen   *prometheus.GaugeVec
	tcpBytes  *prometheus.CounterVec

	mu  sync.RWMutex
	req map[requestKey]*requestSeries
	tcp map[peerLabels]*tcpSeries
}

func newGoldenMetrics(reg prometheus.Registerer) (*goldenMetrics, error) {
	m := &goldenMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_requests_total", Help: "Requests seen by the proxy.",
		}, append(append([]string{}, commonLabels...), "status_code", "grpc_status")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mesh_request_duration_seconds", Help: "Request duration from the first byte received to the last byte of the response.",
			Buckets: DurationBuckets,
			// A native (exponential) histogram alongside the classic
			// buckets: schema 3, buckets 9 % wide, so quantiles are
			// within a few percent (docs/metrics.md).
			NativeHistogramBucketFactor:     NativeBucketFactor,
			NativeHistogramMaxBucketNumber:  NativeMaxBuckets,
			NativeHistogramMinResetDuration: time.Hour,
		}, commonLabels),
		reqBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_request_bytes_total", Help: "Request body bytes forwarded.",
		}, commonLabels),
		respBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_response_bytes_total", Help: "Response body bytes forwarded.",
		}, commonLabels),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_tcp_connections_total", Help: "Opaque TCP connections forwarded.",
		}, tcpLabels),
		tcpOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mesh_tcp_open_connections", Help: "Opaque TCP connections currently open.",
		}, tcpLabels),
		tcpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_tcp_bytes_total", Help: "Opaque TCP bytes forwarded; flow is sent (towards the destination) or received.",
		}, append(append([]string{}, tcpLabels...), "flow")),
		req: map[requestKey]*requestSeries{},
		tcp: map[peerLabels]*tcpSeries{},
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.reqBytes, m.respBytes, m.tcpConns, m.tcpOpen, m.tcpBytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *goldenMetrics) request(k *requestKey) *requestSeries {
	m.mu.RLock()
	s := m.req[*k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.req[*k]; s != nil {
		return s
	}
	tls := k.tls
	if tls == "" {
		tls = tlsPlaintext
	}
	common := []string{k.direction, k.srcService, k.srcVersion, k.dstService, k.dstVersion, k.outcome, k.protocol, k.route, tls}
	s = &requestSeries{
		requests:  m.requests.WithLabelValues(append(common, k.statusCode, k.grpcStatus)...),
		duration:  m.duration.WithLabelValues(common...),
		reqBytes:  m.reqBytes.WithLabelValues(common...),
		respBytes: m.respBytes.WithLabelValues(common...),
	}
	m.req[*k] = s
	return s
}

// seriesCache remembers the series of the last label set of one owned
// connection: its requests mostly repeat it, and then take neither the
// lock nor the map lookup of request. Series are never deleted, so a
// remembered one stays current.
type seriesCache struct {
	key requestKey
	s   *requestSeries
}

func (c *seriesCache) get(m *goldenMetrics, k *requestKey) *requestSeries {
	if c.s == nil || c.key != *k {
		c.key, c.s = *k, m.request(k)
	}
	return c.s
}

func (m *goldenMetrics) tcpConn(k peerLabels) *tcpSeries {
	m.mu.RLock()
	s := m.tcp[k]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.tcp[k]; s != nil {
		return s
	}
	l := []string{k.direction, k.srcService, k.dstService, k.dstVersion, protoTCP}
	s = &tcpSeries{
		conns:    m.tcpConns.WithLabelValues(l...),
		open:     m.tcpOpen.WithLabelValues(l...),
		sent:     m.tcpBytes.WithLabelValues(append(l, "sent")...),
		received: m.tcpBytes.WithLabelValues(append(l, "received")...),
	}
	m.tcp[k] = s
	return s
}

// statusText holds the status_code label value of every valid status so the
// hot path never formats integers.
var statusText = func() [600]string {
	var t [600]string
	for i := 100; i < 600; i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusLabel(code int) string {
	if code >= 100 && code < 600 {
		return statusText[code]
	}
	return "other"
}

// grpcCodeNames are the gRPC status code names, indexed by code.
var grpcCodeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// grpcStatusLabel maps a grpc-status header value to its code name and
// whether it is a server-side failure.
func grpcStatusLabel(v string) (name string, serverError bool) {
	if v == "" {
		return "", false
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' || i > 2 {
			return "UNKNOWN", true
		}
		n = n*10 + int(c-'0')
	}
	if n >= len(grpcCodeNames) {
		return "UNKNOWN", true
	}
	switch n {
	case 2, 4, 12, 13, 14, 15: // UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
		return grpcCodeNames[n], true
	}
	return grpcCodeNames[n], false
}

// selfMetrics are the meshscope_proxy_* series.
type selfMetrics struct {
	info           *prometheus.GaugeVec
	dropped        *prometheus.CounterVec
	exportErrors   *prometheus.CounterVec
	exported       *prometheus.CounterVec
	configVersion  prometheus.Gauge
	inflight       prometheus.Gauge
	droppedSpans   prometheus.Counter
	droppedMetrics prometheus.Counter
}

func newSelfMetrics(reg prometheus.Registerer, cfg *Config) (*selfMetrics, error) {
	m := &selfMetrics{
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshscope_proxy_info", Help: "Always 1; names this proxy's service, version and mode.",
		}, []string{"service", "version", "mode"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_proxy_telemetry_dropped_total", Help: "Spans or metric exports dropped (queue full, collector down or slow).",
		}, []string{"signal"}),
		exportErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_proxy_telemetry_export_errors_total", Help: "Failed export calls to the collector.",
		}, []string{"signal"}),
		exported: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_proxy_telemetry_exported_total", Help: "Spans or metric batches exported to the collector.",
		}, []string{"signal"}),
		configVersion: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_proxy_config_version", Help: "Generation of the loaded configuration (1 at start, +1 per reload).",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshscope_proxy_inflight_requests", Help: "Requests being forwarded now.",
		}),
	}
	for _, c := range []prometheus.Collector{m.info, m.dropped, m.exportErrors, m.exported, m.configVersion, m.inflight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.info.WithLabelValues(cfg.Service, cfg.Version, cfg.Mode).Set(1)
	m.configVersion.Set(1)
	m.droppedSpans = m.dropped.WithLabelValues("spans")
	m.droppedMetrics = m.dropped.WithLabelValues("metrics")
	m.exportErrors.WithLabelValues("spans")
	m.exportErrors.WithLabelValues("metrics")
	return m, nil
}
