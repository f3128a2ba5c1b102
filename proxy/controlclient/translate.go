package controlclient

import (
	"fmt"
	"regexp"
	"sort"

	cpolicy "github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/proxy/policy/balancer"
	"github.com/meshscope/meshscope/proxy/policy/breaker"
	"github.com/meshscope/meshscope/proxy/policy/chain"
	"github.com/meshscope/meshscope/proxy/policy/fault"
	"github.com/meshscope/meshscope/proxy/policy/healthcheck"
	"github.com/meshscope/meshscope/proxy/policy/mirror"
	"github.com/meshscope/meshscope/proxy/policy/outlier"
	"github.com/meshscope/meshscope/proxy/policy/retry"
	"github.com/meshscope/meshscope/proxy/policy/route"
)

// Compile turns a snapshot into the chain spec, validating what the proxy
// relies on (regexes, conditions); an error names the service, policy and
// field.
func Compile(s *wire.Snapshot) (chain.Spec, error) {
	spec := chain.Spec{Version: s.Version}
	names := make([]string, 0, len(s.Services))
	for name := range s.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ws := s.Services[name]
		svc := chain.Service{Name: name}
		healthy := 0
		for _, ep := range ws.Endpoints {
			if ep.Health != wire.HealthUnhealthy {
				healthy++
			}
		}
		for _, ep := range ws.Endpoints {
			if healthy > 0 && ep.Health == wire.HealthUnhealthy {
				continue // the endpoint's own proxy says its app is down
			}
			svc.Endpoints = append(svc.Endpoints, balancer.Address{Addr: ep.Address, Version: ep.Version})
		}
		for i := range ws.Policies {
			d := &ws.Policies[i]
			if err := d.Validate(); err != nil {
				return chain.Spec{}, fmt.Errorf("service %s: %w", name, err)
			}
			switch spec := d.Spec.(type) {
			case *cpolicy.Route:
				r, err := compileRoute(d, spec)
				if err != nil {
					return chain.Spec{}, fmt.Errorf("service %s: %s: %w", name, d.Ref(), err)
				}
				svc.Route = r
			case *cpolicy.Resilience:
				svc.Resilience = compileResilience(d, spec)
			}
		}
		spec.Services = append(spec.Services, svc)
	}
	return spec, nil
}

func compileRoute(d *cpolicy.Document, r *cpolicy.Route) (*chain.Route, error) {
	out := &chain.Route{Name: d.Name, Mode: string(d.Mode)}
	for i, rule := range r.Rules {
		cr := route.Rule{}
		if m := rule.Match; m != nil {
			cr.Match = route.Match{PathPrefix: m.PathPrefix, Method: m.Method}
			if m.PathRegex != "" {
				re, err := regexp.Compile("^(?:" + m.PathRegex + ")$")
				if err != nil {
					return nil, fmt.Errorf("rules[%d].match.path_regex: %w", i, err)
				}
				cr.Match.PathRegex = re
			}
			for j, h := range m.Headers {
				hm := route.HeaderMatch{Name: h.Name, Exact: h.Exact}
				if h.Regex != "" {
					re, err := regexp.Compile("^(?:" + h.Regex + ")$")
					if err != nil {
						return nil, fmt.Errorf("rules[%d].match.headers[%d].regex: %w", i, j, err)
					}
					hm.Regex = re
				}
				cr.Match.Headers = append(cr.Match.Headers, hm)
			}
		}
		for _, b := range rule.Backends {
			cr.Backends = append(cr.Backends, route.Backend{Version: b.Version, Weight: b.Weight})
		}
		out.Rules = append(out.Rules, cr)
	}
	out.Retry.Timeout = r.Timeout.D()
	if t := r.Retries; t != nil {
		out.Retry.Retries = t.Attempts
		out.Retry.PerTryTimeout = t.PerTryTimeout.D()
		for i, on := range t.On {
			if c, ok := retry.ParseCondition(on); ok {
				out.Retry.On |= c
				continue
			}
			var code int
			if _, err := fmt.Sscanf(on, "%d", &code); err != nil || code < 400 || code > 599 {
				return nil, fmt.Errorf("retries.on[%d]: %q is not a retry condition", i, on)
			}
			out.Retry.Statuses = append(out.Retry.Statuses, code)
		}
		if b := t.Budget; b != nil {
			out.Budget = &chain.Budget{Ratio: b.Ratio, MinPerSecond: float64(b.MinPerSecond)}
		}
	}
	if m := r.Mirror; m != nil {
		out.Mirror = &mirror.Config{Version: m.Version, Percent: m.Percent}
	}
	if f := r.Fault; f != nil {
		fc := &fault.Config{}
		if f.Delay != nil {
			fc.DelayPercent, fc.Delay = f.Delay.Percent, f.Delay.Duration.D()
		}
		if f.Abort != nil {
			fc.AbortPercent, fc.AbortStatus, fc.AbortHeaders = f.Abort.Percent, f.Abort.Status, f.Abort.Headers
		}
		out.Fault = fc
	}
	return out, nil
}

func compileResilience(d *cpolicy.Document, r *cpolicy.Resilience) *chain.Resilience {
	out := &chain.Resilience{Name: d.Name, Mode: string(d.Mode), LoadBalancer: r.LoadBalancer}
	if c := r.CircuitBreaker; c != nil {
		out.Breaker = &breaker.Config{MaxConnections: c.MaxConnections, MaxPending: c.MaxPending, MaxRequests: c.MaxRequests}
	}
	if o := r.OutlierDetection; o != nil {
		out.Outlier = &outlier.Config{Consecutive5xx: o.Consecutive5xx, Interval: o.Interval.D(),
			BaseEjectionTime: o.BaseEjectionTime.D(), MaxEjectionPercent: o.MaxEjectionPercent}
	}
	if l := r.RateLimit; l != nil {
		out.RateLimit = &chain.RateLimit{RequestsPerSecond: l.RequestsPerSecond, Burst: l.Burst}
	}
	if h := r.HealthCheck; h != nil {
		out.HealthCheck = &healthcheck.Config{Path: h.Path, Interval: h.Interval.D(), UnhealthyThreshold: h.UnhealthyThreshold}
	}
	return out
}
