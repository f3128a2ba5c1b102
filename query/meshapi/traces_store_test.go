package meshapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/collector/tracestore/embedded"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/meshapi"
	"github.com/meshscope/meshscope/query/red"
)

// storeServer serves the native API over a real embedded trace store.
func storeServer(t *testing.T, now time.Time, batch []spans.Span) *httptest.Server {
	t.Helper()
	st, err := embedded.New(embedded.Config{Dir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.WriteSpans(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	api := meshapi.New(meshapi.Options{Timeout: time.Minute, MaxTraces: 100, Now: func() time.Time { return now }},
		red.Source{Engine: fixture.Engine(), Queryable: fixture.TSDB(t)}, nil, st)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// 15 minutes of traces, one every 5 s, where the longest (400–600 ms) are
// the oldest: sort=longest returns them first, and the default order does
// not show them among the 20 newest.
func TestTraceSearchSortLongestOverWholeRange(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	var batch []spans.Span
	for n := 0; n < 180; n++ {
		d := time.Duration(1+n%30) * time.Millisecond
		if n < 3 {
			d = time.Duration(600-100*n) * time.Millisecond
		}
		st := now.Add(-15 * time.Minute).Add(time.Duration(n) * 5 * time.Second)
		var id spans.TraceID
		id[0], id[15] = 0x51, byte(n)
		batch = append(batch, spans.Span{TraceID: id, SpanID: spans.SpanID{1}, Service: "web", Name: "GET /", Kind: spans.KindServer,
			StartUnixNano: st.UnixNano(), EndUnixNano: st.Add(d).UnixNano()})
	}
	srv := storeServer(t, now, batch)
	q := url.Values{"service": {"web"}, "lookback": {"20m"}, "sort": {"longest"}}
	var got meshapi.TracesResponse
	getJSON(t, srv.URL+meshapi.Prefix+"/traces?"+q.Encode(), &got)
	if len(got.Traces) != meshapi.DefaultTraceLimit {
		t.Fatalf("%d traces, want %d", len(got.Traces), meshapi.DefaultTraceLimit)
	}
	var durs []float64
	for _, tr := range got.Traces {
		durs = append(durs, float64(tr.DurationMs))
	}
	if durs[0] != 600 || durs[1] != 500 || durs[2] != 400 || durs[3] != 30 {
		t.Fatalf("sort=longest durations %v, want 600, 500, 400, 30, ...", durs)
	}
	if !slices.IsSortedFunc(durs, func(a, b float64) int { return int(b - a) }) {
		t.Fatalf("sort=longest durations not descending: %v", durs)
	}
	q.Del("sort")
	getJSON(t, srv.URL+meshapi.Prefix+"/traces?"+q.Encode(), &got)
	for _, tr := range got.Traces {
		if tr.DurationMs >= 400 {
			t.Fatalf("newest-first search shows an old %v ms trace among the 20 newest", tr.DurationMs)
		}
	}
}

// A service without spans of its own is listed with its kind and found
// through the CLIENT spans calling it.
func TestUnmeshedServiceListedAndSearchable(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	st := now.Add(-time.Minute)
	id := spans.TraceID{0x77, 1}
	batch := []spans.Span{
		{TraceID: id, SpanID: spans.SpanID{1}, Service: "cart", Name: "GET /cart", Kind: spans.KindServer,
			StartUnixNano: st.UnixNano(), EndUnixNano: st.Add(10 * time.Millisecond).UnixNano()},
		{TraceID: id, SpanID: spans.SpanID{2}, ParentSpanID: spans.SpanID{1}, Service: "cart", Name: "GET /prices", Kind: spans.KindClient,
			StartUnixNano: st.UnixNano(), EndUnixNano: st.Add(5 * time.Millisecond).UnixNano(),
			Attrs: []spans.Attr{spans.StringAttr("mesh.destination.service", "pricing"), spans.StringAttr("server.address", "127.0.0.1")}},
	}
	srv := storeServer(t, now, batch)
	var svcs meshapi.TraceServicesResponse
	getJSON(t, srv.URL+meshapi.Prefix+"/traces/services", &svcs)
	want := []meshapi.TraceService{{Name: "cart", Kind: "traced"}, {Name: "pricing", Kind: "unmeshed"}}
	if !slices.Equal(svcs.Services, want) {
		t.Fatalf("trace services = %+v, want %+v", svcs.Services, want)
	}
	var got meshapi.TracesResponse
	getJSON(t, srv.URL+meshapi.Prefix+"/traces?service=pricing", &got)
	if len(got.Traces) != 1 || got.Traces[0].TraceID != id.String() || !slices.Equal(got.Traces[0].UnmeshedServices, []string{"pricing"}) {
		t.Fatalf("search service=pricing = %+v, want trace %s with unmeshed_services [pricing]", got.Traces, id)
	}
}
