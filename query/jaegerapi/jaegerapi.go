// Package jaegerapi implements the Jaeger query HTTP API under /jaeger/api/
// (services, operations, trace search, trace by id, dependencies) over a
// tracestore.Reader, in Jaeger's JSON shape, so that the Jaeger UI and
// Grafana's Jaeger data source work unchanged. Dependencies come from the
// golden metrics in the TSDB rather than from spans.
package jaegerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshscope/meshscope/query/internal/route"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore"
	"github.com/meshscope/meshscope/query/red"
)

// Prefix is where the API is mounted; a Jaeger client's base URL is
// http://HOST:PORT/jaeger.
const Prefix = "/jaeger/api"

// Defaults as in Jaeger's query service.
const (
	DefaultSearchLimit        = 100
	DefaultSearchLookback     = time.Hour
	DefaultDependencyLookback = 24 * time.Hour
)

// DependencySource lists service dependencies over a window (red.Source
// implements it over the TSDB).
type DependencySource interface {
	Dependencies(ctx context.Context, end time.Time, lookback time.Duration) ([]red.Dependency, error)
}

// Options configure the API.
type Options struct {
	MaxLimit int           // cap on a search's limit; 0 = no cap
	Timeout  time.Duration // bound on one request's store work; 0 = none
	Now      func() time.Time
	Logger   *slog.Logger
}

// API serves the Jaeger query API.
type API struct {
	opts   Options
	traces tracestore.Reader
	deps   DependencySource
	logger *slog.Logger
}

// New returns the API. traces may be nil (every trace endpoint then answers
// 503); deps may be nil (dependencies answer an empty list).
func New(opts Options, traces tracestore.Reader, deps DependencySource) *API {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{opts: opts, traces: traces, deps: deps, logger: logger}
}

// Route is one method+path pattern and its handler.
type Route = route.Route

// Routes lists the endpoints.
func (a *API) Routes() []Route {
	return []Route{
		{Pattern: "GET " + Prefix + "/services", Name: "jaeger_services", Handler: a.handler(a.services)},
		{Pattern: "GET " + Prefix + "/services/{service}/operations", Name: "jaeger_service_operations", Handler: a.handler(a.serviceOperations)},
		{Pattern: "GET " + Prefix + "/operations", Name: "jaeger_operations", Handler: a.handler(a.operations)},
		{Pattern: "GET " + Prefix + "/traces", Name: "jaeger_search", Handler: a.handler(a.search)},
		{Pattern: "GET " + Prefix + "/traces/{id}", Name: "jaeger_trace", Handler: a.handler(a.trace)},
		{Pattern: "GET " + Prefix + "/dependencies", Name: "jaeger_dependencies", Handler: a.handler(a.dependencies)},
	}
}

// RegisterRoutes registers the endpoints of the classic API and api_v3 on mux.
func (a *API) RegisterRoutes(mux *http.ServeMux) {
	route.Register(mux, a.Routes())
	route.Register(mux, a.V3Routes())
}

// httpError carries a status code to the envelope.
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Errorf(format, args...)}
}

var errNoStore = &httpError{http.StatusServiceUnavailable, errors.New("no trace store is configured")}

// withTimeout bounds the request's store work by the configured timeout.
func (a *API) withTimeout(r *http.Request) (*http.Request, context.CancelFunc) {
	if a.opts.Timeout <= 0 {
		return r, func() {}
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.Timeout)
	return r.WithContext(ctx), cancel
}

// errorCode is the HTTP status of a handler's error.
func errorCode(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, tracestore.ErrTraceNotFound):
		return http.StatusNotFound
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (a *API) handler(f func(r *http.Request) (*Response, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, cancel := a.withTimeout(r)
		defer cancel()
		resp, err := f(r)
		code := http.StatusOK
		if err != nil {
			code = errorCode(err)
			msg := err.Error()
			if code == http.StatusNotFound {
				msg = "trace not found"
			}
			resp = &Response{Errors: []Error{{Code: code, Msg: msg}}}
		}
		b, err := json.Marshal(resp)
		if err != nil {
			a.logger.Error("encoding Jaeger API response", "err", err)
			code = http.StatusInternalServerError
			b = []byte(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":500,"msg":"encoding response failed"}]}`)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(b)
	})
}

func (a *API) services(r *http.Request) (*Response, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	svcs, err := a.traces.Services(r.Context())
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	if svcs == nil {
		svcs = []string{}
	}
	slices.Sort(svcs)
	return &Response{Data: svcs, Total: len(svcs)}, nil
}

func (a *API) serviceOperations(r *http.Request) (*Response, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	svc := r.PathValue("service")
	ops, err := a.traces.Operations(r.Context(), tracestore.OperationQuery{Service: svc})
	if err != nil {
		return nil, fmt.Errorf("listing operations of %q: %w", svc, err)
	}
	set := map[string]bool{}
	names := []string{}
	for _, op := range ops {
		if !set[op.Name] {
			set[op.Name] = true
			names = append(names, op.Name)
		}
	}
	slices.Sort(names)
	return &Response{Data: names, Total: len(names)}, nil
}

func (a *API) operations(r *http.Request) (*Response, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	svc := r.FormValue("service")
	if svc == "" {
		return nil, badRequest("parameter 'service' is required")
	}
	q := tracestore.OperationQuery{Service: svc}
	if k := r.FormValue("spanKind"); k != "" {
		kind, err := spans.ParseKind(k)
		if err != nil {
			return nil, badRequest("unable to parse param 'spanKind': %v", err)
		}
		q.Kind = &kind
	}
	ops, err := a.traces.Operations(r.Context(), q)
	if err != nil {
		return nil, fmt.Errorf("listing operations of %q: %w", svc, err)
	}
	out := make([]Operation, 0, len(ops))
	for _, op := range ops {
		out = append(out, Operation{Name: op.Name, SpanKind: SpanKind(op.Kind)})
	}
	slices.SortFunc(out, func(x, y Operation) int {
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		return strings.Compare(x.SpanKind, y.SpanKind)
	})
	return &Response{Data: out, Total: len(out)}, nil
}

func (a *API) trace(r *http.Request) (*Response, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	id, err := spans.ParseTraceID(r.PathValue("id"))
	if err != nil || id.IsZero() {
		return nil, badRequest("malformed parameter 'traceID': %q", r.PathValue("id"))
	}
	ss, err := a.traces.Trace(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if len(ss) == 0 {
		return nil, tracestore.ErrTraceNotFound
	}
	return &Response{Data: []Trace{ConvertTrace(ss)}}, nil
}

// ParseSearch reads Jaeger's search parameters into a tracestore.Query:
// service, operation, tags (JSON object) and tag=key:value, minDuration and
// maxDuration (Go durations: "1.2ms"), start and end (µs since the epoch;
// default: the last lookback, "1h"), limit (default 100). The tags error
// ("true"/"false") and otel.status_code ("ERROR"/"OK") filter by span status.
func ParseSearch(r *http.Request, now time.Time) (tracestore.Query, []spans.TraceID, error) {
	var q tracestore.Query
	var ids []spans.TraceID
	for _, s := range r.Form["traceID"] {
		id, err := spans.ParseTraceID(s)
		if err != nil {
			return q, nil, badRequest("malformed parameter 'traceID': %v", err)
		}
		ids = append(ids, id)
	}
	q.Service = r.FormValue("service")
	q.Operation = r.FormValue("operation")
	if q.Service == "" && len(ids) == 0 {
		return q, nil, badRequest("parameter 'service' is required")
	}
	tags := map[string]string{}
	if s := r.FormValue("tags"); s != "" {
		if err := json.Unmarshal([]byte(s), &tags); err != nil {
			return q, nil, badRequest("malformed 'tags' parameter: %v", err)
		}
	}
	for _, kv := range r.Form["tag"] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return q, nil, badRequest("malformed 'tag' parameter %q: want key:value", kv)
		}
		tags[k] = v
	}
	applyTags(&q, tags)
	var err error
	if q.MinDuration, err = durationParam(r, "minDuration"); err != nil {
		return q, nil, err
	}
	if q.MaxDuration, err = durationParam(r, "maxDuration"); err != nil {
		return q, nil, err
	}
	if q.MaxDuration > 0 && q.MaxDuration < q.MinDuration {
		return q, nil, badRequest("'maxDuration' should be greater than 'minDuration'")
	}
	end := now
	if s := r.FormValue("end"); s != "" {
		if end, err = microsParam(s, "end"); err != nil {
			return q, nil, err
		}
	}
	lookback := DefaultSearchLookback
	if s := r.FormValue("lookback"); s != "" && s != "custom" {
		if lookback, err = time.ParseDuration(s); err != nil || lookback <= 0 {
			return q, nil, badRequest("unable to parse param 'lookback': %q is not a positive duration", s)
		}
	}
	start := end.Add(-lookback)
	if s := r.FormValue("start"); s != "" {
		if start, err = microsParam(s, "start"); err != nil {
			return q, nil, err
		}
	}
	if end.Before(start) {
		return q, nil, badRequest("'end' must not be before 'start'")
	}
	q.Start, q.End = start, end
	q.Limit = DefaultSearchLimit
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return q, nil, badRequest("unable to parse param 'limit': %q is not a non-negative integer", s)
		}
		if n > 0 {
			q.Limit = n
		}
	}
	return q, ids, nil
}

// applyTags turns tag filters into the query: error=true|false and
// otel.status_code=ERROR|OK filter by span status, any other tag compares an
// attribute's text.
func applyTags(q *tracestore.Query, tags map[string]string) {
	for k, v := range tags {
		switch {
		case k == "error" && v == "true", k == "otel.status_code" && strings.EqualFold(v, "ERROR"):
			q.Status = tracestore.StatusError
		case k == "error" && v == "false", k == "otel.status_code" && strings.EqualFold(v, "OK"):
			q.Status = tracestore.StatusOK
		default:
			if q.Attrs == nil {
				q.Attrs = map[string]string{}
			}
			q.Attrs[k] = v
		}
	}
}

func durationParam(r *http.Request, name string) (time.Duration, error) {
	s := r.FormValue(name)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, badRequest("unable to parse param '%s': %v", name, err)
	}
	if d < 0 {
		return 0, badRequest("unable to parse param '%s': must not be negative", name)
	}
	return d, nil
}

func microsParam(s, name string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, badRequest("unable to parse param '%s': %v", name, err)
	}
	return time.UnixMicro(n).UTC(), nil
}

func (a *API) search(r *http.Request) (*Response, error) {
	if a.traces == nil {
		return nil, errNoStore
	}
	if err := r.ParseForm(); err != nil {
		return nil, badRequest("parsing query: %v", err)
	}
	q, ids, err := ParseSearch(r, a.opts.Now())
	if err != nil {
		return nil, err
	}
	if a.opts.MaxLimit > 0 && q.Limit > a.opts.MaxLimit {
		q.Limit = a.opts.MaxLimit
	}
	ctx := r.Context()
	var errs []Error
	traces := []Trace{}
	if len(ids) > 0 {
		for _, id := range ids {
			ss, err := a.traces.Trace(ctx, id)
			if errors.Is(err, tracestore.ErrTraceNotFound) || (err == nil && len(ss) == 0) {
				errs = append(errs, Error{Code: http.StatusNotFound, Msg: "trace not found", TraceID: id.String()})
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading trace %s: %w", id, err)
			}
			traces = append(traces, ConvertTrace(ss))
		}
		return &Response{Data: traces, Errors: errs}, nil
	}
	refs, err := a.traces.Search(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("searching traces: %w", err)
	}
	for _, ref := range refs {
		ss, err := a.traces.Trace(ctx, ref.TraceID)
		if errors.Is(err, tracestore.ErrTraceNotFound) {
			continue // expired between search and fetch
		}
		if err != nil {
			return nil, fmt.Errorf("reading trace %s: %w", ref.TraceID, err)
		}
		traces = append(traces, ConvertTrace(ss))
	}
	return &Response{Data: traces, Errors: errs}, nil
}

func (a *API) dependencies(r *http.Request) (*Response, error) {
	end := a.opts.Now()
	if s := r.FormValue("endTs"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, badRequest("unable to parse param 'endTs': %v", err)
		}
		end = time.UnixMilli(ms).UTC()
	}
	lookback := DefaultDependencyLookback
	if s := r.FormValue("lookback"); s != "" {
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, badRequest("unable to parse param 'lookback': %v", err)
		}
		if ms <= 0 {
			return nil, badRequest("unable to parse param 'lookback': must be positive")
		}
		lookback = time.Duration(ms) * time.Millisecond
	}
	links := []DependencyLink{}
	if a.deps != nil {
		deps, err := a.deps.Dependencies(r.Context(), end, lookback)
		if err != nil {
			return nil, fmt.Errorf("computing dependencies: %w", err)
		}
		for _, d := range deps {
			links = append(links, DependencyLink{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount})
		}
	}
	return &Response{Data: links}, nil
}
