package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func TestGCPercentConfig(t *testing.T) {
	var errb strings.Builder
	cfg, err := parseServerConfig(nil, &errb)
	if err != nil || cfg.GCPercent != defaultGCPercent {
		t.Fatalf("default: %d, %v", cfg.GCPercent, err)
	}
	if cfg, err = parseServerConfig([]string{"--gc-percent", "0"}, &errb); err != nil || cfg.GCPercent != 0 {
		t.Fatalf("--gc-percent 0: %d, %v", cfg.GCPercent, err)
	}
	for _, bad := range []string{"5", "-1", "20000"} {
		if _, err := parseServerConfig([]string{"--gc-percent", bad}, &errb); err == nil || !strings.Contains(err.Error(), "gc_percent") {
			t.Errorf("--gc-percent %s: %v, want an error naming gc_percent", bad, err)
		}
	}
}

func TestSetGCPercentRestores(t *testing.T) {
	t.Setenv("GOGC", "")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	restore := setGCPercent(40, logger)
	if got := debug.SetGCPercent(40); got != 40 {
		t.Errorf("GC percent %d, want 40", got)
	}
	restore()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("restored GC percent %d, want 100", got)
	}
	t.Setenv("GOGC", "200")
	setGCPercent(40, logger)()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set: GC percent %d, want it untouched (100)", got)
	}
}
