package flagconfig

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testConfig struct {
	Addr    string   `yaml:"addr"`
	Workers int      `yaml:"workers"`
	Tags    []string `yaml:"tags"`
	Nested  struct {
		Level string `yaml:"level"`
	} `yaml:"nested"`
}

func (c *testConfig) Validate() error {
	if c.Workers < 0 {
		return errors.New("workers: must not be negative")
	}
	return nil
}

type tagsFlag struct{ dst *[]string }

func (t tagsFlag) String() string     { return "" }
func (t tagsFlag) Set(v string) error { *t.dst = append(*t.dst, v); return nil }

func defaults() testConfig { return testConfig{Addr: "127.0.0.1:1", Workers: 2} }

func bind(fs *flag.FlagSet, c *testConfig) {
	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address")
	fs.IntVar(&c.Workers, "workers", c.Workers, "workers")
	fs.Var(tagsFlag{&c.Tags}, "tag", "repeatable tag")
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	good := writeFile(t, "addr: 10.0.0.1:9\nworkers: 7\ntags: [a]\nnested:\n  level: debug\n")
	unknown := writeFile(t, "addr: x\nnested:\n  levle: debug\n")
	empty := writeFile(t, "")
	tests := []struct {
		name    string
		args    []string
		want    testConfig
		wantErr string
	}{
		{name: "defaults", args: nil, want: defaults()},
		{name: "flags", args: []string{"--addr", "h:2", "--workers=3"}, want: testConfig{Addr: "h:2", Workers: 3}},
		{name: "file", args: []string{"--config", good}, want: func() testConfig {
			c := testConfig{Addr: "10.0.0.1:9", Workers: 7, Tags: []string{"a"}}
			c.Nested.Level = "debug"
			return c
		}()},
		{name: "flags override file, repeated flags kept", args: []string{"--workers", "1", "--config", good, "--tag", "b", "--tag", "c"}, want: func() testConfig {
			c := testConfig{Addr: "10.0.0.1:9", Workers: 1, Tags: []string{"a", "b", "c"}}
			c.Nested.Level = "debug"
			return c
		}()},
		{name: "empty file", args: []string{"--config", empty}, want: defaults()},
		{name: "unknown key named", args: []string{"--config", unknown}, wantErr: "field levle not found"},
		{name: "unknown flag named", args: []string{"--bogus", "1"}, wantErr: "-bogus"},
		{name: "bad flag value named", args: []string{"--workers", "many"}, wantErr: "-workers"},
		{name: "positional", args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
		{name: "validate", args: []string{"--workers", "-1"}, wantErr: "workers: must not be negative"},
		{name: "missing file", args: []string{"--config", "/nonexistent.yaml"}, wantErr: "reading config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("test", tt.args, defaults, bind, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Addr != tt.want.Addr || got.Workers != tt.want.Workers || strings.Join(got.Tags, ",") != strings.Join(tt.want.Tags, ",") || got.Nested != tt.want.Nested {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzDecodeYAML(f *testing.F) {
	f.Add([]byte("addr: x\nworkers: 3\n"))
	f.Add([]byte("nested: {level: 1}\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c testConfig
		_ = DecodeYAML(data, &c) // must not panic
	})
}

func TestDecodeYAMLOneDocument(t *testing.T) {
	var c testConfig
	if err := DecodeYAML([]byte("addr: a:1\n---\naddr: b:2\n"), &c); err == nil || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Errorf("err = %v, want more than one YAML document", err)
	}
	if err := DecodeYAML([]byte("addr: a:1\n"), &c); err != nil || c.Addr != "a:1" {
		t.Errorf("one document: %v %+v", err, c)
	}
}
