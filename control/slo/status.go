package slo

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/rules"

	"github.com/meshscope/meshscope/control/policy"
)

// SLO states.
const (
	StateOK      = "ok"      // no burn-rate alert active
	StatePending = "pending" // an alert is pending
	StateFiring  = "firing"  // an alert fires (see FiringSeverity)
	StateNoData  = "no_data" // no traffic over the window
	StateError   = "error"   // the rules could not be generated or evaluated
)

// Status is an SLO's state: what /api/mesh/v1/slos answers.
type Status struct {
	Name      string           `json:"name"`
	Service   string           `json:"service"`
	Route     string           `json:"route,omitempty"`
	Objective float64          `json:"objective"`
	Window    string           `json:"window"`
	Indicator policy.Indicator `json:"indicator"`
	// State is ok, pending, firing, no_data or error.
	State string `json:"state"`
	// FiringSeverity is page or ticket while an alert fires (page wins).
	FiringSeverity string `json:"firing_severity,omitempty"`
	Error          string `json:"error,omitempty"`
	// SLI is the percent of good events over the whole window; null
	// without traffic.
	SLI *float64 `json:"sli"`
	// SLINow is the percent of good events over NowWindow, the shortest
	// alert window.
	SLINow    *float64 `json:"sli_now"`
	NowWindow string   `json:"now_window"`
	// ErrorBudget is the budget over the window and what is left of it.
	ErrorBudget BudgetView `json:"error_budget"`
	// BurnRates are the multiwindow conditions with their current burn
	// rates (error ratio ÷ budget; 1 spends the budget in exactly the
	// window).
	BurnRates []BurnRate `json:"burn_rates"`
	// Alerts are the active (pending or firing) alerts of the SLO.
	Alerts []Alert `json:"alerts"`
	// Traces finds the failing requests of the SLO's service and route.
	Traces TracesLink `json:"traces"`
	// EvaluatedAt is the time the figures are for.
	EvaluatedAt time.Time `json:"evaluated_at"`
}

// BudgetView is an SLO's error budget.
type BudgetView struct {
	// Ratio is the allowed share of bad events (1 - objective).
	Ratio float64 `json:"ratio"`
	// TotalMinutes is the budget as minutes of full outage over the window.
	TotalMinutes float64 `json:"total_minutes"`
	// ConsumedPercent is the share of the budget spent over the window
	// (above 100 when overspent); null without traffic.
	ConsumedPercent *float64 `json:"consumed_percent"`
	// RemainingPercent is 100 - ConsumedPercent (negative when overspent).
	RemainingPercent *float64 `json:"remaining_percent"`
	// RemainingMinutes is the remaining budget in minutes of full outage.
	RemainingMinutes *float64 `json:"remaining_minutes"`
}

// BurnRate is one multiwindow condition and its current values.
type BurnRate struct {
	Severity string  `json:"severity"`
	Factor   float64 `json:"factor"`
	// Threshold is the error ratio both windows must exceed
	// (Factor × budget ratio).
	Threshold     float64  `json:"threshold"`
	LongWindow    string   `json:"long_window"`
	ShortWindow   string   `json:"short_window"`
	BudgetPercent float64  `json:"budget_percent"`
	LongBurnRate  *float64 `json:"long_burn_rate"`
	ShortBurnRate *float64 `json:"short_burn_rate"`
	// Exceeded is true when both burn rates are above Factor.
	Exceeded bool `json:"exceeded"`
}

// Alert is an active alert of an SLO.
type Alert struct {
	Severity string            `json:"severity"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"active_at"`
	FiredAt  *time.Time        `json:"fired_at,omitempty"`
	Value    float64           `json:"value"`
	Labels   map[string]string `json:"labels"`
}

// TracesLink is the search for an SLO's failing traces.
type TracesLink struct {
	Service string `json:"service"`
	Route   string `json:"route,omitempty"`
	Error   bool   `json:"error"`
	// API is the native trace search (/api/mesh/traces?...).
	API string `json:"api"`
	// UI is the UI's trace search page, under the external URL when set.
	UI string `json:"ui"`
}

// snapshot is what statuses are computed from. It is read in the order
// that keeps them consistent (readSnapshot): the alerts of the SLO rule
// groups first, then the clock, then the recorded ratios at that time. A
// group records its windows before its alerts change state, so every
// alert seen firing has its windows in the ratios.
type snapshot struct {
	now    time.Time
	rules  map[string]ruleState          // by SLO name
	ratios map[string]map[string]float64 // by SLO name, then series name
}

// ruleState is the alerts of one SLO's rule groups and the first rule
// error among them ("" without one).
type ruleState struct {
	alerts []Alert
	err    string
}

// readSnapshot reads the snapshot of the SLOs in docs; sloName narrows
// the ratio query to one SLO ("" reads all).
func (m *Manager) readSnapshot(ctx context.Context, docs []policy.Document, sloName string) (snapshot, error) {
	groups := map[string]*rules.Group{}
	for _, g := range m.ruler.RuleGroups() {
		groups[g.Name()] = g
	}
	snap := snapshot{rules: make(map[string]ruleState, len(docs))}
	for _, d := range docs {
		var rs ruleState
		fast, slow := GroupNames(d.Name)
		for _, name := range [2]string{fast, slow} {
			g := groups[name]
			if g == nil {
				continue
			}
			for _, ar := range g.AlertingRules() {
				if err := ar.LastError(); err != nil && rs.err == "" {
					rs.err = fmt.Sprintf("alert %s: %v", ar.Name(), err)
				}
				for _, a := range ar.ActiveAlerts() {
					al := Alert{Severity: a.Labels.Get("severity"), State: a.State.String(), ActiveAt: a.ActiveAt, Value: a.Value, Labels: a.Labels.Map()}
					if !a.FiredAt.IsZero() {
						t := a.FiredAt
						al.FiredAt = &t
					}
					rs.alerts = append(rs.alerts, al)
				}
			}
		}
		snap.rules[d.Name] = rs
	}
	snap.now = time.Now()
	var err error
	snap.ratios, err = m.recordedRatios(ctx, sloName, snap.now)
	return snap, err
}

// status computes the status of d from snap.
func (m *Manager) status(ctx context.Context, d policy.Document, genErr error, snap snapshot) Status {
	now := snap.now
	s := d.SLO()
	budget := Budget(s.Objective)
	st := Status{
		Name: d.Name, Service: d.Service, Route: s.Route,
		Objective: s.Objective, Window: s.Window.String(), Indicator: s.Indicator,
		State: StateOK, EvaluatedAt: now, Alerts: []Alert{},
		ErrorBudget: BudgetView{Ratio: budget, TotalMinutes: round(s.Window.D().Minutes()*budget, 3)},
	}
	q := TracesQuery(&d)
	st.Traces = TracesLink{Service: d.Service, Route: s.Route, Error: true,
		API: link("", "/api/mesh/traces", q), UI: link(m.opts.ExternalURL, "/traces", q)}
	if genErr != nil {
		st.State, st.Error = StateError, genErr.Error()
		return st
	}
	bws := Windows(s.Window.D(), m.opts.EvalInterval)
	mine := snap.ratios[d.Name]
	ratio := func(w time.Duration) *float64 {
		if v, ok := mine[ErrorRatioMetric(w)]; ok && !math.IsNaN(v) {
			return &v
		}
		return nil
	}
	burn := func(r *float64) *float64 {
		if r == nil {
			return nil
		}
		v := round(*r/budget, 4)
		return &v
	}
	for _, w := range bws {
		br := BurnRate{Severity: w.Severity, Factor: w.Factor, Threshold: roundSig(w.Factor*budget, 10),
			LongWindow: PromDuration(w.Long), ShortWindow: PromDuration(w.Short), BudgetPercent: w.BudgetPercent,
			LongBurnRate: burn(ratio(w.Long)), ShortBurnRate: burn(ratio(w.Short))}
		lr, sr := ratio(w.Long), ratio(w.Short)
		br.Exceeded = lr != nil && sr != nil && *lr > br.Threshold && *sr > br.Threshold
		st.BurnRates = append(st.BurnRates, br)
	}
	shortest := WindowsOf(bws)[0]
	st.NowWindow = PromDuration(shortest)
	st.SLINow = goodPercent(ratio(shortest))

	over, err := m.instant(ctx, ErrorRatioExpr(&d, s.Window.D()), now)
	if err != nil {
		st.State, st.Error = StateError, err.Error()
	}
	st.SLI = goodPercent(over)
	if over != nil {
		consumed := round(100**over/budget, 3)
		remaining := round(100-consumed, 3)
		minutes := round(st.ErrorBudget.TotalMinutes*remaining/100, 3)
		st.ErrorBudget.ConsumedPercent, st.ErrorBudget.RemainingPercent, st.ErrorBudget.RemainingMinutes = &consumed, &remaining, &minutes
	} else if st.State == StateOK {
		st.State = StateNoData
	}

	rs := snap.rules[d.Name]
	if rs.err != "" && st.Error == "" {
		st.State, st.Error = StateError, rs.err
	}
	st.Alerts = append(st.Alerts, rs.alerts...)
	for _, a := range st.Alerts {
		switch {
		case a.State == rules.StateFiring.String():
			if st.State != StateError {
				st.State = StateFiring
			}
			if st.FiringSeverity != SeverityPage {
				st.FiringSeverity = a.Severity
			}
		case a.State == rules.StatePending.String() && (st.State == StateOK || st.State == StateNoData):
			st.State = StatePending
		}
	}
	return st
}

func goodPercent(r *float64) *float64 {
	if r == nil {
		return nil
	}
	v := round(100*(1-*r), 6)
	return &v
}

// instant evaluates expr at now; no sample (no traffic) is nil.
func (m *Manager) instant(ctx context.Context, expr string, now time.Time) (*float64, error) {
	q, err := m.engine.NewInstantQuery(ctx, m.queryable, nil, expr, now)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", strings.Fields(expr)[0], err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, fmt.Errorf("query: %w", res.Err)
	}
	v, err := res.Vector()
	if err != nil || len(v) == 0 || math.IsNaN(v[0].F) || math.IsInf(v[0].F, 0) {
		return nil, nil
	}
	f := v[0].F
	return &f, nil
}

// recordedRatios reads every recorded error ratio: slo → metric → value.
func (m *Manager) recordedRatios(ctx context.Context, sloName string, now time.Time) (map[string]map[string]float64, error) {
	sel := `{__name__=~"` + ErrorRatioPrefix + `.+"`
	if sloName != "" {
		sel += fmt.Sprintf(",slo=%q", sloName)
	}
	sel += "}"
	q, err := m.engine.NewInstantQuery(ctx, m.queryable, nil, sel, now)
	if err != nil {
		return nil, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	v, _ := res.Vector()
	out := map[string]map[string]float64{}
	for _, s := range v {
		name := s.Metric.Get("slo")
		if out[name] == nil {
			out[name] = map[string]float64{}
		}
		out[name][s.Metric.Get("__name__")] = s.F
	}
	return out, nil
}
