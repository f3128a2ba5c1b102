package metricstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/stats"
)

// RemoteEngine is a promql.QueryEngine that evaluates PromQL in the remote
// engine, with its Prometheus HTTP API (/api/v1/query and
// /api/v1/query_range), instead of pulling the series with remote read into
// the local engine. Every part that queries with PromQL — the
// Prometheus-compatible API, the topology and the native tables, the rules,
// the SLO, guard and rollout evaluations — takes a promql.QueryEngine, so
// over --prometheus-url they all get the remote engine's answers. The
// storage.Queryable handed to NewInstantQuery and NewRangeQuery is not read:
// the remote engine queries its own store.
//
// Queries are parsed locally first, so a malformed one fails before any
// request. Errors of the remote engine are RemoteError values.
type RemoteEngine struct {
	url    string
	api    v1.API
	parser parser.Parser
}

// RemoteError is an error of the remote PromQL engine: its own API error
// (Type is the remote's errorType: bad_data, execution, timeout, ...), or
// the engine being unreachable or answering something that is not its API
// (Type "unavailable" or "bad_gateway").
type RemoteError struct {
	URL  string
	Type string
	Err  error
}

// Remote error types of our own, beside the remote's API error types.
const (
	RemoteUnavailable = "unavailable" // no answer: connection refused, reset, DNS
	RemoteBadGateway  = "bad_gateway" // an answer that is not the API's
)

func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote PromQL engine %s: %v", e.URL, e.Err)
}

func (e *RemoteError) Unwrap() error { return e.Err }

// APIErrorType is the Prometheus API error type the query API answers with.
func (e *RemoteError) APIErrorType() string { return e.Type }

// NewRemoteEngine returns the engine over the Prometheus HTTP API at
// baseURL (its /api/v1/... paths are appended), sending with rt (nil:
// http.DefaultTransport).
func NewRemoteEngine(baseURL string, rt http.RoundTripper) (*RemoteEngine, error) {
	if err := checkHTTPURL(baseURL); err != nil {
		return nil, fmt.Errorf("remote PromQL engine: %w", err)
	}
	if rt == nil {
		rt = http.DefaultTransport
	}
	c, err := api.NewClient(api.Config{Address: strings.TrimSuffix(baseURL, "/"), RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("remote PromQL engine %s: %w", baseURL, err)
	}
	return &RemoteEngine{url: baseURL, api: v1.NewAPI(c), parser: parser.NewParser(parser.Options{})}, nil
}

// NewInstantQuery prepares qs at ts; Exec sends it to /api/v1/query.
func (e *RemoteEngine) NewInstantQuery(_ context.Context, _ storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	return e.newQuery(opts, qs, ts, ts, 0)
}

// NewRangeQuery prepares qs over [start, end] by step; Exec sends it to
// /api/v1/query_range.
func (e *RemoteEngine) NewRangeQuery(_ context.Context, _ storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	if step <= 0 {
		return nil, fmt.Errorf("zero or negative query resolution step widths are not accepted. Try a positive integer")
	}
	return e.newQuery(opts, qs, start, end, step)
}

func (e *RemoteEngine) newQuery(opts promql.QueryOpts, qs string, start, end time.Time, step time.Duration) (promql.Query, error) {
	expr, err := e.parser.ParseExpr(qs)
	if err != nil {
		return nil, err
	}
	q := &remoteQuery{e: e, qs: qs, stmt: &parser.EvalStmt{Expr: expr, Start: start, End: end, Interval: step}}
	if opts != nil && opts.LookbackDelta() > 0 {
		q.opts = append(q.opts, v1.WithLookbackDelta(opts.LookbackDelta()))
	}
	return q, nil
}

type remoteQuery struct {
	e    *RemoteEngine
	qs   string
	stmt *parser.EvalStmt
	opts []v1.Option

	mu     sync.Mutex
	cancel context.CancelFunc
}

// Exec sends the query; ctx's deadline bounds the request and is passed on
// as the remote evaluation's timeout.
func (q *remoteQuery) Exec(ctx context.Context) *promql.Result {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q.mu.Lock()
	q.cancel = cancel
	q.mu.Unlock()
	opts := q.opts
	if dl, ok := ctx.Deadline(); ok {
		// In whole seconds: Prometheus 2 parses "1m59s", not "1m59.9s";
		// ctx still ends the request on time.
		if left := time.Until(dl).Truncate(time.Second); left > 0 {
			opts = append(slices.Clip(opts), v1.WithTimeout(left))
		} else {
			opts = append(slices.Clip(opts), v1.WithTimeout(time.Second))
		}
	}
	var (
		val   model.Value
		warns v1.Warnings
		err   error
	)
	if q.stmt.Interval == 0 {
		val, warns, _, err = q.e.api.Query(ctx, q.qs, q.stmt.Start, opts...)
	} else {
		val, warns, _, err = q.e.api.QueryRange(ctx, q.qs, v1.Range{Start: q.stmt.Start, End: q.stmt.End, Step: q.stmt.Interval}, opts...)
	}
	var annos annotations.Annotations
	for _, w := range warns {
		annos.Add(errors.New(w))
	}
	if err != nil {
		return &promql.Result{Err: q.e.remoteError(ctx, err), Warnings: annos}
	}
	v, err := fromModel(val)
	if err != nil {
		return &promql.Result{Err: &RemoteError{URL: q.e.url, Type: RemoteBadGateway, Err: err}, Warnings: annos}
	}
	return &promql.Result{Value: v, Warnings: annos}
}

// remoteError classifies err: the context's own end keeps its type (the
// caller's timeout or cancellation), the remote's API errors keep theirs.
func (e *RemoteEngine) remoteError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return promql.ErrQueryTimeout(fmt.Sprintf("remote PromQL engine %s: %v", e.url, err))
		}
		return promql.ErrQueryCanceled(fmt.Sprintf("remote PromQL engine %s: %v", e.url, err))
	}
	var ae *v1.Error
	if errors.As(err, &ae) {
		switch ae.Type {
		case v1.ErrBadResponse, v1.ErrServer, v1.ErrClient:
			msg := ae.Msg
			if d := strings.TrimSpace(ae.Detail); d != "" {
				msg += ": " + truncate(d, 512)
			}
			return &RemoteError{URL: e.url, Type: RemoteBadGateway, Err: errors.New(msg)}
		}
		return &RemoteError{URL: e.url, Type: string(ae.Type), Err: errors.New(ae.Msg)}
	}
	// No answer at all: refused, reset, unresolvable, TLS.
	return &RemoteError{URL: e.url, Type: RemoteUnavailable, Err: err}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (q *remoteQuery) Close()                      {}
func (q *remoteQuery) Statement() parser.Statement { return q.stmt }
func (q *remoteQuery) Stats() *stats.Statistics {
	return &stats.Statistics{Timers: stats.NewQueryTimers()}
}
func (q *remoteQuery) String() string { return q.qs }

func (q *remoteQuery) Cancel() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.cancel != nil {
		q.cancel()
	}
}

// fromModel converts an API answer to the engine's value types.
func fromModel(v model.Value) (parser.Value, error) {
	switch v := v.(type) {
	case model.Vector:
		out := make(promql.Vector, 0, len(v))
		for _, s := range v {
			smp := promql.Sample{Metric: fromLabelSet(model.LabelSet(s.Metric)), T: int64(s.Timestamp), F: float64(s.Value)}
			if s.Histogram != nil {
				h, err := fromSampleHistogram(s.Histogram)
				if err != nil {
					return nil, fmt.Errorf("series %s: %w", s.Metric, err)
				}
				smp.F, smp.H = 0, h
			}
			out = append(out, smp)
		}
		return out, nil
	case model.Matrix:
		out := make(promql.Matrix, 0, len(v))
		for _, ss := range v {
			s := promql.Series{Metric: fromLabelSet(model.LabelSet(ss.Metric))}
			for _, p := range ss.Values {
				s.Floats = append(s.Floats, promql.FPoint{T: int64(p.Timestamp), F: float64(p.Value)})
			}
			for _, p := range ss.Histograms {
				h, err := fromSampleHistogram(p.Histogram)
				if err != nil {
					return nil, fmt.Errorf("series %s: %w", ss.Metric, err)
				}
				s.Histograms = append(s.Histograms, promql.HPoint{T: int64(p.Timestamp), H: h})
			}
			out = append(out, s)
		}
		return out, nil
	case *model.Scalar:
		return promql.Scalar{T: int64(v.Timestamp), V: float64(v.Value)}, nil
	case *model.String:
		return promql.String{T: int64(v.Timestamp), V: v.Value}, nil
	case nil:
		return nil, errors.New("the answer holds no result")
	}
	return nil, fmt.Errorf("result type %s is not one of vector, matrix, scalar, string", v.Type())
}

func fromLabelSet(ls model.LabelSet) labels.Labels {
	b := labels.NewScratchBuilder(len(ls))
	for n, v := range ls {
		b.Add(string(n), string(v))
	}
	b.Sort()
	return b.Labels()
}

// fromSampleHistogram rebuilds a native histogram from the API's bucket
// list: an exponential one (its schema follows from a bucket's bounds, the
// zero bucket is the one around 0), or else one with custom bounds.
func fromSampleHistogram(sh *model.SampleHistogram) (*histogram.FloatHistogram, error) {
	h := &histogram.FloatHistogram{Count: float64(sh.Count), Sum: float64(sh.Sum)}
	if len(sh.Buckets) == 0 {
		return h, nil
	}
	schema, ok := inferSchema(sh.Buckets)
	if !ok {
		return customBuckets(h, sh.Buckets)
	}
	h.Schema = schema
	var pos, neg []indexed
	for _, b := range sh.Buckets {
		lo, up, c := float64(b.Lower), float64(b.Upper), float64(b.Count)
		switch {
		case isZeroBucket(b):
			h.ZeroThreshold, h.ZeroCount = up, c
		case lo > 0:
			pos = append(pos, indexed{bucketIndex(up, schema), c})
		default:
			neg = append(neg, indexed{bucketIndex(-lo, schema), c})
		}
	}
	h.PositiveSpans, h.PositiveBuckets = spansOf(pos)
	h.NegativeSpans, h.NegativeBuckets = spansOf(neg)
	return h, nil
}

type indexed struct {
	i int32
	c float64
}

// inferSchema finds the exponential schema all non-zero buckets agree on.
func inferSchema(bs model.HistogramBuckets) (int32, bool) {
	var schema int32
	found := false
	for _, b := range bs {
		if isZeroBucket(b) {
			continue
		}
		lo, up := math.Abs(float64(b.Lower)), math.Abs(float64(b.Upper))
		if lo > up {
			lo, up = up, lo
		}
		if lo == 0 || math.IsInf(up, 0) {
			return 0, false
		}
		s := -math.Log2(math.Log2(up / lo))
		r := math.Round(s)
		if math.Abs(s-r) > 1e-6 || r < float64(histogram.ExponentialSchemaMin) || r > float64(histogram.ExponentialSchemaMax) {
			return 0, false
		}
		if found && int32(r) != schema {
			return 0, false
		}
		schema, found = int32(r), true
		if i := math.Log2(up) * math.Exp2(r); math.Abs(i-math.Round(i)) > 1e-6 {
			return 0, false
		}
	}
	return schema, true // only a zero bucket: any schema
}

// isZeroBucket tells the zero bucket [-threshold, threshold].
func isZeroBucket(b *model.HistogramBucket) bool {
	return float64(b.Lower) == -float64(b.Upper) && float64(b.Upper) >= 0 && !math.IsInf(float64(b.Upper), 0)
}

// bucketIndex is the index of the bucket whose upper bound is up.
func bucketIndex(up float64, schema int32) int32 {
	return int32(math.Round(math.Log2(up) * math.Exp2(float64(schema))))
}

// spansOf turns index-sorted buckets into spans and absolute counts.
func spansOf(bs []indexed) ([]histogram.Span, []float64) {
	if len(bs) == 0 {
		return nil, nil
	}
	slices.SortFunc(bs, func(a, b indexed) int { return int(a.i) - int(b.i) })
	var spans []histogram.Span
	counts := make([]float64, 0, len(bs))
	next := bs[0].i
	for k, b := range bs {
		if k == 0 || b.i != next {
			spans = append(spans, histogram.Span{Offset: b.i - next, Length: 0})
			if k == 0 {
				spans[0].Offset = b.i
			}
		}
		spans[len(spans)-1].Length++
		counts = append(counts, b.c)
		next = b.i + 1
	}
	return spans, counts
}

// customBuckets rebuilds a histogram with custom bounds (schema -53): its
// buckets' upper bounds, the last one +Inf.
func customBuckets(h *histogram.FloatHistogram, bs model.HistogramBuckets) (*histogram.FloatHistogram, error) {
	h.Schema = histogram.CustomBucketsSchema
	var ix []indexed
	for k, b := range bs {
		up := float64(b.Upper)
		if float64(b.Lower) < 0 && k > 0 {
			return nil, fmt.Errorf("histogram bucket [%v, %v] is neither exponential nor a custom bound's", b.Lower, b.Upper)
		}
		if !math.IsInf(up, 1) {
			h.CustomValues = append(h.CustomValues, up)
		}
		ix = append(ix, indexed{int32(k), float64(b.Count)})
	}
	h.PositiveSpans, h.PositiveBuckets = spansOf(ix)
	return h, nil
}
