package demo

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// LoadStats counts what a Load run sent.
type LoadStats struct {
	Sent    int64 // requests sent
	OK      int64 // answered 2xx–4xx
	Failed  int64 // answered 5xx or not answered
	Skipped int64 // not sent because MaxInFlight requests were pending
}

func (s LoadStats) String() string {
	return fmt.Sprintf("%d requests sent, %d ok, %d failed, %d skipped", s.Sent, s.OK, s.Failed, s.Skipped)
}

// Load sends a steady stream of shop requests to the web front end.
type Load struct {
	target      string
	rate        float64
	client      *http.Client
	maxInFlight int
	seed        uint64
	// Authorize, if set, adds credentials to a request before it is sent.
	Authorize func(*http.Request)

	sent, ok, failed, skipped atomic.Int64
}

// NewLoad returns a generator sending rate requests per second to target
// (a base URL such as "http://127.0.0.1:4140"), at most maxInFlight at once.
func NewLoad(target string, rate float64, maxInFlight int, client *http.Client, seed uint64) (*Load, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("load rate %g: must be positive", rate)
	}
	if maxInFlight <= 0 {
		maxInFlight = 64
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Load{target: strings.TrimSuffix(target, "/"), rate: rate, client: client, maxInFlight: maxInFlight, seed: seed}, nil
}

// NextRequest draws the next shop request: the home page, a product page,
// the cart or a checkout. rnd returns uniform numbers in [0,1).
func NextRequest(rnd func() float64) (method, path string) {
	switch x := rnd(); {
	case x < 0.30:
		return http.MethodGet, "/"
	case x < 0.70:
		return http.MethodGet, fmt.Sprintf("/product/%d", 1+int(rnd()*20))
	case x < 0.85:
		return http.MethodGet, "/cart"
	default:
		return http.MethodPost, "/checkout"
	}
}

// Stats returns the counts so far.
func (l *Load) Stats() LoadStats {
	return LoadStats{Sent: l.sent.Load(), OK: l.ok.Load(), Failed: l.failed.Load(), Skipped: l.skipped.Load()}
}

// Run sends requests until ctx is cancelled, then waits for the pending ones
// (they are cancelled with ctx) and returns the counts.
func (l *Load) Run(ctx context.Context) LoadStats {
	rnd := rand.New(rand.NewPCG(l.seed, l.seed+1))
	interval := time.Duration(float64(time.Second) / l.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sem := make(chan struct{}, l.maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return l.waitStats(&wg)
		case <-tick.C:
		}
		method, path := NextRequest(rnd.Float64)
		select {
		case sem <- struct{}{}:
		default:
			l.skipped.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			l.send(ctx, method, path)
		}()
	}
}

func (l *Load) waitStats(wg *sync.WaitGroup) LoadStats {
	wg.Wait()
	return l.Stats()
}

func (l *Load) send(ctx context.Context, method, path string) {
	req, err := http.NewRequestWithContext(ctx, method, l.target+path, nil)
	if err != nil {
		l.failed.Add(1)
		return
	}
	req.Header.Set("User-Agent", "meshscope-demo-load")
	if l.Authorize != nil {
		l.Authorize(req)
	}
	l.sent.Add(1)
	res, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.failed.Add(1)
		}
		return
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode >= 500 {
		l.failed.Add(1)
	} else {
		l.ok.Add(1)
	}
}
