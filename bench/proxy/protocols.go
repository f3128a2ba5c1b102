package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/report"
)

// The rows beyond HTTP/1.1 with 1 KB bodies, measured in the same run
// against the one-core comparator nginx with one worker (the issue's
// setting: meshscope-proxy --max-procs 1, its default): cleartext HTTP/2,
// gRPC unary calls, 16 KB and 1 MB bodies, a two-hop mesh path, and a CPU
// profile of the proxy at the main row's load.

// extraRate is the constant rate of the h2c, gRPC, 16 KB and two-hop rows.
const extraRate = 1000

// bodySizes are the larger-body rows: size in bytes and constant rate (1 MB
// at 1000 rps would be 2 GB/s through loopback, more than the shared cores
// carry, so it runs at 100 rps).
var bodySizes = []struct {
	bytes int
	rate  float64
}{{16 << 10, 1000}, {1 << 20, 100}}

// extraDuration is the recorded time of one extra row's cell: the h2c,
// gRPC and two-hop rows, which carry targets, get the main row's 20 s; the
// larger-body rows half that.
func (o options) extraDuration(sizes bool) time.Duration {
	switch {
	case o.duration > 0:
		return o.duration
	case o.quick:
		return time.Second
	case sizes:
		return 10 * time.Second
	}
	return 20 * time.Second
}

// sizeLabel names a body size: "16 KB", "1 MB".
func sizeLabel(n int) string {
	if n >= 1<<20 {
		return report.Num(float64(n)/(1<<20)) + " MB"
	}
	return report.Num(float64(n)/(1<<10)) + " KB"
}

// extras holds what the extra rows need from the main run.
type extras struct {
	rn       *runner
	r        *report.Result
	base     string
	up       *upstream
	sinkAddr string
	proxyBin string
	extra    []string
	byKey    map[string]*target // the main run's live targets
	nginx1w  proxyConfig        // nginx-1w's h2c and gRPC listeners
	started  []*target          // targets started here, stopped by stop
}

func (x *extras) stop() {
	for _, t := range x.started {
		t.stop()
	}
}

// protocolCells is one protocol's rows: constant rate and closed loop.
type protocolCells struct {
	rate, closed map[string]cell
}

// measureSet measures ts at rate (constant, extraDuration) and, unless
// quick, in the closed loop.
func (x *extras) measureSet(label string, ts []*target, rate float64) (protocolCells, error) {
	o := x.rn.o
	var pc protocolCells
	var err error
	pc.rate, err = x.rn.interleave(fmt.Sprintf("%s, constant %s rps", label, report.Num(rate)), o.extraDuration(false), o.round, ts,
		func(t *target) loadgen.Config {
			c := t.loadConfig(o.connections)
			c.Rate = rate
			return c
		}, false)
	if err != nil || o.quick {
		return pc, err
	}
	pc.closed, err = x.rn.interleave(label+", closed loop", o.closedDuration, o.closedRound, ts,
		func(t *target) loadgen.Config { return t.loadConfig(o.connections) }, true)
	return pc, err
}

// live returns the targets that started, noting the others in r.
func (x *extras) live(ts ...*target) []*target {
	var out []*target
	for _, t := range ts {
		if t == nil {
			continue
		}
		if t.skipped != "" {
			x.r.Note("%s was not measured: %s", t.name, t.skipped)
			continue
		}
		out = append(out, t)
	}
	return out
}

// via returns a target reaching t's process at addr with another protocol
// ("h2c" or "grpc"); its key gets the protocol, its name the suffix.
func via(t *target, protocol, name, addr string) *target {
	if t == nil {
		return nil
	}
	c := *t
	c.key, c.name, c.addr, c.protocol = t.key+"-"+protocol, t.name+name, addr, protocol
	if c.skipped == "" && c.addr == "" {
		c.skipped = "no " + protocol + " listener"
	}
	return &c
}

// protocolTable adds the rows of one protocol: latency at a constant rate,
// CPU per request and the closed-loop maximum.
func protocolTable(r *report.Result, title string, ts []*target, pc protocolCells) *report.Table {
	tab := r.AddTable(title, "target", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "req/s", "errors",
		"CPU s / 1000 req", "peak RSS MB", "closed-loop req/s", "closed-loop CPU s / 1000 req")
	direct := pc.rate[ts[0].key]
	for _, t := range ts {
		c := pc.rate[t.key]
		if !c.ok() {
			tab.AddRow(t.name, failed(c), "", "", "", "", "", "", "", "", "")
			continue
		}
		closedRate, closedCPU := "–", "–"
		if cc, ran := pc.closed[t.key]; ran {
			closedRate, closedCPU = failed(cc), ""
			if cc.ok() {
				closedRate, closedCPU = report.Num(cc.res.Throughput()), cpuCell(t, cc)
			}
		}
		tab.AddRow(t.name, ms(c.res.Latency.Quantile(0.5)), ms(c.res.Latency.Quantile(0.99)),
			added(c, direct, 0.5), added(c, direct, 0.99), report.Num(c.res.Throughput()),
			fmt.Sprint(c.res.Errors), cpuCell(t, c), mb(t, c), closedRate, closedCPU)
	}
	return tab
}

// cpuRatio is a's CPU per request over b's (NaN unless both ran).
func cpuRatio(a, b cell) float64 {
	if !a.ok() || !b.ok() || b.cpuPer1000() == 0 {
		return math.NaN()
	}
	return a.cpuPer1000() / b.cpuPer1000()
}

// cpuTarget adds "CPU per request vs nginx (1 worker)" for one row set.
func cpuTarget(r *report.Result, name string, limit float64, mesh, nginx cell) {
	t := r.AtMost(name, limit, cpuRatio(mesh, nginx), "×")
	if mesh.ok() && nginx.ok() {
		t.Note = withSpread(fmt.Sprintf("meshscope-proxy %s s, nginx (1 worker) %s s per 1000 requests", report.Num(mesh.cpuPer1000()), report.Num(nginx.cpuPer1000())), roundSpread(mesh, nginx, cpuOf))
	}
}

// h2cRows: HTTP/2 with prior knowledge from the client; meshscope-proxy
// speaks h2c to the upstream too, nginx HTTP/1.1 (proxy_pass has no HTTP/2
// to upstreams).
func (x *extras) h2cRows() error {
	up := x.up
	direct := &target{key: "direct-h2c", name: "direct (no proxy), h2c", addr: up.addr, protocol: "h2c"}
	var mesh, nginx *target
	if m := x.byKey["meshscope"]; m != nil {
		mesh = via(m, "h2c", ", h2c → h2c upstream", m.addr)
	}
	if n := x.byKey["nginx-1w"]; n != nil {
		nginx = via(n, "h2c", ", h2c → HTTP/1.1 upstream", x.nginx1w.H2CListen)
	}
	ts := x.live(direct, mesh, nginx)
	pc, err := x.measureSet("h2c", ts, extraRate)
	if err != nil {
		return err
	}
	o := x.rn.o
	tab := protocolTable(x.r, fmt.Sprintf("HTTP/2 cleartext (h2c, prior knowledge), %s rps, %d B responses, %d connections, one stream in flight each", report.Num(extraRate), o.size, o.connections), ts, pc)
	tab.Note("nginx 1.22 serves h2c on a `listen … http2` without ssl (prior knowledge only) and forwards over HTTP/1.1 keep-alive (proxy_pass has no HTTP/2 to upstreams); meshscope-proxy keeps HTTP/2 end to end (h2c to the upstream, which serves both). Both run on one core. The client is Go's HTTP/2 transport, one connection per load generator connection.")
	x.bodyCheck(ts, pc, o.size)
	if mesh != nil && nginx != nil {
		cpuTarget(x.r, "h2c CPU per 1000 requests vs nginx (1 worker), 1000 rps", 1.5, pc.rate[mesh.key], pc.rate[nginx.key])
	}
	return nil
}

// grpcRows: unary grpc.health.v1.Health/Check calls, through a
// meshscope-proxy whose upstream is the app's gRPC port and through nginx
// grpc_pass.
func (x *extras) grpcRows(ctx context.Context) error {
	up := x.up
	direct := &target{key: "direct-grpc", name: "direct (no proxy), gRPC", addr: up.grpcAddr, protocol: "grpc"}
	mesh := startMeshscopeTarget(ctx, &target{key: "meshscope-grpc", name: "meshscope-proxy, metrics+tracing on, gRPC", protocol: "grpc"},
		x.base, x.proxyBin, up.grpcAddr, x.sinkAddr, true, x.extra)
	x.started = append(x.started, mesh)
	var nginx *target
	if n := x.byKey["nginx-1w"]; n != nil {
		nginx = via(n, "grpc", ", gRPC (grpc_pass)", x.nginx1w.GRPCListen)
	}
	ts := x.live(direct, mesh, nginx)
	pc, err := x.measureSet("gRPC", ts, extraRate)
	if err != nil {
		return err
	}
	tab := protocolTable(x.r, fmt.Sprintf("gRPC unary calls (grpc.health.v1.Health/Check), %s rps, %d connections, one call in flight each", report.Num(extraRate), x.rn.o.connections), ts, pc)
	tab.Note("The upstream is grpc-go's health service in the upstream process; requests and responses are a few bytes, so these rows measure per-call cost. nginx proxies with grpc_pass over a keep-alive pool; both proxies on one core. The client is grpc-go, one client connection per load generator connection.")
	if nginx != nil && mesh.skipped == "" {
		cpuTarget(x.r, "gRPC CPU per 1000 requests vs nginx (1 worker), 1000 rps", 1.5, pc.rate[mesh.key], pc.rate[nginx.key])
	}
	return nil
}

// sizeRows measures the main row's targets with larger bodies.
func (x *extras) sizeRows(main []*target) error {
	o := x.rn.o
	for _, sz := range bodySizes {
		var ts []*target
		for _, t := range main {
			if closedLoopOnly[t.key] {
				continue
			}
			c := *t
			c.path = sizedPath(sz.bytes)
			ts = append(ts, &c)
		}
		label := sizeLabel(sz.bytes)
		cells, err := x.rn.interleave(label+" responses, constant "+report.Num(sz.rate)+" rps", o.extraDuration(true), o.round, ts,
			func(t *target) loadgen.Config {
				c := t.loadConfig(o.connections)
				c.Rate = sz.rate
				return c
			}, false)
		if err != nil {
			return err
		}
		tab := rateTable(x.r, fmt.Sprintf("Constant rate %s rps, %s responses (%d B), %d connections", report.Num(sz.rate), label, sz.bytes, o.connections), ts, cells)
		if sz.rate != 1000 {
			tab.Note("At %s rps: %s per second through each proxy, within what the shared cores carry for every target.", report.Num(sz.rate), report.Num(sz.rate*float64(sz.bytes)/1e6)+" MB")
		}
		x.bodyCheck(ts, protocolCells{rate: cells}, sz.bytes)
		if m, n := cells["meshscope"], cells["nginx-1w"]; m.res != nil || n.res != nil {
			cpuTarget(x.r, fmt.Sprintf("CPU per 1000 requests vs nginx (1 worker), %s responses, %s rps", label, report.Num(sz.rate)), 1.25, m, n)
		}
	}
	return nil
}

// twoHopRows: client → meshscope-proxy (caller's outbound) →
// meshscope-proxy (callee's inbound) → app, as a request crosses a mesh;
// and the same with two nginx (1 worker each).
func (x *extras) twoHopRows(ctx context.Context) error {
	o := x.rn.o
	direct := &target{key: "direct", name: "direct (no proxy)", addr: x.up.addr}
	mesh := x.startMeshTwoHop(ctx)
	ngx := x.startNginxTwoHop(ctx)
	ts := x.live(direct, mesh, ngx)
	cells, err := x.rn.interleave("two hops, constant 1000 rps", o.extraDuration(false), o.round, ts,
		func(t *target) loadgen.Config {
			c := t.loadConfig(o.connections)
			c.Rate = extraRate
			return c
		}, false)
	if err != nil {
		return err
	}
	tab := rateTable(x.r, fmt.Sprintf("Two hops (caller-side proxy → callee-side proxy → app), %s rps, %d B responses, %d connections", report.Num(extraRate), o.size, o.connections), ts, cells)
	tab.Note("meshscope-proxy: the caller's outbound listener (--upstream) forwards to the callee's inbound listener (--inbound), each with metrics+tracing on and one core, plaintext between them (static addresses; mTLS needs the control plane). nginx: two instances of one worker each, the first proxying to the second. Peak RSS and CPU are the sum of both proxies.")
	return nil
}

func (x *extras) startMeshTwoHop(ctx context.Context) *target {
	t := &target{key: "meshscope-2hop", name: "meshscope-proxy → meshscope-proxy, metrics+tracing on"}
	if x.proxyBin == "" {
		t.skipped = "meshscope-proxy could not be built"
		return t
	}
	callee := &target{key: "meshscope-2hop-callee"}
	dir, err := targetDir(x.base, callee.key)
	if err == nil {
		callee.addr, err = freePort()
	}
	if err == nil {
		callee.admin, err = freePort()
	}
	if err != nil {
		t.skipped = err.Error()
		return t
	}
	argv := append([]string{x.proxyBin, "--service", "bench-upstream", "--admin", callee.admin,
		"--inbound", callee.addr + "=" + x.up.addr, "--collector", x.sinkAddr}, x.extra...)
	launch(ctx, callee, dir, argv, nil, "http://"+callee.admin+"/ready")
	x.started = append(x.started, callee)
	if callee.skipped != "" {
		t.skipped = "callee-side proxy: " + callee.skipped
		return t
	}
	caller := startMeshscopeAs(ctx, x.base, x.proxyBin, callee.addr, x.sinkAddr, true, x.extra, t.key, t.name)
	x.started = append(x.started, caller)
	caller.more = []*process{callee.proc}
	return caller
}

func (x *extras) startNginxTwoHop(ctx context.Context) *target {
	second := startNginxAs(ctx, "nginx-2hop-callee", ", 1 worker", x.base, proxyConfig{Upstream: x.up.addr, Workers: "1"})
	x.started = append(x.started, second)
	if second.skipped != "" {
		return second
	}
	first := startNginxAs(ctx, "nginx-2hop", ", 1 worker", x.base, proxyConfig{Upstream: second.addr, Workers: "1"})
	x.started = append(x.started, first)
	first.name = strings.Replace(first.name, ", 1 worker", " → nginx, 1 worker each", 1)
	first.more = []*process{second.proc}
	return first
}

// bodyCheck notes targets whose responses were not the expected size.
func (x *extras) bodyCheck(ts []*target, pc protocolCells, size int) {
	for _, t := range ts {
		for _, c := range []cell{pc.rate[t.key], pc.closed[t.key]} {
			if c.ok() && c.res.ResponseBytes != c.res.Requests*uint64(size) {
				x.r.Note("%s returned %s bytes per response on average instead of %d: its rows are not comparable.", t.name, report.Num(float64(c.res.ResponseBytes)/float64(c.res.Requests)), size)
				break
			}
		}
	}
}

// profile takes a CPU profile of the main-row proxy (metrics+tracing on,
// one core) under the main row's load, in a window of its own after the
// measured rows so that profiling does not tax them, and returns the
// `go tool pprof -top` text.
func (x *extras) profile(ctx context.Context, t *target, pprofAddr string) (string, error) {
	o := x.rn.o
	d := 20 * time.Second
	if o.quick {
		d = 2 * time.Second
	}
	secs := int(d / time.Second)
	type fetched struct {
		b   []byte
		err error
	}
	got := make(chan fetched, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, secs)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			got <- fetched{err: err}
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- fetched{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: status %d: %.200s", url, resp.StatusCode, b)
		}
		got <- fetched{b, err}
	}()
	cfg := t.loadConfig(o.connections)
	cfg.Rate, cfg.Duration = 1000, d+500*time.Millisecond
	logf("profiling %s for %v at 1000 rps", t.key, d)
	res, lerr := loadgen.RunConstantRate(ctx, cfg)
	f := <-got
	if lerr != nil {
		return "", fmt.Errorf("load while profiling: %w", lerr)
	}
	if f.err != nil {
		return "", fmt.Errorf("fetch profile: %w", f.err)
	}
	path := filepath.Join(x.base, "meshscope.cpu.pprof")
	if err := os.WriteFile(path, f.b, 0o644); err != nil {
		return "", err
	}
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", "-nodecount=20", x.proxyBin, path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, out)
	}
	head := fmt.Sprintf("# CPU profile of %s, %d B responses, %d connections, constant 1000 rps for %v\n"+
		"# (%s req/s, p50 %s ms, p99 %s ms while profiled; load average %s; a window after the measured rows).\n"+
		"# Written by %s; the binary profile is not kept.\n"+
		"# go tool pprof -top -nodecount=20 meshscope-proxy cpu.pprof\n\n",
		t.name, o.size, o.connections, d, report.Num(res.Throughput()), ms(res.Latency.Quantile(0.5)), ms(res.Latency.Quantile(0.99)),
		report.DetectMachine().LoadAverage, x.r.Command)
	return head + string(out), nil
}

// profilePath is where the profile text goes: next to the results file.
func profilePath(resultsPath string) string {
	return strings.TrimSuffix(resultsPath, ".json") + ".pprof.txt"
}

// supportsPprof says whether the proxy binary has the --pprof flag (an
// older -proxy-bin may not).
func supportsPprof(bin string) bool {
	out, err := exec.Command(bin, "-h").CombinedOutput()
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		return false
	}
	return strings.Contains(string(out), "-"+"pprof")
}
