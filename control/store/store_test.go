package store

import (
	"errors"
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

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func load(t *testing.T, y string) []policy.Document {
	t.Helper()
	docs, err := policy.Load([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

const split9010 = "kind: Route\nname: inv\nservice: inventory\nrules:\n- backends: [{version: v1, weight: 90}, {version: v2, weight: 10}]\n"
const split8020 = "kind: Route\nname: inv\nservice: inventory\nrules:\n- backends: [{version: v1, weight: 80}, {version: v2, weight: 20}]\n"
const outliers = "kind: Resilience\nname: pay\nservice: payments\noutlier_detection: {}\n"

func weights(t *testing.T, s *Store) string {
	t.Helper()
	it, ok := s.Get(policy.Key{Kind: "Route", Name: "inv"})
	if !ok {
		return "none"
	}
	b := it.Route().Rules[0].Backends
	var parts []string
	for _, x := range b {
		parts = append(parts, x.Version+"="+itoa(x.Weight))
	}
	return strings.Join(parts, ",")
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestApplyVersionsHistoryRestart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	res, err := s.Apply(load(t, split9010+"---\n"+outliers), ApplyOptions{Who: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 1 || !res.Changed || len(res.Changes) != 2 || res.Changes[0].Op != OpCreate {
		t.Fatalf("first apply = %+v", res)
	}
	// Re-applying the same content is no new version.
	res, err = s.Apply(load(t, split9010), ApplyOptions{Who: "alice"})
	if err != nil || res.Changed || res.Version != 1 || res.Changes[0].Op != OpUnchanged {
		t.Fatalf("same apply = %+v, %v", res, err)
	}
	// Dry run: answers the diff, writes nothing.
	res, err = s.Apply(load(t, split8020), ApplyOptions{Who: "bob", DryRun: true})
	if err != nil || res.Changed || res.Version != 1 || res.Changes[0].Op != OpUpdate {
		t.Fatalf("dry run = %+v, %v", res, err)
	}
	if d := Diff(res.Changes[0]); !strings.Contains(d, "-         weight: 90") || !strings.Contains(d, "+         weight: 80") {
		t.Errorf("diff:\n%s", d)
	}
	if w := weights(t, s); w != "v1=90,v2=10" {
		t.Fatalf("after dry run weights = %s", w)
	}
	if _, err := s.Apply(load(t, split8020), ApplyOptions{Who: "bob"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(policy.Key{Kind: "Resilience", Name: "pay"}, ApplyOptions{Who: "carol"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart: everything is back.
	s = open(t, dir)
	if v := s.Version(); v != 3 {
		t.Fatalf("version after restart = %d, want 3", v)
	}
	if w := weights(t, s); w != "v1=80,v2=20" {
		t.Errorf("weights after restart = %s", w)
	}
	if _, ok := s.Get(policy.Key{Kind: "Resilience", Name: "pay"}); ok {
		t.Error("deleted document is back after restart")
	}
	h := s.History(0, 0)
	if len(h) != 3 || h[0].Who != "alice" || h[1].Who != "bob" || h[2].Action != ActionDelete || h[2].Who != "carol" || h[0].Time.IsZero() {
		t.Fatalf("history = %+v", h)
	}

	// Rollback to 1 = a new version 4 with version 1's content.
	res, err = s.Rollback(1, ApplyOptions{Who: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 4 || len(res.Changes) != 2 {
		t.Fatalf("rollback = %+v", res)
	}
	if w := weights(t, s); w != "v1=90,v2=10" {
		t.Errorf("weights after rollback = %s", w)
	}
	if _, ok := s.Get(policy.Key{Kind: "Resilience", Name: "pay"}); !ok {
		t.Error("rollback did not restore the deleted document")
	}
	_, v1 := s.Snapshot()
	s.Close()
	s = open(t, dir)
	defer s.Close()
	_, v4 := s.Snapshot()
	if !policy.Equal(&v1[0], &v4[0]) || len(v1) != len(v4) {
		t.Error("rolled-back content differs after restart")
	}
	if h := s.History(3, 0); len(h) != 1 || h[0].RollbackTo != 1 || h[0].Version != 4 {
		t.Errorf("history since 3 = %+v", h)
	}
	if _, err := s.Rollback(9, ApplyOptions{}); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("rollback to a future version: %v", err)
	}
}

func TestTornLastLine(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.Apply(load(t, split9010), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash mid-write leaves half a line; it was never acknowledged.
	f, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"version":2,"time":"2026-`)
	f.Close()
	s = open(t, dir)
	if s.Version() != 1 || weights(t, s) != "v1=90,v2=10" {
		t.Fatalf("after torn line: version %d, %s", s.Version(), weights(t, s))
	}
	// The next write starts on a clean line and survives another restart.
	if _, err := s.Apply(load(t, split8020), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir)
	defer s.Close()
	if s.Version() != 2 || weights(t, s) != "v1=80,v2=20" {
		t.Errorf("after repair: version %d, %s", s.Version(), weights(t, s))
	}
}

func TestDamagedLogRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	s.Apply(load(t, split9010), ApplyOptions{})
	s.Apply(load(t, split8020), ApplyOptions{})
	s.Close()
	p := filepath.Join(dir, LogFile)
	b, _ := os.ReadFile(p)
	b[0] = '#'
	os.WriteFile(p, b, 0o644)
	_, err := Open(dir, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "line 1 is damaged") {
		t.Errorf("Open over a damaged log: %v", err)
	}
}

func TestSetRules(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	if _, err := s.Apply(load(t, split9010), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(split8020, "name: inv", "name: inv2", 1)
	_, err := s.Apply(load(t, other), ApplyOptions{})
	if !errors.As(err, new(*ValidationError)) || !strings.Contains(err.Error(), `already has route "inv"`) {
		t.Fatalf("second route for a service: %v", err)
	}
	// Nothing applied: same version.
	if s.Version() != 1 {
		t.Errorf("version = %d after a rejected apply", s.Version())
	}
	// The same holds for a dry run.
	if _, err := s.Apply(load(t, other), ApplyOptions{DryRun: true}); err == nil {
		t.Error("dry run accepted a second route for a service")
	}
}

func TestSyncFilesWin(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	// Applied through the API first, then the file takes it over.
	if _, err := s.Apply(load(t, split9010), ApplyOptions{Who: "api"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Sync("file:", items("file:a.yaml", load(t, split8020+"---\n"+outliers)), ApplyOptions{Who: "file:a.yaml"})
	if err != nil || res.Version != 2 || len(res.Changes) != 2 {
		t.Fatalf("sync = %+v, %v", res, err)
	}
	if w := weights(t, s); w != "v1=80,v2=20" {
		t.Errorf("weights = %s", w)
	}
	// The API can no longer change or delete it.
	_, err = s.Apply(load(t, split9010), ApplyOptions{})
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Source != "file:a.yaml" {
		t.Errorf("API apply over a file's document: %v", err)
	}
	if _, err := s.Delete(policy.Key{Kind: "Route", Name: "inv"}, ApplyOptions{}); !errors.As(err, &ce) {
		t.Errorf("API delete of a file's document: %v", err)
	}
	// Same file content: no new version.
	res, err = s.Sync("file:", items("file:a.yaml", load(t, split8020+"---\n"+outliers)), ApplyOptions{})
	if err != nil || res.Changed {
		t.Errorf("unchanged sync = %+v, %v", res, err)
	}
	// Removing a document from the file deletes it.
	// Moving a document to another file in the same sync is fine.
	res, err = s.Sync("file:", append(items("file:a.yaml", load(t, outliers)), items("file:b.yaml", load(t, split8020))...), ApplyOptions{})
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Op != OpUpdate || res.Changes[0].Source != "file:b.yaml" {
		t.Fatalf("move between files = %+v, %v", res, err)
	}
	res, err = s.Sync("file:", items("file:a.yaml", load(t, outliers)), ApplyOptions{})
	if err != nil || len(res.Changes) != 1 || res.Changes[0].Op != OpDelete {
		t.Fatalf("sync after removal = %+v, %v", res, err)
	}
	if _, ok := s.Get(policy.Key{Kind: "Route", Name: "inv"}); ok {
		t.Error("document removed from the file is still there")
	}
}

func TestSubscribe(t *testing.T) {
	s := open(t, t.TempDir())
	c := s.Subscribe()
	s.Apply(load(t, split9010), ApplyOptions{})
	s.Apply(load(t, split8020), ApplyOptions{})
	select {
	case <-c:
	default:
		t.Fatal("no notification after apply")
	}
	s.Close()
	if _, ok := <-c; ok {
		t.Error("channel not closed by Close")
	}
}

func items(src string, docs []policy.Document) []Item {
	out := make([]Item, len(docs))
	for i, d := range docs {
		out[i] = Item{d, src}
	}
	return out
}

func TestCompareAndPut(t *testing.T) {
	s, err := Open(t.TempDir(), prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	docs, err := policy.Load([]byte("kind: Route\nname: r\nservice: s\ntimeout: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := docs[0]
	key := d.Key()
	if _, err := s.CompareAndPut([]Put{{Key: key, After: &d}}, "", ApplyOptions{Who: "guard:g"}); err != nil {
		t.Fatal(err)
	}
	changed := d
	changed.Spec = &policy.Route{Timeout: policy.Duration(2 * time.Second)}
	// A concurrent apply happened: the expectation (absent) is stale.
	if _, err := s.CompareAndPut([]Put{{Key: key, After: &changed}}, "", ApplyOptions{}); !errors.As(err, new(*StaleError)) {
		t.Fatalf("put over a changed document: %v, want a StaleError", err)
	}
	res, err := s.CompareAndPut([]Put{{Key: key, Expect: &d, After: &changed}}, "", ApplyOptions{Who: "guard:g"})
	if err != nil || !res.Changed || res.Changes[0].Op != OpUpdate {
		t.Fatalf("put: %+v %v", res, err)
	}
	// Revert: back to exactly d, then delete.
	if _, err := s.CompareAndPut([]Put{{Key: key, Expect: &changed, After: &d}}, "", ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if it, _ := s.Get(key); !policy.Equal(&it.Document, &d) {
		t.Errorf("after revert: %+v", it)
	}
	if _, err := s.CompareAndPut([]Put{{Key: key, Expect: &d}}, "", ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(key); ok {
		t.Error("delete by put left the document")
	}
	h := s.History(0, 0)
	if len(h) != 4 || h[3].Action != ActionGuard || h[0].Who != "guard:g" {
		t.Errorf("history: %+v", h)
	}
}
