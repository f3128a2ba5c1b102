package healthcheck

import (
	"context"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Config is a Resilience policy's health_check.
type Config struct {
	Path               string
	Interval           time.Duration
	UnhealthyThreshold int
}

type state struct {
	fails     int
	unhealthy bool
}

// Checker checks endpoints until stopped. Safe for concurrent use.
type Checker struct {
	cfg    Config
	client *http.Client

	mu    sync.Mutex
	addrs []string
	hosts map[string]*state

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns a checker for cfg; Start begins the checks.
func New(cfg Config) *Checker {
	return &Checker{cfg: cfg, hosts: map[string]*state{},
		client: &http.Client{Timeout: cfg.Interval, Transport: &http.Transport{DisableKeepAlives: true}}}
}

// SetEndpoints sets the addresses to check; state of kept ones survives.
func (c *Checker) SetEndpoints(addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]*state, len(addrs))
	for _, a := range addrs {
		s := c.hosts[a]
		if s == nil {
			s = &state{}
		}
		next[a] = s
	}
	c.hosts, c.addrs = next, append([]string(nil), addrs...)
}

// Start runs the checks in the background until Stop.
func (c *Checker) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		for {
			c.CheckAll(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// Stop ends the checks and waits for them.
func (c *Checker) Stop() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// CheckAll checks every endpoint once, concurrently.
func (c *Checker) CheckAll(ctx context.Context) {
	c.mu.Lock()
	addrs := c.addrs
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.record(a, c.check(ctx, a))
		}()
	}
	wg.Wait()
}

func (c *Checker) check(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+c.cfg.Path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "meshscope-proxy-healthcheck")
	res, err := c.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10))
	_ = res.Body.Close()
	return res.StatusCode >= 200 && res.StatusCode < 400
}

func (c *Checker) record(addr string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.hosts[addr]
	if s == nil {
		return
	}
	if ok {
		s.fails, s.unhealthy = 0, false
		return
	}
	s.fails++
	if s.fails >= max(1, c.cfg.UnhealthyThreshold) {
		s.unhealthy = true
	}
}

// Excluded reports whether addr is unhealthy.
func (c *Checker) Excluded(addr string, _ time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.hosts[addr]
	return s != nil && s.unhealthy
}

// Unhealthy lists the unhealthy endpoints.
func (c *Checker) Unhealthy() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for a, s := range c.hosts {
		if s.unhealthy {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}
