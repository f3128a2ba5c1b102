package audit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/auth"
)

func open(t *testing.T, cfg Config) *Log {
	t.Helper()
	l, err := Open(cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRecordFillsIdentityAndSurvivesReopen(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	l := open(t, cfg)
	ctx := auth.WithIdentity(context.Background(), auth.Identity{Name: "ci", Role: auth.RoleOperator, Method: auth.MethodToken, Addr: "10.0.0.7"})
	if err := l.Record(ctx, Entry{Action: "apply", Targets: []string{"Route/web"}, Version: 3, Diff: "+ a\n"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(context.Background(), Entry{Action: "guard.pause", Who: "controller:guard", Auth: "controller"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(ctx, Entry{}); err == nil {
		t.Error("an entry without an action was accepted")
	}
	l.Close()
	// A torn last line from a crash is cut; the numbering continues.
	segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "audit-*.jsonl"))
	f, _ := os.OpenFile(segs[len(segs)-1], os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":3,"act`)
	f.Close()
	l = open(t, cfg)
	defer l.Close()
	if err := l.Record(ctx, Entry{Action: "delete"}); err != nil {
		t.Fatal(err)
	}
	p, err := l.Query(context.Background(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 3 || p.Entries[0].Seq != 3 || p.Entries[0].Action != "delete" {
		t.Fatalf("entries: %+v", p.Entries)
	}
	e := p.Entries[2]
	if e.Who != "ci" || e.Role != "operator" || e.Auth != "token" || e.From != "10.0.0.7" || e.Outcome != "ok" || e.Diff != "+ a\n" || e.Time.IsZero() {
		t.Errorf("first entry: %+v", e)
	}
	if p.Entries[1].Who != "controller:guard" {
		t.Errorf("controller entry: %+v", p.Entries[1])
	}
}

func TestQueryFiltersAndPaging(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.SegmentBytes = 600 // several segments
	l := open(t, cfg)
	defer l.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		who := []string{"alice", "bob", "ci"}[i%3]
		act := []string{"apply", "delete", "guard.pause"}[i%3]
		l.Record(context.Background(), Entry{Who: who, Action: act, Targets: []string{fmt.Sprintf("Route/r%d", i)}, Time: base.Add(time.Duration(i) * time.Minute)})
	}
	if n, _ := filepath.Glob(filepath.Join(cfg.Dir, "audit-*.jsonl")); len(n) < 3 {
		t.Fatalf("%d segments, want several", len(n))
	}
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Limit: 3}, "30 29 28"},
		{Filter{Limit: 3, Before: 28}, "27 26 25"},
		{Filter{Who: "alice", Limit: 3}, "28 25 22"},
		{Filter{Action: "guard.", Limit: 2}, "30 27"},
		{Filter{Target: "Route/r1", Limit: 20}, "20 19 18 17 16 15 14 13 12 11 2"},
		{Filter{Since: base.Add(27 * time.Minute)}, "30 29 28"},
		{Filter{Until: base.Add(time.Minute)}, "2 1"},
	} {
		p, err := l.Query(context.Background(), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range p.Entries {
			got = append(got, fmt.Sprint(e.Seq))
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%+v: %v, want %s", tc.f, got, tc.want)
		}
	}
	p, _ := l.Query(context.Background(), Filter{Limit: 3})
	if p.NextBefore != 28 {
		t.Errorf("next_before %d", p.NextBefore)
	}
}

func TestRetentionBySizeAndAge(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.SegmentBytes = 400
	cfg.MaxBytes = 1200
	l := open(t, cfg)
	defer l.Close()
	for i := range 50 {
		if err := l.Record(context.Background(), Entry{Who: "ci", Action: "apply", Diff: strings.Repeat("x", 50)}); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	var total int64
	segs, _ := filepath.Glob(filepath.Join(cfg.Dir, "audit-*.jsonl"))
	for _, s := range segs {
		fi, _ := os.Stat(s)
		total += fi.Size()
	}
	if total > cfg.MaxBytes+cfg.SegmentBytes+300 {
		t.Errorf("%d bytes on disk, bound %d", total, cfg.MaxBytes)
	}
	p, _ := l.Query(context.Background(), Filter{Limit: 1000})
	if len(p.Entries) == 0 || p.Entries[0].Seq != 50 || p.Entries[len(p.Entries)-1].Seq == 1 {
		t.Errorf("kept %d entries, newest %d", len(p.Entries), p.Entries[0].Seq)
	}
	// Age: a clock a year and a day ahead drops every closed segment.
	l.now = func() time.Time { return time.Now().Add(cfg.Retention + 24*time.Hour) }
	for range 10 {
		l.Record(context.Background(), Entry{Who: "ci", Action: "apply", Diff: strings.Repeat("x", 50)})
	}
	p, _ = l.Query(context.Background(), Filter{Limit: 1000})
	for _, e := range p.Entries {
		if e.Seq <= 50 {
			t.Fatalf("entry %d older than the retention survived", e.Seq)
		}
	}
}

func TestHTTPFilterErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	l := open(t, cfg)
	defer l.Close()
	mux := http.NewServeMux()
	l.RegisterRoutes(mux)
	for _, tc := range []struct {
		q    string
		code int
		want string
	}{
		{"", 200, `"entries":[]`},
		{"?limit=0", 400, "limit="},
		{"?since=yesterday", 400, "since="},
		{"?before=x", 400, "before="},
		{"?since=2026-01-01T00:00:00Z&limit=5", 200, `"entries"`},
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", Path+tc.q, nil))
		if w.Code != tc.code || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s: %d %s", tc.q, w.Code, w.Body)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Dir = "" }, "dir"},
		{func(c *Config) { c.Retention = 0 }, "retention"},
		{func(c *Config) { c.MaxBytes = -1 }, "max_bytes"},
		{func(c *Config) { c.SegmentBytes = c.MaxBytes + 1 }, "segment_bytes"},
	} {
		c := DefaultConfig()
		c.Dir = "x"
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%v, want %s", err, tc.want)
		}
	}
}
