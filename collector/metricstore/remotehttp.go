package metricstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"google.golang.org/protobuf/proto"
)

// Values of the api label of the remote request metrics.
const (
	apiRead  = "read"  // remote read (<url>/api/v1/read or --remote-read-url)
	apiQuery = "query" // the HTTP API: /api/v1/query, query_range, labels, series
)

// remoteMetrics instrument the requests to the remote engine, by API.
type remoteMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
	inflight *prometheus.GaugeVec
}

func newRemoteMetrics(reg prometheus.Registerer) (*remoteMetrics, error) {
	m := &remoteMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_metrics_remote_requests_total",
			Help: "Requests to the shared metrics store's engine, by API (read: remote read, query: the Prometheus HTTP API) and HTTP status code.",
		}, []string{"api", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshscope_metrics_remote_request_duration_seconds",
			Help:    "Time to the response headers of requests to the shared metrics store's engine, by API.",
			Buckets: prometheus.DefBuckets,
		}, []string{"api"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_metrics_remote_received_bytes_total",
			Help: "Bytes received from the shared metrics store's engine on the wire (headers and bodies as sent, compressed), by API.",
		}, []string{"api"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshscope_metrics_remote_requests_in_flight",
			Help: "Requests to the shared metrics store's engine waiting for their response headers, by API.",
		}, []string{"api"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.bytes, m.inflight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics.remote: registering the request metrics: %w", err)
		}
	}
	return m, nil
}

// transport instruments rt for the api's requests.
func (m *remoteMetrics) transport(api string, rt http.RoundTripper) http.RoundTripper {
	l := prometheus.Labels{"api": api}
	return promhttp.InstrumentRoundTripperInFlight(m.inflight.With(l),
		promhttp.InstrumentRoundTripperCounter(m.requests.MustCurryWith(l),
			promhttp.InstrumentRoundTripperDuration(m.duration.MustCurryWith(l), rt)))
}

// dialer dials connections that count the bytes received for api.
func (m *remoteMetrics) dialer(api string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	c := m.bytes.WithLabelValues(api)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, bytes: c}, nil
	}
}

// httpTransport is Go's default transport dialing with dialer(api),
// instrumented.
func (m *remoteMetrics) httpTransport(api string) http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = m.dialer(api)
	return m.transport(api, t)
}

// countingConn counts the bytes read.
type countingConn struct {
	net.Conn
	bytes prometheus.Counter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.bytes.Add(float64(n))
	return n, err
}

// readClientMetrics brings Prometheus' own remote read client metrics
// (prometheus_remote_read_client_*), which its package registers with the
// process-wide default registry, into the server's registry: the series of
// this store's read endpoint only.
type readClientMetrics struct {
	endpoint string
	gatherer prometheus.Gatherer
}

// Describe sends nothing: the collector is unchecked (its series appear
// with the first remote read).
func (readClientMetrics) Describe(chan<- *prometheus.Desc) {}

func (c readClientMetrics) Collect(ch chan<- prometheus.Metric) {
	mfs, err := c.gatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "prometheus_remote_read_client_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var names []string
			mine := false
			for _, lp := range m.GetLabel() {
				names = append(names, lp.GetName())
				mine = mine || lp.GetName() == "url" && lp.GetValue() == c.endpoint
			}
			if !mine {
				continue
			}
			desc := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), names, nil)
			ch <- dtoMetric{desc: desc, m: m}
		}
	}
}

// dtoMetric is a gathered metric handed on as it is.
type dtoMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (d dtoMetric) Desc() *prometheus.Desc { return d.desc }
func (d dtoMetric) Write(out *dto.Metric) error {
	proto.Merge(out, d.m)
	return nil
}

// apiQueryable is the remote store's Queryable with --prometheus-url: the
// samples come with remote read (the topology reads raw series), and the
// label names, label values and series lists (/api/v1/labels,
// /api/v1/label/<name>/values, /api/v1/series) from the HTTP API, which
// answers them from the engine's index instead of shipping samples.
type apiQueryable struct {
	read storage.Queryable
	api  v1.API
	url  string
}

func (q apiQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	rq, err := q.read.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &apiQuerier{Querier: rq, api: q.api, url: q.url, mint: mint, maxt: maxt}, nil
}

type apiQuerier struct {
	storage.Querier
	api        v1.API
	url        string
	mint, maxt int64
}

func (q *apiQuerier) times() (start, end time.Time) {
	return timestamp.Time(q.mint), timestamp.Time(q.maxt)
}

// Select lists series for /api/v1/series (hints.Func "series") with the
// HTTP API; everything else reads samples with remote read.
func (q *apiQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if hints == nil || hints.Func != "series" {
		return q.Querier.Select(ctx, sortSeries, hints, ms...)
	}
	start, end := q.times()
	sets, warns, _, err := q.api.Series(ctx, []string{selector(ms)}, start, end, seriesLimit(hints.Limit)...)
	if err != nil {
		return storage.ErrSeriesSet(q.err(err))
	}
	series := make([]storage.Series, 0, len(sets))
	for _, ls := range sets {
		series = append(series, storage.NewListSeries(fromLabelSet(ls), nil))
	}
	if sortSeries {
		slices.SortFunc(series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &listSeriesSet{series: series, i: -1, warns: warnings(warns)}
}

func (q *apiQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	start, end := q.times()
	names, warns, _, err := q.api.LabelNames(ctx, matches(ms), start, end, labelLimit(hints)...)
	if err != nil {
		return nil, warnings(warns), q.err(err)
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return out, warnings(warns), nil
}

func (q *apiQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	start, end := q.times()
	vals, warns, _, err := q.api.LabelValues(ctx, name, matches(ms), start, end, labelLimit(hints)...)
	if err != nil {
		return nil, warnings(warns), q.err(err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out, warnings(warns), nil
}

func (q *apiQuerier) err(err error) error {
	return (&RemoteEngine{url: q.url}).remoteError(context.Background(), err)
}

func matches(ms []*labels.Matcher) []string {
	if len(ms) == 0 {
		return nil
	}
	return []string{selector(ms)}
}

// selector renders matchers as a series selector: {a="b",c=~"d"}.
func selector(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func labelLimit(h *storage.LabelHints) []v1.Option {
	if h == nil {
		return nil
	}
	return seriesLimit(h.Limit)
}

func seriesLimit(n int) []v1.Option {
	if n <= 0 {
		return nil
	}
	return []v1.Option{v1.WithLimit(uint64(n))}
}

func warnings(ws v1.Warnings) annotations.Annotations {
	var a annotations.Annotations
	for _, w := range ws {
		a.Add(errors.New(w))
	}
	return a
}

type listSeriesSet struct {
	series []storage.Series
	i      int
	warns  annotations.Annotations
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return s.warns }
