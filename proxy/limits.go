package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// limits enforces the connection and request limits that protect the proxy
// and the app from hostile clients: strict HTTP/1.1 framing with a bound on
// request heads (guardConn) and a bound on connections waiting for protocol
// detection. It counts what it refuses.
type limits struct {
	maxHead  int
	detects  chan struct{} // one token per connection in detection
	logger   *slog.Logger
	rejected *prometheus.CounterVec // requests refused by the framing guard, by reason
	refused  *prometheus.CounterVec // connections closed before detection finished, by reason
}

// Reasons a connection is closed before it is forwarded.
const (
	refusedDetectTimeout = "detect_timeout" // nothing arrived within detect_timeout
	refusedDetectLimit   = "detect_limit"   // max_detections connections were already being detected
)

func newLimits(cfg *Config, reg prometheus.Registerer, logger *slog.Logger) (*limits, error) {
	l := &limits{
		maxHead: cfg.MaxHeaderBytes,
		detects: make(chan struct{}, cfg.MaxDetections),
		logger:  logger,
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_proxy_rejected_requests_total",
			Help: "HTTP/1.1 requests refused for their framing or size before anything was forwarded, by reason.",
		}, []string{"reason"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_proxy_refused_connections_total",
			Help: "Connections closed before protocol detection finished (detect_timeout: the client sent nothing; detect_limit: too many connections in detection).",
		}, []string{"reason"}),
	}
	detecting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_proxy_detecting_connections",
		Help: "Connections waiting for protocol detection (at most max_detections).",
	}, func() float64 { return float64(len(l.detects)) })
	for _, c := range []prometheus.Collector{l.rejected, l.refused, detecting} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{refusedDetectTimeout, refusedDetectLimit} {
		l.refused.WithLabelValues(r)
	}
	return l, nil
}

// guard wraps a plain-text HTTP/1.x (or h2c) connection in the framing guard.
func (l *limits) guard(c net.Conn) net.Conn {
	return newGuardConn(c, l.maxHead, l.reject)
}

func (l *limits) reject(fe *framingError) {
	l.rejected.WithLabelValues(fe.kind).Inc()
	l.logger.Debug("request refused", "status", fe.status, "reason", fe.reason)
}

// startDetect takes a detection slot; false when all are taken.
func (l *limits) startDetect() bool {
	select {
	case l.detects <- struct{}{}:
		return true
	default:
		l.refused.WithLabelValues(refusedDetectLimit).Inc()
		return false
	}
}

func (l *limits) endDetect() { <-l.detects }

type guardKey struct{}

// connContext puts a connection's framing guard into its requests' context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	ctx = withMeshConn(ctx, c)
	if g, ok := c.(*guardConn); ok {
		return context.WithValue(ctx, guardKey{}, g)
	}
	return ctx
}

// guardOf returns the framing guard of r's connection, nil when there is
// none (HTTP/2, TLS).
func guardOf(r *http.Request) *guardConn {
	g, _ := r.Context().Value(guardKey{}).(*guardConn)
	return g
}

// orderKeeper is a client connection that keeps the field order of its
// requests and responses: the framing guard, or the owned HTTP/1.1 loop.
type orderKeeper interface {
	// takeOrder returns the field names of the request with target uri.
	takeOrder(uri string) fieldNames
	// expectResp makes the next response head follow names.
	expectResp(names fieldNames)
	// resume parses again after an Upgrade or CONNECT request that was
	// answered without taking over the connection.
	resume()
}

// orderKeeperOf returns the connection that keeps r's field order, nil
// when there is none (HTTP/2, TLS with ALPN h2).
func orderKeeperOf(r *http.Request) orderKeeper {
	ctx := r.Context()
	if c, ok := ctx.Value(h1ConnKey{}).(*h1ServerConn); ok {
		return c
	}
	if g, ok := ctx.Value(guardKey{}).(*guardConn); ok {
		return g
	}
	return nil
}

// tunnelGuard stops framing checks on a hijacked connection.
func tunnelGuard(c net.Conn) {
	if g, ok := c.(*guardConn); ok {
		g.tunnel()
	}
}
