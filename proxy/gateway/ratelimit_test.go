package gateway

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(10, 5)
	t0 := time.Unix(100, 0)
	for i := range 5 {
		if v := l.take("a", t0); !v.allowed || v.remaining != 4-i {
			t.Fatalf("burst request %d: %+v", i, v)
		}
	}
	v := l.take("a", t0)
	if v.allowed || v.retryAfter != 100*time.Millisecond || ceilSeconds(v.retryAfter) != "1" {
		t.Fatalf("over the burst: %+v", v)
	}
	if !l.take("b", t0).allowed {
		t.Fatal("keys share a bucket")
	}
	// 1 s later: 10 tokens refilled, capped at the burst of 5.
	n := 0
	for l.take("a", t0.Add(time.Second)).allowed {
		n++
	}
	if n != 5 {
		t.Fatalf("after 1s %d allowed, want 5 (burst cap)", n)
	}
	if d := newLimiter(2.5, 0); d.burst != 3 {
		t.Fatalf("default burst %v, want 3 (one second's worth)", d.burst)
	}
}

func TestLimiterBounded(t *testing.T) {
	l := newLimiter(1000, 1)
	t0 := time.Unix(0, 0)
	for i := range maxBuckets + 10 {
		l.take(string(rune(i)), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(l.buckets) > maxBuckets {
		t.Fatalf("%d buckets, bound %d", len(l.buckets), maxBuckets)
	}
}
