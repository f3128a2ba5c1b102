package healthcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestChecker(t *testing.T) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	dead := "127.0.0.1:1" // nothing listens on port 1

	c := New(Config{Path: "/healthz", Interval: time.Second, UnhealthyThreshold: 2})
	c.SetEndpoints([]string{addr, dead})
	ctx := context.Background()
	steps := []struct {
		failing   bool
		unhealthy []string
	}{
		{false, nil},                 // dead: 1 failure, below threshold
		{false, []string{dead}},      // dead: 2 failures
		{true, []string{dead}},       // addr: 1 failure
		{true, []string{addr, dead}}, // addr: 2 failures
		{false, []string{dead}},      // addr recovers at once
	}
	for i, s := range steps {
		failing.Store(s.failing)
		c.CheckAll(ctx)
		got := c.Unhealthy()
		sort.Strings(s.unhealthy)
		if strings.Join(got, ",") != strings.Join(s.unhealthy, ",") {
			t.Fatalf("round %d: unhealthy %v, want %v", i, got, s.unhealthy)
		}
	}
	if !c.Excluded(dead, time.Now()) || c.Excluded(addr, time.Now()) {
		t.Fatal("Excluded disagrees with Unhealthy")
	}
}

func TestStartStop(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	c := New(Config{Path: "/", Interval: 20 * time.Millisecond, UnhealthyThreshold: 1})
	c.SetEndpoints([]string{strings.TrimPrefix(srv.URL, "http://")})
	c.Start()
	deadline := time.Now().Add(10 * time.Second)
	for hits.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	c.Stop()
	if hits.Load() < 3 {
		t.Fatalf("only %d checks", hits.Load())
	}
}
