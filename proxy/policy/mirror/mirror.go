package mirror

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// Config is a Route policy's mirror section.
type Config struct {
	Version string
	Percent float64 // 0..100
}

// Limits of mirroring.
const (
	MaxInFlight = 64
	MaxBody     = 64 << 10
	Timeout     = 10 * time.Second
)

// Mirror sends copies; its in-flight bound is shared by every request of a
// service. Safe for concurrent use.
type Mirror struct {
	slots chan struct{}
}

// New returns a Mirror.
func New() *Mirror { return &Mirror{slots: make(chan struct{}, MaxInFlight)} }

// Layer mirrors requests through Send (a chain that reaches an endpoint of
// the pinned version) and forwards them with Next.
type Layer struct {
	Ref    policy.Ref
	Config Config
	Mirror *Mirror
	Send   http.RoundTripper
	Next   http.RoundTripper
	// Roll returns a uniform number in [0, 100); nil = math/rand/v2.
	Roll func() float64
	// Service names the copy's destination in its policy state.
	Service string
}

// RoundTrip sends a copy of r when it is chosen, then forwards r.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	roll := rand.Float64() * 100
	if l.Roll != nil {
		roll = l.Roll()
	}
	if roll < l.Config.Percent {
		policy.FromContext(r.Context()).Record(l.Ref, policy.DecisionMirror)
		if l.Ref.Enforce {
			l.send(r)
		}
	}
	return l.Next.RoundTrip(r)
}

func (l *Layer) send(r *http.Request) {
	if r.Header.Get("Upgrade") != "" {
		return // a protocol upgrade is not copied
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 || r.ContentLength > MaxBody {
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
		rest := r.Body
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), rest), rest}
		if err != nil || len(b) > MaxBody {
			return
		}
		body = b
	}
	select {
	case l.Mirror.slots <- struct{}{}:
	default:
		return // too many copies in flight: skip, never wait
	}
	st := policy.NewRequest(l.Service, nil)
	st.SetVersion(l.Config.Version)
	ctx, cancel := context.WithTimeout(policy.NewContext(context.Background(), st), Timeout)
	c := r.Clone(ctx)
	c.URL.Host = r.URL.Host
	if body != nil {
		c.Body = io.NopCloser(bytes.NewReader(body))
	} else {
		c.Body = http.NoBody
	}
	go func() {
		defer func() { <-l.Mirror.slots }()
		defer cancel()
		res, err := l.Send.RoundTrip(c)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
		}
	}()
}
