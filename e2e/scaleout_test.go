//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestScaleOutSharedMetrics runs a real Prometheus (Debian package
// `prometheus`, remote-write receiver on) as the shared metrics store of two
// `meshscope server --metrics-store remote --prometheus-url` processes: PromQL
// runs in Prometheus, through its HTTP API. The backend's proxy reports to
// one server, the frontend's to the other, so each server ingests one side
// of the frontend → backend calls. Both servers must answer /api/v1/query,
// /api/mesh/graph and the native tables identically at a fixed time, the
// edge must be seen by both sides, and the query answers must be
// Prometheus' own, rate() included, to the last bit.
func TestScaleOutSharedMetrics(t *testing.T) {
	sharedMetrics(t, func(promURL string) []string { return []string{"--prometheus-url", promURL} }, true)
}

// TestScaleOutSharedMetricsRemoteRead is TestScaleOutSharedMetrics with
// --remote-read-url: the servers read the series with remote read and
// evaluate PromQL in their own engine, so their answers equal Prometheus'
// except for rate() (Debian's Prometheus 2.x extrapolates at the window's
// edges unlike the 3.x engine the server embeds).
func TestScaleOutSharedMetricsRemoteRead(t *testing.T) {
	sharedMetrics(t, func(promURL string) []string { return []string{"--remote-read-url", promURL + "/api/v1/read"} }, false)
}

// sharedMetrics is the shared metrics store scenario; readFlags are the
// servers' flags for reading the store, remotePromQL tells that PromQL runs
// in Prometheus (its answers are then Prometheus' exactly).
func sharedMetrics(t *testing.T, readFlags func(promURL string) []string, remotePromQL bool) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus); skipping the shared metrics store test")
	}
	dir := t.TempDir()
	promAddr := freeAddrs(t, 1)[0]
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte("global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 10m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startProc(t, "prometheus", promBin, "--config.file="+cfgPath,
		"--web.listen-address="+promAddr, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.enable-remote-write-receiver", "--enable-feature=native-histograms")
	waitReady(t, prom, "http://"+promAddr+"/-/ready", 60*time.Second)

	remote := append([]string{"--metrics-store", "remote",
		"--remote-write-url", "http://" + promAddr + "/api/v1/write"}, readFlags("http://"+promAddr)...)
	a := startServer(t, remote...)
	b := startServer(t, remote...)

	backendApp := startApp(t)
	addrs := freeAddrs(t, 2)
	backendIn, frontendOut := addrs[0], addrs[1]
	backend, _ := startProxy(t, "proxy-backend", "--service", "backend", "--version", "v1",
		"--inbound", backendIn+"="+backendApp.addr, "--collector", a.otlpGRPC)
	frontend, _ := startProxy(t, "proxy-frontend", "--service", "frontend", "--version", "v1",
		"--upstream", frontendOut+"=backend@"+backendIn, "--collector", b.otlpGRPC)
	procs := []*proc{prom, a.proc, b.proc, backend, frontend}

	// Two rounds of traffic a few seconds apart, so the counters rise
	// within a 1m window (their rate is not zero).
	promURL := "http://" + promAddr
	total := func(q string, at time.Time) (float64, error) {
		v, err := instantQuery(promURL, q, at)
		if err != nil || len(v) != 1 {
			return 0, fmt.Errorf("%v %v", v, err)
		}
		return v[0].float(), nil
	}
	const n, failures = 30, 6
	for round := range 2 {
		for i := range n / 2 {
			if code, _ := send(t, frontendOut, fmt.Sprintf("/items/%d", i), ""); code != 200 {
				t.Fatalf("request %d: status %d", i, code)
			}
		}
		for i := range failures / 2 {
			if code, _ := send(t, frontendOut, "/fail", ""); code != 500 {
				t.Fatalf("failing request %d: status %d", i, code)
			}
		}
		if round == 0 {
			poll(t, 45*time.Second, "the first round in Prometheus", func() (bool, string) {
				c, err := total(`sum(mesh_requests_total{source_service="frontend",destination_service="backend"})`, time.Now())
				return err == nil && c == n+failures, fmt.Sprintf("count %g (%v)", c, err) // both directions
			}, procs...)
		}
	}

	// A time whose data has arrived in Prometheus: both directions counted
	// in full, rising within the 1m window. 3 s back; samples still in
	// flight (proxy → server WAL → queue) are waited for below, where the
	// answers at that time are polled until they agree.
	var at time.Time
	poll(t, 45*time.Second, "both sides' counts in Prometheus", func() (bool, string) {
		at = time.Now().Add(-3 * time.Second).Truncate(time.Millisecond)
		var state []string
		ok := true
		for _, dir := range []string{"inbound", "outbound"} {
			sel := fmt.Sprintf(`{direction=%q,source_service="frontend",destination_service="backend"}`, dir)
			c, err := total("sum(mesh_requests_total"+sel+")", at)
			r, rerr := total("sum(rate(mesh_requests_total"+sel+"[1m]))", at)
			ok = ok && err == nil && rerr == nil && c == 2*(n/2+failures/2) && r > 0
			state = append(state, fmt.Sprintf("%s: count %g (%v) rate %g (%v)", dir, c, err, r, rerr))
		}
		return ok, strings.Join(state, "; ")
	}, procs...)

	queries := []string{
		`sort(mesh_requests_total{source_service="frontend",destination_service="backend"})`,
		`sum by (direction, outcome, meshscope_server) (mesh_requests_total)`,
		// Not rate(): Debian's Prometheus (2.x) extrapolates at the window's
		// edges unlike the 3.x engine the server embeds.
		`sum by (direction) (max_over_time(mesh_request_duration_seconds_count{destination_service="backend"}[1m]) - min_over_time(mesh_request_duration_seconds_count{destination_service="backend"}[1m]))`,
	}
	key := vectorKey
	if remotePromQL {
		// Prometheus evaluates the servers' PromQL: rate() and quantiles
		// too, and every value to the last digit.
		queries = append(queries,
			`sum by (direction, outcome) (rate(mesh_requests_total{destination_service="backend"}[1m]))`,
			`histogram_quantile(0.9, sum by (direction, le) (rate(mesh_request_duration_seconds_bucket{destination_service="backend"}[1m])))`)
		key = exactVectorKey
	}
	poll(t, 30*time.Second, "the same answers from both servers and Prometheus", func() (bool, string) {
		for _, q := range queries {
			want, err := instantQuery(promURL, q, at)
			if err != nil || len(want) == 0 {
				return false, fmt.Sprintf("Prometheus %s: %v %v", q, want, err)
			}
			for _, s := range []*server{a, b} {
				got, err := instantQuery("http://"+s.http, q, at)
				if err != nil {
					return false, err.Error()
				}
				if g, w := key(got), key(want); g != w {
					return false, fmt.Sprintf("server %s: %s\n= %s\nPrometheus = %s", s.http, q, g, w)
				}
			}
		}
		return true, ""
	}, procs...)

	// Each side's series carries the label of the server that ingested it.
	sides, err := instantQuery(promURL, `count by (direction, meshscope_server) (mesh_requests_total{source_service="frontend"})`, at)
	if err != nil {
		t.Fatal(err)
	}
	byDir := map[string]string{}
	for _, s := range sides {
		byDir[s.Metric["direction"]] += s.Metric["meshscope_server"]
	}
	if !strings.HasSuffix(byDir["inbound"], portOf(a.http)) || !strings.HasSuffix(byDir["outbound"], portOf(b.http)) {
		t.Errorf("meshscope_server by direction = %v; want inbound from %s, outbound from %s", byDir, a.http, b.http)
	}

	// The graph at that time: identical on both servers, the edge seen by
	// both proxies, its rate the servers' PromQL rate of the inbound reports
	// (one computation; Prometheus 2.x's rate() extrapolates differently).
	graphAt := fmt.Sprintf("/api/mesh/graph?window=1m&at=%.3f", float64(at.UnixMilli())/1000)
	poll(t, 30*time.Second, "the same graph from both servers, with their PromQL rate", func() (bool, string) {
		v, err := instantQuery("http://"+b.http, `sum(rate(mesh_requests_total{direction="inbound",source_service="frontend",destination_service="backend"}[1m]))`, at)
		if err != nil || len(v) != 1 {
			return false, fmt.Sprintf("rate on %s: %v %v", b.http, v, err)
		}
		wantRPS := v[0].float()
		var graphs [2][]byte
		for i, s := range []*server{a, b} {
			code, body, err := get(s.url(graphAt))
			if err != nil || code != 200 {
				return false, fmt.Sprintf("GET %s on %s: %d %v %.300s", graphAt, s.http, code, err, body)
			}
			graphs[i] = body
		}
		if string(graphs[0]) != string(graphs[1]) {
			return false, fmt.Sprintf("graphs differ:\n%s: %s\n%s: %s", a.http, graphs[0], b.http, graphs[1])
		}
		var g struct {
			Edges []struct {
				Source, Target string
				SeenBy         string  `json:"seen_by"`
				RPS            float64 `json:"rps"`
				ErrorRate      float64 `json:"error_rate"`
			} `json:"edges"`
		}
		if err := json.Unmarshal(graphs[0], &g); err != nil {
			return false, err.Error()
		}
		for _, e := range g.Edges {
			if e.Source == "frontend" && e.Target == "backend" {
				return e.SeenBy == "both" && math.Abs(e.RPS-wantRPS) <= 1e-9*wantRPS && e.ErrorRate > 0,
					fmt.Sprintf("edge frontend→backend: seen_by %s rps %g error_rate %g; want both, PromQL's rps %g, failures", e.SeenBy, e.RPS, e.ErrorRate, wantRPS)
			}
		}
		return false, fmt.Sprintf("no edge frontend→backend in %s", graphs[0])
	}, procs...)

	// The native tables at that time: identical on both servers.
	for _, table := range []string{"services", "edges", "routes", "versions"} {
		path := fmt.Sprintf("/api/mesh/%s?window=1m&at=%.3f", table, float64(at.UnixMilli())/1000)
		var bodies [2][]byte
		for i, s := range []*server{a, b} {
			code, body, err := get(s.url(path))
			if err != nil || code != 200 {
				t.Fatalf("GET %s on %s: %d %v %.300s", path, s.http, code, err, body)
			}
			bodies[i] = body
		}
		if string(bodies[0]) != string(bodies[1]) {
			t.Errorf("%s differ:\n%s: %s\n%s: %s", path, a.http, bodies[0], b.http, bodies[1])
		}
		if !strings.Contains(string(bodies[0]), `"backend"`) {
			t.Errorf("%s on %s: no backend row: %.500s", path, a.http, bodies[0])
		}
	}

	// The remote-write queue's own metrics show what each server sent, and
	// the remote engine's request metrics what it read.
	for _, s := range []*server{a, b} {
		sent, ok, err := scrape(s.url("/metrics"), "prometheus_remote_storage_samples_total", `remote_name="shared"`)
		if err != nil || !ok || sent == 0 {
			t.Errorf("%s: prometheus_remote_storage_samples_total = %g (found %v, %v), want > 0", s.http, sent, ok, err)
		}
		apis := []string{`api="read"`}
		if remotePromQL {
			apis = append(apis, `api="query"`)
		}
		for _, api := range apis {
			read, ok, err := scrape(s.url("/metrics"), "meshscope_metrics_remote_received_bytes_total", api)
			if err != nil || !ok || read == 0 {
				t.Errorf("%s: meshscope_metrics_remote_received_bytes_total{%s} = %g (found %v, %v), want > 0", s.http, api, read, ok, err)
			}
		}
		if _, ok, err := scrape(s.url("/metrics"), "prometheus_remote_read_client_queries_total", `remote_name="shared"`); err != nil || !ok {
			t.Errorf("%s: prometheus_remote_read_client_queries_total missing from /metrics (%v)", s.http, err)
		}
	}
}

// exactVectorKey is vectorKey with the values as the API rendered them.
func exactVectorKey(v []promSample) string {
	return vectorKeyOf(v, func(s promSample) string { return fmt.Sprint(s.Value[1]) })
}

// instantQuery runs a PromQL instant query at a given time against a
// Prometheus-compatible API.
func instantQuery(base, q string, at time.Time) ([]promSample, error) {
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
		Error string `json:"error"`
	}
	u := base + "/api/v1/query?query=" + url.QueryEscape(q) + "&time=" + strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)
	if err := getJSON(u, &r); err != nil {
		return nil, err
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: status %s, type %s: %s", q, r.Status, r.Data.ResultType, r.Error)
	}
	return r.Data.Result, nil
}

// vectorKey is a vector as sorted "labels value" lines, values to 9 digits.
func vectorKey(v []promSample) string {
	// Engines may sum in another order.
	return vectorKeyOf(v, func(s promSample) string { return fmt.Sprintf("%.9g", s.float()) })
}

func vectorKeyOf(v []promSample, value func(promSample) string) string {
	lines := make([]string, 0, len(v))
	for _, s := range v {
		names := make([]string, 0, len(s.Metric))
		for k := range s.Metric {
			names = append(names, k)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, k := range names {
			fmt.Fprintf(&b, "%s=%q,", k, s.Metric[k])
		}
		b.WriteString(" " + value(s))
		lines = append(lines, b.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func portOf(addr string) string { return addr[strings.LastIndex(addr, ":"):] }
