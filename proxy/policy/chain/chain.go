package chain

import (
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
	"github.com/meshscope/meshscope/proxy/policy/balancer"
	"github.com/meshscope/meshscope/proxy/policy/breaker"
	"github.com/meshscope/meshscope/proxy/policy/fault"
	"github.com/meshscope/meshscope/proxy/policy/healthcheck"
	"github.com/meshscope/meshscope/proxy/policy/mirror"
	"github.com/meshscope/meshscope/proxy/policy/outlier"
	"github.com/meshscope/meshscope/proxy/policy/ratelimit"
	"github.com/meshscope/meshscope/proxy/policy/retry"
	"github.com/meshscope/meshscope/proxy/policy/route"
)

// Spec is every policy and endpoint the proxy needs: one entry per
// destination service (and its own service, for inbound policies).
type Spec struct {
	Version  uint64
	Services []Service
}

// Service is one service's endpoints and policies.
type Service struct {
	Name       string
	Endpoints  []balancer.Address
	Route      *Route
	Resilience *Resilience
}

// Route is a compiled Route policy.
type Route struct {
	Name   string
	Mode   string // observe, enforce or "" (the proxy's mode)
	Rules  []route.Rule
	Retry  retry.Config // Budget ignored; see Budget
	Budget *Budget
	Mirror *mirror.Config
	Fault  *fault.Config
}

// Budget is a retry budget's parameters.
type Budget struct {
	Ratio        float64
	MinPerSecond float64
}

// Resilience is a compiled Resilience policy.
type Resilience struct {
	Name         string
	Mode         string
	LoadBalancer string // balancer.P2CEWMA (default) or balancer.RoundRobin
	Breaker      *breaker.Config
	Outlier      *outlier.Config
	RateLimit    *RateLimit
	HealthCheck  *healthcheck.Config
}

// RateLimit is a token bucket's parameters.
type RateLimit struct {
	RequestsPerSecond float64
	Burst             int
}

// Engine holds the current chains. Safe for concurrent use.
type Engine struct {
	self           string
	apps           []string // the local app's addresses (inbound targets)
	defaultEnforce bool
	transport      http.RoundTripper
	logger         *slog.Logger
	static         map[string][]string

	cur atomic.Pointer[table]

	mu    sync.Mutex // serializes Apply and Close
	state map[string]*svcState
}

type table struct {
	version uint64
	addrs   map[string][]string // endpoints per service, for opaque TCP
	next    atomic.Uint64
	out     map[string]http.RoundTripper
	in      http.RoundTripper // nil = no inbound policy
}

// svcState is what survives config swaps for one service.
type svcState struct {
	pool *balancer.Pool

	budgetCfg Budget
	budget    *retry.Budget

	breakerCfg breaker.Config
	breaker    *breaker.Breaker

	outlierCfg outlier.Config
	detector   *outlier.Detector

	healthCfg healthcheck.Config
	checker   *healthcheck.Checker

	limitCfg RateLimit
	bucket   *ratelimit.Bucket

	mirror *mirror.Mirror

	outlierRef, healthRef policy.Ref
	endpoints             []balancer.Address
}

// New returns an engine for a proxy of service self whose --mode is
// enforce (defaultEnforce) or observe; static holds the --upstream
// addresses per service, used while discovery reports no endpoint for it;
// apps are the local app's addresses (health-checked by the own service's
// policy). Requests leave through transport.
func New(self string, defaultEnforce bool, static map[string][]string, apps []string, transport http.RoundTripper, logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{self: self, apps: apps, defaultEnforce: defaultEnforce, static: static, transport: transport, logger: logger, state: map[string]*svcState{}}
	e.Apply(Spec{})
	return e
}

// Outbound returns the chain for service, or nil when the engine has none
// (the service has neither static nor discovered endpoints).
func (e *Engine) Outbound(service string) http.RoundTripper {
	return e.cur.Load().out[service]
}

// Addr returns one of service's endpoints round-robin ("" when it has
// none): where opaque TCP connections to a discovered service go, since
// no HTTP policy applies to them.
func (e *Engine) Addr(service string) string {
	t := e.cur.Load()
	a := t.addrs[service]
	if len(a) == 0 {
		return ""
	}
	return a[(t.next.Add(1)-1)%uint64(len(a))]
}

// Inbound returns the chain in front of the local app, or nil.
func (e *Engine) Inbound() http.RoundTripper { return e.cur.Load().in }

// RoundTrip sends r through the chain of its policy state (package policy
// context): the inbound chain or the destination service's outbound chain;
// requests without policy state or chain go straight to the transport.
func (e *Engine) RoundTrip(r *http.Request) (*http.Response, error) {
	st := policy.FromContext(r.Context())
	if st == nil {
		return e.transport.RoundTrip(r)
	}
	var rt http.RoundTripper
	if st.Inbound {
		rt = e.Inbound()
	} else {
		rt = e.Outbound(st.Service)
	}
	if rt == nil {
		return e.transport.RoundTrip(r)
	}
	return rt.RoundTrip(r)
}

// Version is the applied spec's version.
func (e *Engine) Version() uint64 { return e.cur.Load().version }

func (e *Engine) enforce(mode string) bool {
	switch mode {
	case policy.ModeEnforce:
		return true
	case policy.ModeObserve:
		return false
	}
	return e.defaultEnforce
}

// Apply builds the chains of spec and swaps them in.
func (e *Engine) Apply(spec Spec) {
	e.mu.Lock()
	defer e.mu.Unlock()
	services := map[string]Service{}
	for name := range e.static {
		services[name] = Service{Name: name}
	}
	for _, s := range spec.Services {
		services[s.Name] = s
	}
	t := &table{version: spec.Version, out: map[string]http.RoundTripper{}, addrs: map[string][]string{}}
	next := map[string]*svcState{}
	for name, s := range services {
		st := e.state[name]
		if st == nil {
			st = &svcState{pool: balancer.NewPool(), mirror: mirror.New()}
		}
		next[name] = st
		eps := s.Endpoints
		if len(eps) == 0 {
			for _, a := range e.static[name] {
				eps = append(eps, balancer.Address{Addr: a, Version: ""})
			}
		}
		st.endpoints = eps
		for _, a := range eps {
			t.addrs[name] = append(t.addrs[name], a.Addr)
		}
		if name == e.self {
			t.in = e.inbound(s, st)
		}
		if len(eps) == 0 && name == e.self {
			continue // only inbound policies for our own service
		}
		t.out[name] = e.build(s, st, eps)
	}
	for name, st := range e.state {
		if next[name] != st && st.checker != nil {
			st.checker.Stop()
		}
	}
	e.state = next
	e.cur.Store(t)
}

// inbound composes the chain in front of the local app from the proxy's
// own service's Resilience policy: the rate limit, and the health check of
// the app, whose verdict Health reports to the control plane (callers then
// skip this instance) in enforce mode; in observe mode requests that
// arrive while the app is unhealthy count an "unhealthy" decision.
func (e *Engine) inbound(s Service, st *svcState) http.RoundTripper {
	res := s.Resilience
	if res == nil || res.HealthCheck == nil {
		if st.checker != nil {
			st.checker.Stop()
			st.checker = nil
		}
	}
	if res == nil {
		st.bucket = nil
		return nil
	}
	ref := policy.Ref{Kind: policy.KindResilience, Name: res.Name, Enforce: e.enforce(res.Mode)}
	var rt http.RoundTripper = e.transport
	if res.RateLimit != nil {
		rl := *res.RateLimit
		if st.bucket == nil || st.limitCfg != rl {
			st.bucket, st.limitCfg = ratelimit.NewBucket(rl.RequestsPerSecond, rl.Burst), rl
		}
		rt = &ratelimit.Layer{Ref: ref, Bucket: st.bucket, Next: rt}
	} else {
		st.bucket = nil
	}
	if res.HealthCheck != nil {
		cfg := *res.HealthCheck
		if st.checker == nil || st.healthCfg != cfg {
			if st.checker != nil {
				st.checker.Stop()
			}
			st.checker, st.healthCfg = healthcheck.New(cfg), cfg
			st.checker.SetEndpoints(e.apps)
			st.checker.Start()
		}
		st.healthRef = ref
		if !ref.Enforce {
			checker, next := st.checker, rt
			rt = policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				if len(checker.Unhealthy()) > 0 {
					policy.FromContext(r.Context()).Record(ref, policy.DecisionUnhealthy)
				}
				return next.RoundTrip(r)
			})
		}
	}
	if res.RateLimit == nil && res.HealthCheck == nil {
		return nil
	}
	return rt
}

// Health is the local app's health as the own service's health_check
// finds it: "healthy", "unhealthy" (some app address fails its checks and
// the policy is enforced), or "" without an enforced health check.
func (e *Engine) Health() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.state[e.self]
	if st == nil || st.checker == nil || !st.healthRef.Enforce {
		return ""
	}
	if len(st.checker.Unhealthy()) > 0 {
		return "unhealthy"
	}
	return "healthy"
}

// build composes one service's outbound chain.
func (e *Engine) build(s Service, st *svcState, eps []balancer.Address) http.RoundTripper {
	addrs := make([]string, len(eps))
	for i, a := range eps {
		addrs[i] = a.Addr
	}
	lb := &balancer.Layer{Endpoints: st.pool.Endpoints(eps), Next: e.transport}
	res := s.Resilience
	if res != nil {
		ref := policy.Ref{Kind: policy.KindResilience, Name: res.Name, Enforce: e.enforce(res.Mode)}
		lb.Algorithm = res.LoadBalancer
		if res.Outlier != nil {
			cfg := withOutlierDefaults(*res.Outlier)
			if st.detector == nil || st.outlierCfg != cfg {
				st.detector, st.outlierCfg = outlier.New(cfg), cfg
			}
			st.detector.SetEndpoints(addrs)
			st.outlierRef = ref
			lb.Filters = append(lb.Filters, balancer.FilterRef{Ref: ref, Decision: policy.DecisionEjected, Filter: st.detector})
			lb.Feedback = append(lb.Feedback, st.detector)
		} else {
			st.detector = nil
		}
	} else {
		st.detector = nil
	}
	var rt http.RoundTripper = lb
	if res != nil && res.Breaker != nil {
		cfg := *res.Breaker
		if st.breaker == nil || st.breakerCfg != cfg {
			st.breaker, st.breakerCfg = breaker.New(cfg), cfg
		}
		rt = &breaker.Layer{Ref: policy.Ref{Kind: policy.KindResilience, Name: res.Name, Enforce: e.enforce(res.Mode)}, Breaker: st.breaker, Next: rt}
	}
	r := s.Route
	if r == nil {
		return rt
	}
	ref := policy.Ref{Kind: policy.KindRoute, Name: r.Name, Enforce: e.enforce(r.Mode)}
	if rc := r.Retry; rc.Timeout > 0 || rc.Retries > 0 {
		if r.Budget != nil {
			if st.budget == nil || st.budgetCfg != *r.Budget {
				st.budget, st.budgetCfg = retry.NewBudget(r.Budget.Ratio, r.Budget.MinPerSecond), *r.Budget
			}
			rc.Budget = st.budget
		}
		rt = &retry.Layer{Ref: ref, Config: rc, Next: rt}
	}
	if r.Fault != nil {
		rt = &fault.Layer{Ref: ref, Config: *r.Fault, Next: rt}
	}
	if r.Mirror != nil && r.Mirror.Percent > 0 {
		rt = &mirror.Layer{Ref: ref, Config: *r.Mirror, Mirror: st.mirror, Send: lb, Next: rt, Service: s.Name}
	}
	if len(r.Rules) > 0 {
		rt = &route.Layer{Ref: ref, Config: &route.Config{Rules: r.Rules}, Next: rt}
	}
	return rt
}

func withOutlierDefaults(c outlier.Config) outlier.Config {
	d := outlier.Defaults
	if c.Consecutive5xx <= 0 {
		c.Consecutive5xx = d.Consecutive5xx
	}
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.BaseEjectionTime <= 0 {
		c.BaseEjectionTime = d.BaseEjectionTime
	}
	if c.MaxEjectionPercent <= 0 {
		c.MaxEjectionPercent = d.MaxEjectionPercent
	}
	return c
}

// EndpointState is one endpoint as this proxy sees it.
type EndpointState struct {
	Service  string    `json:"service"`
	Addr     string    `json:"addr"`
	Version  string    `json:"version"`
	Ejected  bool      `json:"ejected"`
	Reason   string    `json:"reason,omitempty"` // "outlier"
	Until    time.Time `json:"until,omitzero"`   // end of an outlier ejection
	Enforced bool      `json:"enforced"`         // whether traffic avoids it
}

// Endpoints reports every endpoint with its ejection state, sorted by
// service and address.
func (e *Engine) Endpoints(now time.Time) []EndpointState {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []EndpointState
	for name, st := range e.state {
		ejected := map[string]outlier.Ejection{}
		if st.detector != nil {
			for _, ej := range st.detector.Ejected(now) {
				ejected[ej.Addr] = ej
			}
		}
		for _, a := range st.endpoints {
			es := EndpointState{Service: name, Addr: a.Addr, Version: a.Version}
			if ej, ok := ejected[a.Addr]; ok {
				es.Ejected, es.Reason, es.Until, es.Enforced = true, "outlier", ej.Until, st.outlierRef.Enforce
			}
			out = append(out, es)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// Close stops the background health checks.
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.state {
		if st.checker != nil {
			st.checker.Stop()
			st.checker = nil
		}
	}
}
