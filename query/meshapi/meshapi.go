// Package meshapi implements Meshscope's native read API under /api/mesh/
// (everything except the graph endpoints, which the topology package
// serves): RED tables per service, route, version and edge read from the
// mesh's one RED engine (topology.RED, the figures the graph shows), trace
// search with attribute filters
// returning trace summaries, full traces in a native JSON shape, and server
// health. The UI and the `meshscope` CLI read these; docs/api.md documents
// them.
package meshapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshscope/meshscope/query/internal/route"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/red"
	"github.com/meshscope/meshscope/topology"
)

// Prefix is the mount point.
const Prefix = "/api/mesh"

// Defaults.
const (
	DefaultWindow      = time.Minute
	DefaultTraceLimit  = 20
	DefaultLookback    = time.Hour
	DefaultProxyWindow = 2 * time.Minute
)

// Options configure the API.
type Options struct {
	Timeout     time.Duration // bound on one request's work; 0 = none
	MaxTraces   int           // cap on a trace search's limit; 0 = none
	ProxyWindow time.Duration // how recently a proxy must have reported to count (health)
	Now         func() time.Time
	Logger      *slog.Logger
}

// API serves the native API.
type API struct {
	opts   Options
	red    red.Source
	tables REDSource
	traces tracestore.Reader
	logger *slog.Logger
}

// REDSource computes the RED signals of a window: the mesh's one RED engine
// (topology.Topology), whose figures the graph shows too.
type REDSource interface {
	RED(ctx context.Context, at time.Time, window time.Duration) (*topology.RED, error)
}

// New returns the API over the metrics source (proxies and health), the
// RED engine (the tables; nil: they answer 503) and the trace store (nil:
// trace endpoints answer 503).
func New(opts Options, src red.Source, tables REDSource, traces tracestore.Reader) *API {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ProxyWindow <= 0 {
		opts.ProxyWindow = DefaultProxyWindow
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{opts: opts, red: src, tables: tables, traces: traces, logger: logger}
}

// Route is one method+path pattern and its handler.
type Route = route.Route

// Routes lists the endpoints.
func (a *API) Routes() []Route {
	return []Route{
		{Pattern: "GET " + Prefix + "/services", Name: "mesh_services", Handler: a.handler(a.services)},
		{Pattern: "GET " + Prefix + "/routes", Name: "mesh_routes", Handler: a.handler(a.routes)},
		{Pattern: "GET " + Prefix + "/versions", Name: "mesh_versions", Handler: a.handler(a.versions)},
		{Pattern: "GET " + Prefix + "/edges", Name: "mesh_edges", Handler: a.handler(a.edges)},
		{Pattern: "GET " + Prefix + "/traces", Name: "mesh_traces", Handler: a.handler(a.searchTraces)},
		{Pattern: "GET " + Prefix + "/traces/services", Name: "mesh_trace_services", Handler: a.handler(a.traceServices)},
		{Pattern: "GET " + Prefix + "/traces/{id}", Name: "mesh_trace", Handler: a.handler(a.trace)},
		{Pattern: "GET " + Prefix + "/health", Name: "mesh_health", Handler: http.HandlerFunc(a.health)},
	}
}

// RegisterRoutes registers the endpoints on mux.
func (a *API) RegisterRoutes(mux *http.ServeMux) {
	route.Register(mux, a.Routes())
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error string `json:"error"`
}

type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

func (a *API) handler(f func(r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.opts.Timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), a.opts.Timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		v, err := f(r)
		if err != nil {
			code := http.StatusInternalServerError
			var he *httpError
			switch {
			case errors.As(err, &he):
				code = he.code
			case errors.Is(err, tracestore.ErrTraceNotFound):
				code = http.StatusNotFound
			case errors.Is(err, context.DeadlineExceeded):
				code = http.StatusServiceUnavailable
			}
			a.writeJSON(w, code, ErrorBody{Error: err.Error()})
			return
		}
		a.writeJSON(w, http.StatusOK, v)
	})
}

func (a *API) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.logger.Error("encoding native API response", "err", err)
		code = http.StatusInternalServerError
		b = []byte(`{"error":"encoding response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// window reads the `window` parameter (Prometheus duration, default 1m,
// at least 1s).
func window(r *http.Request) (time.Duration, error) {
	s := r.FormValue("window")
	if s == "" {
		return DefaultWindow, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, badRequest("invalid parameter \"window\": %v", err)
	}
	if time.Duration(d) < time.Second {
		return 0, badRequest("invalid parameter \"window\": %q is shorter than 1s", s)
	}
	return time.Duration(d), nil
}

// timeParam reads an RFC 3339 or Unix-seconds time; def when absent.
func timeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.FormValue(name)
	if s == "" {
		return def, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("invalid parameter %q: want RFC 3339 or Unix seconds, got %q", name, s)
	}
	return t, nil
}

// Number is a float that encodes NaN and infinities as null.
type Number float64

func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return []byte(strconv.FormatFloat(round(f, 6), 'f', -1, 64)), nil
}

// UnmarshalJSON accepts numbers and null (NaN).
func (n *Number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Number(math.NaN())
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	*n = Number(f)
	return err
}

func round(f float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(f*p) / p
}

// ms converts seconds to milliseconds, keeping NaN.
func ms(sec float64) Number { return Number(sec * 1000) }

func splitNonEmpty(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
