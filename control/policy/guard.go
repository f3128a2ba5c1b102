package policy

import (
	"math"
	"sort"
)

// ModeDryRun is a Guard's default mode: it evaluates its condition and
// records what it would have done, changing nothing.
const ModeDryRun Mode = "dry-run"

// Guard is the spec of kind Guard: when an SLO burns (or an alert fires),
// act on the service's traffic: shift it between versions, open a breaker
// for its callers, shed its inbound load or eject a version
// (docs/guards.md). A Guard's mode is dry-run (the default) or enforce.
//
// Flagger: Canary analysis with metric checks; Argo Rollouts: AnalysisRun.
type Guard struct {
	// When is the condition.
	When GuardWhen `yaml:"when" json:"when"`
	// Then is what the guard does while the condition holds; at least one
	// action.
	Then GuardThen `yaml:"then" json:"then"`
	// Cooldown is how long after a revert the guard does not act again.
	// Default 5m.
	Cooldown Duration `yaml:"cooldown" json:"cooldown" default:"5m"`
	// MaxDuration reverts an action after it, whatever the condition.
	// Default 0 = no bound.
	MaxDuration Duration `yaml:"max_duration,omitempty" json:"max_duration,omitempty"`
	// Revert is auto (after the condition has been false for RevertAfter)
	// or manual (only `meshscope guard revert`). Default auto.
	Revert string `yaml:"revert" json:"revert" default:"auto"`
	// RevertAfter is how long the condition must stay false before an
	// automatic revert. Default 5m.
	RevertAfter Duration `yaml:"revert_after" json:"revert_after" default:"5m"`
	// Limits bound what the guard may do.
	Limits *GuardLimits `yaml:"limits" json:"limits" default:"{}"`
}

// GuardWhen is a guard's condition: an SLO's burn-rate alert or any alert
// of the rules engine. Exactly one of SLO and Alert is set.
type GuardWhen struct {
	// SLO names an SLO document; the guard fires while its burn-rate
	// alert of severity Burn fires.
	SLO string `yaml:"slo,omitempty" json:"slo,omitempty"`
	// Burn is the severity: page or ticket. Default page (with slo).
	Burn string `yaml:"burn,omitempty" json:"burn,omitempty"`
	// Alert is an alert name of the rules engine (rule files or generated).
	Alert string `yaml:"alert,omitempty" json:"alert,omitempty"`
	// Labels the firing alert must carry (exact values). Default none.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
}

// GuardThen lists a guard's actions; at least one is set.
type GuardThen struct {
	Shift *GuardShift `yaml:"shift,omitempty" json:"shift,omitempty"`
	Break *GuardBreak `yaml:"break,omitempty" json:"break,omitempty"`
	Shed  *GuardShed  `yaml:"shed,omitempty" json:"shed,omitempty"`
	Eject *GuardEject `yaml:"eject,omitempty" json:"eject,omitempty"`
}

// GuardShift rewrites the service's route weights: every request to To,
// or the given Weights. Exactly one of To and Weights is set.
type GuardShift struct {
	To      string         `yaml:"to,omitempty" json:"to,omitempty"`
	Weights map[string]int `yaml:"weights,omitempty" json:"weights,omitempty"`
}

// GuardBreak opens a breaker on the service for its callers: they answer
// 503 with x-meshscope-guard: NAME, except ProbePercent of requests that
// still reach the service.
type GuardBreak struct {
	// ProbePercent of requests still pass (half-open probes), 0..100.
	ProbePercent float64 `yaml:"probe_percent" json:"probe_percent" default:"5"`
}

// GuardShed rate-limits the service's inbound traffic. Exactly one of
// RequestsPerSecond (the service's total) and Percent (of its current
// inbound rate, shed) is set.
type GuardShed struct {
	RequestsPerSecond float64 `yaml:"requests_per_second,omitempty" json:"requests_per_second,omitempty"`
	Percent           float64 `yaml:"percent,omitempty" json:"percent,omitempty"`
}

// GuardEject removes a version's endpoints from load balancing.
type GuardEject struct {
	Version string `yaml:"version" json:"version"`
}

// GuardLimits bound a guard's actions.
type GuardLimits struct {
	// MaxShedPercent is the most of the current inbound rate shed may drop,
	// 0..100. Default 50.
	MaxShedPercent float64 `yaml:"max_shed_percent" json:"max_shed_percent" default:"50"`
	// MaxTargetErrorPercent: a shift is not made to a version whose error
	// ratio over the SLO's short page window is above it. Default 0 =
	// the SLO's page threshold (14.4 × its error budget), or 5 % for an
	// alert condition.
	MaxTargetErrorPercent float64 `yaml:"max_target_error_percent,omitempty" json:"max_target_error_percent,omitempty"`
}

// Revert policies.
const (
	RevertAuto   = "auto"
	RevertManual = "manual"
)

func (g *Guard) setDefaults() {
	if g.When.SLO != "" && g.When.Burn == "" {
		g.When.Burn = "page"
	}
}

// Validate implements Spec.
func (g *Guard) Validate() error {
	w := g.When
	switch {
	case w.SLO == "" && w.Alert == "":
		return fieldErr("when", "want slo or alert")
	case w.SLO != "" && w.Alert != "":
		return fieldErr("when", "want slo or alert, not both")
	case w.SLO != "" && !nameRE.MatchString(w.SLO):
		return fieldErr("when.slo", "%q is not an SLO name", w.SLO)
	case w.SLO != "" && w.Burn != "page" && w.Burn != "ticket":
		return fieldErr("when.burn", "%q: want page or ticket", w.Burn)
	case w.Alert != "" && w.Burn != "":
		return fieldErr("when.burn", "only with slo")
	case w.Alert != "" && !labelNameRE.MatchString(w.Alert):
		return fieldErr("when.alert", "%q is not an alert name", w.Alert)
	}
	for _, k := range sortedKeys(w.Labels) {
		if !labelNameRE.MatchString(k) {
			return fieldErr("when.labels."+k, "is not a label name")
		}
	}
	t := g.Then
	if t.Shift == nil && t.Break == nil && t.Shed == nil && t.Eject == nil {
		return fieldErr("then", "want at least one of shift, break, shed, eject")
	}
	if s := t.Shift; s != nil {
		switch {
		case s.To == "" && len(s.Weights) == 0:
			return fieldErr("then.shift", "want to or weights")
		case s.To != "" && len(s.Weights) > 0:
			return fieldErr("then.shift", "want to or weights, not both")
		case s.To != "" && !nameRE.MatchString(s.To):
			return fieldErr("then.shift.to", "%q is not a version", s.To)
		}
		if len(s.Weights) > 0 {
			sum := 0
			for _, v := range sortedKeys(s.Weights) {
				wt := s.Weights[v]
				if !nameRE.MatchString(v) {
					return fieldErr("then.shift.weights."+v, "is not a version")
				}
				if wt < 0 || wt > 100 {
					return fieldErr("then.shift.weights."+v, "must be 0..100")
				}
				sum += wt
			}
			if sum != 100 {
				return fieldErr("then.shift.weights", "sum to %d, want 100", sum)
			}
		}
		if t.Eject != nil {
			return fieldErr("then", "shift and eject both rewrite the route weights: want one")
		}
	}
	if b := t.Break; b != nil {
		if err := checkPercent("then.break.probe_percent", b.ProbePercent); err != nil {
			return err
		}
	}
	if s := t.Shed; s != nil {
		rps, pct := s.RequestsPerSecond, s.Percent
		switch {
		case rps == 0 && pct == 0:
			return fieldErr("then.shed", "want requests_per_second or percent")
		case rps != 0 && pct != 0:
			return fieldErr("then.shed", "want requests_per_second or percent, not both")
		case rps != 0 && !(rps > 0 && !math.IsInf(rps, 0)):
			return fieldErr("then.shed.requests_per_second", "must be positive")
		case pct != 0 && !(pct > 0 && pct <= 100):
			return fieldErr("then.shed.percent", "must be above 0 and at most 100")
		}
	}
	if e := t.Eject; e != nil && !nameRE.MatchString(e.Version) {
		return fieldErr("then.eject.version", "%q is not a version", e.Version)
	}
	switch {
	case g.Cooldown < 0:
		return fieldErr("cooldown", "must not be negative")
	case g.MaxDuration < 0:
		return fieldErr("max_duration", "must not be negative")
	case g.RevertAfter < 0:
		return fieldErr("revert_after", "must not be negative")
	case g.Revert != RevertAuto && g.Revert != RevertManual:
		return fieldErr("revert", "%q: want auto or manual", g.Revert)
	}
	if g.Limits == nil {
		return fieldErr("limits", "must be set")
	}
	if err := checkPercent("limits.max_shed_percent", g.Limits.MaxShedPercent); err != nil {
		return err
	}
	if err := checkPercent("limits.max_target_error_percent", g.Limits.MaxTargetErrorPercent); err != nil {
		return err
	}
	return nil
}

// Guard returns the spec of a Guard document, or nil.
func (d *Document) Guard() *Guard { g, _ := d.Spec.(*Guard); return g }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkMode checks the envelope's mode: dry-run or enforce for a Guard,
// audit, observe or enforce for an Authorization, observe or enforce for
// the other kinds.
func (d *Document) checkMode() error {
	if d.Kind == KindGuard {
		switch d.Mode {
		case "", ModeDryRun, ModeEnforce:
			return nil
		}
		return fieldErr("mode", "%q: want dry-run or enforce", d.Mode)
	}
	switch d.Mode {
	case "", ModeObserve, ModeEnforce:
		return nil
	case ModeAudit:
		if d.Kind == KindAuthorization {
			return nil
		}
		return fieldErr("mode", "%q: only an Authorization has audit mode; want observe or enforce", d.Mode)
	}
	return fieldErr("mode", "%q: want observe or enforce", d.Mode)
}
