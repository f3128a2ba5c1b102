package promapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/query/internal/fixture"
	"github.com/meshscope/meshscope/query/internal/golden"
	"github.com/meshscope/meshscope/query/promapi"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	db := fixture.TSDB(t)
	api := promapi.New(promapi.Options{
		Timeout:        time.Minute,
		Now:            func() time.Time { return fixture.Now },
		MaxQueryLength: promapi.DefaultMaxQueryLength,
		MaxQueryNodes:  promapi.DefaultMaxQueryNodes,
		Status:         fixtureStatus,
	}, fixture.Engine(), db)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var fixtureStatus = promapi.Status{
	StartTime:        fixture.Now.Add(-time.Hour),
	Flags:            map[string]string{"http": "127.0.0.1:7070", "query-timeout": "2m"},
	ConfigYAML:       "http: 127.0.0.1:7070\nquery:\n  timeout: 2m\n",
	StorageRetention: "15d",
}

var (
	goVersion = regexp.MustCompile(`"goVersion": "[^"]*"`)
	revision  = regexp.MustCompile(`"revision": "[^"]*"`)
)

func TestEndpointsGolden(t *testing.T) {
	srv := newServer(t)
	now := fmt.Sprint(fixture.Now.Unix())
	start := fmt.Sprint(fixture.Now.Add(-2 * time.Minute).Unix())
	rps := `sum by (destination_service) (rate(mesh_requests_total{direction="inbound"}[1m]))`
	tests := []struct {
		name   string
		method string
		path   string
		form   url.Values
		code   int
	}{
		{"query_vector", "GET", "/api/v1/query", url.Values{"query": {rps}, "time": {now}}, 200},
		{"query_vector_post", "POST", "/api/v1/query", url.Values{"query": {rps}, "time": {now}}, 200},
		{"query_scalar", "GET", "/api/v1/query", url.Values{"query": {"1+1"}, "time": {now}}, 200},
		{"query_string", "GET", "/api/v1/query", url.Values{"query": {`"meshscope"`}, "time": {now}}, 200},
		{"query_matrix", "GET", "/api/v1/query", url.Values{"query": {`mesh_requests_total{direction="inbound",destination_service="payments",outcome="failure"}[1m]`}, "time": {now}}, 200},
		{"query_quantile", "GET", "/api/v1/query", url.Values{"query": {`histogram_quantile(0.99, sum by (destination_service, le) (rate(mesh_request_duration_seconds_bucket{direction="inbound"}[1m])))`}, "time": {now}}, 200},
		{"query_default_time", "GET", "/api/v1/query", url.Values{"query": {`count(meshscope_proxy_info)`}}, 200},
		{"query_limit_warning", "GET", "/api/v1/query", url.Values{"query": {rps}, "time": {now}, "limit": {"2"}}, 200},
		{"query_info_annotation", "GET", "/api/v1/query", url.Values{"query": {`sum(rate(meshscope_proxy_info[1m]))`}, "time": {now}}, 200},
		{"query_empty", "GET", "/api/v1/query", url.Values{"query": {`no_such_metric`}, "time": {now}}, 200},
		{"query_bad_syntax", "GET", "/api/v1/query", url.Values{"query": {`sum((`}, "time": {now}}, 400},
		{"query_missing", "GET", "/api/v1/query", url.Values{}, 400},
		{"query_bad_time", "GET", "/api/v1/query", url.Values{"query": {"1"}, "time": {"yesterday"}}, 400},
		{"query_bad_timeout", "GET", "/api/v1/query", url.Values{"query": {"1"}, "timeout": {"soon"}}, 400},
		{"query_exec_error", "GET", "/api/v1/query", url.Values{"query": {`ceil({__name__=~"mesh_request_duration_seconds_(sum|count)",direction="inbound",destination_service="payments",outcome="success"})`}, "time": {now}}, 422},
		{"query_range", "GET", "/api/v1/query_range", url.Values{"query": {rps}, "start": {start}, "end": {now}, "step": {"60"}}, 200},
		{"query_range_post", "POST", "/api/v1/query_range", url.Values{"query": {rps}, "start": {start}, "end": {now}, "step": {"1m"}}, 200},
		{"query_range_rfc3339", "GET", "/api/v1/query_range", url.Values{"query": {`count(meshscope_proxy_info)`}, "start": {fixture.Now.Add(-time.Minute).Format(time.RFC3339)}, "end": {fixture.Now.Format(time.RFC3339)}, "step": {"30s"}}, 200},
		{"query_range_bad_step", "GET", "/api/v1/query_range", url.Values{"query": {rps}, "start": {start}, "end": {now}, "step": {"0"}}, 400},
		{"query_range_end_before_start", "GET", "/api/v1/query_range", url.Values{"query": {rps}, "start": {now}, "end": {start}, "step": {"15"}}, 400},
		{"query_range_too_many_points", "GET", "/api/v1/query_range", url.Values{"query": {rps}, "start": {"0"}, "end": {now}, "step": {"1"}}, 400},
		{"series", "GET", "/api/v1/series", url.Values{"match[]": {`mesh_requests_total{destination_service="payments",direction="inbound"}`}, "start": {start}, "end": {now}}, 200},
		{"series_post_two_matchers", "POST", "/api/v1/series", url.Values{"match[]": {`meshscope_proxy_info{service="web"}`, `meshscope_proxy_info{mode="enforce"}`}}, 200},
		{"series_no_match", "GET", "/api/v1/series", url.Values{}, 400},
		{"series_empty_matcher", "GET", "/api/v1/series", url.Values{"match[]": {`{foo=""}`}}, 400},
		{"labels", "GET", "/api/v1/labels", url.Values{}, 200},
		{"labels_match", "POST", "/api/v1/labels", url.Values{"match[]": {`meshscope_proxy_info`}}, 200},
		{"label_values", "GET", "/api/v1/label/destination_service/values", url.Values{"start": {start}, "end": {now}}, 200},
		{"label_values_name", "GET", "/api/v1/label/__name__/values", url.Values{}, 200},
		{"label_values_match_limit", "GET", "/api/v1/label/service/values", url.Values{"match[]": {`meshscope_proxy_info{mode="observe"}`}, "limit": {"2"}}, 200},
		{"label_values_bad_limit", "GET", "/api/v1/label/service/values", url.Values{"limit": {"-1"}}, 400},
		{"metadata", "GET", "/api/v1/metadata", url.Values{}, 200},
		{"metadata_metric", "GET", "/api/v1/metadata", url.Values{"metric": {"mesh_request_duration_seconds"}}, 200},
		{"buildinfo", "GET", "/api/v1/status/buildinfo", url.Values{}, 200},
		{"format_query", "GET", "/api/v1/format_query", url.Values{"query": {`sum by(destination_service)(rate(mesh_requests_total{outcome="failure"}[5m]))/sum by(destination_service)(rate(mesh_requests_total[5m]))`}}, 200},
		{"format_query_bad", "POST", "/api/v1/format_query", url.Values{"query": {`rate(`}}, 400},
		{"query_exemplars", "GET", "/api/v1/query_exemplars", url.Values{"query": {`mesh_requests_total`}, "start": {start}, "end": {now}}, 200},
		{"query_exemplars_bad", "POST", "/api/v1/query_exemplars", url.Values{"query": {`rate(`}}, 400},
		{"rules", "GET", "/api/v1/rules", url.Values{}, 200},
		{"alerts", "GET", "/api/v1/alerts", url.Values{}, 200},
		{"targets", "GET", "/api/v1/targets", url.Values{}, 200},
		{"targets_state", "GET", "/api/v1/targets", url.Values{"state": {"active"}}, 200},
		{"targets_metadata", "GET", "/api/v1/targets/metadata", url.Values{"metric": {"mesh_requests_total"}}, 200},
		{"targets_metadata_bad_limit", "GET", "/api/v1/targets/metadata", url.Values{"limit": {"x"}}, 400},
		{"targets_metadata_bad_match", "GET", "/api/v1/targets/metadata", url.Values{"match_target": {`{job=`}}, 400},
		{"alertmanagers", "GET", "/api/v1/alertmanagers", url.Values{}, 200},
		{"flags", "GET", "/api/v1/status/flags", url.Values{}, 200},
		{"config", "GET", "/api/v1/status/config", url.Values{}, 200},
		{"tsdb", "GET", "/api/v1/status/tsdb", url.Values{"limit": {"100"}}, 200},
		{"tsdb_limit", "GET", "/api/v1/status/tsdb", url.Values{"limit": {"1"}}, 200},
		{"tsdb_bad_limit", "GET", "/api/v1/status/tsdb", url.Values{"limit": {"0"}}, 400},
		{"tsdb_limit_too_big", "GET", "/api/v1/status/tsdb", url.Values{"limit": {"10001"}}, 400},
		{"walreplay", "GET", "/api/v1/status/walreplay", url.Values{}, 200},
		{"parse_query", "GET", "/api/v1/parse_query", url.Values{"query": {`sum by (destination_service) (rate(mesh_requests_total{outcome="failure"}[5m] offset 1m)) / on (destination_service) group_left sum by (destination_service) (rate(mesh_requests_total[5m]))`}}, 200},
		{"parse_query_misc", "POST", "/api/v1/parse_query", url.Values{"query": {`-topk(3, max_over_time(up[1h:5m] @ end())) > bool 0.5 or label_replace(vector(1), "a", "$1", "b", "(.*)")`}}, 200},
		{"parse_query_bad", "GET", "/api/v1/parse_query", url.Values{"query": {`sum(`}}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var err error
			if tc.method == "POST" {
				resp, err = http.PostForm(srv.URL+tc.path, tc.form)
			} else {
				resp, err = http.Get(srv.URL + tc.path + "?" + tc.form.Encode())
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, tc.code, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var env map[string]any
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, body)
			}
			wantStatus := "success"
			if tc.code != 200 {
				wantStatus = "error"
			}
			if env["status"] != wantStatus {
				t.Errorf("status field %v, want %s", env["status"], wantStatus)
			}
			out := goVersion.ReplaceAll(golden.JSON(sortVector(t, body)), []byte(`"goVersion": "GO_VERSION"`))
			out = revision.ReplaceAll(out, []byte(`"revision": "REVISION"`))
			golden.Assert(t, tc.name, append([]byte(fmt.Sprintf("HTTP %d\n", resp.StatusCode)), out...))
		})
	}
}

// sortVector orders an instant vector's samples by their labels: the engine
// returns aggregations in map order, and Prometheus does not sort them either.
func sortVector(t *testing.T, body []byte) []byte {
	var env struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string            `json:"resultType"`
			Result     []json.RawMessage `json:"result"`
		} `json:"data"`
		Warnings []string `json:"warnings,omitempty"`
		Infos    []string `json:"infos,omitempty"`
	}
	if json.Unmarshal(body, &env) != nil || env.Data.ResultType != "vector" {
		return body
	}
	sort.Slice(env.Data.Result, func(i, j int) bool {
		return string(env.Data.Result[i]) < string(env.Data.Result[j])
	})
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTimeout checks that a query over its deadline answers 503 with
// errorType "timeout", as Prometheus does.
func TestTimeout(t *testing.T) {
	srv := newServer(t)
	resp, err := http.Get(srv.URL + "/api/v1/query?" + url.Values{"query": {`sum(rate(mesh_requests_total[10m]))`}, "timeout": {"0.000000001"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env promapi.Response
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || env.ErrorType != promapi.ErrTimeout {
		t.Fatalf("got %d %+v, want 503 timeout", resp.StatusCode, env)
	}
}

// TestMaxSamples checks that the engine's sample limit surfaces as an
// execution error (422), as in Prometheus.
func TestMaxSamples(t *testing.T) {
	db := fixture.TSDB(t)
	eng := fixture.EngineWithMaxSamples(10)
	api := promapi.New(promapi.Options{Now: func() time.Time { return fixture.Now }}, eng, db)
	mux := http.NewServeMux()
	api.RegisterRoutes(mux)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/v1/query?"+url.Values{"query": {`mesh_requests_total[5m]`}}.Encode(), nil)
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"errorType":"execution"`) {
		t.Fatalf("got %d %s, want 422 execution", rec.Code, rec.Body)
	}
}
