package control

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/policy"
)

const route = "kind: Route\nname: inv\nservice: inventory\nrules:\n- backends: [{version: v1, weight: 90}, {version: v2, weight: 10}]\n"

func newPlane(t *testing.T, policies string) (*Plane, error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.Policies = policies
	cfg.PollInterval = 20 * time.Millisecond
	return New(cfg, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyDirAtStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // error; "" = loads
	}{
		{"valid, nested, hidden skipped", map[string]string{"a.yaml": route, "sub/b.yml": "kind: Resilience\nname: inv\nservice: inventory\nload_balancer: round-robin\n", ".hidden/c.yaml": "garbage: ["}, ""},
		{"invalid file", map[string]string{"a.yaml": route, "b.yaml": "kind: Route\nname: x\nservice: s\ntimeout: 1s\nretries: {attemps: 2}\n"}, "b.yaml: document 1 (line 5): retries.attemps: unknown field"},
		{"same document in two files", map[string]string{"a.yaml": route, "b.yaml": route}, `route "inv" in b.yaml is also in a.yaml`},
		{"two routes for a service", map[string]string{"a.yaml": route, "b.yaml": strings.Replace(route, "name: inv", "name: inv2", 1)}, `already has route "inv"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, body := range tc.files {
				write(t, filepath.Join(dir, name), body)
			}
			p, err := newPlane(t, dir)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if _, items := p.Store().List("", ""); len(items) != 2 || items[0].Source != "file:sub/b.yml" || items[1].Source != "file:a.yaml" {
					t.Errorf("loaded %+v, want a.yaml's route and sub/b.yml's resilience", items)
				}
				p.Close()
				return
			}
			if err == nil {
				p.Close()
				t.Fatalf("New succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestPolicyDirWatch(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), route)
	p, err := newPlane(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	weights := func() string {
		it, ok := p.Store().Get(policy.Key{Kind: "Route", Name: "inv"})
		if !ok {
			return "none"
		}
		b := it.Route().Rules[0].Backends
		return b[0].Version + "=" + strconv.Itoa(b[0].Weight)
	}
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if weights() == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("weights = %s, want %s", weights(), want)
	}
	wait("v1=90")
	// A save with the same size and a new mtime is detected by hash.
	write(t, filepath.Join(dir, "a.yaml"), strings.Replace(strings.Replace(route, "90", "70", 1), "10}", "30}", 1))
	wait("v1=70")
	v := p.Store().Version()
	// Touching without changing the content writes no version.
	now := time.Now().Add(time.Second)
	os.Chtimes(filepath.Join(dir, "a.yaml"), now, now)
	time.Sleep(200 * time.Millisecond)
	if p.Store().Version() != v {
		t.Errorf("touching the file made version %d (was %d)", p.Store().Version(), v)
	}
	os.Remove(filepath.Join(dir, "a.yaml"))
	wait("none")
}
