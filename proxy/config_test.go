package proxy

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// configFromFlags applies args with BindFlags over the defaults, as
// meshscope-proxy does when no --config file is given.
func configFromFlags(args []string) (Config, error) {
	cfg := DefaultConfig()
	var opaque []string
	fs := flag.NewFlagSet("meshscope-proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	BindFlags(fs, &cfg, &opaque)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if err := cfg.MarkOpaque(opaque); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func TestBindFlags(t *testing.T) {
	c, err := configFromFlags([]string{"--service", "a", "--upstream", "127.0.0.1:1=b@127.0.0.1:2", "--span-queue", "100",
		"--route", "h=s", "--opaque", "127.0.0.1:1", "--detect-timeout", "250ms", "--max-header-bytes", "8192", "--max-detections", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Telemetry.SpanQueueSize != 100 || c.Telemetry.SpanBatchSize != 100 || c.Routes["h"] != "s" || c.Upstreams[0].Protocol != ProtocolOpaque ||
		time.Duration(c.DetectTimeout) != 250*time.Millisecond || c.MaxHeaderBytes != 8192 || c.MaxDetections != 7 {
		t.Errorf("got %+v", c)
	}
}

func TestDecodeConfigStrict(t *testing.T) {
	tests := []struct{ yaml, wantErr string }{
		{"service: a\nservic: b\n", "field servic not found"},
		{"service: a\ntelemetry:\n  colector: x\n", "field colector not found"},
		{"service: a\ndrain_timeout: forever\n", "not a duration"},
		{"service: a\ninbound:\n  - listen: 127.0.0.1:1\n    app: 127.0.0.1:2\n    protocl: http\n", "field protocl not found"},
		{"service: a\n---\nservice: b\n", "more than one YAML document"},
	}
	for _, tt := range tests {
		_, err := DecodeConfig(strings.NewReader(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: err = %v, want %q", tt.yaml, err, tt.wantErr)
		}
	}
	c, err := DecodeConfig(strings.NewReader(""))
	if err != nil || c.Version != "v1" || c.Mode != ModeObserve {
		t.Errorf("empty file: %+v %v", c, err)
	}
}

func TestValidateNamesKeys(t *testing.T) {
	c := DefaultConfig()
	c.Service = "ok"
	c.Upstreams = []Upstream{{Listen: "127.0.0.1:1", Service: "bad name", Addrs: []string{"nohost"}}}
	c.Telemetry.SampleRatio = 2
	c.Telemetry.Collector = "x"
	c.MaxProcs = -1
	err := c.Validate()
	for _, want := range []string{"upstreams[0].service", "upstreams[0].addrs[0]", "telemetry.sample_ratio", "telemetry.collector", "max_procs (--max-procs)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	}
}

// FuzzDecodeConfig: any input either decodes into a config or errors; it
// never panics, and a decoded config validates without panicking.
func FuzzDecodeConfig(f *testing.F) {
	f.Add("service: a\ninbound:\n  - listen: 127.0.0.1:1\n    app: 127.0.0.1:2\n")
	f.Add("upstreams: [{listen: ':1', service: s, addrs: ['a:1']}]\ndrain_timeout: 1s\n")
	f.Add("routes: {a.example: x}\nroute_templates: ['/x/{y...}']\n")
	f.Add("telemetry: {sample_ratio: .5, span_queue_size: 1}\n")
	f.Add("- a\n- b\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := DecodeConfig(strings.NewReader(s))
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}

func TestMaxProcsFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--service", "a", "--upstream", "127.0.0.1:1=b@127.0.0.1:2"}, 1},
		{[]string{"--service", "a", "--upstream", "127.0.0.1:1=b@127.0.0.1:2", "--max-procs", "0"}, 0},
		{[]string{"--service", "a", "--upstream", "127.0.0.1:1=b@127.0.0.1:2", "--max-procs", "4"}, 4},
	} {
		c, err := configFromFlags(tc.args)
		if err != nil || c.MaxProcs != tc.want {
			t.Errorf("%q: max_procs %d, %v; want %d", tc.args, c.MaxProcs, err, tc.want)
		}
	}
}

// The collector is host:port (h2c) or https://host:port (TLS).
func TestCollectorAddress(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:4317": true, "https://127.0.0.1:4317": true, "https://collector.example:4317": true,
		"https://127.0.0.1": false, "http://127.0.0.1:4317": false, "127.0.0.1": false,
	} {
		c := DefaultConfig()
		c.Service = "web"
		c.Telemetry.Collector = addr
		err := c.Validate()
		if named := err != nil && strings.Contains(err.Error(), "telemetry.collector"); named == ok {
			t.Errorf("collector %q: %v, want ok=%v", addr, err, ok)
		}
	}
}
