package jaegerapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/meshscope/meshscope/collector/spans"
	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/internal/golden"
	"github.com/meshscope/meshscope/query/jaegerapi"
)

// orphanTraces is the fixture's traces plus one whose spans Jaeger warns
// about: a span whose parent is not in the trace and a duplicate span ID.
func orphanTraces(t *testing.T) *fixture.Traces {
	t.Helper()
	tr := fixture.SampleTraces()
	id := fixture.TraceID(9)
	sid := func(s string) spans.SpanID {
		v, err := spans.ParseSpanID(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	at := fixture.Now.Add(-30 * time.Second).UnixNano()
	ms := int64(time.Millisecond)
	tr.Spans = append(tr.Spans,
		spans.Span{TraceID: id, SpanID: sid("00000000000009a1"), Service: "web", Name: "GET /", Kind: spans.KindServer, StartUnixNano: at, EndUnixNano: at + 40*ms},
		spans.Span{TraceID: id, SpanID: sid("00000000000009a2"), ParentSpanID: sid("00000000000009a1"), Service: "catalog", Name: "GET /api/items/{id}", Kind: spans.KindServer, StartUnixNano: at + ms, EndUnixNano: at + 30*ms},
		spans.Span{TraceID: id, SpanID: sid("00000000000009a2"), ParentSpanID: sid("00000000000009a1"), Service: "catalog", Name: "GET /api/items/{id}", Kind: spans.KindServer, StartUnixNano: at + 2*ms, EndUnixNano: at + 31*ms},
		spans.Span{TraceID: id, SpanID: sid("00000000000009a3"), ParentSpanID: sid("00000000000009ff"), Service: "inventory", Name: "SELECT", Kind: spans.KindClient, StartUnixNano: at + 5*ms, EndUnixNano: at + 9*ms},
	)
	return tr
}

func newV3Server(t *testing.T) *httptest.Server {
	t.Helper()
	api := jaegerapi.New(jaegerapi.Options{MaxLimit: 1500, Timeout: time.Minute, Now: func() time.Time { return fixture.Now }}, orphanTraces(t), nil)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestV3Golden(t *testing.T) {
	srv := newV3Server(t)
	rfc := func(d time.Duration) string { return fixture.Now.Add(d).Format(time.RFC3339Nano) }
	t1 := fixture.TraceID(1)
	window := url.Values{"query.start_time_min": {rfc(-time.Hour)}, "query.start_time_max": {rfc(0)}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range window {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name string
		path string
		q    url.Values
		code int
	}{
		{"services", "/services", nil, 200},
		{"operations", "/operations", url.Values{"service": {"catalog"}}, 200},
		{"operations_span_kind", "/operations", url.Values{"service": {"catalog"}, "span_kind": {"server"}}, 200},
		{"operations_spanKind", "/operations", url.Values{"service": {"catalog"}, "spanKind": {"internal"}}, 200},
		{"operations_no_service", "/operations", nil, 400},
		{"operations_bad_kind", "/operations", url.Values{"service": {"web"}, "span_kind": {"sideways"}}, 400},
		{"search_service", "/traces", with("query.service_name", "payments"), 200},
		{"search_camel", "/traces", url.Values{"query.serviceName": {"catalog"}, "query.operationName": {"db.query"}, "query.startTimeMin": {rfc(-time.Hour)}, "query.startTimeMax": {rfc(0)}}, 200},
		{"search_attributes", "/traces", with("query.service_name", "catalog", "query.attributes", `{"http.response.status_code":"200"}`, "query.duration_min", "100ms", "query.duration_max", "1s"), 200},
		{"search_num_traces", "/traces", with("query.service_name", "web", "query.num_traces", "1"), 200},
		{"search_orphans", "/traces", with("query.service_name", "inventory"), 200},
		{"search_orphans_raw", "/traces", with("query.service_name", "inventory", "query.raw_traces", "true"), 200},
		{"search_none", "/traces", with("query.service_name", "nobody"), 404},
		{"search_no_times", "/traces", url.Values{"query.service_name": {"web"}}, 400},
		{"search_bad_time", "/traces", with("query.start_time_min", "yesterday"), 400},
		{"search_times_reversed", "/traces", url.Values{"query.start_time_min": {rfc(0)}, "query.start_time_max": {rfc(-time.Hour)}}, 400},
		{"search_bad_attributes", "/traces", with("query.attributes", `{"a":`), 400},
		{"search_bad_duration", "/traces", with("query.duration_min", "fast"), 400},
		{"search_bad_num_traces", "/traces", with("query.num_traces", "-1"), 400},
		{"trace", "/traces/" + t1.String(), nil, 200},
		{"trace_base64", "/traces/" + base64.RawURLEncoding.EncodeToString(t1[:]), nil, 200},
		{"trace_not_found", "/traces/0123456789abcdef0123456789abcdef", nil, 404},
		{"trace_malformed", "/traces/not-hex!", nil, 400},
		{"trace_bad_start", "/traces/" + t1.String(), url.Values{"start_time": {"x"}}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := srv.URL + jaegerapi.V3Prefix + tc.path
			if tc.q != nil {
				u += "?" + tc.q.Encode()
			}
			resp, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if !json.Valid(body) {
				t.Fatalf("not JSON: %s", body)
			}
			golden.Assert(t, "v3_"+tc.name, append([]byte(fmt.Sprintf("HTTP %d\n", resp.StatusCode)), golden.JSON(body)...))
		})
	}
}

// TestV3TracesAreOTLP decodes api_v3 answers with the OpenTelemetry
// Collector's own OTLP JSON decoder and checks every stored span is there
// with its identity, parent, kind and times.
func TestV3TracesAreOTLP(t *testing.T) {
	srv := newV3Server(t)
	all := orphanTraces(t)
	for _, id := range []spans.TraceID{fixture.TraceID(1), fixture.TraceID(3), fixture.TraceID(9)} {
		resp, err := http.Get(srv.URL + jaegerapi.V3Prefix + "/traces/" + id.String())
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Result json.RawMessage `json:"result"`
		}
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(env.Result)
		if err != nil {
			t.Fatalf("trace %s: not OTLP JSON: %v", id, err)
		}
		got := map[string]int{}
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
			sss := rss.At(i).ScopeSpans()
			for j := 0; j < sss.Len(); j++ {
				sps := sss.At(j).Spans()
				for k := 0; k < sps.Len(); k++ {
					sp := sps.At(k)
					got[fmt.Sprintf("%s %s %s %s %d %d %d", svc.Str(), sp.TraceID(), sp.SpanID(), sp.ParentSpanID(), sp.Kind(), sp.StartTimestamp(), sp.EndTimestamp())]++
				}
			}
		}
		want := map[string]int{}
		for _, s := range all.Spans {
			if s.TraceID != id {
				continue
			}
			parent := ""
			if !s.ParentSpanID.IsZero() {
				parent = s.ParentSpanID.String()
			}
			want[fmt.Sprintf("%s %s %s %s %d %d %d", s.Service, s.TraceID, s.SpanID, parent, s.Kind, s.StartUnixNano, s.EndUnixNano)]++
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("trace %s:\n got %v\nwant %v", id, got, want)
		}
	}
}

// TestWarnings checks that the classic API names orphan parents and
// duplicate span IDs in the spans' warnings, as Jaeger does.
func TestWarnings(t *testing.T) {
	srv := newV3Server(t)
	resp, err := http.Get(srv.URL + jaegerapi.Prefix + "/traces/" + fixture.TraceID(9).String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	golden.Assert(t, "jaeger_trace_warnings", append([]byte(fmt.Sprintf("HTTP %d\n", resp.StatusCode)), golden.JSON(body)...))
	var env struct {
		Data []jaegerapi.Trace `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil || len(env.Data) != 1 {
		t.Fatalf("%v: %s", err, body)
	}
	var warned []string
	for _, s := range env.Data[0].Spans {
		for _, w := range s.Warnings {
			warned = append(warned, s.SpanID+": "+w)
		}
	}
	want := []string{
		"00000000000009a2: duplicate span IDs; skipping clock skew adjustment",
		"00000000000009a3: parent span ID=00000000000009ff is not in the trace; skipping clock skew adjustment",
	}
	if strings.Join(warned, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(warned, "\n"), strings.Join(want, "\n"))
	}
	// A complete trace has none.
	resp, err = http.Get(srv.URL + jaegerapi.Prefix + "/traces/" + fixture.TraceID(1).String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "skipping clock skew") {
		t.Errorf("warnings on a complete trace: %s", body)
	}
}
