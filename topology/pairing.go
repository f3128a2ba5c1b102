package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/collector/spans"
)

// durationBuckets are the span-derived histograms' bounds (seconds), the
// same as mesh_request_duration_seconds'.
var durationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

type pairKey struct {
	trace spans.TraceID
	span  spans.SpanID
}

type pendingSpan struct {
	service, version string
	seconds          float64
	failed           bool
	protocol         string
	peer             string // lone client: the peer node
	conn             string // lone client: connection type of the peer
	expires          time.Time
}

type spanEdgeLabels struct {
	client, clientVersion, server, serverVersion, conn, protocol string
}

type histo struct {
	counts []uint64 // per durationBuckets bound, not cumulative; last is +Inf
	sum    float64
	n      uint64
}

func (h *histo) observe(v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(durationBuckets)+1)
	}
	i := sort.SearchFloat64s(durationBuckets, v)
	h.counts[i]++
	h.sum += v
	h.n++
}

type spanSeries struct {
	requests, failed uint64
	server, client   histo
	created, updated time.Time
	refs             map[string]storage.SeriesRef // by series name suffix
	written          bool
}

type pairingMetrics struct {
	spans   *prometheus.CounterVec // result
	pending prometheus.GaugeFunc
	series  prometheus.GaugeFunc
	appendE prometheus.Counter
}

// pairer is the span sink: it pairs CLIENT with SERVER spans of the same
// call, and turns calls into the traces_service_graph_* series it appends
// to the metrics store.
type pairer struct {
	cfg    Config
	app    storage.Appendable
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	clients map[pairKey]*pendingSpan // by trace + span id
	servers map[pairKey]*pendingSpan // by trace + parent span id
	series  map[spanEdgeLabels]*spanSeries
	m       pairingMetrics
}

func newPairer(cfg Config, app storage.Appendable, reg prometheus.Registerer, logger *slog.Logger) (*pairer, error) {
	p := &pairer{
		cfg:     cfg,
		app:     app,
		logger:  logger,
		now:     time.Now,
		clients: map[pairKey]*pendingSpan{},
		servers: map[pairKey]*pendingSpan{},
		series:  map[spanEdgeLabels]*spanSeries{},
	}
	p.m.spans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshscope_topology_pairing_spans_total",
		Help: "Spans seen by the span pairing sink, by result (paired, user, database, virtual, external, expired, skipped_proxy, skipped_kind, overflow).",
	}, []string{"result"})
	p.m.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_topology_pairing_pending_spans",
		Help: "Client and server spans waiting for their peer.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.clients) + len(p.servers))
	})
	p.m.series = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "meshscope_topology_pairing_edges",
		Help: "Span-derived edge series being appended to the metrics store.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(len(p.series))
	})
	p.m.appendE = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshscope_topology_pairing_append_errors_total",
		Help: "Failed appends of span-derived series to the metrics store.",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{p.m.spans, p.m.pending, p.m.series, p.m.appendE} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering pairing metrics: %w", err)
			}
		}
	}
	return p, nil
}

// isProxySpan reports spans emitted by meshscope proxies: the golden
// metrics already count those calls.
func isProxySpan(s *spans.Span) bool {
	if strings.Contains(strings.ToLower(s.Scope), "meshscope") {
		return true
	}
	_, ok := s.Attr("mesh.direction")
	return ok
}

func attrStr(s *spans.Span, keys ...string) string {
	for _, k := range keys {
		if a, ok := s.Attr(k); ok {
			if v := a.String(); v != "" {
				return v
			}
		}
	}
	return ""
}

func spanFailed(s *spans.Span) bool {
	if s.IsError() {
		return true
	}
	if a, ok := s.Attr("http.response.status_code"); ok && spanStatus(a) >= 500 {
		return true
	}
	if a, ok := s.Attr("http.status_code"); ok && spanStatus(a) >= 500 {
		return true
	}
	return false
}

func spanStatus(a spans.Attr) int64 {
	if a.Type == spans.TypeInt {
		return a.Int
	}
	n, _ := strconv.ParseInt(a.String(), 10, 64)
	return n
}

func hasDB(s *spans.Span) bool {
	for _, a := range s.Attrs {
		if strings.HasPrefix(a.Key, "db.") {
			return true
		}
	}
	return false
}

func spanProtocol(s *spans.Span) string {
	if v := attrStr(s, "db.system.name", "db.system"); v != "" {
		return strings.ToLower(v)
	}
	if strings.EqualFold(attrStr(s, "rpc.system"), "grpc") {
		return "grpc"
	}
	if v := attrStr(s, "messaging.system"); v != "" {
		return strings.ToLower(v)
	}
	if attrStr(s, "http.request.method", "http.method") != "" {
		switch attrStr(s, "network.protocol.version", "http.flavor") {
		case "2", "2.0":
			return "http2"
		}
		return "http1"
	}
	return ""
}

// clientPeer names the node a client span calls when no server span pairs
// with it, and the connection type; "" when the span names no usable peer.
func clientPeer(s *spans.Span) (peer, conn string) {
	if hasDB(s) {
		name := attrStr(s, "db.namespace", "db.name", "server.address", "net.peer.name", "db.system.name", "db.system")
		if name == "" {
			name = "database"
		}
		return name, connDatabase
	}
	if v := attrStr(s, "peer.service"); v != "" {
		return v, connVirtual
	}
	host := attrStr(s, "server.address", "net.peer.name", "http.host", "network.peer.address", "net.sock.peer.addr", "net.peer.ip")
	if host == "" {
		if raw := attrStr(s, "url.full", "http.url"); raw != "" {
			if u, err := url.Parse(raw); err == nil {
				host = u.Host
			}
		}
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.Trim(host, "[]"))
	switch {
	case host == "":
		return "", ""
	case host == "localhost" || isLoopback(host):
		return "", "" // the app's own sidecar: the proxy reports the call
	case net.ParseIP(host) == nil && !strings.Contains(host, "."):
		return host, connVirtual // a bare name is a service in the mesh's naming
	default:
		return host, connExternal
	}
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func spanVersion(s *spans.Span) string { return orUnknown(attrStr(s, "service.version")) }

// ConsumeSpans implements consumer.Spans.
func (p *pairer) ConsumeSpans(_ context.Context, batch []spans.Span) error {
	now := p.now()
	exp := now.Add(p.cfg.PairingExpiry)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range batch {
		s := &batch[i]
		if isProxySpan(s) {
			p.m.spans.WithLabelValues("skipped_proxy").Inc()
			continue
		}
		switch s.Kind {
		case spans.KindServer, spans.KindConsumer:
			srv := &pendingSpan{service: s.Service, version: spanVersion(s), seconds: s.Duration().Seconds(),
				failed: spanFailed(s), protocol: spanProtocol(s), expires: exp}
			if s.ParentSpanID.IsZero() {
				p.record(now, spanEdgeLabels{UserNodeID, unknownVersion, srv.service, srv.version, connUser, srv.protocol}, nil, srv)
				p.m.spans.WithLabelValues("user").Inc()
				continue
			}
			k := pairKey{s.TraceID, s.ParentSpanID}
			if c, ok := p.clients[k]; ok {
				delete(p.clients, k)
				p.pair(now, c, srv)
				continue
			}
			if p.full() {
				continue
			}
			p.servers[k] = srv
		case spans.KindClient, spans.KindProducer:
			cl := &pendingSpan{service: s.Service, version: spanVersion(s), seconds: s.Duration().Seconds(),
				failed: spanFailed(s), protocol: spanProtocol(s), expires: exp}
			cl.peer, cl.conn = clientPeer(s)
			if cl.conn == connDatabase { // databases never answer with a span
				p.record(now, spanEdgeLabels{cl.service, cl.version, cl.peer, unknownVersion, connDatabase, cl.protocol}, cl, nil)
				p.m.spans.WithLabelValues("database").Inc()
				continue
			}
			k := pairKey{s.TraceID, s.SpanID}
			if srv, ok := p.servers[k]; ok {
				delete(p.servers, k)
				p.pair(now, cl, srv)
				continue
			}
			if p.full() {
				continue
			}
			p.clients[k] = cl
		default:
			p.m.spans.WithLabelValues("skipped_kind").Inc()
		}
	}
	return nil
}

func (p *pairer) full() bool {
	if len(p.clients)+len(p.servers) < p.cfg.PairingMaxPending {
		return false
	}
	p.m.spans.WithLabelValues("overflow").Inc()
	return true
}

func (p *pairer) pair(now time.Time, c, s *pendingSpan) {
	proto := c.protocol
	if proto == "" {
		proto = s.protocol
	}
	p.record(now, spanEdgeLabels{c.service, c.version, s.service, s.version, connPaired, proto}, c, s)
	p.m.spans.WithLabelValues("paired").Add(2)
}

// record counts one call; c or s may be nil.
func (p *pairer) record(now time.Time, l spanEdgeLabels, c, s *pendingSpan) {
	ser := p.series[l]
	if ser == nil {
		ser = &spanSeries{created: now, refs: map[string]storage.SeriesRef{}}
		p.series[l] = ser
	}
	ser.updated = now
	ser.requests++
	failed := (c != nil && c.failed) || (s != nil && s.failed)
	if failed {
		ser.failed++
	}
	if s != nil {
		ser.server.observe(s.seconds)
	}
	if c != nil {
		ser.client.observe(c.seconds)
	}
}

// expire settles spans whose peer did not arrive in time: a lone client
// span with a peer becomes an edge to a virtual or external node; a lone
// non-root server span is dropped (its caller is unknown, and a meshed
// caller's proxy already counted the call).
func (p *pairer) expire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.clients {
		if now.Before(c.expires) {
			continue
		}
		delete(p.clients, k)
		if c.peer == "" {
			p.m.spans.WithLabelValues("expired").Inc()
			continue
		}
		p.record(now, spanEdgeLabels{c.service, c.version, c.peer, unknownVersion, c.conn, c.protocol}, c, nil)
		if c.conn == connExternal {
			p.m.spans.WithLabelValues("external").Inc()
		} else {
			p.m.spans.WithLabelValues("virtual").Inc()
		}
	}
	for k, s := range p.servers {
		if now.Before(s.expires) {
			continue
		}
		delete(p.servers, k)
		p.m.spans.WithLabelValues("expired").Inc()
	}
}

type pendingSample struct {
	ser    *spanSeries
	name   string
	lset   labels.Labels
	zeroAt int64 // >0: append a 0 here first (new series)
	v      float64
}

// flush appends the current value of every live span-derived series at now.
// A series' first flush also appends a zero at its creation time, so rate()
// has two samples from the first flush on.
func (p *pairer) flush(ctx context.Context, now time.Time) error {
	t := now.UnixMilli()
	var out []pendingSample
	p.mu.Lock()
	for l, ser := range p.series {
		if now.Sub(ser.updated) > p.cfg.SpanSeriesIdle {
			delete(p.series, l)
			continue
		}
		zero := int64(0)
		if !ser.written {
			zero = ser.created.UnixMilli()
			if zero >= t {
				zero = t - 1
			}
			ser.written = true
		}
		base := []string{"client", l.client, "client_version", l.clientVersion, "server", l.server,
			"server_version", l.serverVersion, "connection_type", l.conn, "protocol", l.protocol}
		add := func(name string, v float64, extra ...string) {
			lb := append(append([]string{labels.MetricName, name}, base...), extra...)
			out = append(out, pendingSample{ser: ser, name: name + strings.Join(extra, "="), lset: labels.FromStrings(lb...), zeroAt: zero, v: v})
		}
		add(spanMetricRequests, float64(ser.requests))
		add(spanMetricFailed, float64(ser.failed))
		for _, h := range []struct {
			name string
			h    *histo
		}{{spanMetricServer, &ser.server}, {spanMetricClient, &ser.client}} {
			if h.h.n == 0 {
				continue
			}
			var cum uint64
			for i, bound := range durationBuckets {
				cum += h.h.counts[i]
				add(h.name+"_bucket", float64(cum), "le", strconv.FormatFloat(bound, 'g', -1, 64))
			}
			add(h.name+"_bucket", float64(h.h.n), "le", "+Inf")
			add(h.name+"_sum", h.h.sum)
			add(h.name+"_count", float64(h.h.n))
		}
	}
	p.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	app := p.app.Appender(ctx)
	var errs []error
	refs := make([]storage.SeriesRef, len(out))
	for i, s := range out {
		p.mu.Lock()
		ref := s.ser.refs[s.name]
		p.mu.Unlock()
		var err error
		if s.zeroAt > 0 {
			ref, err = app.Append(ref, s.lset, s.zeroAt, 0)
			if err != nil {
				errs = append(errs, err)
			}
		}
		ref, err = app.Append(ref, s.lset, t, s.v)
		if err != nil {
			errs = append(errs, err)
			ref = 0
		}
		refs[i] = ref
	}
	if err := app.Commit(); err != nil {
		p.m.appendE.Inc()
		return fmt.Errorf("committing span-derived series: %w", err)
	}
	p.mu.Lock()
	for i, s := range out {
		s.ser.refs[s.name] = refs[i]
	}
	p.mu.Unlock()
	if len(errs) > 0 {
		p.m.appendE.Add(float64(len(errs)))
		return fmt.Errorf("appending span-derived series: %w", errors.Join(errs...))
	}
	return nil
}
