package guard

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/store"
)

// HeaderGuard marks answers of a guard's open breaker with the guard name.
const HeaderGuard = "x-meshscope-guard"

// plan is what one action of a guard writes.
type plan struct {
	puts    []store.Put
	summary []string
	// targets are the versions a shift or eject sends traffic to.
	targets []string
}

// planInput is what planning needs about the service.
type planInput struct {
	guard    *policy.Document
	route    *policy.Document // the service's Route, or nil
	res      *policy.Document // the service's Resilience, or nil
	versions []string         // versions with endpoints, sorted
	// instances is how many inbound proxies serve the service.
	instances int
	// inboundRate is the service's current inbound request rate; NaN
	// when unknown.
	inboundRate float64
}

// clone deep-copies a document through JSON.
func clone(d *policy.Document) *policy.Document {
	b, err := json.Marshal(d)
	if err != nil {
		panic(fmt.Sprintf("guard: encoding %s: %v", d.Ref(), err)) // validated documents always encode
	}
	var out policy.Document
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("guard: decoding %s: %v", d.Ref(), err))
	}
	return &out
}

// makePlan computes the documents the guard's actions write. An error is a
// reason not to act (a limit, nothing to act on).
func makePlan(in planInput) (plan, error) {
	g := in.guard.Guard()
	var p plan
	var route *policy.Document
	if in.route != nil {
		route = clone(in.route)
	}
	touchRoute := func() *policy.Route {
		if route == nil {
			route = &policy.Document{Meta: policy.Meta{Kind: policy.KindRoute, Name: "guard-" + in.guard.Name, Service: in.guard.Service}, Spec: &policy.Route{}}
		}
		route.Mode = policy.ModeEnforce
		return route.Route()
	}
	if s := g.Then.Shift; s != nil {
		weights := s.Weights
		if s.To != "" {
			weights = map[string]int{s.To: 100}
		}
		r := touchRoute()
		backends := backendsOf(weights)
		if len(r.Rules) == 0 {
			r.Rules = []policy.RouteRule{{}}
		}
		for i := range r.Rules {
			r.Rules[i].Backends = append([]policy.Backend(nil), backends...)
		}
		for _, b := range backends {
			if b.Weight > 0 {
				p.targets = append(p.targets, b.Version)
			}
		}
		p.summary = append(p.summary, fmt.Sprintf("shift %s to %s", in.guard.Service, weightsText(backends)))
	}
	if e := g.Then.Eject; e != nil {
		r := touchRoute()
		if len(r.Rules) == 0 {
			var ws []policy.Backend
			for _, v := range in.versions {
				ws = append(ws, policy.Backend{Version: v, Weight: 1})
			}
			r.Rules = []policy.RouteRule{{Backends: ws}}
		}
		targets := map[string]bool{}
		for i := range r.Rules {
			b, err := eject(r.Rules[i].Backends, e.Version)
			if err != nil {
				return plan{}, fmt.Errorf("eject %s: %w", e.Version, err)
			}
			r.Rules[i].Backends = b
			for _, x := range b {
				if x.Weight > 0 {
					targets[x.Version] = true
				}
			}
		}
		for v := range targets {
			p.targets = append(p.targets, v)
		}
		sort.Strings(p.targets)
		p.summary = append(p.summary, fmt.Sprintf("eject %s %s from load balancing (traffic to %s)", in.guard.Service, e.Version, strings.Join(p.targets, ", ")))
	}
	if b := g.Then.Break; b != nil {
		r := touchRoute()
		f := &policy.Fault{}
		if r.Fault != nil {
			f.Delay = r.Fault.Delay
		}
		f.Abort = &policy.FaultAbort{Percent: 100 - b.ProbePercent, Status: 503, Headers: map[string]string{HeaderGuard: in.guard.Name}}
		r.Fault = f
		p.summary = append(p.summary, fmt.Sprintf("open the breaker on %s for its callers (503, %v%% probes pass)", in.guard.Service, b.ProbePercent))
	}
	if route != nil && (in.route == nil || !policy.Equal(route, in.route)) {
		if err := route.Validate(); err != nil {
			return plan{}, err
		}
		p.puts = append(p.puts, store.Put{Key: route.Key(), Expect: in.route, After: route})
	}
	if s := g.Then.Shed; s != nil {
		total, text, err := shedRate(s, g.Limits, in.inboundRate)
		if err != nil {
			return plan{}, err
		}
		n := max(in.instances, 1)
		per := total / float64(n)
		var res *policy.Document
		if in.res != nil {
			res = clone(in.res)
		} else {
			docs, err := policy.Load(fmt.Appendf(nil, "kind: Resilience\nname: guard-%s\nservice: %s\n", in.guard.Name, in.guard.Service))
			if err != nil {
				return plan{}, err
			}
			res = &docs[0]
		}
		res.Mode = policy.ModeEnforce
		res.Resilience().RateLimit = &policy.RateLimit{RequestsPerSecond: per, Burst: int(math.Max(1, math.Ceil(per)))}
		if err := res.Validate(); err != nil {
			return plan{}, err
		}
		p.puts = append(p.puts, store.Put{Key: res.Key(), Expect: in.res, After: res})
		p.summary = append(p.summary, fmt.Sprintf("shed %s inbound to %s (%.4g rps at each of %d instances)", in.guard.Service, text, per, n))
	}
	if len(p.puts) == 0 {
		return plan{}, fmt.Errorf("nothing to change: the policies already say so")
	}
	return p, nil
}

// shedRate is the service's total inbound rate a shed allows, bounded by
// the guard's max_shed_percent of the current rate.
func shedRate(s *policy.GuardShed, l *policy.GuardLimits, current float64) (float64, string, error) {
	maxShed := 50.0
	if l != nil {
		maxShed = l.MaxShedPercent
	}
	known := !math.IsNaN(current) && current > 0
	if s.Percent > 0 {
		if !known {
			return 0, "", fmt.Errorf("shed %v%%: the service's inbound rate is not known yet", s.Percent)
		}
		pct := math.Min(s.Percent, maxShed)
		text := fmt.Sprintf("%.4g rps (%v%% of %.4g rps shed", current*(1-pct/100), pct, current)
		if pct < s.Percent {
			text += fmt.Sprintf(", limited from %v%% by max_shed_percent", s.Percent)
		}
		return current * (1 - pct/100), text + ")", nil
	}
	rps := s.RequestsPerSecond
	text := fmt.Sprintf("%.4g rps", rps)
	if floor := current * (1 - maxShed/100); known && rps < floor {
		text = fmt.Sprintf("%.4g rps (raised from %.4g rps: max_shed_percent %v of %.4g rps)", floor, rps, maxShed, current)
		rps = floor
	}
	return rps, text, nil
}

func backendsOf(weights map[string]int) []policy.Backend {
	vs := make([]string, 0, len(weights))
	for v := range weights {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	out := make([]policy.Backend, 0, len(vs))
	for _, v := range vs {
		out = append(out, policy.Backend{Version: v, Weight: weights[v]})
	}
	return out
}

func weightsText(bs []policy.Backend) string {
	parts := make([]string, len(bs))
	for i, b := range bs {
		parts[i] = fmt.Sprintf("%s %d%%", b.Version, b.Weight)
	}
	return strings.Join(parts, ", ")
}

// eject removes version from backends and spreads its weight over the
// others in proportion (evenly when they all had 0); the weights still sum
// to 100.
func eject(bs []policy.Backend, version string) ([]policy.Backend, error) {
	var rest []policy.Backend
	sum := 0
	for _, b := range bs {
		if b.Version != version {
			rest = append(rest, b)
			sum += b.Weight
		}
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("it is the only version left")
	}
	total := 0
	for i := range rest {
		if sum == 0 {
			rest[i].Weight = 100 / len(rest)
		} else {
			rest[i].Weight = rest[i].Weight * 100 / sum
		}
		total += rest[i].Weight
	}
	// Rounding: the remainder goes to the heaviest backend.
	heaviest := 0
	for i := range rest {
		if rest[i].Weight > rest[heaviest].Weight {
			heaviest = i
		}
	}
	rest[heaviest].Weight += 100 - total
	return rest, nil
}

// changesOf is the diff a set of puts makes, for events.
func changesOf(puts []store.Put) []store.Change {
	out := make([]store.Change, 0, len(puts))
	for _, p := range puts {
		c := store.Change{Kind: p.Key.Kind, Name: p.Key.Name, Before: p.Expect, After: p.After}
		switch {
		case p.Expect == nil:
			c.Op = store.OpCreate
		case p.After == nil:
			c.Op = store.OpDelete
		default:
			c.Op = store.OpUpdate
		}
		if p.After != nil {
			c.Service = p.After.Service
		} else if p.Expect != nil {
			c.Service = p.Expect.Service
		}
		out = append(out, c)
	}
	return out
}

// revertPuts undoes puts: each document back to exactly what it was.
func revertPuts(puts []store.Put) []store.Put {
	out := make([]store.Put, len(puts))
	for i, p := range puts {
		out[i] = store.Put{Key: p.Key, Expect: p.After, After: p.Expect}
	}
	return out
}
