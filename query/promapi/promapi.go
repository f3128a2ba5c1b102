package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/meshscope/meshscope/query/internal/route"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// PrometheusVersion is the Prometheus release whose PromQL engine and HTTP
// API this package serves; /api/v1/status/buildinfo reports it as "version"
// so that clients (Grafana) pick the matching feature set.
const PrometheusVersion = "3.16.0"

// Options configure the API.
type Options struct {
	// Timeout bounds every query's evaluation (the request's own `timeout`
	// parameter can only shorten it). 0 = no bound beyond the engine's own.
	Timeout time.Duration
	// Now returns the current time (default time.Now); tests pin it.
	Now func() time.Time
	// Logger receives response-writing failures; nil discards them.
	Logger *slog.Logger
	// MaxQueryLength is the longest expression admitted, in bytes; 0 = no
	// limit (the query package passes its configured limits, by default
	// DefaultMaxQueryLength and DefaultMaxQueryNodes).
	MaxQueryLength int
	// MaxQueryNodes is the most syntax nodes (counted as lexical tokens
	// before parsing) an expression may have; 0 = no limit.
	MaxQueryNodes int
	// Status is what /api/v1/status/{runtimeinfo,flags,config} report.
	Status Status
	// Rules lists the rule groups of /api/v1/rules and /api/v1/alerts;
	// nil answers them empty.
	Rules RulesSource
}

// API serves the Prometheus HTTP API.
type API struct {
	opts      Options
	engine    promql.QueryEngine
	queryable storage.Queryable
	parser    parser.Parser
	logger    *slog.Logger
	buildInfo BuildInfo
}

// BuildInfo is the data of /api/v1/status/buildinfo.
type BuildInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Branch    string `json:"branch"`
	BuildUser string `json:"buildUser"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
}

// New returns the API over engine and queryable.
func New(opts Options, engine promql.QueryEngine, queryable storage.Queryable) *API {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rev := "meshscope"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		rev = "meshscope " + bi.Main.Version
	}
	return &API{
		opts:      opts,
		engine:    engine,
		queryable: queryable,
		parser:    parser.NewParser(parser.Options{}),
		logger:    logger,
		buildInfo: BuildInfo{
			Version:   PrometheusVersion,
			Revision:  rev,
			Branch:    "meshscope",
			BuildUser: "meshscope",
			GoVersion: runtime.Version(),
		},
	}
}

// Route is one method+path pattern and its handler.
type Route = route.Route

// Routes lists every endpoint, GET and (where Prometheus accepts it) POST.
func (a *API) Routes() []Route {
	var rs []Route
	add := func(name, path string, f apiFunc, methods ...string) {
		for _, m := range methods {
			rs = append(rs, Route{Pattern: m + " " + path, Name: name, Handler: a.wrap(f)})
		}
	}
	add("prom_query", "/api/v1/query", a.query, "GET", "POST")
	add("prom_query_range", "/api/v1/query_range", a.queryRange, "GET", "POST")
	add("prom_series", "/api/v1/series", a.series, "GET", "POST")
	add("prom_labels", "/api/v1/labels", a.labelNames, "GET", "POST")
	add("prom_label_values", "/api/v1/label/{name}/values", a.labelValues, "GET")
	add("prom_metadata", "/api/v1/metadata", a.metadata, "GET")
	add("prom_buildinfo", "/api/v1/status/buildinfo", a.serveBuildInfo, "GET")
	add("prom_format_query", "/api/v1/format_query", a.formatQuery, "GET", "POST")
	add("prom_query_exemplars", "/api/v1/query_exemplars", a.queryExemplars, "GET", "POST")
	add("prom_parse_query", "/api/v1/parse_query", a.parseQuery, "GET", "POST")
	add("prom_targets", "/api/v1/targets", a.targets, "GET")
	add("prom_targets_metadata", "/api/v1/targets/metadata", a.targetMetadata, "GET")
	add("prom_alertmanagers", "/api/v1/alertmanagers", a.alertmanagers, "GET")
	add("prom_runtimeinfo", "/api/v1/status/runtimeinfo", a.serveRuntimeInfo, "GET")
	add("prom_flags", "/api/v1/status/flags", a.serveFlags, "GET")
	add("prom_config", "/api/v1/status/config", a.serveConfig, "GET")
	add("prom_tsdb_status", "/api/v1/status/tsdb", a.serveTSDBStatus, "GET")
	add("prom_walreplay", "/api/v1/status/walreplay", a.serveWALReplay, "GET")
	add("prom_rules", "/api/v1/rules", a.rules, "GET")
	add("prom_alerts", "/api/v1/alerts", a.alerts, "GET")
	return rs
}

// RegisterRoutes registers every endpoint on mux.
func (a *API) RegisterRoutes(mux *http.ServeMux) {
	route.Register(mux, a.Routes())
}

// Error types and their HTTP status codes, as Prometheus defines them.
const (
	ErrBadData     = "bad_data"
	ErrExec        = "execution"
	ErrTimeout     = "timeout"
	ErrCanceled    = "canceled"
	ErrInternal    = "internal"
	ErrUnavailable = "unavailable"
	ErrNotFound    = "not_found"
	ErrCostLimit   = "cost_limit"
	// ErrBadGateway: the remote PromQL engine (--prometheus-url) answered
	// something that is not its API (a proxy's error page, a 5xx).
	ErrBadGateway = "bad_gateway"
)

// statusClientClosedConnection is the non-standard code Prometheus answers
// a canceled query with.
const statusClientClosedConnection = 499

func statusCode(errType string) int {
	switch errType {
	case ErrBadData:
		return http.StatusBadRequest
	case ErrExec, ErrCostLimit:
		return http.StatusUnprocessableEntity
	case ErrCanceled:
		return statusClientClosedConnection
	case ErrTimeout, ErrUnavailable:
		return http.StatusServiceUnavailable
	case ErrNotFound:
		return http.StatusNotFound
	case ErrBadGateway:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

type apiError struct {
	typ string
	err error
}

func (e *apiError) Error() string { return e.typ + ": " + e.err.Error() }

// Response is the envelope of every answer.
type Response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Infos     []string `json:"infos,omitempty"`
}

// QueryData is the data of /api/v1/query and /api/v1/query_range.
type QueryData struct {
	ResultType parser.ValueType `json:"resultType"`
	Result     parser.Value     `json:"result"`
}

type apiResult struct {
	data     any
	err      *apiError
	warnings annotations.Annotations
	closer   func()
}

type apiFunc func(r *http.Request) apiResult

func (a *API) wrap(f apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := f(r)
		if res.closer != nil {
			defer res.closer()
		}
		if res.err != nil {
			a.respondError(w, res.err)
			return
		}
		warn, info := res.warnings.AsStrings(r.FormValue("query"), 10, 10)
		a.write(w, http.StatusOK, &Response{Status: "success", Data: res.data, Warnings: warn, Infos: info})
	})
}

func (a *API) respondError(w http.ResponseWriter, e *apiError) {
	a.write(w, statusCode(e.typ), &Response{Status: "error", ErrorType: e.typ, Error: e.err.Error()})
}

func (a *API) write(w http.ResponseWriter, code int, resp *Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		a.logger.Error("encoding Prometheus API response", "err", err)
		b, _ = json.Marshal(&Response{Status: "error", ErrorType: ErrInternal, Error: fmt.Sprintf("encoding response: %v", err)})
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		a.logger.Debug("writing Prometheus API response", "err", err)
	}
}

func badData(err error) apiResult { return apiResult{err: &apiError{ErrBadData, err}} }

func invalidParam(err error, name string) apiResult {
	return badData(fmt.Errorf("invalid parameter %q: %w", name, err))
}

func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc, *apiError) {
	ctx := r.Context()
	timeout := a.opts.Timeout
	if v := r.FormValue("timeout"); v != "" {
		d, err := ParseDuration(v)
		if err != nil {
			return nil, nil, &apiError{ErrBadData, fmt.Errorf("invalid parameter %q: %w", "timeout", err)}
		}
		if d <= 0 {
			return nil, nil, &apiError{ErrBadData, fmt.Errorf("invalid parameter %q: timeout must be positive, got %s", "timeout", d)}
		}
		if timeout == 0 || d < timeout {
			timeout = d
		}
	}
	if timeout > 0 {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		return ctx, cancel, nil
	}
	return ctx, func() {}, nil
}

func (a *API) queryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := ParseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(false, lookback, nil), nil
}

func (a *API) query(r *http.Request) apiResult {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", a.opts.Now())
	if err != nil {
		return invalidParam(err, "time")
	}
	ctx, cancel, aerr := a.queryContext(r)
	if aerr != nil {
		return apiResult{err: aerr}
	}
	defer cancel()
	opts, err := a.queryOpts(r)
	if err != nil {
		return badData(err)
	}
	qs := r.FormValue("query")
	if aerr := a.admit(ctx, qs); aerr != nil {
		return apiResult{err: aerr}
	}
	qry, err := a.engine.NewInstantQuery(ctx, a.queryable, opts, qs, ts)
	return a.execConstructed(ctx, qry, err, limit)
}

func (a *API) queryRange(r *http.Request) apiResult {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, err := ParseTime(r.FormValue("start"))
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := ParseTime(r.FormValue("end"))
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := ParseDuration(r.FormValue("step"))
	if err != nil {
		return invalidParam(err, "step")
	}
	if step <= 0 {
		return invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > 11000 {
		return badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))
	}
	ctx, cancel, aerr := a.queryContext(r)
	if aerr != nil {
		return apiResult{err: aerr}
	}
	defer cancel()
	opts, err := a.queryOpts(r)
	if err != nil {
		return badData(err)
	}
	qs := r.FormValue("query")
	if aerr := a.admit(ctx, qs); aerr != nil {
		return apiResult{err: aerr}
	}
	qry, err := a.engine.NewRangeQuery(ctx, a.queryable, opts, qs, start, end, step)
	return a.execConstructed(ctx, qry, err, limit)
}

// execConstructed runs a query built under ctx. The request's deadline
// covers its construction (parsing) too: a query whose deadline passed while
// it was being built is not evaluated.
func (a *API) execConstructed(ctx context.Context, qry promql.Query, err error, limit int) apiResult {
	if err != nil {
		return apiResult{err: constructionError(err)}
	}
	if err := ctx.Err(); err != nil {
		qry.Close()
		return apiResult{err: execError(err)}
	}
	return a.exec(ctx, qry, limit)
}

func (a *API) exec(ctx context.Context, qry promql.Query, limit int) apiResult {
	res := qry.Exec(ctx)
	if res.Err != nil {
		qry.Close()
		return apiResult{err: execError(res.Err), warnings: res.Warnings}
	}
	warnings := res.Warnings
	val := res.Value
	switch v := val.(type) {
	case promql.Matrix:
		if v == nil {
			v = promql.Matrix{}
		}
		if limit > 0 && len(v) > limit {
			v = v[:limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
		val = v
	case promql.Vector:
		if v == nil {
			v = promql.Vector{}
		}
		if limit > 0 && len(v) > limit {
			v = v[:limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
		val = v
	}
	return apiResult{
		data:     &QueryData{ResultType: val.Type(), Result: val},
		warnings: warnings,
		closer:   qry.Close,
	}
}

// constructionError maps an error from building a query: a timeout or
// cancellation while waiting for a slot keeps its type, anything else is a
// bad query.
func constructionError(err error) *apiError {
	var eqt promql.ErrQueryTimeout
	var eqc promql.ErrQueryCanceled
	var elc promql.ErrLimitAboveCeiling
	switch {
	case errors.As(err, &elc):
		return &apiError{ErrBadData, err}
	case errors.As(err, &eqt), errors.As(err, &eqc):
		return execError(err)
	}
	return &apiError{ErrBadData, fmt.Errorf("invalid parameter %q: %w", "query", err)}
}

// execError maps an evaluation error to Prometheus' error type.
func execError(err error) *apiError {
	var eqc promql.ErrQueryCanceled
	var eqt promql.ErrQueryTimeout
	var es promql.ErrStorage
	var etms promql.ErrTooManySeries
	var etmsr promql.ErrTooManySamplesRead
	var remote remoteError
	switch {
	case errors.As(err, &remote):
		return remoteAPIError(remote, err)
	case errors.As(err, &eqc):
		return &apiError{ErrCanceled, err}
	case errors.As(err, &eqt):
		return &apiError{ErrTimeout, err}
	case errors.As(err, &etms), errors.As(err, &etmsr):
		return &apiError{ErrCostLimit, err}
	case errors.As(err, &es):
		return &apiError{ErrInternal, err}
	case errors.Is(err, context.Canceled):
		return &apiError{ErrCanceled, err}
	case errors.Is(err, context.DeadlineExceeded):
		return &apiError{ErrTimeout, err}
	}
	return &apiError{ErrExec, err}
}

// remoteError is an error of a remote PromQL engine (--prometheus-url:
// metricstore.RemoteError) that carries the Prometheus API error type to
// answer with.
type remoteError interface {
	error
	APIErrorType() string
}

// remoteAPIError answers with the remote's error type (bad_data,
// execution, timeout, ...) and message; one we do not know is a bad gateway.
func remoteAPIError(remote remoteError, err error) *apiError {
	switch t := remote.APIErrorType(); t {
	case ErrBadData, ErrExec, ErrTimeout, ErrCanceled, ErrUnavailable, ErrNotFound, ErrBadGateway, ErrInternal:
		return &apiError{t, err}
	}
	return &apiError{ErrBadGateway, err}
}

func (a *API) formatQuery(r *http.Request) apiResult {
	expr, res, ok := a.parseAdmitted(r.Context(), r.FormValue("query"))
	if !ok {
		return res
	}
	return apiResult{data: expr.Pretty(0)}
}

func (a *API) serveBuildInfo(*http.Request) apiResult { return apiResult{data: a.buildInfo} }

// queryExemplars validates its parameters as Prometheus does and answers an
// empty list: Meshscope stores no exemplars (Grafana asks when its exemplar
// toggle is on; traces are linked through the Jaeger data source instead).
func (a *API) queryExemplars(r *http.Request) apiResult {
	start, err := parseTimeParam(r, "start", MinTime)
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTimeParam(r, "end", MaxTime)
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return invalidParam(errors.New("end timestamp must not be before start timestamp"), "end")
	}
	if aerr := a.admit(r.Context(), r.FormValue("query")); aerr != nil {
		return apiResult{err: aerr}
	}
	if _, err := a.parser.ParseExpr(r.FormValue("query")); err != nil {
		return badData(err)
	}
	return apiResult{data: []any{}}
}

// MinTime and MaxTime are the defaults of optional time ranges, equal to
// Prometheus' own so that clients sending them back are understood.
var (
	MinTime = time.Unix(math.MinInt64/1000+62135596801, 0).UTC()
	MaxTime = time.Unix(math.MaxInt64/1000-62135596801, 999999999).UTC()

	minTimeFormatted = MinTime.Format(time.RFC3339Nano)
	maxTimeFormatted = MaxTime.Format(time.RFC3339Nano)
)

func (a *API) parseMatchers(ms []string) ([][]*labels.Matcher, error) {
	sets, err := a.parser.ParseMetricSelectors(ms)
	if err != nil {
		return nil, err
	}
outer:
	for _, set := range sets {
		for _, m := range set {
			if m != nil && !m.Matches("") {
				continue outer
			}
		}
		return nil, errors.New("match[] must contain at least one non-empty matcher")
	}
	return sets, nil
}

type timeRange struct {
	start, end time.Time
	matchers   [][]*labels.Matcher
	limit      int
}

func (a *API) parseRange(r *http.Request) (timeRange, apiResult, bool) {
	var tr timeRange
	if err := r.ParseForm(); err != nil {
		return tr, badData(fmt.Errorf("error parsing form values: %w", err)), false
	}
	var err error
	if tr.limit, err = parseLimit(r.FormValue("limit")); err != nil {
		return tr, invalidParam(err, "limit"), false
	}
	if tr.start, err = parseTimeParam(r, "start", MinTime); err != nil {
		return tr, invalidParam(err, "start"), false
	}
	if tr.end, err = parseTimeParam(r, "end", MaxTime); err != nil {
		return tr, invalidParam(err, "end"), false
	}
	if tr.matchers, err = a.parseMatchers(r.Form["match[]"]); err != nil {
		return tr, invalidParam(err, "match[]"), false
	}
	return tr, apiResult{}, true
}

func (a *API) series(r *http.Request) apiResult {
	if err := r.ParseForm(); err != nil {
		return badData(fmt.Errorf("error parsing form values: %w", err))
	}
	if len(r.Form["match[]"]) == 0 {
		return badData(errors.New("no match[] parameter provided"))
	}
	tr, res, ok := a.parseRange(r)
	if !ok {
		return res
	}
	ctx := r.Context()
	q, err := a.queryable.Querier(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end))
	if err != nil {
		return apiResult{err: execError(err)}
	}
	hints := &storage.SelectHints{
		Start: timestamp.FromTime(tr.start),
		End:   timestamp.FromTime(tr.end),
		Func:  "series",
		Limit: hintLimit(tr.limit),
	}
	var set storage.SeriesSet
	if len(tr.matchers) > 1 {
		var sets []storage.SeriesSet
		for _, ms := range tr.matchers {
			sets = append(sets, q.Select(ctx, true, hints, ms...))
		}
		set = storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	} else {
		set = q.Select(ctx, false, hints, tr.matchers[0]...)
	}
	metrics := []labels.Labels{}
	warnings := set.Warnings()
	for set.Next() {
		metrics = append(metrics, set.At().Labels())
		if tr.limit > 0 && len(metrics) > tr.limit {
			metrics = metrics[:tr.limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			break
		}
		if err := ctx.Err(); err != nil {
			q.Close()
			return apiResult{err: execError(err)}
		}
	}
	if err := set.Err(); err != nil {
		q.Close()
		return apiResult{err: execError(err), warnings: warnings}
	}
	return apiResult{data: metrics, warnings: warnings, closer: func() { q.Close() }}
}

func (a *API) labelNames(r *http.Request) apiResult {
	tr, res, ok := a.parseRange(r)
	if !ok {
		return res
	}
	q, err := a.queryable.Querier(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end))
	if err != nil {
		return apiResult{err: execError(err)}
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(tr.limit)}
	var warnings annotations.Annotations
	set := map[string]struct{}{}
	sets := tr.matchers
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	for _, ms := range sets {
		names, w, err := q.LabelNames(r.Context(), hints, ms...)
		warnings.Merge(w)
		if err != nil {
			return apiResult{err: &apiError{ErrExec, err}, warnings: warnings}
		}
		for _, n := range names {
			set[n] = struct{}{}
		}
	}
	names := sortedKeys(set)
	if tr.limit > 0 && len(names) > tr.limit {
		names = names[:tr.limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: names, warnings: warnings}
}

func (a *API) labelValues(r *http.Request) apiResult {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return badData(fmt.Errorf("invalid label name: %q", name))
	}
	tr, res, ok := a.parseRange(r)
	if !ok {
		return res
	}
	vals, warnings, err := a.values(r.Context(), name, tr)
	if err != nil {
		return apiResult{err: &apiError{ErrExec, err}, warnings: warnings}
	}
	if tr.limit > 0 && len(vals) > tr.limit {
		vals = vals[:tr.limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: vals, warnings: warnings}
}

func (a *API) values(ctx context.Context, name string, tr timeRange) ([]string, annotations.Annotations, error) {
	var warnings annotations.Annotations
	q, err := a.queryable.Querier(timestamp.FromTime(tr.start), timestamp.FromTime(tr.end))
	if err != nil {
		return nil, nil, err
	}
	defer q.Close()
	hints := &storage.LabelHints{Limit: hintLimit(tr.limit)}
	set := map[string]struct{}{}
	sets := tr.matchers
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	for _, ms := range sets {
		vals, w, err := q.LabelValues(ctx, name, hints, ms...)
		warnings.Merge(w)
		if err != nil {
			return nil, warnings, err
		}
		for _, v := range vals {
			set[v] = struct{}{}
		}
	}
	return sortedKeys(set), warnings, nil
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func hintLimit(limit int) int {
	if limit > 0 && limit < math.MaxInt {
		return limit + 1
	}
	return limit
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, errors.New("limit must be non-negative")
	}
	return n, nil
}

func parseTimeParam(r *http.Request, name string, def time.Time) (time.Time, error) {
	v := r.FormValue(name)
	if v == "" {
		return def, nil
	}
	t, err := ParseTime(v)
	if err != nil {
		return time.Time{}, fmt.Errorf("invalid time value for '%s': %w", name, err)
	}
	return t, nil
}

// ParseTime parses a Prometheus API timestamp: Unix seconds (with an
// optional fraction) or RFC 3339.
func ParseTime(s string) (time.Time, error) {
	if t, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(t)
		frac = math.Round(frac*1000) / 1000
		return time.Unix(int64(sec), int64(frac*float64(time.Second))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	switch s {
	case minTimeFormatted:
		return MinTime, nil
	case maxTimeFormatted:
		return MaxTime, nil
	}
	return time.Time{}, fmt.Errorf("cannot parse %q to a valid timestamp", s)
}

// ParseDuration parses a Prometheus API duration: seconds as a float or a
// Prometheus duration ("5m", "1h30m").
func ParseDuration(s string) (time.Duration, error) {
	if d, err := strconv.ParseFloat(s, 64); err == nil {
		ts := d * float64(time.Second)
		if math.IsNaN(ts) || ts >= float64(math.MaxInt64) || ts < float64(math.MinInt64) {
			return 0, fmt.Errorf("cannot parse %q to a valid duration. It overflows int64", s)
		}
		return time.Duration(ts), nil
	}
	if d, err := model.ParseDuration(s); err == nil {
		return time.Duration(d), nil
	}
	return 0, fmt.Errorf("cannot parse %q to a valid duration", s)
}
