package topology

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/meshscope/meshscope/collector/spans"
)

// Topology builds the service graph from the metrics store, keeps the live
// graphs of the default and subscribed windows fresh (Run), serves them
// (RegisterRoutes) and is the span pairing sink (ConsumeSpans).
type Topology struct {
	cfg  Config
	th   thresholds
	b    *builder
	pair *pairer
	agg  *aggregator // nil when edge aggregates are off

	hookOnce sync.Once
	hooked   bool // the aggregator is seeded and fed by an ingest hook
	hub      *hub
	admit    *streamAdmission
	logger   *slog.Logger
	up       websocket.Upgrader
	now      func() time.Time

	buildSeconds prometheus.Histogram
	buildErrors  prometheus.Counter
	nodes        *prometheus.GaugeVec
	edges        *prometheus.GaugeVec

	mu   sync.Mutex
	live map[time.Duration]*liveGraphs

	onDemand chan struct{} // bounds concurrent builds for API requests
}

// maxOnDemandBuilds bounds concurrent graph builds for API requests.
const maxOnDemandBuilds = 2

type liveGraphs struct {
	builtAt time.Time
	views   map[string]*Graph
}

// New returns the graph builder. engine evaluates PromQL over q (the metrics
// store holding the golden metrics); app is the same store, where the span
// pairing sink appends its series.
func New(cfg Config, engine promql.QueryEngine, q storage.Queryable, app storage.Appendable, reg prometheus.Registerer, logger *slog.Logger) (*Topology, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("topology config: %w", err)
	}
	if engine == nil || q == nil || app == nil {
		return nil, errors.New("topology: engine, queryable and appendable are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Topology{
		cfg:    cfg,
		th:     thresholds{degraded: cfg.DegradedErrorRate, failing: cfg.FailingErrorRate},
		b:      &builder{engine: engine, q: q, cfg: cfg, aggregates: cfg.edgeAggregates()},
		logger: logger,
		now:    time.Now,
		live:   map[time.Duration]*liveGraphs{},

		onDemand: make(chan struct{}, maxOnDemandBuilds),
		buildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshscope_topology_build_seconds",
			Help:    "Time to build the graph of one window (all PromQL queries and assembly).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		buildErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_topology_build_errors_total",
			Help: "Live graph builds that failed.",
		}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshscope_topology_nodes",
			Help: "Nodes of the live graph (default window), by view.",
		}, []string{"view"}),
		edges: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshscope_topology_edges",
			Help: "Edges of the live graph (default window), by view.",
		}, []string{"view"}),
	}
	clients := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshscope_topology_stream_clients",
		Help: "Connected graph stream clients.",
	})
	dropped := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "meshscope_topology_stream_dropped_clients_total",
		Help: "Stream clients disconnected because their send queue was full.",
	})
	t.hub = newHub(cfg.StreamBuffer, clients, dropped)
	t.admit = newStreamAdmission(cfg.StreamMaxClients, cfg.StreamMaxClientsPerAddress)
	if reg != nil {
		for _, c := range []prometheus.Collector{t.buildSeconds, t.buildErrors, t.nodes, t.edges, clients, dropped, t.admit.refused} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering topology metrics: %w", err)
			}
		}
	}
	p, err := newPairer(cfg, app, reg, logger)
	if err != nil {
		return nil, err
	}
	t.pair = p
	if cfg.edgeAggregates() {
		if t.agg, err = newAggregator(q, app, cfg.AggregateInterval, reg, logger); err != nil {
			return nil, err
		}
		if cfg.liveMemory() {
			t.agg.enableMemory(cfg.DefaultWindow)
			t.b.mem = t.agg
		}
	}
	t.up = websocket.Upgrader{
		CheckOrigin:       t.checkOrigin,
		HandshakeTimeout:  10 * time.Second,
		EnableCompression: false,
	}
	return t, nil
}

// ConsumeSpans implements consumer.Spans: spans from apps (not from
// meshscope proxies) are paired into span-derived edges.
func (t *Topology) ConsumeSpans(ctx context.Context, batch []spans.Span) error {
	return t.pair.ConsumeSpans(ctx, batch)
}

// Graph builds the graph of view over the window ending at at from the
// metrics store. The live view and replays both come from here.
func (t *Topology) Graph(ctx context.Context, at time.Time, window time.Duration, view string) (*Graph, error) {
	return t.graph(ctx, at, window, view, false)
}

// BuildLive builds the graph as the live loop does at at: the per-edge
// aggregates of windows up to DefaultWindow are summed from memory
// (Config.LiveMemory) rather than read from the store. The result equals
// Graph's for the same arguments.
func (t *Topology) BuildLive(ctx context.Context, at time.Time, window time.Duration, view string) (*Graph, error) {
	return t.graph(ctx, at, window, view, true)
}

func (t *Topology) graph(ctx context.Context, at time.Time, window time.Duration, view string, live bool) (*Graph, error) {
	if _, err := parseView(view); err != nil {
		return nil, err
	}
	a, err := t.assemble(ctx, at, window, live)
	if err != nil {
		return nil, err
	}
	return a.graph(view, t.th), nil
}

func (t *Topology) assemble(ctx context.Context, at time.Time, window time.Duration, live bool) (*assembled, error) {
	start := time.Now()
	raw, err := t.b.fetch(ctx, at.Truncate(time.Millisecond), window, live)
	if err != nil {
		return nil, err
	}
	a := assemble(raw)
	t.buildSeconds.Observe(time.Since(start).Seconds())
	return a, nil
}

// AggregateEdges appends, stamped now, the per-edge aggregates of the raw
// golden samples that went through the ingest hook (Appendable,
// AppendableV2) since the edges' last aggregate samples (docs/topology.md,
// "Edge aggregates"). Run calls it every BuildInterval before rebuilding;
// call it directly only when not running Run (tools, benchmarks), with
// increasing times. It does nothing when edge aggregates are off or no
// hook was made.
func (t *Topology) AggregateEdges(ctx context.Context, now time.Time) error {
	if t.agg == nil {
		return nil
	}
	return t.agg.step(ctx, now.Truncate(time.Millisecond))
}

// Run rebuilds the live graphs every BuildInterval, feeds the stream and
// flushes the span pairing sink, until ctx is cancelled.
func (t *Topology) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		start := time.Now()
		t.step(ctx)
		// When a build takes longer than the interval, wait as long as it
		// took, so the builder leaves at least half a core to the rest.
		took := time.Since(start)
		timer.Reset(max(t.cfg.BuildInterval-took, took))
		select {
		case <-ctx.Done():
			t.hub.closeAll()
			// Settle what is pending so the last calls are not lost.
			now := t.now()
			t.pair.expire(now)
			if err := t.pair.flush(context.WithoutCancel(ctx), now); err != nil {
				t.logger.Warn("flushing span-derived series", "err", err)
			}
			return nil
		case <-timer.C:
		}
	}
}

// step is one live iteration.
func (t *Topology) step(ctx context.Context) {
	now := t.now()
	t.pair.expire(now)
	if err := t.pair.flush(ctx, now); err != nil && ctx.Err() == nil {
		t.logger.Warn("appending span-derived series", "err", err)
	}
	at := now.Truncate(time.Millisecond)
	if err := t.AggregateEdges(ctx, at); err != nil && ctx.Err() == nil {
		t.logger.Warn("appending edge aggregates", "err", err)
	}
	views := map[time.Duration]map[string]bool{t.cfg.DefaultWindow: {ViewService: true, ViewVersion: true}}
	for _, k := range t.hub.keys() {
		if views[k.window] == nil {
			views[k.window] = map[string]bool{}
		}
		views[k.window][k.view] = true
	}
	for w, vs := range views {
		bctx, cancel := context.WithTimeout(ctx, t.cfg.QueryTimeout)
		a, err := t.assemble(bctx, at, w, true)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				t.buildErrors.Inc()
				t.logger.Warn("building live graph", "window", windowString(w), "err", err)
			}
			continue
		}
		lg := &liveGraphs{builtAt: now, views: map[string]*Graph{}}
		for v := range vs {
			g := a.graph(v, t.th)
			lg.views[v] = g
			if w == t.cfg.DefaultWindow {
				t.nodes.WithLabelValues(v).Set(float64(len(g.Nodes)))
				t.edges.WithLabelValues(v).Set(float64(len(g.Edges)))
			}
			t.hub.publish(streamKey{w, v}, g)
		}
		t.mu.Lock()
		t.live[w] = lg
		t.mu.Unlock()
	}
}

// liveGraph returns the live graph of (window, view) if it is fresh.
func (t *Topology) liveGraph(window time.Duration, view string) *Graph {
	t.mu.Lock()
	defer t.mu.Unlock()
	lg := t.live[window]
	if lg == nil || t.now().Sub(lg.builtAt) > 2*t.cfg.BuildInterval {
		return nil
	}
	return lg.views[view]
}

// RegisterRoutes adds GET /api/mesh/graph and GET /api/mesh/graph/stream.
func (t *Topology) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/mesh/graph", t.handleGraph)
	mux.HandleFunc("GET /api/mesh/graph/stream", t.handleStream)
}

type apiError struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, typ string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apiError{Status: "error", ErrorType: typ, Error: err.Error()})
}

func (t *Topology) parseWindow(s string) (time.Duration, error) {
	if s == "" {
		return t.cfg.DefaultWindow, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, badParam("window", "%q is not a duration like 1m, 5m or 1h", s)
	}
	w := time.Duration(d)
	if w < time.Second || w > t.cfg.MaxWindow {
		return 0, badParam("window", "%s is outside 1s..%s", s, windowString(t.cfg.MaxWindow))
	}
	return w, nil
}

func parseAt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if ts, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return ts, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
		// As Prometheus' API parses time=: rounded to the millisecond, so
		// "1796507386.266" is not read as .265999 and truncated to .265.
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1000))*int64(time.Millisecond)), nil
	}
	return time.Time{}, badParam("at", "%q is neither an RFC 3339 time nor Unix seconds", s)
}

func (t *Topology) handleGraph(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	window, err := t.parseWindow(q.Get("window"))
	var view string
	var at time.Time
	if err == nil {
		view, err = parseView(q.Get("view"))
	}
	if err == nil {
		at, err = parseAt(q.Get("at"))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	var g *Graph
	live := at.IsZero()
	if live {
		g = t.liveGraph(window, view)
		at = t.now()
	}
	if g == nil {
		ctx, cancel := context.WithTimeout(r.Context(), t.cfg.QueryTimeout)
		defer cancel()
		select {
		case t.onDemand <- struct{}{}:
		case <-ctx.Done():
			writeError(w, http.StatusServiceUnavailable, "timeout", fmt.Errorf("waiting for a graph build slot: %w", ctx.Err()))
			return
		}
		g, err = t.graph(ctx, at, window, view, live)
		<-t.onDemand
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				writeError(w, http.StatusServiceUnavailable, "timeout", err)
			} else {
				writeError(w, http.StatusInternalServerError, "execution", err)
			}
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(g)
}

func (t *Topology) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, a := range t.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	return false
}

const (
	streamPingEvery = 30 * time.Second
	streamReadLimit = 4096
)

func (t *Topology) handleStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	window, err := t.parseWindow(q.Get("window"))
	if err == nil && !slices.Contains(t.cfg.StreamWindows, window) && window != t.cfg.DefaultWindow {
		names := make([]string, 0, len(t.cfg.StreamWindows))
		for _, sw := range t.cfg.StreamWindows {
			names = append(names, windowString(sw))
		}
		err = badParam("window", "%s is not a stream window (one of %s)", q.Get("window"), strings.Join(names, ", "))
	}
	var view string
	if err == nil {
		view, err = parseView(q.Get("view"))
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	if !t.checkOrigin(r) {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Errorf("origin %q is not allowed", r.Header.Get("Origin")))
		return
	}
	release, err := t.admit.acquire(clientAddress(r))
	if err != nil {
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, "unavailable", err)
		return
	}
	defer release()
	conn, err := t.up.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	c := t.hub.subscribe(streamKey{window, view})
	defer t.hub.unsubscribe(c)

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		conn.SetReadLimit(streamReadLimit)
		_ = conn.SetReadDeadline(time.Now().Add(2 * streamPingEvery))
		conn.SetPongHandler(func(string) error {
			return conn.SetReadDeadline(time.Now().Add(2 * streamPingEvery))
		})
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	ping := time.NewTicker(streamPingEvery)
	defer ping.Stop()
	for {
		select {
		case frame := <-c.send:
			_ = conn.SetWriteDeadline(time.Now().Add(t.cfg.StreamWriteTimeout))
			if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				return
			}
		case <-c.done:
			code, text := websocket.CloseGoingAway, "server shutting down"
			if c.slow.Load() {
				code, text = websocket.CloseTryAgainLater, "client too slow"
			}
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
			return
		case <-readerDone:
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(t.cfg.StreamWriteTimeout)); err != nil {
				return
			}
		}
	}
}
