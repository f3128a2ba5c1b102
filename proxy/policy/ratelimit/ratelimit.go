package ratelimit

import (
	"net/http"
	"sync"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// Bucket is a token bucket safe for concurrent use.
type Bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

// NewBucket returns a full bucket refilled at rps up to burst tokens
// (burst < 1 counts as 1).
func NewBucket(rps float64, burst int) *Bucket {
	b := float64(burst)
	if b < 1 {
		b = 1
	}
	return &Bucket{rate: rps, burst: b, tokens: b}
}

// Allow takes one token at now, reporting whether there was one.
func (b *Bucket) Allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		if el := now.Sub(b.last).Seconds(); el > 0 {
			b.tokens += el * b.rate
			if b.tokens > b.burst {
				b.tokens = b.burst
			}
		}
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// Layer limits requests with Bucket.
type Layer struct {
	Ref    policy.Ref
	Bucket *Bucket
	Next   http.RoundTripper
	Now    func() time.Time // nil = time.Now
}

// RoundTrip answers 429 (enforce) when the bucket is empty.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	if !l.Bucket.Allow(now()) {
		policy.FromContext(r.Context()).Record(l.Ref, policy.DecisionRateLimited)
		if l.Ref.Enforce {
			res := policy.Respond(r, http.StatusTooManyRequests, "rate limited")
			res.Header.Set("Retry-After", "1")
			return res, nil
		}
	}
	return l.Next.RoundTrip(r)
}
