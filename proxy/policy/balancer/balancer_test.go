package balancer

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

type set map[string]bool

func (s set) Excluded(addr string, _ time.Time) bool { return s[addr] }

type recordFeedback struct {
	mu     sync.Mutex
	failed map[string]int
}

func (f *recordFeedback) Observe(addr string, failed bool, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if failed {
		f.failed[addr]++
	}
}

func TestLayer(t *testing.T) {
	addrs := []Address{{"a:1", "v1"}, {"b:1", "v1"}, {"c:1", "v2"}}
	tests := []struct {
		name      string
		algo      string
		version   string
		filters   []FilterRef
		wantAddrs map[string]bool
		decisions int
	}{
		{"all endpoints", RoundRobin, "", nil, map[string]bool{"a:1": true, "b:1": true, "c:1": true}, 0},
		{"version only", RoundRobin, "v2", nil, map[string]bool{"c:1": true}, 0},
		{"p2c version", P2CEWMA, "v1", nil, map[string]bool{"a:1": true, "b:1": true}, 0},
		{"ejected enforced", RoundRobin, "v1", []FilterRef{{Ref: policy.Ref{Enforce: true}, Decision: "ejected", Filter: set{"a:1": true}}}, map[string]bool{"b:1": true}, 30},
		{"ejected observed", RoundRobin, "v1", []FilterRef{{Ref: policy.Ref{}, Decision: "ejected", Filter: set{"a:1": true}}}, map[string]bool{"a:1": true, "b:1": true}, 15},
		{"all excluded keeps all", RoundRobin, "v2", []FilterRef{{Ref: policy.Ref{Enforce: true}, Decision: "ejected", Filter: set{"c:1": true}}}, map[string]bool{"c:1": true}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			fb := &recordFeedback{failed: map[string]int{}}
			l := &Layer{Endpoints: NewPool().Endpoints(addrs), Algorithm: tc.algo, Filters: tc.filters, Feedback: []Feedback{fb},
				Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					seen[r.URL.Host] = true
					if r.URL.Host == "a:1" {
						return nil, errors.New("refused")
					}
					return policy.Respond(r, 200, "ok"), nil
				})}
			decisions := 0
			for range 30 {
				st := policy.NewRequest("svc", nil)
				st.SetVersion(tc.version)
				r := httptest.NewRequest("GET", "http://x/", nil)
				r = r.WithContext(policy.NewContext(r.Context(), st))
				_, _ = l.RoundTrip(r)
				decisions += len(st.Decisions())
				if st.Attempts() != 1 {
					t.Fatalf("attempts %d", st.Attempts())
				}
			}
			for a := range seen {
				if !tc.wantAddrs[a] {
					t.Errorf("sent to %s, allowed %v", a, tc.wantAddrs)
				}
			}
			if tc.algo == RoundRobin && len(seen) != len(tc.wantAddrs) {
				t.Errorf("round-robin reached %v, want all of %v", seen, tc.wantAddrs)
			}
			if seen["a:1"] && fb.failed["a:1"] == 0 {
				t.Errorf("failures of a:1 not fed back")
			}
			if tc.decisions == 15 {
				if decisions == 0 || decisions == 30 {
					t.Errorf("observed decisions %d, want those that picked a:1", decisions)
				}
			} else if decisions != tc.decisions {
				t.Errorf("decisions %d, want %d", decisions, tc.decisions)
			}
		})
	}
}

func TestNoEndpointForVersion(t *testing.T) {
	l := &Layer{Endpoints: NewPool().Endpoints([]Address{{"a:1", "v1"}}), Next: nil}
	st := policy.NewRequest("svc", nil)
	st.SetVersion("v9")
	r := httptest.NewRequest("GET", "http://x/", nil)
	r = r.WithContext(policy.NewContext(r.Context(), st))
	res, err := l.RoundTrip(r)
	if err != nil || res.StatusCode != 503 {
		t.Fatalf("got %v %v, want 503", res, err)
	}
}

func TestP2CPrefersFastEndpoint(t *testing.T) {
	eps := NewPool().Endpoints([]Address{{"fast:1", "v1"}, {"slow:1", "v1"}})
	now := time.Now()
	eps[0].observe(time.Millisecond, now)
	eps[1].observe(100*time.Millisecond, now)
	l := &Layer{Endpoints: eps}
	n := 0
	for range 200 {
		if l.pick(eps, now) == eps[0] {
			n++
		}
	}
	if n != 200 { // with two endpoints p2c compares both every time
		t.Fatalf("fast endpoint picked %d/200", n)
	}
	// Outstanding requests raise the cost.
	eps[0].pending.Store(1000)
	if l.pick(eps, now) != eps[1] {
		t.Fatal("loaded fast endpoint still preferred")
	}
	// An endpoint without traffic decays towards zero and is tried again.
	eps[0].pending.Store(0)
	eps[0].observe(time.Millisecond, now.Add(time.Minute))
	if l.pick(eps, now.Add(time.Minute)) != eps[1] {
		t.Fatal("idle slow endpoint not retried after a minute")
	}
}

func TestNewEndpointTriedFirst(t *testing.T) {
	eps := NewPool().Endpoints([]Address{{"old:1", "v1"}, {"new:1", "v1"}})
	now := time.Now()
	eps[0].observe(time.Millisecond, now)
	l := &Layer{Endpoints: eps}
	if l.pick(eps, now) != eps[1] {
		t.Fatal("idle endpoint without samples not tried")
	}
	eps[1].pending.Store(1) // busy with its first request: 30ms > 1ms
	if l.pick(eps, now) != eps[0] {
		t.Fatal("endpoint awaiting its first answer still preferred")
	}
}

func TestPeakEWMA(t *testing.T) {
	e := &Endpoint{}
	t0 := time.Unix(100, 0)
	e.observe(10*time.Millisecond, t0)
	e.observe(50*time.Millisecond, t0.Add(time.Second))
	if e.ewma != float64(50*time.Millisecond) {
		t.Fatalf("peak not taken: %v", time.Duration(e.ewma))
	}
	e.observe(10*time.Millisecond, t0.Add(time.Minute))
	if got := time.Duration(e.ewma); got > 11*time.Millisecond {
		t.Fatalf("after a minute at 10ms the estimate is %s", got)
	}
}

func TestPoolKeepsState(t *testing.T) {
	p := NewPool()
	a := p.Endpoints([]Address{{"a:1", "v1"}, {"b:1", "v1"}})
	b := p.Endpoints([]Address{{"b:1", "v1"}, {"c:1", "v2"}})
	if a[1] != b[0] {
		t.Fatal("endpoint b:1 not kept across updates")
	}
	c := p.Endpoints([]Address{{"a:1", "v1"}})
	if c[0] == a[0] {
		t.Fatal("forgotten endpoint a:1 came back with old state")
	}
}
