//go:build unix

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

func newTraceparent(t *testing.T) (traceparent, traceID string) {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	traceID, spanID := hex.EncodeToString(b[:16]), hex.EncodeToString(b[16:])
	return "00-" + traceID + "-" + spanID + "-01", traceID
}

// TestThinPath sends traffic client → proxy of "frontend" (outbound) →
// proxy of "backend" (inbound) → app, and finds the trace, the metric
// series and the graph edge through the server's HTTP APIs.
func TestThinPath(t *testing.T) {
	srv := startServer(t)
	backendApp := startApp(t)
	addrs := freeAddrs(t, 2)
	backendIn, frontendOut := addrs[0], addrs[1]
	backend, _ := startProxy(t, "proxy-backend",
		"--service", "backend", "--version", "v1",
		"--inbound", backendIn+"="+backendApp.addr,
		"--collector", srv.otlpGRPC)
	frontend, _ := startProxy(t, "proxy-frontend",
		"--service", "frontend", "--version", "v1",
		"--upstream", frontendOut+"=backend@"+backendIn,
		"--collector", srv.otlpGRPC)
	procs := []*proc{srv.proc, backend, frontend}

	const n = 20
	tp, traceID := newTraceparent(t)
	for i := range n {
		h := ""
		if i == 0 {
			h = tp
		}
		code, body := send(t, frontendOut, fmt.Sprintf("/items/%d", i), h)
		if code != 200 || !strings.Contains(body, "hello from the backend") {
			t.Fatalf("request %d through both proxies: status %d, body %q", i, code, body)
		}
	}
	const failures = 5
	for i := range failures {
		if code, body := send(t, frontendOut, "/fail", ""); code != 500 {
			t.Fatalf("failing request %d: status %d, want the app's 500; body %q", i, code, body)
		}
	}
	// Both proxies continued the caller's trace: the app got our trace id.
	if seen := backendApp.traceparents(); len(seen) != n+failures || !strings.Contains(seen[0], traceID) {
		t.Fatalf("app saw traceparents %q..., want the first to carry trace id %s", seen[:min(2, len(seen))], traceID)
	}

	t.Run("trace", func(t *testing.T) {
		var tr jaegerTrace
		poll(t, 60*time.Second, "trace "+traceID+" with spans of both proxies", func() (bool, string) {
			var r jaegerTraces
			if err := getJSON(srv.url("/jaeger/api/traces/"+traceID), &r); err != nil {
				return false, err.Error()
			}
			if len(r.Data) != 1 {
				return false, fmt.Sprintf("%d traces", len(r.Data))
			}
			tr = r.Data[0]
			svcs := traceServices(tr)
			return svcs["frontend"] > 0 && svcs["backend"] > 0, fmt.Sprintf("spans by service %v", svcs)
		}, procs...)
		if !strings.EqualFold(strings.TrimLeft(tr.TraceID, "0"), strings.TrimLeft(traceID, "0")) {
			t.Errorf("traceID = %s, want %s", tr.TraceID, traceID)
		}
		// The backend's inbound span is a child of the frontend's outbound span.
		spanSvc := map[string]string{}
		for _, s := range tr.Spans {
			spanSvc[s.SpanID] = tr.Processes[s.ProcessID].ServiceName
		}
		linked := false
		for _, s := range tr.Spans {
			if tr.Processes[s.ProcessID].ServiceName != "backend" {
				continue
			}
			for _, ref := range s.References {
				if ref.RefType == "CHILD_OF" && spanSvc[ref.SpanID] == "frontend" {
					linked = true
				}
			}
		}
		if !linked {
			t.Errorf("no backend span is a CHILD_OF a frontend span: %+v", tr.Spans)
		}
		var services struct {
			Data []string `json:"data"`
		}
		if err := getJSON(srv.url("/jaeger/api/services"), &services); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(services.Data, ","); !strings.Contains(got, "frontend") || !strings.Contains(got, "backend") {
			t.Errorf("/jaeger/api/services = %v, want frontend and backend", services.Data)
		}
	})

	t.Run("metric", func(t *testing.T) {
		for _, dir := range []string{"inbound", "outbound"} {
			q := fmt.Sprintf(`sum(mesh_requests_total{direction=%q,source_service="frontend",destination_service="backend",outcome="success"})`, dir)
			poll(t, 60*time.Second, q+" = "+fmt.Sprint(n), func() (bool, string) {
				res, err := promQuery(srv, q)
				if err != nil {
					return false, err.Error()
				}
				if len(res) == 0 {
					return false, "no series"
				}
				return res[0].float() >= n, fmt.Sprintf("value %g", res[0].float())
			}, procs...)
		}
		q := `mesh_requests_total{direction="inbound",destination_service="backend"}`
		res, err := promQuery(srv, q)
		if err != nil {
			t.Fatal(err)
		}
		outcomes := map[string]float64{}
		for _, s := range res {
			for _, l := range []string{"source_service", "destination_service", "destination_version", "status_code", "outcome"} {
				if s.Metric[l] == "" {
					t.Errorf("series %v lacks label %s", s.Metric, l)
				}
			}
			want := map[string]string{"success": "200", "failure": "500"}[s.Metric["outcome"]]
			if s.Metric["status_code"] != want || s.Metric["destination_version"] != "v1" {
				t.Errorf("series %v: want status_code %s and destination_version v1", s.Metric, want)
			}
			outcomes[s.Metric["outcome"]+"/"+s.Metric["status_code"]] += s.float()
		}
		if outcomes["failure/500"] < failures {
			t.Errorf("inbound series by outcome/status = %v, want >= %d failure/500", outcomes, failures)
		}
		dq := `sum(mesh_request_duration_seconds_count{direction="inbound",source_service="frontend",destination_service="backend"})`
		poll(t, 30*time.Second, dq, func() (bool, string) {
			res, err := promQuery(srv, dq)
			if err != nil {
				return false, err.Error()
			}
			return len(res) == 1 && res[0].float() >= n, fmt.Sprint(res)
		}, procs...)
	})

	t.Run("graph", func(t *testing.T) {
		poll(t, 60*time.Second, "graph edge frontend → backend", func() (bool, string) {
			var g graph
			if err := getJSON(srv.url("/api/mesh/graph"), &g); err != nil {
				return false, err.Error()
			}
			for _, e := range g.Edges {
				if e.Source == "frontend" && e.Target == "backend" {
					return e.RPS > 0 && e.ErrorRate > 0, fmt.Sprintf("edge rps %g error_rate %g", e.RPS, e.ErrorRate)
				}
			}
			return false, g.summary()
		}, procs...)
	})

	t.Run("trace search by service", func(t *testing.T) {
		poll(t, 30*time.Second, "a backend trace in /jaeger/api/traces?service=backend", func() (bool, string) {
			var r jaegerTraces
			if err := getJSON(srv.url("/jaeger/api/traces?service=backend&lookback=1h&limit=50"), &r); err != nil {
				return false, err.Error()
			}
			for _, tr := range r.Data {
				if traceServices(tr)["backend"] > 0 {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d traces", len(r.Data))
		}, procs...)
	})
}

// traceServices counts a trace's spans per service name.
func traceServices(tr jaegerTrace) map[string]int {
	out := map[string]int{}
	for _, s := range tr.Spans {
		out[tr.Processes[s.ProcessID].ServiceName]++
	}
	return out
}
