package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name  string
		rps   float64
		burst int
		at    []time.Duration // request offsets from t0
		want  []bool
	}{
		{"burst then empty", 1, 3, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, false}},
		{"refill", 10, 1, []time.Duration{0, 50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond}, []bool{true, false, true, false}},
		{"refill capped at burst", 100, 2, []time.Duration{0, 0, time.Hour, time.Hour, time.Hour}, []bool{true, true, true, true, false}},
		{"zero burst means one", 1, 0, []time.Duration{0, 0}, []bool{true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBucket(tc.rps, tc.burst)
			for i, at := range tc.at {
				if got := b.Allow(t0.Add(at)); got != tc.want[i] {
					t.Fatalf("request %d at +%s: allowed %v, want %v", i, at, got, tc.want[i])
				}
			}
		})
	}
}

func TestLayer(t *testing.T) {
	for _, enforce := range []bool{true, false} {
		t0 := time.Unix(1000, 0)
		l := &Layer{Ref: policy.Ref{Kind: policy.KindResilience, Name: "rl", Enforce: enforce}, Bucket: NewBucket(1, 2),
			Now: func() time.Time { return t0 },
			Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				return policy.Respond(r, 200, "ok"), nil
			})}
		st := policy.NewRequest("svc", nil)
		codes := []int{}
		for range 4 {
			r := httptest.NewRequest("GET", "/", nil)
			r = r.WithContext(policy.NewContext(r.Context(), st))
			res, err := l.RoundTrip(r)
			if err != nil {
				t.Fatal(err)
			}
			codes = append(codes, res.StatusCode)
		}
		want := []int{200, 200, 429, 429}
		if !enforce {
			want = []int{200, 200, 200, 200}
		}
		for i := range want {
			if codes[i] != want[i] {
				t.Fatalf("enforce=%v: codes %v, want %v", enforce, codes, want)
			}
		}
		if n := len(st.Decisions()); n != 2 {
			t.Fatalf("enforce=%v: %d decisions, want 2", enforce, n)
		}
	}
}
