package promapi

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
)

// RulesSource lists the running rule groups (the server's rules engine).
type RulesSource interface {
	RuleGroups() []*rules.Group
}

// SetRules sets the source of /api/v1/rules and /api/v1/alerts.
func (a *API) SetRules(src RulesSource) { a.opts.Rules = src }

// RuleDiscovery is the data of /api/v1/rules.
type RuleDiscovery struct {
	RuleGroups []*RuleGroup `json:"groups"`
}

// RuleGroup is one group in /api/v1/rules.
type RuleGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Rules          []any     `json:"rules"`
	Interval       float64   `json:"interval"`
	Limit          int       `json:"limit"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// AlertingRule is an alerting rule in /api/v1/rules.
type AlertingRule struct {
	State          string           `json:"state"`
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Duration       float64          `json:"duration"`
	KeepFiringFor  float64          `json:"keepFiringFor"`
	Labels         labels.Labels    `json:"labels"`
	Annotations    labels.Labels    `json:"annotations"`
	Alerts         []*Alert         `json:"alerts"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

// RecordingRule is a recording rule in /api/v1/rules.
type RecordingRule struct {
	Name           string           `json:"name"`
	Query          string           `json:"query"`
	Labels         labels.Labels    `json:"labels"`
	Health         rules.RuleHealth `json:"health"`
	LastError      string           `json:"lastError,omitempty"`
	EvaluationTime float64          `json:"evaluationTime"`
	LastEvaluation time.Time        `json:"lastEvaluation"`
	Type           string           `json:"type"`
}

// AlertDiscovery is the data of /api/v1/alerts.
type AlertDiscovery struct {
	Alerts []*Alert `json:"alerts"`
}

// Alert is an active alert.
type Alert struct {
	Labels          labels.Labels `json:"labels"`
	Annotations     labels.Labels `json:"annotations"`
	State           string        `json:"state"`
	ActiveAt        *time.Time    `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time    `json:"keepFiringSince,omitempty"`
	Value           string        `json:"value"`
}

func apiAlerts(in []*rules.Alert) []*Alert {
	out := make([]*Alert, len(in))
	for i, a := range in {
		out[i] = &Alert{
			Labels:      a.Labels,
			Annotations: a.Annotations,
			State:       a.State.String(),
			ActiveAt:    &a.ActiveAt,
			Value:       strconv.FormatFloat(a.Value, 'e', -1, 64),
		}
		if !a.KeepFiringSince.IsZero() {
			out[i].KeepFiringSince = &a.KeepFiringSince
		}
	}
	return out
}

func (a *API) groups() []*rules.Group {
	if a.opts.Rules == nil {
		return nil
	}
	return a.opts.Rules.RuleGroups()
}

func formSet(values []string) map[string]bool {
	set := make(map[string]bool, len(values))
	for _, v := range values {
		set[v] = true
	}
	return set
}

// rules answers /api/v1/rules as Prometheus does, with its type,
// rule_name[], rule_group[], file[], match[] and exclude_alerts filters.
func (a *API) rules(r *http.Request) apiResult {
	if err := r.ParseForm(); err != nil {
		return badData(fmt.Errorf("error parsing form values: %w", err))
	}
	typ := strings.ToLower(r.URL.Query().Get("type"))
	if typ != "" && typ != "alert" && typ != "record" {
		return invalidParam(fmt.Errorf("not supported value %q", typ), "type")
	}
	excludeAlerts := false
	if s := r.URL.Query().Get("exclude_alerts"); s != "" {
		v, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return invalidParam(fmt.Errorf("error converting exclude_alerts: %w", err), "exclude_alerts")
		}
		excludeAlerts = v
	}
	var matcherSets [][]*labels.Matcher
	if ms := r.Form["match[]"]; len(ms) > 0 {
		var err error
		if matcherSets, err = a.parseMatchers(ms); err != nil {
			return badData(err)
		}
	}
	names, groupNames, files := formSet(r.Form["rule_name[]"]), formSet(r.Form["rule_group[]"]), formSet(r.Form["file[]"])
	res := &RuleDiscovery{RuleGroups: []*RuleGroup{}}
	for _, g := range a.groups() {
		if (len(groupNames) > 0 && !groupNames[g.Name()]) || (len(files) > 0 && !files[g.File()]) {
			continue
		}
		rg := &RuleGroup{
			Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Limit: g.Limit(),
			Rules: []any{}, EvaluationTime: g.GetEvaluationTime().Seconds(), LastEvaluation: g.GetLastEvaluation(),
		}
		for _, rr := range g.Rules(matcherSets...) {
			if len(names) > 0 && !names[rr.Name()] {
				continue
			}
			lastError := ""
			if err := rr.LastError(); err != nil {
				lastError = err.Error()
			}
			switch rule := rr.(type) {
			case *rules.AlertingRule:
				if typ == "record" {
					continue
				}
				var alerts []*Alert
				if !excludeAlerts {
					alerts = apiAlerts(rule.ActiveAlerts())
				}
				rg.Rules = append(rg.Rules, AlertingRule{
					State: rule.State().String(), Name: rule.Name(), Query: rule.Query().String(),
					Duration: rule.HoldDuration().Seconds(), KeepFiringFor: rule.KeepFiringFor().Seconds(),
					Labels: rule.Labels(), Annotations: rule.Annotations(), Alerts: alerts,
					Health: rule.Health(), LastError: lastError,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(),
					Type: "alerting",
				})
			case *rules.RecordingRule:
				if typ == "alert" {
					continue
				}
				rg.Rules = append(rg.Rules, RecordingRule{
					Name: rule.Name(), Query: rule.Query().String(), Labels: rule.Labels(),
					Health: rule.Health(), LastError: lastError,
					EvaluationTime: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp(),
					Type: "recording",
				})
			}
		}
		if len(rg.Rules) > 0 {
			res.RuleGroups = append(res.RuleGroups, rg)
		}
	}
	return apiResult{data: res}
}

// alerts answers /api/v1/alerts: the active alerts of every alerting rule.
func (a *API) alerts(*http.Request) apiResult {
	res := &AlertDiscovery{Alerts: []*Alert{}}
	for _, g := range a.groups() {
		for _, ar := range g.AlertingRules() {
			res.Alerts = append(res.Alerts, apiAlerts(ar.ActiveAlerts())...)
		}
	}
	return apiResult{data: res}
}
