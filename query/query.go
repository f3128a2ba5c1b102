package query

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/httputil"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/internal/route"
	"github.com/meshscope/meshscope/query/promapi"
	"github.com/meshscope/meshscope/query/red"
)

// Option adjusts New.
type Option func(*options)

type options struct {
	status promapi.Status
}

// WithStatus sets what the Prometheus status endpoints
// (/api/v1/status/runtimeinfo, /flags, /config) report about the server.
func WithStatus(s promapi.Status) Option {
	return func(o *options) { o.status = s }
}

// API is the query layer: every read endpoint of the server except the
// graph endpoints and the UI.
type API struct {
	cfg     Config
	logger  *slog.Logger
	routes  []route.Route
	reqs    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	prom    *promapi.API
}

// New builds the query layer over the server's PromQL engine, its TSDB
// (as a storage.Queryable), its trace store and the RED engine (the
// topology: the native tables and the Jaeger dependencies show its
// figures, as the graph does). traces may be nil when no trace store is
// configured: the trace endpoints then answer 503.
func New(cfg Config, engine promql.QueryEngine, q storage.Queryable, traces tracestore.Reader, engineRED red.Snapshots, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (*API, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("query config: %w", err)
	}
	if engine == nil {
		return nil, fmt.Errorf("query: nil PromQL engine")
	}
	if q == nil {
		return nil, fmt.Errorf("query: nil metrics storage")
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{
		cfg:    cfg,
		logger: logger,
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_query_http_requests_total",
			Help: "HTTP requests answered by the query API, by endpoint and status code.",
		}, []string{"handler", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshscope_query_http_request_duration_seconds",
			Help:    "Time to answer a query API request, by endpoint.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120},
		}, []string{"handler"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{a.reqs, a.latency} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("query: registering metrics: %w", err)
			}
		}
	}

	prom := promapi.New(promapi.Options{
		Timeout:        cfg.Timeout,
		Logger:         logger,
		MaxQueryLength: cfg.MaxQueryLength,
		MaxQueryNodes:  cfg.MaxQueryNodes,
		Status:         o.status,
	}, engine, q)
	a.prom = prom
	a.routes = append(a.routes, prom.Routes()...)
	a.addTraceAndMeshRoutes(engine, q, traces, engineRED)
	return a, nil
}

// SetRules sets where /api/v1/rules and /api/v1/alerts read the rule
// groups from (the rules engine); without it they answer empty.
func (a *API) SetRules(src promapi.RulesSource) { a.prom.SetRules(src) }

// RegisterRoutes registers every endpoint on mux (Go 1.22 method patterns).
// Answers are compressed (gzip or deflate) when the client accepts it, as
// Prometheus compresses its API answers.
func (a *API) RegisterRoutes(mux *http.ServeMux) {
	for _, r := range a.routes {
		mux.Handle(r.Pattern, a.instrument(r.Name, httputil.CompressionHandler{Handler: r.Handler}))
	}
}

// Patterns lists the registered patterns (for documentation and tests).
func (a *API) Patterns() []string {
	out := make([]string, len(a.routes))
	for i, r := range a.routes {
		out[i] = r.Pattern
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (a *API) instrument(name string, h http.Handler) http.Handler {
	reqs := a.reqs
	lat := a.latency.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		lat.Observe(time.Since(start).Seconds())
		reqs.WithLabelValues(name, strconv.Itoa(rec.code)).Inc()
	})
}
