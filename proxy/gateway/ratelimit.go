package gateway

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// maxBuckets bounds the client keys one route limit tracks; beyond it,
// buckets that have refilled (idle clients) are dropped first.
const maxBuckets = 1 << 16

// limiter is a route's token buckets, one per client key.
type limiter struct {
	rate  float64 // tokens per second
	burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rps float64, burst int) *limiter {
	b := float64(burst)
	if burst == 0 {
		b = math.Max(1, math.Ceil(rps)) // one second's worth
	}
	return &limiter{rate: rps, burst: b, buckets: map[string]*bucket{}}
}

// verdict is one rate-limit decision and its response headers.
type verdict struct {
	allowed    bool
	remaining  int
	retryAfter time.Duration // until the next token (denied only)
	reset      time.Duration // until the bucket is full
}

// take takes a token from key's bucket at now.
func (l *limiter) take(key string, now time.Time) verdict {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+el*l.rate)
	}
	b.last = now
	v := verdict{}
	if b.tokens >= 1 {
		b.tokens--
		v.allowed = true
	} else {
		v.retryAfter = time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	v.remaining = int(b.tokens)
	v.reset = time.Duration((l.burst - b.tokens) / l.rate * float64(time.Second))
	return v
}

// sweep drops the buckets that are full again (their clients were idle);
// if none is, it drops everything (a fresh bucket for all is the lesser
// harm than unbounded memory).
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		clear(l.buckets)
	}
}

// ceilSeconds renders d as whole seconds, rounded up, at least 1.
func ceilSeconds(d time.Duration) string {
	s := int64(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
