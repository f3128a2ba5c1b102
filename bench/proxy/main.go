// Command proxy benchmarks meshscope-proxy against a direct connection and
// against nginx, HAProxy and Caddy configured as equivalent reverse
// proxies, all in one run, and writes bench/results/proxy.json.
//
//	make bench WHAT=proxy          # full run, about 20 minutes
//	make bench-quick WHAT=proxy    # sanity run, about 2 minutes
//	go run ./bench/proxy -h        # flags
//
// A Go upstream answers every request with a fixed 1 KB body. The load
// generator (bench/loadgen) sends constant-rate HTTP/1.1 keep-alive load
// over 16 connections at 20/200/1000/2000 rps, latency corrected for
// coordinated omission, then closed-loop load for maximum throughput.
// Each cell is split into short rounds (5 s constant rate, 2 s closed
// loop) and the targets take turns round by round, so a busy moment of the
// shared machine hits all of them alike. Proxy cost is read from /proc: peak RSS
// (VmHWM, reset before each measurement) and CPU time per 1000 requests.
//
// The protocol rows (protocols.go; -extras, on by default) compare
// meshscope-proxy on one core with nginx on one worker for cleartext
// HTTP/2 and gRPC unary calls (Go HTTP/2 and grpc-go clients from
// bench/loadgen, nothing to install beyond nginx), measure the main row's
// targets with 16 KB and 1 MB bodies and a two-hop mesh path
// (proxy → proxy → app, and nginx → nginx), and save a CPU profile of the
// main-row proxy (--pprof) as `go tool pprof -top` text next to the results
// (bench/results/proxy.pprof.txt).
//
// The policy-overhead rows (policies.go; -policies on|off|only) measure the
// proxy with a Route and a Resilience policy set from a real `meshscope
// server`, observed and enforced, against the same proxy without policies
// at 1000 rps; `-policies only -out policies` runs just those rows.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/otlpsink"
	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/bench/report"
)

type options struct {
	quick             bool
	proxyBin          string
	proxyArgs         string
	connections       int
	size              int
	rates             []float64
	duration          time.Duration
	warmup            time.Duration
	closedDuration    time.Duration
	round             time.Duration
	closedRound       time.Duration
	targets           []string
	keepTmp           bool
	inProcessUpstream bool
	out               string
	gateway           string // "on", "off" or "only": the ingress-gateway TLS rows (gateway.go)
	policies          string // "on", "off" or "only": the policy-overhead rows (policies.go)
	extras            bool   // the h2c, gRPC, larger-body and two-hop rows and the profile (protocols.go)
}

var allTargets = []string{"direct", "meshscope", "meshscope-allcores", "meshscope-off", "nginx", "nginx-1w", "haproxy", "caddy"}

// closedLoopOnly are targets measured only in the closed loop: the
// all-cores proxy exists to compare maximum throughput like for like with
// nginx and HAProxy, which run a worker per core.
var closedLoopOnly = map[string]bool{"meshscope-allcores": true}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var o options
	var rates, targets string
	fs.BoolVar(&o.quick, "quick", false, "short sanity run: 1000 rps for every target, 2000 rps for meshscope-proxy, short closed loop")
	fs.StringVar(&o.proxyBin, "proxy-bin", "", "meshscope-proxy `binary` to use (default: go build ./cmd/meshscope-proxy)")
	fs.StringVar(&o.proxyArgs, "proxy-args", "", "extra `flags` for meshscope-proxy, space separated")
	fs.IntVar(&o.connections, "connections", 16, "keep-alive connections of the load generator")
	fs.IntVar(&o.size, "size", 1024, "response body `bytes`")
	fs.StringVar(&rates, "rates", "", "constant rates in rps, comma separated (default 20,200,1000,2000; quick 1000,2000)")
	fs.DurationVar(&o.duration, "duration", 0, "recorded time per constant-rate cell (default 20s, 30s at 1000 rps; quick 2s)")
	fs.DurationVar(&o.warmup, "warmup", 0, "unrecorded warm-up per cell (default 1s; quick 0.3s)")
	fs.DurationVar(&o.closedDuration, "closed-duration", 0, "recorded time per closed-loop cell (default 10s; quick 2s)")
	fs.DurationVar(&o.round, "round", 0, "constant-rate cells are split into rounds of this length, targets interleaved (default 5s; quick 1s)")
	fs.DurationVar(&o.closedRound, "closed-round", 0, "closed-loop round length (default 2s; quick 1s)")
	fs.StringVar(&targets, "targets", strings.Join(allTargets, ","), "targets to measure, comma separated (direct is always measured)")
	fs.StringVar(&o.out, "out", "proxy", "results `file`, or the part name for bench/results/proxy[.quick].json")
	fs.BoolVar(&o.inProcessUpstream, "in-process-upstream", false, "serve the upstream from the benchmark process (default: its own process, like a real app)")
	fs.StringVar(&o.gateway, "gateway", "on", "ingress-gateway rows (TLS + JWT vs nginx with TLS): on, off, or only (just those rows)")
	fs.StringVar(&o.policies, "policies", "on", "policy-overhead rows (observe vs enforce with a policy set, 1000 rps): on, off, or only (just those rows)")
	fs.BoolVar(&o.extras, "extras", true, "h2c, gRPC, 16 KB / 1 MB and two-hop rows and the CPU profile of the main row (needs the meshscope and nginx-1w targets)")
	fs.BoolVar(&o.keepTmp, "keep-tmp", false, "keep the generated configs and server logs")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if rates == "" {
		rates = "20,200,1000,2000"
		if o.quick {
			rates = "1000,2000"
		}
	}
	for _, s := range strings.Split(rates, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v <= 0 {
			return o, fmt.Errorf("-rates: %q is not a positive number", s)
		}
		o.rates = append(o.rates, v)
	}
	o.targets = []string{"direct"}
	for _, s := range strings.Split(targets, ",") {
		s = strings.TrimSpace(s)
		if s == "direct" || s == "" {
			continue
		}
		known := false
		for _, k := range allTargets {
			known = known || k == s
		}
		if !known {
			return o, fmt.Errorf("-targets: unknown target %q (known: %s)", s, strings.Join(allTargets, ", "))
		}
		o.targets = append(o.targets, s)
	}
	if o.warmup == 0 {
		o.warmup = time.Second
		if o.quick {
			o.warmup = 300 * time.Millisecond
		}
	}
	if o.closedDuration == 0 {
		o.closedDuration = 10 * time.Second
		if o.quick {
			o.closedDuration = 2 * time.Second
		}
	}
	if o.round <= 0 {
		o.round = 5 * time.Second
		if o.quick {
			o.round = time.Second
		}
	}
	if o.closedRound <= 0 {
		o.closedRound = 2 * time.Second
		if o.quick {
			o.closedRound = time.Second
		}
	}
	if o.gateway != "on" && o.gateway != "off" && o.gateway != "only" {
		return o, fmt.Errorf("-gateway: %q: want on, off or only", o.gateway)
	}
	if o.policies != "on" && o.policies != "off" && o.policies != "only" {
		return o, fmt.Errorf("-policies: %q: want on, off or only", o.policies)
	}
	if o.gateway == "only" && o.policies == "only" {
		return o, errors.New("-gateway only and -policies only exclude each other")
	}
	if o.connections <= 0 || o.size < 0 {
		return o, errors.New("-connections must be positive and -size not negative")
	}
	return o, nil
}

// cellDuration is the recorded time of one constant-rate cell.
func (o options) cellDuration(rate float64) time.Duration {
	switch {
	case o.duration > 0:
		return o.duration
	case o.quick:
		return 2 * time.Second
	case rate == 1000:
		return 30 * time.Second
	}
	return 20 * time.Second
}

// inCell says whether target key runs at rate (the quick run measures
// 2000 rps only for meshscope-proxy and the direct baseline, for the
// proxy's memory target).
func (o options) inCell(key string, rate float64) bool {
	if closedLoopOnly[key] {
		return false
	}
	if key == "nginx-1w" { // the one-core comparator of the main row and the closed loop
		return rate == 1000
	}
	if o.quick && rate >= 2000 {
		return key == "direct" || key == "meshscope" || key == "meshscope-off"
	}
	return true
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == upstreamChildArg {
		if err := serveUpstreamChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench proxy upstream:", err)
			os.Exit(2)
		}
		return
	}
	o, err := parseOptions(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench proxy:", err)
		os.Exit(2)
	}
	// A closed output pipe (| head) must not kill the benchmark before it
	// stops its servers: nginx workers would outlive a killed master.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	code, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench proxy:", err)
	}
	os.Exit(code)
}

// cell is one measurement of one target.
type cell struct {
	res     *loadgen.Result
	cpu     time.Duration
	peakRSS uint64
	err     error
	// rounds are the figures of each merged round, in round order, for
	// the spread of paired per-round ratios (roundSpread).
	rounds []roundFigures
}

// roundFigures are one round's CPU-s per 1000 requests and requests per
// second.
type roundFigures struct{ cpuPer1000, rps float64 }

// merge adds one round n into c; a failed round fails the cell.
func (c *cell) merge(n cell) {
	if n.err != nil {
		c.err = n.err
		return
	}
	c.rounds = append(c.rounds, roundFigures{cpuPer1000: n.cpuPer1000(), rps: n.res.Throughput()})
	c.cpu += n.cpu
	c.peakRSS = max(c.peakRSS, n.peakRSS)
	if c.res == nil {
		c.res = n.res
		return
	}
	c.res.Requests += n.res.Requests
	c.res.Errors += n.res.Errors
	c.res.ResponseBytes += n.res.ResponseBytes
	c.res.Elapsed += n.res.Elapsed
	c.res.Latency.Merge(n.res.Latency)
	c.res.ServiceTime.Merge(n.res.ServiceTime)
	c.res.SendLag.Merge(n.res.SendLag)
	if c.res.FirstError == "" {
		c.res.FirstError = n.res.FirstError
	}
}

func (c cell) ok() bool { return c.err == nil && c.res != nil && c.res.Requests > 0 }

// roundSpread describes how a ratio of a's figure over b's moved within
// the run: round i of a against round i of b, which were measured next to
// each other in the same rotation, so a busy moment of the machine falls
// on both. The target itself is judged on the merged cells; the spread
// says how far one round's ratio strays from that (the machine's drift).
// "" unless both cells have the same number of rounds, at least two.
func roundSpread(a, b cell, figure func(roundFigures) float64) string {
	if !a.ok() || !b.ok() || len(a.rounds) != len(b.rounds) || len(a.rounds) < 2 {
		return ""
	}
	rs := make([]float64, len(a.rounds))
	for i := range rs {
		rs[i] = figure(a.rounds[i]) / figure(b.rounds[i])
	}
	slices.Sort(rs)
	n := len(rs)
	median := rs[n/2]
	if n%2 == 0 {
		median = (rs[n/2-1] + rs[n/2]) / 2
	}
	return fmt.Sprintf("paired rounds %s–%s×, median %s× (%d rounds)", report.Num(rs[0]), report.Num(rs[n-1]), report.Num(median), n)
}

func cpuOf(f roundFigures) float64 { return f.cpuPer1000 }
func rpsOf(f roundFigures) float64 { return f.rps }

// withSpread appends roundSpread's text to a target note.
func withSpread(note, spread string) string {
	if spread == "" {
		return note
	}
	return note + "; " + spread
}

func (c cell) cpuPer1000() float64 {
	if !c.ok() {
		return math.NaN()
	}
	return c.cpu.Seconds() / float64(c.res.Requests+c.res.Errors) * 1000
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, o options) (int, error) {
	r := report.New("proxy")
	r.Title = "meshscope-proxy data-plane overhead against a direct connection, nginx, HAProxy and Caddy (issue 3)."
	r.Quick = o.quick

	base, err := os.MkdirTemp("", "meshscope-bench-proxy-")
	if err != nil {
		return 1, err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return 1, err
	}
	if o.keepTmp {
		logf("configs and logs in %s", base)
	} else {
		defer os.RemoveAll(base)
	}

	var up *upstream
	if o.inProcessUpstream {
		up, err = startUpstream(o.size)
	} else {
		up, err = startUpstreamProcess(o.size)
	}
	if err != nil {
		return 1, err
	}
	defer up.close()
	sink, err := otlpsink.Start()
	if err != nil {
		return 1, err
	}
	defer sink.Close()

	rn := &runner{ctx: ctx, o: o, resetOK: true}
	var extra []string
	if o.proxyArgs != "" {
		extra = strings.Fields(o.proxyArgs)
	}
	if o.policies == "only" {
		r.Part = "policies" // its own results file and section; the full run adds the same rows to proxy
		r.Title = "meshscope-proxy policy overhead: a policy set observed vs enforced, at 1000 rps (issue 13)."
		proxyBin := o.proxyBin
		if proxyBin == "" {
			if proxyBin, err = buildProxy(ctx, base); err != nil {
				return 1, err
			}
		}
		if err := policyBench(ctx, rn, r, base, up.addr, sink.Addr, proxyBin, extra); err != nil {
			return 1, err
		}
		r.Note("Latency is from the time each request was due to the last byte of its response (constant rate, corrected for coordinated omission); rounds of %v, the targets taking turns in rotating order. meshscope-proxy runs with metrics+tracing on (exported to an in-process OTLP sink) and its default one core.", o.round)
		r.Note("The machine is shared with other work (load average %s at start, %s at end): compare rows of one run, not absolute numbers across runs.", r.Machine.LoadAverage, report.DetectMachine().LoadAverage)
		path, err := report.Write(o.out, r)
		if err != nil {
			return 1, err
		}
		logf("wrote %s", path)
		return 0, nil
	}
	if o.gateway == "only" {
		r.Part = "gateway" // its own results file and section; the full run adds the same rows to proxy
		r.Title = "meshscope-proxy --gateway (TLS termination + JWT) against nginx with TLS (issue 20)."
		proxyBin := o.proxyBin
		if proxyBin == "" {
			if proxyBin, err = buildProxy(ctx, base); err != nil {
				return 1, err
			}
		}
		if err := gatewayBench(ctx, o, r, base, up.addr, proxyBin); err != nil {
			return 1, err
		}
		r.Note("The machine is shared with other work (load average %s at start, %s at end).", r.Machine.LoadAverage, report.DetectMachine().LoadAverage)
		path, err := report.Write(o.out, r)
		if err != nil {
			return 1, err
		}
		logf("wrote %s", path)
		return 0, nil
	}
	want := map[string]bool{}
	for _, k := range o.targets {
		want[k] = true
	}
	proxyBin := o.proxyBin
	if proxyBin == "" && (want["meshscope"] || want["meshscope-off"] || want["meshscope-allcores"]) {
		proxyBin, err = buildProxy(ctx, base)
		if err != nil {
			r.Note("meshscope-proxy was not measured: %v", err)
			proxyBin = ""
		}
	}

	targets := []*target{{key: "direct", name: "direct (no proxy)", addr: up.addr}}
	var nginx1w proxyConfig // the h2c and gRPC listeners of nginx-1w
	var pprofAddr string    // the main-row proxy's --pprof listener
	for _, k := range o.targets[1:] {
		logf("starting %s", k)
		var t *target
		switch k {
		case "meshscope":
			// The main-row proxy serves profiles (--pprof) for the profile
			// taken after the measured rows; idle, the listener costs nothing.
			mx := extra
			if proxyBin != "" && supportsPprof(proxyBin) {
				if pprofAddr, err = freePort(); err == nil {
					mx = append([]string{"--pprof", pprofAddr}, extra...)
				}
			}
			t = startMeshscope(ctx, base, proxyBin, up.addr, sink.Addr, true, mx)
		case "meshscope-allcores":
			t = startMeshscopeAllCores(ctx, base, proxyBin, up.addr, sink.Addr, extra)
		case "meshscope-off":
			t = startMeshscope(ctx, base, proxyBin, up.addr, sink.Addr, false, extra)
		case "nginx":
			t = startNginx(ctx, base, up.addr)
		case "nginx-1w":
			t, nginx1w = startNginxOneWorker(ctx, base, up.addr, up.grpcAddr)
		case "haproxy":
			t = startHAProxy(ctx, base, up.addr)
		case "caddy":
			t = startCaddy(ctx, base, up.addr)
		}
		if t.skipped != "" {
			logf("%s not measured: %s", k, t.skipped)
			r.Note("%s was not measured: %s", t.name, t.skipped)
		}
		targets = append(targets, t)
	}
	defer func() {
		for _, t := range targets {
			t.stop()
		}
	}()
	var live []*target
	for _, t := range targets {
		if t.skipped == "" {
			live = append(live, t)
		}
	}

	rateCells := map[float64]map[string]cell{}
	for _, rate := range o.rates {
		cells, err := rn.interleave(fmt.Sprintf("constant %s rps", report.Num(rate)), o.cellDuration(rate), o.round,
			filterTargets(live, func(t *target) bool { return o.inCell(t.key, rate) }),
			func(t *target) loadgen.Config {
				c := t.loadConfig(o.connections)
				c.Rate = rate
				return c
			}, false)
		if err != nil {
			return 1, err
		}
		rateCells[rate] = cells
	}
	closedCells, err := rn.interleave("closed loop", o.closedDuration, o.closedRound, live,
		func(t *target) loadgen.Config { return t.loadConfig(o.connections) }, true)
	if err != nil {
		return 1, err
	}

	// Tables.
	for _, rate := range orderRates(o.rates) {
		title := fmt.Sprintf("Constant rate %s rps, %d B responses, %d connections", report.Num(rate), o.size, o.connections)
		if rate == 1000 {
			title += " (main row)"
		}
		tab := rateTable(r, title, targets, rateCells[rate])
		if d := rateCells[rate]["direct"]; d.ok() && d.res.SendLag.Count() > 0 {
			tab.Note("Load generator send lag on idle connections (not charged to latency): p99 %s ms.", ms(d.res.SendLag.Quantile(0.99)))
		}
	}
	ct := r.AddTable(fmt.Sprintf("Closed-loop maximum throughput, %d connections", o.connections),
		"target", "req/s", "× direct", "p50 ms", "p99 ms", "errors", "peak RSS MB", "CPU s / 1000 req")
	directClosed := closedCells["direct"]
	for _, t := range targets {
		c, ran := closedCells[t.key]
		if !ran {
			continue
		}
		if !c.ok() {
			ct.AddRow(t.name, failed(c), "", "", "", "", "", "")
			continue
		}
		ct.AddRow(t.name, report.Num(c.res.Throughput()), ratio(c, directClosed),
			ms(c.res.Latency.Quantile(0.5)), ms(c.res.Latency.Quantile(0.99)),
			strconv.FormatUint(c.res.Errors, 10), mb(t, c), cpuCell(t, c))
	}
	ct.Note("Load generator, upstream and proxy share the same %d cores, so closed-loop numbers measure the whole system's cost per request.", r.Machine.Cores)

	// Say where a target could not keep up with the offered rate.
	for _, rate := range o.rates {
		for _, t := range targets {
			if c, ran := rateCells[rate][t.key]; ran && c.ok() && c.res.Throughput() < 0.95*rate {
				r.Note("%s did not sustain %s rps in this run (%s req/s): requests queued, which dominates its latency at that rate.", t.name, report.Num(rate), report.Num(c.res.Throughput()))
			}
		}
	}

	// Every response must have carried the full body, or the comparison is void.
	for _, t := range targets {
		for _, c := range append([]cell{closedCells[t.key]}, cellsOf(rateCells, t.key)...) {
			if c.ok() && c.res.ResponseBytes != c.res.Requests*uint64(o.size) {
				r.Note("%s returned %s bytes per response on average instead of %d: its rows are not comparable.", t.name, report.Num(float64(c.res.ResponseBytes)/float64(c.res.Requests)), o.size)
				break
			}
		}
	}

	// Targets of issue 3, for meshscope-proxy with metrics and tracing on.
	at1000 := rateCells[1000]
	mesh, direct := at1000["meshscope"], at1000["direct"]
	addedTargets := []*report.Target{
		r.AtMost("added p50 at 1000 rps (metrics+tracing on)", 0.35, addedMS(mesh, direct, 0.5), "ms"),
		r.AtMost("added p99 at 1000 rps (metrics+tracing on)", 0.5, addedMS(mesh, direct, 0.99), "ms"),
	}
	// Judged like for like: nginx and HAProxy run a worker per core in the
	// closed loop, so the target uses the proxy on all cores too (the
	// default one-core row stays in the table).
	closedKey := "meshscope-allcores"
	if _, ran := closedCells[closedKey]; !ran {
		closedKey = "meshscope"
	}
	closedTarget := "closed-loop throughput vs direct (all cores, like nginx/HAProxy)"
	if closedKey == "meshscope" {
		closedTarget = "closed-loop throughput vs direct (one core)"
	}
	r.AtLeast(closedTarget, 0.45, ratioValue(closedCells[closedKey], directClosed), "×")
	rss := math.NaN()
	if c := rateCells[2000]["meshscope"]; c.ok() {
		rss = float64(c.peakRSS) / 1e6
	}
	r.AtMost("max RSS at 2000 rps", 20, rss, "MB")
	r.AtMost("CPU per 1000 requests at 1000 rps", 0.1, mesh.cpuPer1000(), "s")
	// Put each target next to what the comparators reached in the same run.
	comparators := []string{"nginx", "haproxy", "caddy"}
	notes := []string{
		compare(targets, comparators, func(k string) string { return signed(addedMS(at1000[k], direct, 0.5)) + " ms" }),
		compare(targets, comparators, func(k string) string { return signed(addedMS(at1000[k], direct, 0.99)) + " ms" }),
		closedNote(compare(targets, comparators, func(k string) string { return report.Num(ratioValue(closedCells[k], directClosed)) + "×" }), closedKey, closedCells, directClosed),
		compare(targets, comparators, func(k string) string {
			if c := rateCells[2000][k]; c.ok() {
				return report.Num(float64(c.peakRSS)/1e6) + " MB"
			}
			if c := at1000[k]; c.ok() {
				return report.Num(float64(c.peakRSS)/1e6) + " MB at 1000 rps"
			}
			return "n/a"
		}),
		compare(targets, comparators, func(k string) string { return report.Num(at1000[k].cpuPer1000()) + " s" }),
	}
	for i := range r.Targets {
		switch {
		case strings.Contains(r.Targets[i].Measured, "n/a"):
			r.Targets[i].Note = "not measured in this run"
		case i < len(notes):
			r.Targets[i].Note = notes[i]
		}
	}
	// An added-latency target cannot be judged when the baseline itself was
	// disturbed: a direct quantile above 1 ms on loopback, or a negative
	// difference, is other load on the machine, not the proxy.
	for i, q := range []float64{0.5, 0.99} {
		if !direct.ok() || !mesh.ok() {
			continue
		}
		base := direct.res.Latency.Quantile(q)
		if base > time.Millisecond || addedMS(mesh, direct, q) < 0 {
			t := addedTargets[i]
			t.Inconclusive = true
			t.Note = fmt.Sprintf("inconclusive: the direct baseline's own %s was %s ms, inflated by other load on the machine; re-run when it is quiet. %s",
				quantileName(q), ms(base), t.Note)
		}
	}

	// The one-core targets: meshscope-proxy (--max-procs 1, its
	// default) against nginx with one worker, same run.
	oneCoreTargets(r, at1000, closedCells)

	// h2c, gRPC, larger bodies, two hops and the profile.
	x := &extras{rn: rn, r: r, base: base, up: up, sinkAddr: sink.Addr, proxyBin: proxyBin, extra: extra, byKey: map[string]*target{}, nginx1w: nginx1w}
	defer x.stop()
	for _, t := range live {
		x.byKey[t.key] = t
	}
	profileText := ""
	if o.extras {
		for _, step := range []struct {
			name string
			run  func() error
		}{
			{"h2c", x.h2cRows},
			{"gRPC", func() error { return x.grpcRows(ctx) }},
			{"larger-body", func() error { return x.sizeRows(live) }},
			{"two-hop", func() error { return x.twoHopRows(ctx) }},
		} {
			if err := step.run(); err != nil {
				if ctx.Err() != nil {
					return 1, err
				}
				r.Note("The %s rows were not measured: %v", step.name, err)
			}
		}
		if m := x.byKey["meshscope"]; m != nil && pprofAddr != "" {
			if profileText, err = x.profile(ctx, m, pprofAddr); err != nil {
				r.Note("No CPU profile was taken: %v", err)
			}
		}
	}

	// Notes.
	r.Note("Latency is from the time each request was due to the last byte of its response (constant rate, corrected for coordinated omission: a request held back by a slow response on its connection is charged the wait). Added latency = target quantile − direct quantile at the same rate.")
	r.Note("Cells are measured in rounds of %v (closed loop %v), the targets taking turns in rotating order each round; a cell's numbers merge its rounds.", o.round, o.closedRound)
	if o.inProcessUpstream {
		r.Note("The upstream ran inside the load generator's process (-in-process-upstream): the direct baseline then crosses no process boundary, which flatters it against every proxy.")
	} else {
		r.Note("The upstream is a separate Go process (1 KB bodies with Content-Length), so the direct baseline crosses a process boundary as real traffic does; each proxy adds one more process hop each way.")
	}
	r.Note("Each proxy gets an outbound listener to one upstream with keep-alive connection pools on both sides; nginx runs one worker per core (row “nginx”) and, at 1000 rps and in the closed loop, also one worker (row “1 worker”), HAProxy one thread per core, Caddy uses GOMAXPROCS = cores, meshscope-proxy its default of one core (--max-procs 1, as a sidecar is sized) and, in the closed loop only, also all cores (--max-procs 0, row “all cores”), which the closed-loop target against direct uses. The targets “vs nginx (1 worker)” compare one core with one core: meshscope-proxy --max-procs 1 against nginx worker_processes 1, both at 1000 rps and in the closed loop of the same run. Servers run as unprivileged foreground processes with generated configs.")
	r.Note("meshscope-proxy with metrics+tracing on exports spans and pushes metrics over OTLP gRPC to an in-process sink that counts them without decoding (bench/otlpsink; it received %d spans and %d metric exports in this run); off = --no-tracing --no-metrics, no collector.", sink.Spans(), sink.MetricExports())
	r.Note("Published figures for context (other machines and harnesses): Linkerd2-proxy 17.8–26.3 MB max RSS under load; Istio/Envoy sidecars +2.7 ms p90 / +2.9 ms p99 at 1000 rps with 1 KB and 16 connections through two sidecars (Fortio), about 0.2 vCPU and 60 MB per 1000 rps.")
	if !rn.resetOK {
		r.Note("Peak RSS could not be reset per cell (/proc/<pid>/clear_refs not writable): it is the peak since the process started.")
	} else {
		r.Note("Peak RSS is VmHWM of the proxy's processes (summed over nginx's master and workers), reset before each cell; CPU is utime+stime of the same processes during the cell (10 ms resolution, so at 20 rps it is coarse; it includes the proxy's background work such as telemetry export).")
	}
	if o.policies == "on" {
		if err := policyBench(ctx, rn, r, base, up.addr, sink.Addr, proxyBin, extra); err != nil {
			r.Note("The policy-overhead rows were not measured: %v", err)
		}
	}
	if o.gateway == "on" {
		if err := gatewayBench(ctx, o, r, base, up.addr, proxyBin); err != nil {
			r.Note("The ingress-gateway rows were not measured: %v", err)
		}
	}
	end := report.DetectMachine().LoadAverage
	r.Note("The machine is shared with other work (load average %s at start, %s at end): compare rows of one run, not absolute numbers across runs; tails (p99.9, max) are the noisiest.", r.Machine.LoadAverage, end)
	if o.quick {
		r.Note("Quick run: %s per cell at 1000 rps, 2000 rps only for direct and meshscope-proxy, closed loop %s per target; h2c, gRPC, larger-body and two-hop rows %s per cell without their closed loop. Indicative only.", o.cellDuration(1000), o.closedDuration, o.extraDuration(false))
	}
	if d := at1000["direct"]; d.ok() {
		lag := d.res.SendLag.Quantile(0.99)
		if lag > time.Millisecond || d.res.Latency.Quantile(0.99) > time.Millisecond {
			r.Note("This run was disturbed by other work on the machine: even the direct baseline had p99 %s ms and the load generator's own send lag reached p99 %s ms at 1000 rps, so p99 and above mostly measure CPU contention, not the proxies. Medians and the comparison with nginx/HAProxy/Caddy in the same run are the meaningful figures.", ms(d.res.Latency.Quantile(0.99)), ms(lag))
		}
	}
	var missed []string
	for _, t := range r.Targets {
		if !t.Met && !t.Inconclusive {
			missed = append(missed, t.Name)
		}
	}
	if len(missed) > 0 {
		r.Note("Targets missed in this run: %s. Each target's note gives the comparators' figures from the same run.", strings.Join(missed, "; "))
	}

	if profileText != "" {
		name := "bench/results/" + report.FileName(r.Part, r.Quick)
		if strings.ContainsAny(o.out, `/\`) || strings.HasSuffix(o.out, ".json") {
			name = o.out // report.Write's rule: a path, not a part name
		}
		r.Note("CPU profile of meshscope-proxy (metrics+tracing on, one core) at the main row's load, 1000 rps with 1 KB responses, taken after the measured rows: the top 20 functions are in %s (go tool pprof -top -nodecount=20).", profilePath(name))
	}
	path, err := report.Write(o.out, r)
	if err != nil {
		return 1, err
	}
	logf("wrote %s", path)
	if profileText != "" {
		if err := os.WriteFile(profilePath(path), []byte(profileText), 0o644); err != nil {
			return 1, err
		}
		logf("wrote %s", profilePath(path))
	}
	if !direct.ok() {
		return 1, fmt.Errorf("direct baseline failed: %v", direct.err)
	}
	if !mesh.ok() && want["meshscope"] {
		return 1, errors.New("meshscope-proxy was not measured; see the notes in " + path)
	}
	return 0, nil
}

// runner measures targets round by round (see interleave).
type runner struct {
	ctx     context.Context
	o       options
	resetOK bool // false once a peak RSS could not be reset
}

// measure runs one round of load against t; warm-up first if asked.
func (rn *runner) measure(t *target, cfg loadgen.Config, closed, warmup bool) cell {
	ctx, o := rn.ctx, rn.o
	runLoad := loadgen.RunConstantRate
	if closed {
		runLoad = loadgen.RunClosedLoop
	}
	if warmup {
		warm := cfg
		warm.Duration, warm.Warmup = o.warmup, 0
		if _, err := runLoad(ctx, warm); err != nil {
			return cell{err: fmt.Errorf("warm-up: %w", err)}
		}
	}
	var c cell
	pids := t.pids()
	var cpu0 time.Duration
	for _, pid := range pids {
		if err := procstat.ResetPeakRSS(pid); err != nil {
			rn.resetOK = false
		}
		v, _ := procstat.CPUTime(pid)
		cpu0 += v
	}
	c.res, c.err = runLoad(ctx, cfg)
	var cpu1 time.Duration
	for _, pid := range pids {
		v, err := procstat.CPUTime(pid)
		if err != nil && c.err == nil {
			c.err = fmt.Errorf("process gone: %w", err)
		}
		cpu1 += v
		rss, _ := procstat.PeakRSS(pid)
		c.peakRSS += rss
	}
	c.cpu = cpu1 - cpu0
	if c.err == nil && c.res.Requests == 0 {
		c.err = fmt.Errorf("no successful request (%d errors, first: %s)", c.res.Errors, c.res.FirstError)
	}
	return c
}

// interleave measures every target in rounds, rotating the order each
// round, so that a busy moment of the shared machine hits all targets
// alike; the rounds of a target are merged into one cell.
func (rn *runner) interleave(label string, total, round time.Duration, ts []*target, cfg func(*target) loadgen.Config, closed bool) (map[string]cell, error) {
	ctx := rn.ctx
	cells := map[string]cell{}
	rounds := int(math.Ceil(float64(total) / float64(round)))
	if rounds < 1 {
		rounds = 1
	}
	each := total / time.Duration(rounds)
	logf("%s: %d target(s), %d round(s) of %v", label, len(ts), rounds, each)
	for i := 0; i < rounds; i++ {
		for j := range ts {
			t := ts[(i+j)%len(ts)]
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			c := cells[t.key]
			if c.err != nil {
				continue
			}
			rc := cfg(t)
			rc.Duration = each
			n := rn.measure(t, rc, closed, i == 0)
			c.merge(n)
			cells[t.key] = c
			if n.err != nil {
				logf("  %-14s failed: %v", t.key, n.err)
			} else {
				logf("  %-14s round %d: p50 %s ms, p99 %s ms, %s req/s", t.key, i+1,
					ms(n.res.Latency.Quantile(0.5)), ms(n.res.Latency.Quantile(0.99)), report.Num(n.res.Throughput()))
			}
		}
	}
	return cells, nil
}

func filterTargets(ts []*target, include func(*target) bool) []*target {
	var out []*target
	for _, t := range ts {
		if include(t) {
			out = append(out, t)
		}
	}
	return out
}

func buildProxy(ctx context.Context, base string) (string, error) {
	return buildBinary(ctx, base, "meshscope-proxy", "./cmd/meshscope-proxy")
}

func orderRates(rates []float64) []float64 {
	out := []float64{}
	for _, r := range rates {
		if r == 1000 {
			out = append(out, r)
		}
	}
	for _, r := range rates {
		if r != 1000 {
			out = append(out, r)
		}
	}
	return out
}

func cellsOf(rateCells map[float64]map[string]cell, key string) []cell {
	var out []cell
	for _, cells := range rateCells {
		if c, ok := cells[key]; ok {
			out = append(out, c)
		}
	}
	return out
}

// compare lists what the comparator targets reached, for a target's note.
func compare(targets []*target, keys []string, value func(key string) string) string {
	var parts []string
	for _, t := range targets {
		for _, k := range keys {
			if t.key == k && t.skipped == "" {
				if v := value(k); !strings.HasPrefix(v, "n/a") {
					parts = append(parts, t.name+" "+v)
				}
			}
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "same run: " + strings.Join(parts, "; ")
}

func quantileName(q float64) string {
	return "p" + strconv.FormatFloat(q*100, 'f', -1, 64)
}

func signed(v float64) string {
	if v > 0 {
		return "+" + report.Num(v)
	}
	return report.Num(v)
}

func ms(d time.Duration) string { return report.Num(float64(d) / 1e6) }

func failed(c cell) string {
	if c.err != nil {
		return "failed: " + c.err.Error()
	}
	return "failed"
}

func addedMS(c, direct cell, q float64) float64 {
	if !c.ok() || !direct.ok() {
		return math.NaN()
	}
	return float64(c.res.Latency.Quantile(q)-direct.res.Latency.Quantile(q)) / 1e6
}

func added(c, direct cell, q float64) string {
	if c.res == direct.res {
		return "–"
	}
	return report.Num(addedMS(c, direct, q))
}

func ratioValue(c, direct cell) float64 {
	if !c.ok() || !direct.ok() {
		return math.NaN()
	}
	return c.res.Throughput() / direct.res.Throughput()
}

func ratio(c, direct cell) string { return report.Num(ratioValue(c, direct)) }

func mb(t *target, c cell) string {
	if t.pid() == 0 {
		return "–"
	}
	return report.Num(float64(c.peakRSS) / 1e6)
}

func cpuCell(t *target, c cell) string {
	if t.pid() == 0 {
		return "–"
	}
	return report.Num(c.cpuPer1000())
}

// closedNote adds the one-core row's ratio to the closed-loop target's note
// when the target was judged on the all-cores row.
func closedNote(note, closedKey string, cells map[string]cell, direct cell) string {
	if closedKey != "meshscope-allcores" {
		return note
	}
	one := "judged on meshscope-proxy with --max-procs 0 (all cores), as nginx and HAProxy run a worker per core; with its default --max-procs 1: " + report.Num(ratioValue(cells["meshscope"], direct)) + "×"
	if note == "" {
		return one
	}
	return one + "; " + note
}

// rateTable adds a constant-rate table: one row per target of ts that ran
// in cells, latency added over cells["direct"].
func rateTable(r *report.Result, title string, ts []*target, cells map[string]cell) *report.Table {
	tab := r.AddTable(title, "target", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
		"added p50 ms", "added p99 ms", "req/s", "errors", "peak RSS MB", "CPU s / 1000 req")
	direct := cells["direct"]
	for _, t := range ts {
		c, ran := cells[t.key]
		if !ran {
			continue
		}
		if !c.ok() {
			tab.AddRow(t.name, failed(c), "", "", "", "", "", "", "", "", "", "")
			continue
		}
		s := c.res.Latency.Summary()
		tab.AddRow(t.name, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max),
			added(c, direct, 0.5), added(c, direct, 0.99),
			report.Num(c.res.Throughput()), strconv.FormatUint(c.res.Errors, 10),
			mb(t, c), cpuCell(t, c))
	}
	return tab
}

// oneCoreTargets adds the targets judged against nginx with one worker,
// in the same run: meshscope-proxy on its default one core.
func oneCoreTargets(r *report.Result, at1000, closed map[string]cell) {
	mesh, ngx, direct := at1000["meshscope"], at1000["nginx-1w"], at1000["direct"]
	overNginx := func(q float64) float64 { return addedMS(mesh, direct, q) - addedMS(ngx, direct, q) }
	ts := []*report.Target{
		r.AtLeast("closed-loop throughput vs nginx (1 worker), one core each", 0.9, ratioValue(closed["meshscope"], closed["nginx-1w"]), "×"),
		r.AtMost("CPU per 1000 requests vs nginx (1 worker) at 1000 rps", 1.25, cpuRatio(mesh, ngx), "×"),
		r.AtMost("added p50 over nginx's (1 worker) at 1000 rps", 0.1, overNginx(0.5), "ms"),
		r.AtMost("added p99 over nginx's (1 worker) at 1000 rps", 0.3, overNginx(0.99), "ms"),
	}
	if c, n := closed["meshscope"], closed["nginx-1w"]; c.ok() && n.ok() {
		ts[0].Note = withSpread(fmt.Sprintf("meshscope-proxy --max-procs 1 %s req/s, nginx worker_processes 1 %s req/s", report.Num(c.res.Throughput()), report.Num(n.res.Throughput())), roundSpread(c, n, rpsOf))
	}
	if mesh.ok() && ngx.ok() {
		ts[1].Note = withSpread(fmt.Sprintf("meshscope-proxy %s s, nginx (1 worker) %s s", report.Num(mesh.cpuPer1000()), report.Num(ngx.cpuPer1000())), roundSpread(mesh, ngx, cpuOf))
		ts[2].Note = fmt.Sprintf("added p50: meshscope-proxy %s ms, nginx (1 worker) %s ms", signed(addedMS(mesh, direct, 0.5)), signed(addedMS(ngx, direct, 0.5)))
		ts[3].Note = fmt.Sprintf("added p99: meshscope-proxy %s ms, nginx (1 worker) %s ms", signed(addedMS(mesh, direct, 0.99)), signed(addedMS(ngx, direct, 0.99)))
	}
	for _, t := range ts {
		if strings.Contains(t.Measured, "n/a") {
			t.Note = "not measured in this run"
		}
	}
	// As for the added-latency targets against direct: a direct quantile
	// above 1 ms on loopback is other load on the machine, which then
	// decides both proxies' tails, not the proxies.
	for i, q := range []float64{0.5, 0.99} {
		if t := ts[2+i]; direct.ok() && !strings.Contains(t.Measured, "n/a") {
			if base := direct.res.Latency.Quantile(q); base > time.Millisecond {
				t.Inconclusive = true
				t.Note = fmt.Sprintf("inconclusive: the direct baseline's own %s was %s ms, inflated by other load on the machine. %s", quantileName(q), ms(base), t.Note)
			}
		}
	}
}
