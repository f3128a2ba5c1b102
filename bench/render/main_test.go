package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/bench/report"
)

func TestRunRendersEveryResult(t *testing.T) {
	dir := t.TempDir()
	results := filepath.Join(dir, "results")
	for _, part := range []string{"proxy", "collector"} {
		r := &report.Result{Part: part, Command: "make bench WHAT=" + part, Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationSeconds: 1}
		r.AddTable("t", "a").AddRow("1")
		if _, err := report.Write(filepath.Join(results, report.FileName(part, false)), r); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "BENCHMARKS.md")
	if err := run(results, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	md := string(b)
	ci, pi := strings.Index(md, "\n## collector"), strings.Index(md, "\n## proxy")
	if ci < 0 || pi < 0 || ci > pi {
		t.Errorf("want one section per part in name order:\n%s", md)
	}
	if err := os.WriteFile(filepath.Join(results, "bad.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(results, out); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("a broken results file must fail naming it, got %v", err)
	}
}
