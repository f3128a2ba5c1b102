package rollout

import (
	"slices"

	"github.com/meshscope/meshscope/control/policy"
)

// routeFor returns the Route that sends weight percent of the rollout's
// traffic to the canary, derived from the service's Route before the
// rollout (original, nil when there was none):
//
//   - every rule of original that sends to stable or canary gets the split
//     [stable 100-weight, canary weight]; other rules are kept as they are;
//   - without such a rule a catch-all rule with the split is added;
//   - with a match, only matching requests are split: a rule with the
//     match and the split comes first, and the rules above send to stable.
//
// weight 100 with promoted set sends everything to the canary; weight 0
// everything to stable.
func routeFor(st *State, original *policy.Document, weight int) policy.Document {
	var out policy.Document
	if original != nil {
		// Deep copy through JSON: the store's documents are shared.
		b, _ := original.MarshalJSON()
		_ = out.UnmarshalJSON(b)
	} else {
		out = policy.Document{Meta: policy.Meta{Kind: policy.KindRoute, Name: st.Route, Service: st.Service}, Spec: &policy.Route{}}
	}
	r := out.Route()
	split := func(w int) []policy.Backend {
		switch w {
		case 0:
			return []policy.Backend{{Version: st.Stable, Weight: 100}}
		case 100:
			return []policy.Backend{{Version: st.Canary, Weight: 100}}
		}
		return []policy.Backend{{Version: st.Stable, Weight: 100 - w}, {Version: st.Canary, Weight: w}}
	}
	ours := func(b []policy.Backend) bool {
		return slices.ContainsFunc(b, func(x policy.Backend) bool { return x.Version == st.Stable || x.Version == st.Canary })
	}
	main := split(weight)
	if st.Spec.Match != nil && weight < 100 {
		main = split(0) // unmatched requests stay on stable
	}
	found := false
	for i := range r.Rules {
		if ours(r.Rules[i].Backends) {
			r.Rules[i].Backends = main
			found = true
		}
	}
	if !found {
		r.Rules = append(r.Rules, policy.RouteRule{Backends: main})
	}
	if m := st.Spec.Match; m != nil && weight > 0 && weight < 100 {
		mc := *m
		r.Rules = append([]policy.RouteRule{{Match: &mc, Backends: split(weight)}}, r.Rules...)
	}
	return out
}
