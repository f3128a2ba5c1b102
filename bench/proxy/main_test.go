package main

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

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
		}, ""},
		{"quick", []string{"-quick"}, func(t *testing.T, o options) {
			if !reflect.DeepEqual(o.rates, []float64{1000, 2000}) || o.cellDuration(1000) != 2*time.Second {
				t.Errorf("quick rates %v duration %v", o.rates, o.cellDuration(1000))
			}
			if o.inCell("nginx", 2000) || !o.inCell("meshscope", 2000) || !o.inCell("direct", 2000) {
				t.Error("quick run measures 2000 rps for direct and meshscope-proxy only")
			}
		}, ""},
		{"targets always include direct", []string{"-targets", "nginx, caddy"}, func(t *testing.T, o options) {
			if !reflect.DeepEqual(o.targets, []string{"direct", "nginx", "caddy"}) {
				t.Errorf("targets %v", o.targets)
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
	cfg := proxyConfig{Dir: "/tmp/bench/x", Listen: "127.0.0.1:8001", Upstream: "127.0.0.1:9001"}
	for name, tmpl := range map[string]string{"nginx.conf": nginxConf, "haproxy.cfg": haproxyConf, "Caddyfile": caddyConf} {
		got, err := render(tmpl, cfg)
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
