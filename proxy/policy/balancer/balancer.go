package balancer

import (
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// Algorithms.
const (
	P2CEWMA    = "p2c-ewma"
	RoundRobin = "round-robin"
)

// Address is one endpoint of a service as discovery reports it.
type Address struct {
	Addr    string
	Version string
}

// Endpoint is an address with its load state (kept across config swaps).
type Endpoint struct {
	Address
	pending atomic.Int64

	mu    sync.Mutex
	ewma  float64 // ns, peak-sensitive
	stamp time.Time
}

// decayTau is how fast the peak-EWMA forgets (Linkerd's default decay).
const decayTau = 10 * time.Second

// defaultRTT is the latency assumed per outstanding request for an
// endpoint without samples.
const defaultRTT = 30 * time.Millisecond

// observe folds one latency sample into the peak-EWMA.
func (e *Endpoint) observe(rtt time.Duration, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := float64(rtt)
	switch {
	case e.stamp.IsZero() || s > e.ewma:
		e.ewma = s // peak: jump up at once
	default:
		w := math.Exp(-float64(now.Sub(e.stamp)) / float64(decayTau))
		e.ewma = e.ewma*w + s*(1-w)
	}
	e.stamp = now
}

// cost is the peak-EWMA latency, decayed towards zero for the time since
// the last sample (so an endpoint that gets no traffic is tried again, as
// in Linkerd), scaled by the outstanding requests.
func (e *Endpoint) cost(now time.Time) float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stamp.IsZero() {
		// No sample yet: free while idle, so a new endpoint is tried at
		// once, and defaultRTT per outstanding request after that.
		return float64(defaultRTT) * float64(e.pending.Load())
	}
	l := e.ewma * math.Exp(-float64(now.Sub(e.stamp))/float64(decayTau))
	return l * float64(e.pending.Load()+1)
}

// Pool keeps one Endpoint per address across config swaps, so load state
// survives them.
type Pool struct {
	mu sync.Mutex
	m  map[Address]*Endpoint
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{m: map[Address]*Endpoint{}} }

// Endpoints returns the endpoints for addrs, reusing known ones and
// forgetting the rest.
func (p *Pool) Endpoints(addrs []Address) []*Endpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Endpoint, 0, len(addrs))
	next := make(map[Address]*Endpoint, len(addrs))
	for _, a := range addrs {
		e := p.m[a]
		if e == nil {
			e = &Endpoint{Address: a}
		}
		next[a] = e
		out = append(out, e)
	}
	p.m = next
	return out
}

// Filter excludes endpoints (outlier detection, health checking).
type Filter interface {
	// Excluded reports whether the endpoint at addr should get no traffic.
	Excluded(addr string, now time.Time) bool
}

// Feedback receives each attempt's outcome (outlier detection).
type Feedback interface {
	Observe(addr string, failed bool, now time.Time)
}

// FilterRef is a filter with the policy it belongs to and the decision it
// records.
type FilterRef struct {
	Ref      policy.Ref
	Decision string
	Filter   Filter
}

// ErrNoEndpoint is returned when a service (or the routed version) has no
// endpoint.
var ErrNoEndpoint = errors.New("no endpoint")

// Layer balances attempts over Endpoints and sends them with Next.
type Layer struct {
	Endpoints []*Endpoint
	Algorithm string // P2CEWMA (default) or RoundRobin
	Filters   []FilterRef
	Feedback  []Feedback
	Next      http.RoundTripper

	rr atomic.Uint64
}

// RoundTrip picks an endpoint, points the request at it and sends it.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	st := policy.FromContext(r.Context())
	now := time.Now()
	var buf [16]*Endpoint
	cands := buf[:0]
	want := st.Version()
	for _, e := range l.Endpoints {
		if want == "" || e.Version == want {
			cands = append(cands, e)
		}
	}
	if len(cands) == 0 {
		return policy.Respond(r, http.StatusServiceUnavailable, "no endpoint for "+st.Service+" "+want), nil
	}
	var observed []*FilterRef // observe-mode filters, checked against the pick
	for i := range l.Filters {
		f := &l.Filters[i]
		if !f.Ref.Enforce {
			observed = append(observed, f)
			continue
		}
		kept := cands[:0:0]
		for _, e := range cands {
			if !f.Filter.Excluded(e.Addr, now) {
				kept = append(kept, e)
			}
		}
		if len(kept) < len(cands) && len(kept) > 0 { // all excluded: keep them all (panic mode)
			st.Record(f.Ref, f.Decision)
			cands = kept
		}
	}
	e := l.pick(cands, now)
	for _, f := range observed {
		if f.Filter.Excluded(e.Addr, now) {
			st.Record(f.Ref, f.Decision)
		}
	}
	r.URL.Host = e.Addr
	st.Attempt(e.Addr, e.Version)
	e.pending.Add(1)
	res, err := l.Next.RoundTrip(r)
	e.pending.Add(-1)
	done := time.Now()
	e.observe(done.Sub(now), done)
	failed := err != nil || res.StatusCode >= 500
	for _, fb := range l.Feedback {
		fb.Observe(e.Addr, failed, done)
	}
	return res, err
}

func (l *Layer) pick(c []*Endpoint, now time.Time) *Endpoint {
	if len(c) == 1 {
		return c[0]
	}
	if l.Algorithm == RoundRobin {
		return c[(l.rr.Add(1)-1)%uint64(len(c))]
	}
	i := rand.IntN(len(c))
	j := rand.IntN(len(c) - 1)
	if j >= i {
		j++
	}
	a, b := c[i], c[j]
	if b.cost(now) < a.cost(now) {
		return b
	}
	return a
}
