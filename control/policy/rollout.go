package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"gopkg.in/yaml.v3"
)

// Rollout is the spec of kind Rollout: a progressive delivery of the
// service's canary version, judged each interval against the stable
// version at the same time (docs/rollouts.md). The rollout controller in
// the server carries it out by editing the service's Route.
//
// Flagger: Canary; Argo Rollouts: Rollout with a canary strategy and
// AnalysisTemplate; Kayenta: canary config.
type Rollout struct {
	// Stable is the version serving today; required.
	Stable string `yaml:"stable" json:"stable"`
	// Canary is the version being rolled out; required.
	Canary string `yaml:"canary" json:"canary"`
	// Steps are the canary weights in percent, rising, e.g. [5, 20, 50,
	// 100] or [{weight: 5, pause: 2m}, ...]. After the last step passes
	// the canary is promoted (100 %). Required.
	Steps []Step `yaml:"steps" json:"steps"`
	// Interval is the analysis interval. Default 1m.
	Interval Duration `yaml:"interval" json:"interval" default:"1m"`
	// MinRequests is the fewest canary requests an interval needs to be
	// judged; fewer and the interval neither passes nor fails. Default 50.
	MinRequests int `yaml:"min_requests" json:"min_requests" default:"50"`
	// Match narrows the canary to matching requests (e.g. a header
	// x-canary: 1): only they are split by the step weight; the others
	// stay on stable. Default every request.
	Match *Match `yaml:"match,omitempty" json:"match,omitempty"`
	// Analysis is how an interval is judged.
	Analysis *Analysis `yaml:"analysis" json:"analysis" default:"{}"`
	// FailureLimit is the number of failed intervals that rolls the canary
	// back. Default 2.
	FailureLimit int `yaml:"failure_limit" json:"failure_limit" default:"2"`
}

// Step is one canary weight and how long to hold it at least.
type Step struct {
	// Weight is the canary's percent of traffic, 1..100.
	Weight int `yaml:"weight" json:"weight"`
	// Pause holds the step at least this long (and at least one passing
	// interval). Default 0.
	Pause Duration `yaml:"pause,omitempty" json:"pause,omitempty"`
}

// UnmarshalYAML accepts a bare weight (5) or a mapping {weight, pause}.
func (s *Step) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&s.Weight)
	}
	type plain Step
	return n.Decode((*plain)(s))
}

// UnmarshalJSON accepts a bare weight or an object.
func (s *Step) UnmarshalJSON(b []byte) error {
	var w int
	if err := json.Unmarshal(b, &w); err == nil {
		*s = Step{Weight: w}
		return nil
	}
	type plain Step
	return json.Unmarshal(b, (*plain)(s))
}

// Analysis configures the judgement of an interval.
type Analysis struct {
	// SuccessRate is a fixed threshold on the canary's success rate.
	// Default none.
	SuccessRate *SuccessRateThreshold `yaml:"success_rate,omitempty" json:"success_rate,omitempty"`
	// Latency is a fixed threshold on the canary's p99. Default none.
	Latency *LatencyThreshold `yaml:"latency,omitempty" json:"latency,omitempty"`
	// Alpha is the significance level of the comparisons with stable
	// (Mann-Whitney U on latency, two-proportion test on errors), 0..0.5.
	// Default 0.05.
	Alpha float64 `yaml:"alpha" json:"alpha" default:"0.05"`
	// MaxDegradation is the latency increase (canary median over stable
	// median, percent) tolerated even when significant. Default 10.
	MaxDegradation float64 `yaml:"max_degradation" json:"max_degradation" default:"10"`
	// MaxErrorIncrease is the error-rate increase in percentage points
	// tolerated even when significant. Default 1.
	MaxErrorIncrease float64 `yaml:"max_error_increase" json:"max_error_increase" default:"1"`
	// PassScore: an interval scoring at least this passes (0..100).
	// Default 90.
	PassScore float64 `yaml:"pass_score" json:"pass_score" default:"90"`
	// MarginalScore: at least this (and below PassScore) is marginal, the
	// step holds; below it the interval fails. Default 60.
	MarginalScore float64 `yaml:"marginal_score" json:"marginal_score" default:"60"`
	// SLOBudget holds the rollout while an SLO's error budget is low.
	// Default none.
	SLOBudget *SLOBudget `yaml:"slo_budget,omitempty" json:"slo_budget,omitempty"`
}

// SuccessRateThreshold is a fixed success-rate threshold.
type SuccessRateThreshold struct {
	// Min is the lowest success rate in percent, above 0 and at most 100.
	Min float64 `yaml:"min" json:"min"`
}

// LatencyThreshold is a fixed latency threshold.
type LatencyThreshold struct {
	// P99Max is the highest p99 latency.
	P99Max Duration `yaml:"p99_max" json:"p99_max"`
}

// SLOBudget gates the rollout on an SLO's error budget.
type SLOBudget struct {
	// SLO names an SLO document; required.
	SLO string `yaml:"slo" json:"slo"`
	// MinRemaining is the remaining budget in percent below which the
	// rollout does not advance. Default 20.
	MinRemaining float64 `yaml:"min_remaining" json:"min_remaining" default:"20"`
}

// Rollout returns the spec of a Rollout document, or nil.
func (d *Document) Rollout() *Rollout { r, _ := d.Spec.(*Rollout); return r }

// Validate implements Spec.
func (r *Rollout) Validate() error {
	switch {
	case r.Stable == "":
		return fieldErr("stable", "must be set (the version serving today)")
	case r.Canary == "":
		return fieldErr("canary", "must be set (the version rolled out)")
	case r.Canary == r.Stable:
		return fieldErr("canary", "%q: must differ from stable", r.Canary)
	case len(r.Steps) == 0:
		return fieldErr("steps", "must list at least one weight, e.g. [5, 20, 50, 100]")
	case len(r.Steps) > 100:
		return fieldErr("steps", "at most 100 steps")
	case r.Interval < Duration(time.Second) || r.Interval > Duration(24*time.Hour):
		return fieldErr("interval", "%v: must be 1s..24h", r.Interval)
	case r.MinRequests < 0:
		return fieldErr("min_requests", "must not be negative")
	case r.FailureLimit < 1 || r.FailureLimit > 1000:
		return fieldErr("failure_limit", "must be 1..1000")
	}
	for _, v := range []struct{ path, v string }{{"stable", r.Stable}, {"canary", r.Canary}} {
		if len(v.v) > 253 || !tokenRE.MatchString(v.v) {
			return fieldErr(v.path, "%q is not a version label", v.v)
		}
	}
	prev := 0
	for i, s := range r.Steps {
		p := fmt.Sprintf("steps[%d]", i)
		if s.Weight < 1 || s.Weight > 100 {
			return fieldErr(p+".weight", "%d: must be 1..100", s.Weight)
		}
		if s.Weight <= prev {
			return fieldErr(p+".weight", "%d: must be above the previous step's %d", s.Weight, prev)
		}
		if s.Pause < 0 {
			return fieldErr(p+".pause", "must not be negative")
		}
		prev = s.Weight
	}
	if err := r.Match.validate("match"); err != nil {
		return err
	}
	a := r.Analysis
	if a == nil {
		return fieldErr("analysis", "must be set")
	}
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch {
	case bad(a.Alpha) || a.Alpha <= 0 || a.Alpha > 0.5:
		return fieldErr("analysis.alpha", "%v: must be above 0 and at most 0.5", a.Alpha)
	case bad(a.MaxDegradation) || a.MaxDegradation < 0 || a.MaxDegradation > 1000:
		return fieldErr("analysis.max_degradation", "%v: must be 0..1000 (percent)", a.MaxDegradation)
	case bad(a.MaxErrorIncrease) || a.MaxErrorIncrease < 0 || a.MaxErrorIncrease > 100:
		return fieldErr("analysis.max_error_increase", "%v: must be 0..100 (percentage points)", a.MaxErrorIncrease)
	case bad(a.PassScore) || a.PassScore < 0 || a.PassScore > 100:
		return fieldErr("analysis.pass_score", "%v: must be 0..100", a.PassScore)
	case bad(a.MarginalScore) || a.MarginalScore < 0 || a.MarginalScore > a.PassScore:
		return fieldErr("analysis.marginal_score", "%v: must be 0..pass_score (%v)", a.MarginalScore, a.PassScore)
	}
	if s := a.SuccessRate; s != nil && (bad(s.Min) || s.Min <= 0 || s.Min > 100) {
		return fieldErr("analysis.success_rate.min", "%v: want a percent above 0 and at most 100, e.g. 99", s.Min)
	}
	if l := a.Latency; l != nil && l.P99Max <= 0 {
		return fieldErr("analysis.latency.p99_max", "must be positive, e.g. 500ms")
	}
	if b := a.SLOBudget; b != nil {
		if b.SLO == "" || !nameRE.MatchString(b.SLO) {
			return fieldErr("analysis.slo_budget.slo", "%q: must name an SLO document", b.SLO)
		}
		if bad(b.MinRemaining) || b.MinRemaining < 0 || b.MinRemaining > 100 {
			return fieldErr("analysis.slo_budget.min_remaining", "%v: must be 0..100 (percent)", b.MinRemaining)
		}
	}
	return nil
}
