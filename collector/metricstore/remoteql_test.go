package metricstore

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/meshscope/meshscope/query/promapi"
)

// remoteFixture is a TSDB with float counters, classic buckets and a
// native histogram, served by the Prometheus-compatible API; it returns
// the TSDB, the API's URL and the evaluation time.
func remoteFixture(t *testing.T) (*tsdb.DB, string, time.Time) {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	base := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	app := db.Appender(context.Background())
	for i := range 60 {
		ts := base.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
		for _, s := range []struct {
			svc string
			f   float64
		}{{"a", 1.5}, {"b", 3.25}} {
			if _, err := app.Append(0, labels.FromStrings("__name__", "req_total", "svc", s.svc, "code", "200"), ts, float64(i)*s.f); err != nil {
				t.Fatal(err)
			}
			for _, le := range []struct {
				le string
				f  float64
			}{{"0.1", 0.5}, {"1", 0.9}, {"+Inf", 1}} {
				if _, err := app.Append(0, labels.FromStrings("__name__", "lat_bucket", "svc", s.svc, "le", le.le), ts, float64(i)*s.f*le.f); err != nil {
					t.Fatal(err)
				}
			}
		}
		h := &histogram.Histogram{
			// 3i positive observations in two spans, i in the zero
			// bucket, i negative.
			Schema: 1, Count: uint64(5 * i), Sum: 3.5 * float64(i), ZeroThreshold: 0.001, ZeroCount: uint64(i),
			PositiveSpans:   []histogram.Span{{Offset: -2, Length: 2}, {Offset: 3, Length: 1}},
			PositiveBuckets: []int64{int64(i), 0, 0},
			NegativeSpans:   []histogram.Span{{Offset: 1, Length: 1}},
			NegativeBuckets: []int64{int64(i)},
		}
		if _, err := app.AppendHistogram(0, labels.FromStrings("__name__", "dur_seconds", "svc", "a"), ts, h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	mux := http.NewServeMux()
	promapi.New(promapi.Options{}, eng, db).RegisterRoutes(mux)
	mux.Handle("/api/v1/read", remote.NewReadHandler(nil, nil, db, func() config.Config { return config.DefaultConfig }, 0, 1, 1<<20))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return db, srv.URL, base.Add(14 * time.Minute)
}

// TestRemoteEngineAgreesWithLocal: the remote engine's answers, through the
// HTTP API's JSON, equal the local engine's over the same TSDB: floats to
// the bit, labels, native histograms (rebuilt from the bucket list).
func TestRemoteEngineAgreesWithLocal(t *testing.T) {
	db, url, at := remoteFixture(t)
	local := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	remote, err := NewRemoteEngine(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, q string
		rng     bool
	}{
		{"selector", `req_total`, false},
		{"rate", `sum by (svc) (rate(req_total[5m]))`, false},
		{"quantile", `histogram_quantile(0.9, sum by (le) (rate(lat_bucket[5m])))`, false},
		{"scalar", `scalar(sum(req_total)) * 2`, false},
		{"native histogram", `dur_seconds`, false},
		{"native rate", `sum by (svc) (rate(dur_seconds[5m]))`, false},
		{"native quantile", `histogram_quantile(0.5, rate(dur_seconds[5m]))`, false},
		{"range", `sum(rate(req_total[1m]))`, true},
		{"native range", `rate(dur_seconds[2m])`, true},
		{"empty", `nothing_here`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// run returns the result rendered as the API does, and a copy
			// of an instant vector: a query's result belongs to the engine's
			// pools once the query is closed, so nothing of it is kept.
			run := func(e promql.QueryEngine) (string, promql.Vector) {
				var q promql.Query
				var err error
				if tc.rng {
					q, err = e.NewRangeQuery(ctx, db, nil, tc.q, at.Add(-5*time.Minute), at, 30*time.Second)
				} else {
					q, err = e.NewInstantQuery(ctx, db, nil, tc.q, at)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer q.Close()
				res := q.Exec(ctx)
				if res.Err != nil {
					t.Fatalf("%s: %v", tc.q, res.Err)
				}
				// Compare as the API renders them (histograms by their buckets).
				j, err := json.Marshal(res.Value)
				if err != nil {
					t.Fatal(err)
				}
				vec, _ := res.Value.(promql.Vector)
				out := make(promql.Vector, len(vec))
				for i, s := range vec {
					out[i] = s
					if s.H != nil {
						out[i].H = s.H.Copy()
					}
				}
				return string(j), out
			}
			wj, lv := run(local)
			gj, v := run(remote)
			if wj != gj {
				t.Errorf("%s:\nremote %s\nlocal  %s", tc.q, gj, wj)
			}
			if len(v) != len(lv) {
				t.Errorf("%s: remote %d samples, local %d", tc.q, len(v), len(lv))
			} else {
				for i := range v {
					if v[i].H != nil && (lv[i].H == nil || !v[i].H.Equals(lv[i].H.Compact(0))) {
						t.Errorf("histogram %d: remote %v, local %v", i, v[i].H, lv[i].H)
					}
					if v[i].H == nil && math.Float64bits(v[i].F) != math.Float64bits(lv[i].F) {
						t.Errorf("sample %d: remote %v, local %v", i, v[i].F, lv[i].F)
					}
				}
			}
		})
	}
}

// brokenEngines are an address that refuses connections and a gateway that
// answers 502 with a text page.
func brokenEngines(t *testing.T) (down, gateway *httptest.Server) {
	down = httptest.NewServer(http.NotFoundHandler())
	down.Close()
	gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream connect error", http.StatusBadGateway)
	}))
	t.Cleanup(gateway.Close)
	return down, gateway
}

// TestRemoteEngineErrors: the remote's own API errors keep their type and
// message; no answer is "unavailable", a non-API answer a bad gateway, the
// caller's deadline a timeout.
func TestRemoteEngineErrors(t *testing.T) {
	_, url, at := remoteFixture(t)
	down, gateway := brokenEngines(t)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer slow.Close()
	for _, tc := range []struct {
		name, url, q string
		timeout      time.Duration
		wantType     string // RemoteError type; "" = a promql.ErrQueryTimeout
		wantMsg      string
	}{
		{"remote execution error", url, `req_total + on(code) group_left req_total`, 0, "execution", "many-to-many"},
		{"down", down.URL, `up`, 0, RemoteUnavailable, "connection refused"},
		{"bad gateway", gateway.URL, `up`, 0, RemoteBadGateway, "upstream connect error"},
		{"timeout", slow.URL, `up`, 100 * time.Millisecond, "", "remote PromQL engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewRemoteEngine(tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			q, err := e.NewInstantQuery(ctx, nil, nil, tc.q, at)
			if err != nil {
				t.Fatal(err)
			}
			res := q.Exec(ctx)
			var re *RemoteError
			var to promql.ErrQueryTimeout
			switch {
			case res.Err == nil:
				t.Fatalf("no error, value %v", res.Value)
			case tc.wantType == "" && !errors.As(res.Err, &to):
				t.Errorf("error %v (%T), want a query timeout", res.Err, res.Err)
			case tc.wantType != "" && (!errors.As(res.Err, &re) || re.Type != tc.wantType):
				t.Errorf("error %v, want type %s", res.Err, tc.wantType)
			}
			if !strings.Contains(res.Err.Error(), tc.wantMsg) || !strings.Contains(res.Err.Error(), tc.url) && tc.wantType != "" {
				t.Errorf("error %q, want it to name %s and hold %q", res.Err, tc.url, tc.wantMsg)
			}
		})
	}
	// A malformed query fails before any request.
	e, _ := NewRemoteEngine(down.URL, nil)
	if _, err := e.NewInstantQuery(context.Background(), nil, nil, `sum(`, at); err == nil {
		t.Error("malformed query: no error")
	}
}

// TestRemoteEngineThroughAPI: our Prometheus-compatible API over the
// remote engine answers its results, its errors with their type, an
// unreachable engine as 503 "unavailable" and a non-API answer as 502,
// naming the engine.
func TestRemoteEngineThroughAPI(t *testing.T) {
	_, url, at := remoteFixture(t)
	down, gateway := brokenEngines(t)
	const ok, manyToMany = `sum by (svc) (req_total)`, `req_total + on(code) group_left req_total`
	for _, tc := range []struct {
		name, url, q string
		wantStatus   int
		wantBody     string
	}{
		{"up", url, ok, http.StatusOK, `"svc":"b"`},
		{"remote execution error", url, manyToMany, http.StatusUnprocessableEntity, `"errorType":"execution"`},
		{"down", down.URL, ok, http.StatusServiceUnavailable, `"errorType":"unavailable"`},
		{"bad gateway", gateway.URL, ok, http.StatusBadGateway, `"errorType":"bad_gateway"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewRemoteEngine(tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			promapi.New(promapi.Options{}, e, nil).RegisterRoutes(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/api/v1/query?query=" + neturl.QueryEscape(tc.q) + "&time=" + at.Format(time.RFC3339))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(body), tc.wantBody) || tc.wantStatus != 200 && !strings.Contains(string(body), tc.url) {
				t.Errorf("status %d body %s; want %d with %s naming %s", resp.StatusCode, body, tc.wantStatus, tc.wantBody, tc.url)
			}
		})
	}
}

// TestRemoteMetricsRegistered: the remote read client's and the HTTP API's
// request metrics are in the injected registry.
func TestRemoteMetricsRegistered(t *testing.T) {
	_, url, at := remoteFixture(t)
	reg := prometheus.NewRegistry()
	st, err := OpenRemote(RemoteConfig{WriteURL: url + "/api/v1/write", PrometheusURL: url, Server: "s1:7070"}, t.TempDir(), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	q, _ := st.Engine().NewInstantQuery(ctx, nil, nil, `req_total`, at)
	if res := q.Exec(ctx); res.Err != nil {
		t.Fatal(res.Err)
	}
	qr, err := st.Querier(at.Add(-time.Minute).UnixMilli(), at.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	ss := qr.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "req_total"))
	n := 0
	for ss.Next() {
		n++
	}
	if ss.Err() != nil || n != 2 {
		t.Errorf("remote read: %d series, %v; want 2", n, ss.Err())
	}
	names, _, err := qr.LabelNames(ctx, nil)
	if err != nil || strings.Join(names, ",") != "__name__,code,le,svc" {
		t.Errorf("label names over the HTTP API: %v, %v", names, err)
	}
	vals, _, err := qr.LabelValues(ctx, "svc", nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "dur_seconds"))
	if err != nil || strings.Join(vals, ",") != "a" {
		t.Errorf("label values over the HTTP API: %v, %v", vals, err)
	}
	// The series list (/api/v1/series) comes from the HTTP API, labels only.
	queryRequests := func() float64 {
		return testutil.ToFloat64(st.rm.requests.WithLabelValues(apiQuery, "200"))
	}
	before := queryRequests()
	series := qr.Select(ctx, true, &storage.SelectHints{Func: "series"}, labels.MustNewMatcher(labels.MatchRegexp, "__name__", "req_total|dur_seconds"))
	var got []string
	for series.Next() {
		got = append(got, series.At().Labels().String())
	}
	if want := `{__name__="dur_seconds", svc="a"} {__name__="req_total", code="200", svc="a"} {__name__="req_total", code="200", svc="b"}`; series.Err() != nil || strings.Join(got, " ") != want {
		t.Errorf("series over the HTTP API: %v, %v; want %s", got, series.Err(), want)
	}
	if n := queryRequests() - before; n != 1 {
		t.Errorf("the series list took %g HTTP API requests, want 1", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		found[mf.GetName()] = true
	}
	for _, n := range []string{"meshscope_metrics_remote_requests_total", "meshscope_metrics_remote_received_bytes_total", "prometheus_remote_read_client_queries_total", "prometheus_remote_read_client_request_duration_seconds"} {
		if !found[n] {
			t.Errorf("%s not in the injected registry", n)
		}
	}
}
