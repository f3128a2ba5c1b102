package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/bench/loadgen"
	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control/policy"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o options)
		wantErr string
	}{
		{"defaults", nil, func(t *testing.T, o options) {
			if !reflect.DeepEqual(o.rates, []float64{20, 200, 1000, 2000}) || !reflect.DeepEqual(o.targets, allTargets) {
				t.Errorf("rates %v targets %v", o.rates, o.targets)
			}
			if o.cellDuration(1000) != 30*time.Second || o.cellDuration(20) != 20*time.Second || o.closedDuration != 10*time.Second {
				t.Errorf("durations %v %v %v", o.cellDuration(1000), o.cellDuration(20), o.closedDuration)
			}
			if !o.inCell("nginx", 2000) {
				t.Error("full run must measure nginx at 2000 rps")
			}
			if o.inCell("meshscope-allcores", 1000) || o.inCell("meshscope-allcores", 2000) {
				t.Error("the all-cores proxy is measured in the closed loop only")
			}
			if !o.inCell("nginx-1w", 1000) || o.inCell("nginx-1w", 2000) || o.inCell("nginx-1w", 20) {
				t.Error("one-worker nginx is measured at 1000 rps (and in the closed loop) only")
			}
			if !o.extras || o.extraDuration(false) != 20*time.Second || o.extraDuration(true) != 10*time.Second {
				t.Errorf("extras %v, durations %v %v", o.extras, o.extraDuration(false), o.extraDuration(true))
			}
		}, ""},
		{"quick", []string{"-quick"}, func(t *testing.T, o options) {
			if !reflect.DeepEqual(o.rates, []float64{1000, 2000}) || o.cellDuration(1000) != 2*time.Second {
				t.Errorf("quick rates %v duration %v", o.rates, o.cellDuration(1000))
			}
			if o.inCell("nginx", 2000) || !o.inCell("meshscope", 2000) || !o.inCell("direct", 2000) {
				t.Error("quick run measures 2000 rps for direct and meshscope-proxy only")
			}
			if o.extraDuration(false) != time.Second || o.extraDuration(true) != time.Second {
				t.Errorf("quick extra durations %v %v", o.extraDuration(false), o.extraDuration(true))
			}
		}, ""},
		{"targets always include direct", []string{"-targets", "nginx, caddy"}, func(t *testing.T, o options) {
			if !reflect.DeepEqual(o.targets, []string{"direct", "nginx", "caddy"}) {
				t.Errorf("targets %v", o.targets)
			}
		}, ""},
		{"no extras", []string{"-extras=false", "-duration", "3s"}, func(t *testing.T, o options) {
			if o.extras || o.extraDuration(true) != 3*time.Second {
				t.Errorf("extras %v duration %v", o.extras, o.extraDuration(true))
			}
		}, ""},
		{"bad rate", []string{"-rates", "10,x"}, nil, `-rates: "x"`},
		{"unknown target", []string{"-targets", "envoy"}, nil, `unknown target "envoy"`},
		{"stray argument", []string{"extra"}, nil, `unexpected argument "extra"`},
		{"bad policies", []string{"-policies", "yes"}, nil, `-policies: "yes"`},
		{"two onlys", []string{"-policies", "only", "-gateway", "only"}, nil, "exclude each other"},
	}
	for _, tt := range tests {
		o, err := parseOptions(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		tt.check(t, o)
	}
}

// TestConfigsGolden pins the comparator configurations, which decide
// whether the comparison is fair.
func TestConfigsGolden(t *testing.T) {
	cfg := proxyConfig{Dir: "/tmp/bench/x", Listen: "127.0.0.1:8001", Upstream: "127.0.0.1:9001", Workers: "auto"}
	// The one-core nginx: one worker, with h2c and gRPC listeners.
	oneWorker := cfg
	oneWorker.Workers, oneWorker.H2CListen, oneWorker.GRPCListen, oneWorker.GRPCUpstream = "1", "127.0.0.1:8002", "127.0.0.1:8003", "127.0.0.1:9002"
	for name, tc := range map[string]struct {
		tmpl string
		cfg  proxyConfig
	}{
		"nginx.conf":         {nginxConf, cfg},
		"nginx-1worker.conf": {nginxConf, oneWorker},
		"haproxy.cfg":        {haproxyConf, cfg},
		"Caddyfile":          {caddyConf, cfg},
	} {
		got, err := render(tc.tmpl, tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden := filepath.Join("testdata", name+".golden")
		if *update {
			if err := os.WriteFile(golden, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%v (run go test ./bench/proxy -update)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s:\n%s", name, golden, got)
		}
	}
	args := meshscopeArgs("/bin/p", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", false, []string{"--x"})
	want := []string{"/bin/p", "--service", "bench-client", "--admin", "127.0.0.1:2", "--upstream", "127.0.0.1:1=bench-upstream@127.0.0.1:3", "--no-tracing", "--no-metrics", "--x"}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("meshscopeArgs = %v", args)
	}
	// Without an address the upstream is discovered (--control-plane).
	args = meshscopeArgs("/bin/p", "127.0.0.1:1", "127.0.0.1:2", "", "127.0.0.1:4", true, nil)
	if args[6] != "127.0.0.1:1=bench-upstream" {
		t.Errorf("discovered upstream = %q", args[6])
	}
}

// TestPolicyDocs checks the benchmark's policy set through the strict
// loader the server uses, so the rows measure what the note says.
func TestPolicyDocs(t *testing.T) {
	docs, err := policy.Load([]byte(policyDocs))
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.CheckSet(docs); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i := range docs {
		if err := docs[i].Validate(); err != nil {
			t.Fatal(err)
		}
		if docs[i].Service != policyService {
			t.Errorf("%s: service %q", docs[i].Ref(), docs[i].Service)
		}
		kinds = append(kinds, docs[i].Kind)
	}
	if !reflect.DeepEqual(kinds, []string{"Route", "Resilience"}) {
		t.Errorf("kinds %v", kinds)
	}
}

// cellAt is a measured cell: n requests over one second, every latency
// lat, cpu of CPU time.
func cellAt(n int, lat, cpu time.Duration) cell {
	res := &loadgen.Result{Latency: &loadgen.Histogram{}, ServiceTime: &loadgen.Histogram{}, SendLag: &loadgen.Histogram{}, Elapsed: time.Second}
	for range n {
		res.Latency.Record(lat)
	}
	res.Requests = uint64(n)
	return cell{res: res, cpu: cpu}
}

func TestOneCoreTargets(t *testing.T) {
	const us = time.Microsecond
	tests := []struct {
		name     string
		at1000   map[string]cell
		closed   map[string]cell
		measured []string // closed-loop ratio, CPU ratio, added p50 over nginx, added p99 over nginx
		met      []bool
	}{
		{"meshscope behind nginx",
			map[string]cell{"direct": cellAt(1000, 200*us, 0), "meshscope": cellAt(1000, 500*us, 300*time.Millisecond), "nginx-1w": cellAt(1000, 300*us, 100*time.Millisecond)},
			map[string]cell{"meshscope": cellAt(4000, time.Millisecond, 0), "nginx-1w": cellAt(10000, time.Millisecond, 0)},
			[]string{"0.4×", "3×", "0.2 ms", "0.2 ms"}, []bool{false, false, false, true}},
		{"meshscope on par",
			map[string]cell{"direct": cellAt(1000, 200*us, 0), "meshscope": cellAt(1000, 300*us, 110*time.Millisecond), "nginx-1w": cellAt(1000, 300*us, 100*time.Millisecond)},
			map[string]cell{"meshscope": cellAt(9500, time.Millisecond, 0), "nginx-1w": cellAt(10000, time.Millisecond, 0)},
			[]string{"0.95×", "1.1×", "0 ms", "0 ms"}, []bool{true, true, true, true}},
		{"disturbed baseline",
			map[string]cell{"direct": cellAt(1000, 2*time.Millisecond, 0), "meshscope": cellAt(1000, 5*time.Millisecond, 300*time.Millisecond), "nginx-1w": cellAt(1000, 3*time.Millisecond, 100*time.Millisecond)},
			map[string]cell{"meshscope": cellAt(4000, time.Millisecond, 0), "nginx-1w": cellAt(10000, time.Millisecond, 0)},
			[]string{"0.4×", "3×", "2 ms", "2 ms"}, []bool{false, false, false, false}},
		{"nginx not measured",
			map[string]cell{"direct": cellAt(1000, 200*us, 0), "meshscope": cellAt(1000, 300*us, 110*time.Millisecond)},
			map[string]cell{"meshscope": cellAt(9500, time.Millisecond, 0)},
			[]string{"n/a", "n/a", "n/a", "n/a"}, []bool{false, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := report.New("proxy")
			oneCoreTargets(r, tt.at1000, tt.closed)
			if len(r.Targets) != 4 {
				t.Fatalf("%d targets, want 4", len(r.Targets))
			}
			for i, tg := range r.Targets {
				if !strings.HasPrefix(tg.Measured, tt.measured[i]) || tg.Met != tt.met[i] {
					t.Errorf("%s: measured %q met %v, want %q met %v", tg.Name, tg.Measured, tg.Met, tt.measured[i], tt.met[i])
				}
				if tt.measured[i] == "n/a" && tg.Note != "not measured in this run" {
					t.Errorf("%s: note %q", tg.Name, tg.Note)
				}
				wantInconclusive := tt.name == "disturbed baseline" && i >= 2
				if tg.Inconclusive != wantInconclusive {
					t.Errorf("%s: inconclusive %v, want %v (note %q)", tg.Name, tg.Inconclusive, wantInconclusive, tg.Note)
				}
			}
		})
	}
}

// TestRoundSpread: merged rounds keep their own figures, and the spread
// pairs round i of one target with round i of the other.
func TestRoundSpread(t *testing.T) {
	merged := func(rounds ...cell) cell {
		var c cell
		for _, r := range rounds {
			c.merge(r)
		}
		return c
	}
	ms := time.Millisecond
	tests := []struct {
		name string
		a, b cell
		fig  func(roundFigures) float64
		want string
	}{
		{"CPU, three rounds",
			// a: 0.2, 0.3, 0.1 s per 1000; b: 0.1 each → 2, 3, 1
			merged(cellAt(1000, ms, 200*ms), cellAt(1000, ms, 300*ms), cellAt(1000, ms, 100*ms)),
			merged(cellAt(1000, ms, 100*ms), cellAt(1000, ms, 100*ms), cellAt(1000, ms, 100*ms)),
			cpuOf, "paired rounds 1–3×, median 2× (3 rounds)"},
		{"throughput, round against round",
			// a: 1000, 2000 req/s against b: 2000, 1000 → 0.5 and 2
			// (sorting each side first would give 1 and 1)
			merged(cellAt(1000, ms, 0), cellAt(2000, ms, 0)),
			merged(cellAt(2000, ms, 0), cellAt(1000, ms, 0)),
			rpsOf, "paired rounds 0.5–2×, median 1.25× (2 rounds)"},
		{"even count takes the middle pair's mean",
			merged(cellAt(1000, ms, 100*ms), cellAt(1000, ms, 200*ms), cellAt(1000, ms, 400*ms), cellAt(1000, ms, 800*ms)),
			merged(cellAt(1000, ms, 100*ms), cellAt(1000, ms, 100*ms), cellAt(1000, ms, 100*ms), cellAt(1000, ms, 100*ms)),
			cpuOf, "paired rounds 1–8×, median 3× (4 rounds)"},
		{"one round: nothing to spread", merged(cellAt(1000, ms, 0)), merged(cellAt(1000, ms, 0)), rpsOf, ""},
		{"unequal rounds", merged(cellAt(1000, ms, 0), cellAt(1000, ms, 0)), merged(cellAt(1000, ms, 0)), rpsOf, ""},
		{"failed cell", merged(cellAt(1000, ms, 0), cellAt(1000, ms, 0)), merged(cellAt(1000, ms, 0), cell{err: errors.New("down")}), rpsOf, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roundSpread(tt.a, tt.b, tt.fig); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	// The merged cell still sums its rounds.
	c := merged(cellAt(1000, ms, 200*ms), cellAt(3000, ms, 200*ms))
	if c.res.Requests != 4000 || c.cpu != 400*ms || len(c.rounds) != 2 || c.rounds[1].rps != 3000 {
		t.Errorf("merged: %d requests, cpu %v, rounds %+v", c.res.Requests, c.cpu, c.rounds)
	}
}

func TestLabelsAndPaths(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{sizeLabel(16 << 10), "16 KB"},
		{sizeLabel(1 << 20), "1 MB"},
		{sizedPath(16384), "/bytes/16384"},
		{profilePath("/r/bench/results/proxy.json"), "/r/bench/results/proxy.pprof.txt"},
		{profilePath("/r/bench/results/proxy.quick.json"), "/r/bench/results/proxy.quick.pprof.txt"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	mesh := &target{key: "meshscope", name: "meshscope-proxy", addr: "127.0.0.1:1"}
	v := via(mesh, "h2c", ", h2c", "127.0.0.1:1")
	if v.key != "meshscope-h2c" || v.name != "meshscope-proxy, h2c" || v.protocol != "h2c" || mesh.protocol != "" {
		t.Errorf("via = %+v (original %+v)", v, mesh)
	}
	if c := v.loadConfig(16); c.NewExchanger == nil || c.Connections != 16 {
		t.Errorf("h2c target's load config %+v", c)
	}
	if v := via(mesh, "grpc", ", gRPC", ""); v.skipped == "" {
		t.Error("a protocol without a listener must be skipped")
	}
	if via(nil, "h2c", "", "x") != nil {
		t.Error("via(nil) must be nil")
	}
}

// TestUpstream checks the benchmark's app: sized bodies over HTTP/1.1 and
// h2c, bad sizes refused, and the gRPC health service.
func TestUpstream(t *testing.T) {
	up, err := startUpstream(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer up.close()
	tests := []struct {
		name      string
		tg        target
		wantBytes uint64
		wantErr   string
	}{
		{"default size", target{addr: up.addr}, 1024, ""},
		{"16 KB", target{addr: up.addr, path: sizedPath(16 << 10)}, 16 << 10, ""},
		{"1 MB over h2c", target{addr: up.addr, path: sizedPath(1 << 20), protocol: "h2c"}, 1 << 20, ""},
		{"too large", target{addr: up.addr, path: sizedPath(maxSizedBody + 1)}, 0, "status 400"},
		{"not a number", target{addr: up.addr, path: "/bytes/x"}, 0, "status 400"},
		{"gRPC health", target{addr: up.grpcAddr, protocol: "grpc"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.tg.loadConfig(2)
			cfg.Rate, cfg.Duration = 100, 100*time.Millisecond
			res, err := loadgen.RunConstantRate(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" {
				if res.Requests != 0 || !strings.Contains(res.FirstError, tt.wantErr) {
					t.Errorf("%d ok, first error %q; want %q", res.Requests, res.FirstError, tt.wantErr)
				}
				return
			}
			if res.Requests != 10 || res.ResponseBytes != 10*tt.wantBytes {
				t.Errorf("%d requests, %d bytes (%d errors: %s); want 10 of %d B", res.Requests, res.ResponseBytes, res.Errors, res.FirstError, tt.wantBytes)
			}
		})
	}
}
