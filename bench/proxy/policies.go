package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
)

// The policy-overhead rows (issue 13): meshscope-proxy with its upstream
// discovered from a real `meshscope server` and a realistic policy set
// applied — a 90/10 split between v1 and v2, a timeout, retries with a
// budget, a circuit breaker, outlier detection, p2c-EWMA balancing and a
// rate limit — once with --mode observe (every policy evaluated and
// counted, traffic unchanged) and once with --mode enforce, against the
// same proxy with static addresses and no policies, at 1000 rps.

// policyService is the destination service the policies apply to.
const policyService = "bench-upstream"

// policyDocs is the applied policy set. The rate limit is far above the
// offered rate (it must not refuse the benchmark's requests), the breaker
// limits above the connection count: the layers run, none trips.
const policyDocs = `kind: Route
name: bench-split
service: bench-upstream
timeout: 2s
retries:
  attempts: 2
  per_try_timeout: 1s
  on: [5xx, connect-failure, reset]
  budget: {ratio: 0.2, min_per_second: 10}
rules:
  - backends:
      - {version: v1, weight: 90}
      - {version: v2, weight: 10}
---
kind: Resilience
name: bench-resilience
service: bench-upstream
load_balancer: p2c-ewma
circuit_breaker: {max_connections: 1024, max_pending: 1024, max_requests: 1024}
outlier_detection: {consecutive_5xx: 5, interval: 10s, base_ejection_time: 30s, max_ejection_percent: 10}
rate_limit: {requests_per_second: 100000, burst: 10000}
`

var policyModes = []struct {
	key  string
	mode policy.Mode
	name string
}{
	{"policies-observe", policy.ModeObserve, "meshscope-proxy, policies observed (--mode observe)"},
	{"policies-enforce", policy.ModeEnforce, "meshscope-proxy, policies enforced (--mode enforce)"},
}

// policyBench measures the policy rows into r. upstream is the v1 app; a
// second app process is started as v2.
func policyBench(ctx context.Context, rn *runner, r *report.Result, base, upstream, collector, proxyBin string, extra []string) error {
	o := rn.o
	if proxyBin == "" {
		return fmt.Errorf("meshscope-proxy could not be built")
	}
	// Not base/meshscope: that is the meshscope-proxy target's directory.
	serverBin, err := buildBinary(ctx, base, "meshscope-server-bin", "./cmd/meshscope")
	if err != nil {
		return err
	}
	v2, err := startUpstreamProcess(o.size)
	if err != nil {
		return err
	}
	defer v2.close()

	dir, err := targetDir(base, "meshscope-server")
	if err != nil {
		return err
	}
	httpAddr, err := freePort()
	if err != nil {
		return err
	}
	srv, err := startProcess(dir, "meshscope-server", []string{serverBin, "server", "--data", filepath.Join(dir, "data"),
		"--http", httpAddr, "--otlp-grpc", "off", "--otlp-http", "off", "--log-level", "warn"}, nil)
	if err != nil {
		return err
	}
	defer srv.stop()
	cp := "http://" + httpAddr
	if err := waitHTTP(ctx, cp+"/ready", 60*time.Second, srv.exited); err != nil {
		return fmt.Errorf("meshscope server: %w: %s", err, srv.logTail())
	}
	if err := applyPolicies(cp, policyDocs); err != nil {
		return err
	}
	// The two versions register as their proxies would (control/wire); the
	// streams stay open for the run, or the endpoints leave the registry.
	for i, addr := range []string{upstream, v2.addr} {
		v := "v" + strconv.Itoa(i+1)
		ws, err := registerEndpoint(httpAddr, wire.Hello{ProxyID: policyService + "-" + v, Service: policyService, Version: v, Inbound: []string{addr}})
		if err != nil {
			return fmt.Errorf("register %s %s: %w", policyService, v, err)
		}
		defer ws.Close()
	}

	targets := []*target{{key: "direct", name: "direct (no proxy)", addr: upstream}}
	none := startMeshscopeAs(ctx, base, proxyBin, upstream, collector, true, extra, "policies-none", "meshscope-proxy, no control plane, no policies")
	targets = append(targets, none)
	for _, m := range policyModes {
		args := append([]string{"--control-plane", cp, "--mode", string(m.mode), "--mtls=false", "--state-dir", filepath.Join(base, m.key, "state")}, extra...)
		targets = append(targets, startMeshscopeAs(ctx, base, proxyBin, "", collector, true, args, m.key, m.name))
	}
	defer func() {
		for _, t := range targets {
			t.proc.stop()
		}
	}()
	var live []*target
	for _, t := range targets {
		if t.skipped != "" {
			r.Note("%s was not measured: %s", t.name, t.skipped)
			continue
		}
		live = append(live, t)
	}
	const rate = 1000
	cells, err := rn.interleave("policies, constant 1000 rps", o.cellDuration(rate), o.round, live,
		func(t *target) loadgen.Config {
			return loadgen.Config{Addr: t.addr, Rate: rate, Connections: o.connections}
		}, false)
	if err != nil {
		return err
	}
	// The rows count only if the policies were in force: the proxies'
	// own decision counters say what they evaluated.
	decisions := map[string]map[string]float64{}
	for _, t := range live[1:] {
		if t.key != none.key {
			decisions[t.key], err = policyDecisions(t)
			if err != nil {
				r.Note("%s: decisions not read: %v", t.name, err)
			}
		}
	}

	tab := r.AddTable(fmt.Sprintf("Policy overhead at %d rps: observe vs enforce, %d B responses, %d connections", rate, o.size, o.connections),
		"target", "p50 ms", "p90 ms", "p99 ms", "max ms", "added p50 ms", "added p99 ms",
		"p50 vs no policies ms", "p99 vs no policies ms", "req/s", "errors", "CPU s / 1000 req")
	direct, noPol := cells["direct"], cells[none.key]
	for _, t := range targets {
		c, ran := cells[t.key]
		if !ran {
			continue
		}
		if !c.ok() {
			tab.AddRow(t.name, failed(c), "", "", "", "", "", "", "", "", "", "")
			continue
		}
		s := c.res.Latency.Summary()
		vsNone := func(q float64) string {
			if t.key == "direct" || t.key == none.key {
				return "–"
			}
			return signed(diffMS(c, noPol, q))
		}
		tab.AddRow(t.name, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), added(c, direct, 0.5), added(c, direct, 0.99),
			vsNone(0.5), vsNone(0.99), report.Num(c.res.Throughput()), strconv.FormatUint(c.res.Errors, 10), cpuCell(t, c))
	}
	tab.Note("Policy set (one Route, one Resilience document for %s, applied through the real server's apply API): 90/10 split v1/v2, timeout 2s, 2 retries (per try 1s, on 5xx/connect-failure/reset) with a 20%% budget, circuit breaker, outlier detection, p2c-EWMA, rate limit 100,000 rps. Endpoints are discovered (--control-plane, no addresses); v1 and v2 are two app processes. The rate limit acts at the destination's inbound proxy, which this one-hop path does not cross: it is pushed but not on the measured path.", policyService)
	var parts []string
	for _, m := range policyModes {
		d := decisions[m.key]
		parts = append(parts, fmt.Sprintf("%s: %s route:v1, %s route:v2; %s with enforced=\"true\", %s with enforced=\"false\"", m.mode,
			report.Num(d["route:v1"]), report.Num(d["route:v2"]), report.Num(d[enforcedKey+"true"]), report.Num(d[enforcedKey+"false"])))
	}
	tab.Note("Decisions the proxies counted in mesh_policy_decisions_total during the run — %s.", strings.Join(parts, "; "))

	obs, enf := cells["policies-observe"], cells["policies-enforce"]
	t1 := r.AtMost("policies enforced vs observed, added p50 at 1000 rps", 0.05, diffMS(enf, obs, 0.5), "ms")
	t1.Note = fmt.Sprintf("p99: %s ms; CPU per 1000 requests: observe %s s, enforce %s s, no policies %s s", signed(diffMS(enf, obs, 0.99)),
		report.Num(obs.cpuPer1000()), report.Num(enf.cpuPer1000()), report.Num(noPol.cpuPer1000()))
	t2 := r.AtMost("policies enforced vs no policies, added p50 at 1000 rps", 0.05, diffMS(enf, noPol, 0.5), "ms")
	t2.Note = fmt.Sprintf("observe vs no policies: %s ms", signed(diffMS(obs, noPol, 0.5)))
	if d := decisions["policies-enforce"]; d["route:v2"] == 0 || d[enforcedKey+"true"] == 0 {
		for _, t := range []*report.Target{t1, t2} {
			t.Inconclusive = true
			t.Note = "inconclusive: the enforcing proxy counted no route decision, so its policies were not in force; " + t.Note
		}
	}
	return nil
}

// diffMS is c's quantile q minus base's, in ms.
func diffMS(c, base cell, q float64) float64 {
	if !c.ok() || !base.ok() {
		return math.NaN()
	}
	return float64(c.res.Latency.Quantile(q)-base.res.Latency.Quantile(q)) / 1e6
}

func applyPolicies(cp, docs string) error {
	res, err := http.Post(cp+"/api/mesh/v1/apply", "application/yaml", strings.NewReader(docs))
	if err != nil {
		return fmt.Errorf("apply policies: %w", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("apply policies: %s: %s", res.Status, bytes.TrimSpace(b))
	}
	return nil
}

// registerEndpoint opens a proxy stream announcing h and drains what the
// server pushes.
func registerEndpoint(httpAddr string, h wire.Hello) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, _, err := d.Dial("ws://"+httpAddr+wire.Path, nil)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.MaxServerMessage)
	h.Protocol, h.Mode = wire.Protocol, policy.ModeEnforce
	b, err := wire.Encode(&h)
	if err == nil {
		err = ws.WriteMessage(websocket.TextMessage, b)
	}
	if err != nil {
		ws.Close()
		return nil, err
	}
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	return ws, nil
}

// enforcedKey prefixes the totals by the enforced label in policyDecisions.
const enforcedKey = "enforced="

// policyDecisions sums mesh_policy_decisions_total from the proxy's admin
// /metrics by decision, and by enforced label (keys enforcedKey+"true"|"false").
func policyDecisions(t *target) (map[string]float64, error) {
	res, err := http.Get("http://" + t.admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "mesh_policy_decisions_total{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[label(line, "decision")] += v
		out[enforcedKey+label(line, "enforced")] += v
	}
	return out, sc.Err()
}

// label is the value of label name in a Prometheus text-format line.
func label(line, name string) string {
	_, rest, _ := strings.Cut(line, name+`="`)
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// buildBinary builds pkg into base/name.
func buildBinary(ctx context.Context, base, name, pkg string) (string, error) {
	root, err := report.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(base, name)
	logf("building %s", name)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v: %s", pkg, err, strings.TrimSpace(string(out)))
	}
	return bin, os.Chmod(bin, 0o755)
}
