package demo

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNextRequestMix(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	counts := map[string]int{}
	const n = 100_000
	for range n {
		m, p := NextRequest(rnd.Float64)
		key := m + " " + p
		if strings.HasPrefix(p, "/product/") {
			key = m + " /product/{id}"
		}
		counts[key]++
	}
	want := map[string]float64{"GET /": 0.30, "GET /product/{id}": 0.40, "GET /cart": 0.15, "POST /checkout": 0.15}
	for k, f := range want {
		if got := float64(counts[k]) / n; got < f-0.01 || got > f+0.01 {
			t.Errorf("%s fraction = %.3f, want %.2f", k, got, f)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("unexpected requests: %v", counts)
	}
}

func TestLoadSendsEveryKindOfRequest(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + r.URL.Path
		if strings.HasPrefix(r.URL.Path, "/product/") {
			key = r.Method + " /product/{id}"
		}
		mu.Lock()
		seen[key]++
		mu.Unlock()
		if r.URL.Path == "/checkout" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	l, err := NewLoad(srv.URL+"/", 200, 8, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan LoadStats)
	go func() { done <- l.Run(ctx) }()
	eventually(t, 20*time.Second, "every request kind", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["GET /"] > 0 && seen["GET /product/{id}"] > 0 && seen["GET /cart"] > 0 && seen["POST /checkout"] > 0
	})
	cancel()
	st := <-done
	mu.Lock()
	defer mu.Unlock()
	if st.Failed != int64(seen["POST /checkout"]) {
		t.Errorf("failed = %d, want the %d checkouts answered 502", st.Failed, seen["POST /checkout"])
	}
	if st.OK+st.Failed > st.Sent || st.OK == 0 {
		t.Errorf("inconsistent stats %+v", st)
	}
}

func TestNewLoadRejectsBadRate(t *testing.T) {
	if _, err := NewLoad("http://x", 0, 1, nil, 1); err == nil {
		t.Fatal("rate 0 accepted")
	}
}
