//go:build unix

package e2e

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDemo runs `meshscope demo` on a free HTTP port with a temp data dir.
func startDemo(t *testing.T, duration string) (p *proc, httpAddr, data string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("process checks need Linux /proc")
	}
	bin, _ := binaries(t)
	httpAddr = freeAddrs(t, 1)[0]
	data = t.TempDir()
	p = startProc(t, "meshscope-demo", bin, "demo", "--http", httpAddr, "--data", data, "--duration", duration, "--no-auth")
	// The demo prints the UI URL once the server, services, proxies and load run.
	poll(t, 120*time.Second, "the demo to print its UI URL", func() (bool, string) {
		return strings.Contains(p.output(), "Meshscope UI: http://"+httpAddr+"/"), p.tail(3)
	}, p)
	return p, httpAddr, data
}

// TestDemo: the demo's graph shows the shop, and Ctrl-C (SIGINT) stops
// every process the demo started.
func TestDemo(t *testing.T) {
	p, httpAddr, data := startDemo(t, "5m")
	start := time.Now()
	var last graph
	poll(t, 60*time.Second, "the demo shop in /api/mesh/graph", func() (bool, string) {
		var g graph
		if err := getJSON("http://"+httpAddr+"/api/mesh/graph", &g); err != nil {
			return false, err.Error()
		}
		last = g
		kinds := map[string]string{}
		for _, n := range g.Nodes {
			kinds[n.ID] = n.Kind
		}
		for _, svc := range []string{"web", "catalog", "cart", "checkout", "inventory", "payments", "pricing"} {
			if _, ok := kinds[svc]; !ok {
				return false, "missing " + svc + "; " + g.summary()
			}
		}
		edges := map[string]bool{}
		for _, e := range g.Edges {
			edges[e.Source+"->"+e.Target] = true
		}
		for _, e := range []string{"gateway->web", "web->catalog", "web->cart", "web->checkout", "catalog->inventory", "cart->pricing", "checkout->payments"} {
			if !edges[e] {
				return false, "missing edge " + e + "; " + g.summary()
			}
		}
		return true, ""
	}, p)
	t.Logf("demo graph complete %s after the demo was up: %s", time.Since(start).Round(time.Second), last.summary())
	for _, n := range last.Nodes {
		if n.ID == "pricing" && n.Kind != "unmeshed" {
			t.Errorf("pricing has kind %q, want unmeshed (it runs without a proxy)", n.Kind)
		}
		if n.ID == "web" && n.Kind != "service" {
			t.Errorf("web has kind %q, want service", n.Kind)
		}
	}
	for _, f := range []string{"server.log", "proxy-web.log", "proxy-inventory-v2.log"} {
		if _, err := os.Stat(filepath.Join(data, "logs", f)); err != nil {
			t.Errorf("demo log missing: %v", err)
		}
	}

	// The services forward trace headers: one trace runs web → catalog → inventory.
	poll(t, 30*time.Second, "a demo trace spanning web, catalog and inventory", func() (bool, string) {
		var r jaegerTraces
		if err := getJSON("http://"+httpAddr+"/jaeger/api/traces?service=inventory&lookback=1h&limit=20", &r); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, tr := range r.Data {
			svcs := traceServices(tr)
			if svcs["web"] > 0 && svcs["catalog"] > 0 && svcs["inventory"] > 0 {
				return true, ""
			}
			seen = append(seen, fmt.Sprint(svcs))
		}
		return false, strings.Join(seen, " ")
	}, p)
	// catalog's proxy splits inventory calls over both versions.
	poll(t, 30*time.Second, "catalog → inventory v1 and v2 in the version view", func() (bool, string) {
		var g graph
		if err := getJSON("http://"+httpAddr+"/api/mesh/graph?view=version", &g); err != nil {
			return false, err.Error()
		}
		v1, v2 := false, false
		for _, e := range g.Edges {
			v1 = v1 || e.Source == "catalog@v1" && e.Target == "inventory@v1"
			v2 = v2 || e.Source == "catalog@v1" && e.Target == "inventory@v2"
		}
		return v1 && v2, g.summary()
	}, p)

	// The proxies know the shop's route templates: span names (Jaeger
	// operations) and the route label name real routes.
	poll(t, 30*time.Second, "route templates in Jaeger operations and the route label", func() (bool, string) {
		var ops struct {
			Data []string `json:"data"`
		}
		if err := getJSON("http://"+httpAddr+"/jaeger/api/services/catalog/operations", &ops); err != nil {
			return false, err.Error()
		}
		if !slices.Contains(ops.Data, "GET /products/{id}") || !slices.Contains(ops.Data, "GET /stock/{id}") {
			return false, fmt.Sprintf("catalog operations %q", ops.Data)
		}
		routes, err := labelValues(httpAddr, "route", `mesh_requests_total{destination_service="inventory"}`)
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(routes, "/stock/{id}") && slices.Contains(routes, "/stock"), fmt.Sprintf("inventory routes %q", routes)
	}, p)

	// Traffic enters through the TLS gateway; checkouts with an expired
	// token are answered 401 there, valid ones reach web.
	poll(t, 30*time.Second, "gateway checkout route with 200s and 401s", func() (bool, string) {
		codes, err := labelValues(httpAddr, "status_code", `mesh_requests_total{direction="ingress", source_service="gateway", route="checkout"}`)
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(codes, "401") && (slices.Contains(codes, "200") || slices.Contains(codes, "500")), fmt.Sprintf("status codes %q", codes)
	}, p)
	// The gateway holds a mesh identity: its requests to web go over mTLS.
	poll(t, 30*time.Second, "gateway → web over mTLS", func() (bool, string) {
		tls, err := labelValues(httpAddr, "tls", `mesh_requests_total{direction="ingress", source_service="gateway", destination_service="web"}`)
		if err != nil {
			return false, err.Error()
		}
		return slices.Contains(tls, "mtls"), fmt.Sprintf("tls labels %q", tls)
	}, p)

	kids := demoChildren(t, p)
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not exit within 60s of SIGINT")
	}
	checkCleanExit(t, p)
	for _, pid := range kids {
		if procAlive(pid) {
			t.Errorf("process %d (%s) survived the demo", pid, procCmdline(pid))
		}
	}
}

// TestDemoDuration: with --duration the demo stops by itself, cleanly.
func TestDemoDuration(t *testing.T) {
	p, _, _ := startDemo(t, "5s")
	kids := demoChildren(t, p)
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatal("demo did not exit after its duration")
	}
	checkCleanExit(t, p)
	if !strings.Contains(p.output(), "Load: ") {
		t.Errorf("demo output lacks the load summary:\n%s", p.tail(20))
	}
	for _, pid := range kids {
		if procAlive(pid) {
			t.Errorf("process %d (%s) survived the demo", pid, procCmdline(pid))
		}
	}
}

// TestDemoKilled: even SIGKILL of the demo (no chance to clean up) takes
// every child down with it.
func TestDemoKilled(t *testing.T) {
	p, _, _ := startDemo(t, "5m")
	kids := demoChildren(t, p)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	poll(t, 30*time.Second, "the killed demo's children to die", func() (bool, string) {
		var alive []string
		for _, pid := range kids {
			if procAlive(pid) {
				alive = append(alive, procCmdline(pid))
			}
		}
		return len(alive) == 0, strings.Join(alive, "; ")
	})
}

// demoChildren returns the demo's child processes: the server and 7 proxies.
func demoChildren(t *testing.T, p *proc) []int {
	t.Helper()
	kids := childPIDs(p.cmd.Process.Pid)
	if len(kids) != 9 {
		var cmds []string
		for _, k := range kids {
			cmds = append(cmds, procCmdline(k))
		}
		t.Errorf("demo has %d child processes, want 9 (server + 7 proxies + the gateway): %q", len(kids), cmds)
	}
	return kids
}

func checkCleanExit(t *testing.T, p *proc) {
	t.Helper()
	var exit *exec.ExitError
	if errors.As(p.err, &exit) && exit.ExitCode() != 130 {
		t.Errorf("demo exited with %v; log:\n%s", p.err, p.tail(30))
	} else if p.err != nil && !errors.As(p.err, &exit) {
		t.Errorf("demo: %v", p.err)
	}
}

// childPIDs lists the live processes whose parent is pid (Linux /proc).
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		var p int
		if _, err := fmt.Sscanf(e.Name(), "%d", &p); err != nil {
			continue
		}
		if state, ppid, ok := procStat(p); ok && ppid == pid && state != "Z" {
			out = append(out, p)
		}
	}
	return out
}

// procAlive reports whether pid exists and is not a zombie.
func procAlive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}

func procStat(pid int) (state string, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0, false
	}
	if _, err := fmt.Sscanf(f[1], "%d", &ppid); err != nil {
		return "", 0, false
	}
	return f[0], ppid, true
}

// labelValues returns the values of label among the series of
// sum by (label) (selector), from the query API at httpAddr.
func labelValues(httpAddr, label, selector string) ([]string, error) {
	var q struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	query := url.QueryEscape("sum by (" + label + ") (" + selector + ")")
	if err := getJSON("http://"+httpAddr+"/api/v1/query?query="+query, &q); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range q.Data.Result {
		out = append(out, r.Metric[label])
	}
	return out, nil
}
