package breaker

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// TestLimits holds `inflight` attempts open upstream and sends one more.
func TestLimits(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		enforce  bool
		inflight int
		want     int // status of the extra attempt; 0 = still waiting (queued)
		decision bool
	}{
		{"below limits", Config{MaxConnections: 3, MaxPending: 0, MaxRequests: 10}, true, 2, 200, false},
		{"requests full", Config{MaxConnections: 10, MaxPending: 10, MaxRequests: 2}, true, 2, 503, true},
		{"connections full, no queue", Config{MaxConnections: 2, MaxPending: 0, MaxRequests: 10}, true, 2, 503, true},
		{"connections full, queued", Config{MaxConnections: 2, MaxPending: 1, MaxRequests: 10}, true, 2, 0, false},
		{"observe requests full", Config{MaxConnections: 10, MaxPending: 10, MaxRequests: 2}, false, 2, 200, true},
		{"observe connections and queue full", Config{MaxConnections: 1, MaxPending: 1, MaxRequests: 10}, false, 2, 200, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hold := make(chan struct{})
			var started sync.WaitGroup
			l := &Layer{Ref: policy.Ref{Enforce: tc.enforce}, Breaker: New(tc.cfg),
				Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					if r.URL.Path == "/hold" {
						started.Done()
						<-hold
					}
					return policy.Respond(r, 200, "ok"), nil
				})}
			var wg sync.WaitGroup
			for range tc.inflight {
				started.Add(1)
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := l.RoundTrip(httptest.NewRequest("GET", "/hold", nil))
					if err == nil {
						res.Body.Close()
					}
				}()
			}
			started.Wait()
			st := policy.NewRequest("svc", nil)
			ctx, cancel := context.WithTimeout(policy.NewContext(context.Background(), st), 200*time.Millisecond)
			defer cancel()
			res, err := l.RoundTrip(httptest.NewRequest("GET", "/extra", nil).WithContext(ctx))
			got := 0
			if err == nil {
				got = res.StatusCode
				res.Body.Close()
			}
			close(hold)
			wg.Wait()
			if got != tc.want {
				t.Errorf("extra attempt: status %d (err %v), want %d", got, err, tc.want)
			}
			if d := len(st.Decisions()) > 0; d != tc.decision {
				t.Errorf("decision recorded %v, want %v", d, tc.decision)
			}
			b := l.Breaker
			if b.requests.Load() != 0 || b.conns.Load() != 0 || len(b.slots) != 0 || b.pending.Load() != 0 {
				t.Errorf("counters not released: requests %d conns %d slots %d pending %d", b.requests.Load(), b.conns.Load(), len(b.slots), b.pending.Load())
			}
		})
	}
}
