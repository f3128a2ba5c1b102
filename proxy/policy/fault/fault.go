package fault

import (
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// Config is a Route policy's fault section. Percentages are 0..100.
type Config struct {
	DelayPercent float64
	Delay        time.Duration
	AbortPercent float64
	AbortStatus  int
	// AbortHeaders are set on aborted answers.
	AbortHeaders map[string]string
}

// Layer injects the faults of Config.
type Layer struct {
	Ref    policy.Ref
	Config Config
	Next   http.RoundTripper
	// Roll returns a uniform number in [0, 100); nil = math/rand/v2.
	Roll func() float64
}

func (l *Layer) roll() float64 {
	if l.Roll != nil {
		return l.Roll()
	}
	return rand.Float64() * 100
}

// RoundTrip delays and/or aborts the request as configured.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	st := policy.FromContext(r.Context())
	if c := l.Config; c.DelayPercent > 0 && c.Delay > 0 && l.roll() < c.DelayPercent {
		st.Record(l.Ref, policy.DecisionFaultDelay)
		if l.Ref.Enforce {
			t := time.NewTimer(c.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return nil, r.Context().Err()
			}
		}
	}
	if c := l.Config; c.AbortPercent > 0 && l.roll() < c.AbortPercent {
		st.Record(l.Ref, policy.DecisionFaultAbort)
		if l.Ref.Enforce {
			res := policy.Respond(r, c.AbortStatus, "fault injected")
			for k, v := range c.AbortHeaders {
				res.Header.Set(k, v)
			}
			return res, nil
		}
	}
	return l.Next.RoundTrip(r)
}
