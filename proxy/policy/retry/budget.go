package retry

import (
	"sync"
	"time"
)

// Budget is a retry budget: over a sliding window of Window, retries may
// reach MinPerSecond*Window seconds plus Ratio times the requests made.
// It is safe for concurrent use.
type Budget struct {
	ratio   float64
	reserve float64

	mu      sync.Mutex
	buckets [budgetBuckets]budgetBucket
}

// Window is the span over which a budget counts requests and retries
// (Linkerd's default TTL).
const Window = 10 * time.Second

const budgetBuckets = 10

type budgetBucket struct {
	sec               int64
	requests, retries float64
}

// NewBudget returns a budget allowing ratio extra load plus minPerSecond
// retries per second.
func NewBudget(ratio, minPerSecond float64) *Budget {
	return &Budget{ratio: ratio, reserve: minPerSecond * Window.Seconds()}
}

func (b *Budget) bucket(now time.Time) *budgetBucket {
	sec := now.Unix()
	bk := &b.buckets[sec%budgetBuckets]
	if bk.sec != sec {
		*bk = budgetBucket{sec: sec}
	}
	return bk
}

func (b *Budget) sums(now time.Time) (requests, retries float64) {
	sec := now.Unix()
	for i := range b.buckets {
		bk := &b.buckets[i]
		if sec-bk.sec < budgetBuckets && bk.sec <= sec {
			requests += bk.requests
			retries += bk.retries
		}
	}
	return requests, retries
}

// Deposit records one request.
func (b *Budget) Deposit(now time.Time) {
	b.mu.Lock()
	b.bucket(now).requests++
	b.mu.Unlock()
}

// Withdraw takes one retry from the budget, reporting false (and taking
// nothing) when it is spent.
func (b *Budget) Withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	bk := b.bucket(now)
	requests, retries := b.sums(now)
	if retries+1 > b.reserve+b.ratio*requests {
		return false
	}
	bk.retries++
	return true
}
