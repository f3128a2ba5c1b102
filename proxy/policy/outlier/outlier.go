package outlier

import (
	"sort"
	"sync"
	"time"
)

// Config is a Resilience policy's outlier_detection.
type Config struct {
	Consecutive5xx     int
	Interval           time.Duration
	BaseEjectionTime   time.Duration
	MaxEjectionPercent float64
}

// Defaults are Envoy's.
var Defaults = Config{Consecutive5xx: 5, Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 10}

// MaxEjectionTime caps one ejection (Envoy's max_ejection_time default).
const MaxEjectionTime = 300 * time.Second

type host struct {
	consecutive int
	ejections   int
	until       time.Time // ejected while now < until
	lastReturn  time.Time // when the last ejection ended
}

// Detector tracks the endpoints of one service. Safe for concurrent use.
type Detector struct {
	cfg   Config
	mu    sync.Mutex
	hosts map[string]*host
}

// New returns a detector for cfg.
func New(cfg Config) *Detector {
	return &Detector{cfg: cfg, hosts: map[string]*host{}}
}

// SetEndpoints sets the endpoints the detector knows (the denominator of
// the ejection percentage); state of kept endpoints is preserved.
func (d *Detector) SetEndpoints(addrs []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	next := make(map[string]*host, len(addrs))
	for _, a := range addrs {
		h := d.hosts[a]
		if h == nil {
			h = &host{}
		}
		next[a] = h
	}
	d.hosts = next
}

func (d *Detector) ejectedCount(now time.Time) int {
	n := 0
	for _, h := range d.hosts {
		if now.Before(h.until) {
			n++
		}
	}
	return n
}

// Observe records one attempt's outcome at addr.
func (d *Detector) Observe(addr string, failed bool, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[addr]
	if h == nil {
		return
	}
	if !h.until.IsZero() && !now.Before(h.until) {
		// back in: the multiplier decays by one per interval spent in.
		h.lastReturn, h.until = h.until, time.Time{}
	}
	if !h.lastReturn.IsZero() && d.cfg.Interval > 0 && h.ejections > 0 {
		if n := int(now.Sub(h.lastReturn) / d.cfg.Interval); n > 0 {
			h.ejections = max(0, h.ejections-n)
			h.lastReturn = h.lastReturn.Add(time.Duration(n) * d.cfg.Interval)
		}
	}
	if !failed {
		h.consecutive = 0
		return
	}
	h.consecutive++
	if h.consecutive < d.cfg.Consecutive5xx || now.Before(h.until) {
		return
	}
	limit := max(1, int(float64(len(d.hosts))*d.cfg.MaxEjectionPercent/100))
	if d.ejectedCount(now) >= limit {
		return
	}
	h.consecutive = 0
	h.ejections++
	dur := time.Duration(h.ejections) * d.cfg.BaseEjectionTime
	if dur > MaxEjectionTime {
		dur = max(MaxEjectionTime, d.cfg.BaseEjectionTime)
	}
	h.until = now.Add(dur)
}

// Excluded reports whether addr is ejected at now.
func (d *Detector) Excluded(addr string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[addr]
	return h != nil && now.Before(h.until)
}

// Ejection is one ejected endpoint.
type Ejection struct {
	Addr      string
	Until     time.Time
	Ejections int
}

// Ejected lists the endpoints ejected at now, by address.
func (d *Detector) Ejected(now time.Time) []Ejection {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Ejection
	for a, h := range d.hosts {
		if now.Before(h.until) {
			out = append(out, Ejection{Addr: a, Until: h.until, Ejections: h.ejections})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}
