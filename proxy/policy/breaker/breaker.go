package breaker

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/meshscope/meshscope/proxy/policy"
)

// Config is a Resilience policy's circuit_breaker.
type Config struct {
	MaxConnections int
	MaxPending     int
	MaxRequests    int
}

// Defaults are Envoy's thresholds.
var Defaults = Config{MaxConnections: 1024, MaxPending: 1024, MaxRequests: 1024}

// Breaker holds the counters of one service. Safe for concurrent use.
type Breaker struct {
	cfg      Config
	requests atomic.Int64
	conns    atomic.Int64
	pending  atomic.Int64
	slots    chan struct{} // connection slots (enforce)
}

// New returns a breaker for cfg.
func New(cfg Config) *Breaker {
	return &Breaker{cfg: cfg, slots: make(chan struct{}, max(1, cfg.MaxConnections))}
}

// Layer applies a Breaker.
type Layer struct {
	Ref     policy.Ref
	Breaker *Breaker
	Next    http.RoundTripper
}

// RoundTrip admits, queues or refuses one attempt.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	b := l.Breaker
	st := policy.FromContext(r.Context())
	refuse := func() (*http.Response, error) {
		st.Record(l.Ref, policy.DecisionBreakerOpen)
		if !l.Ref.Enforce {
			return nil, nil
		}
		res := policy.Respond(r, http.StatusServiceUnavailable, "circuit breaker open")
		return res, nil
	}
	n := b.requests.Add(1)
	release := func() { b.requests.Add(-1) }
	if n > int64(b.cfg.MaxRequests) {
		if res, _ := refuse(); res != nil {
			release()
			return res, nil
		}
	}
	if !l.Ref.Enforce {
		c := b.conns.Add(1)
		if n <= int64(b.cfg.MaxRequests) && c > int64(b.cfg.MaxConnections+b.cfg.MaxPending) {
			_, _ = refuse()
		}
		prev := release
		release = func() { b.conns.Add(-1); prev() }
		return l.send(r, release)
	}
	select {
	case b.slots <- struct{}{}:
	default:
		if b.pending.Add(1) > int64(b.cfg.MaxPending) {
			b.pending.Add(-1)
			release()
			return refuse()
		}
		select {
		case b.slots <- struct{}{}:
			b.pending.Add(-1)
		case <-r.Context().Done():
			b.pending.Add(-1)
			release()
			return nil, r.Context().Err()
		}
	}
	prev := release
	release = func() { <-b.slots; prev() }
	return l.send(r, release)
}

// send forwards r and calls release once the response body is closed (or
// at once on error).
func (l *Layer) send(r *http.Request, release func()) (*http.Response, error) {
	res, err := l.Next.RoundTrip(r)
	if err != nil || res == nil || res.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection (WebSocket) is not a request in flight;
		// its body must stay the transport's read-writer.
		release()
		return res, err
	}
	res.Body = &releaseBody{ReadCloser: res.Body, release: release}
	return res, nil
}

type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}
