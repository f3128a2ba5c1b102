package slo

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/meshscope/meshscope/control/policy"
)

// Names of the generated series and alerts.
const (
	// ErrorRatioPrefix starts the recording rules of the error ratio over
	// one window: slo:sli_error:ratio_rate5m.
	ErrorRatioPrefix = "slo:sli_error:ratio_rate"
	// ObjectiveMetric records the objective as a ratio (0.999).
	ObjectiveMetric = "slo:objective:ratio"
	// AlertName is the name of every generated alert; severity (page or
	// ticket) and slo tell them apart.
	AlertName = "SLOErrorBudgetBurn"
	// GroupPrefix starts the name of each SLO's rule group.
	GroupPrefix = "slo:"
)

// Severities of the generated alerts.
const (
	SeverityPage   = "page"
	SeverityTicket = "ticket"
)

// BaseWindow is the SLO window the workbook's alert windows are given for.
const BaseWindow = 30 * 24 * time.Hour

// BurnWindow is one multiwindow condition: the error ratio over both the
// long and the short window must exceed Factor times the error budget.
type BurnWindow struct {
	Severity string        `json:"severity"`
	Factor   float64       `json:"factor"`
	Long     time.Duration `json:"-"`
	Short    time.Duration `json:"-"`
	// BudgetPercent is the share of the budget a burn at Factor spends
	// over the long window: Factor × Long ÷ SLO window.
	BudgetPercent float64 `json:"budget_percent"`
}

// workbook is the SRE workbook's table for a 30-day SLO (Sloth adds the
// 1d/2h ticket row).
var workbook = [...]BurnWindow{
	{Severity: SeverityPage, Factor: 14.4, Long: time.Hour, Short: 5 * time.Minute},
	{Severity: SeverityPage, Factor: 6, Long: 6 * time.Hour, Short: 30 * time.Minute},
	{Severity: SeverityTicket, Factor: 3, Long: 24 * time.Hour, Short: 2 * time.Hour},
	{Severity: SeverityTicket, Factor: 1, Long: 3 * 24 * time.Hour, Short: 6 * time.Hour},
}

// Options tune rule generation.
type Options struct {
	// EvalInterval is the rules engine's evaluation interval; no window is
	// shorter than MinWindowEvals of it.
	EvalInterval time.Duration
	// ExternalURL is where the Meshscope UI is reached; alert annotations
	// link to it. Empty = relative links.
	ExternalURL string
}

// MinWindowEvals is how many evaluation intervals the shortest window spans.
const MinWindowEvals = 4

// Windows returns the burn windows of an SLO window: the workbook's,
// scaled by window ÷ 30d, rounded to seconds and never shorter than
// MinWindowEvals × evalInterval.
func Windows(window, evalInterval time.Duration) []BurnWindow {
	scale := float64(window) / float64(BaseWindow)
	minW := MinWindowEvals * evalInterval
	out := make([]BurnWindow, len(workbook))
	for i, w := range workbook {
		w.Long = scaleWindow(w.Long, scale, minW)
		w.Short = scaleWindow(w.Short, scale, minW)
		w.BudgetPercent = round(100*w.Factor*float64(w.Long)/float64(window), 4)
		out[i] = w
	}
	return out
}

func scaleWindow(d time.Duration, scale float64, minW time.Duration) time.Duration {
	v := time.Duration(math.Round(float64(d)*scale/float64(time.Second))) * time.Second
	return max(v, minW, time.Second)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// WindowsOf returns the distinct alert windows, shortest first.
func WindowsOf(bws []BurnWindow) []time.Duration {
	seen := map[time.Duration]bool{}
	var out []time.Duration
	for _, w := range bws {
		for _, d := range []time.Duration{w.Short, w.Long} {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// PromDuration writes d as a Prometheus duration (1h30m, 2m, 10s, 1d).
func PromDuration(d time.Duration) string { return model.Duration(d).String() }

// ErrorRatioMetric is the recorded error ratio over window d.
func ErrorRatioMetric(d time.Duration) string { return ErrorRatioPrefix + PromDuration(d) }

// Budget returns the error budget as a ratio (99.9 → 0.001), rounded to
// drop float noise.
func Budget(objective float64) float64 { return roundSig(1-objective/100, 10) }

func roundSig(x float64, sig int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', sig, 64), 64)
	return v
}

func formatFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Labels are the identifying labels of an SLO's generated series.
func Labels(d *policy.Document) map[string]string {
	l := map[string]string{"slo": d.Name, "service": d.Service}
	if s := d.SLO(); s != nil && s.Route != "" {
		l["route"] = s.Route
	}
	return l
}

// selector writes the golden-metric selector of an SLO: requests counted
// once, at the callee's inbound proxy (docs/metrics.md).
func selector(metric string, d *policy.Document, extra ...string) string {
	m := []string{`direction="inbound"`, fmt.Sprintf("destination_service=%q", d.Service)}
	if r := d.SLO().Route; r != "" {
		m = append(m, fmt.Sprintf("route=%q", r))
	}
	m = append(m, extra...)
	return metric + "{" + strings.Join(m, ",") + "}"
}

// ErrorRatioExpr is the PromQL of an SLO's error ratio over window d: bad
// events over all events. It is the one computation behind the recording
// rules and the SLO API's window figures. No traffic = no sample.
func ErrorRatioExpr(d *policy.Document, window time.Duration) string {
	s := d.SLO()
	w := PromDuration(window)
	switch s.Indicator.Type {
	case policy.IndicatorLatency:
		le := formatFloat(s.Indicator.Threshold.D().Seconds())
		return fmt.Sprintf("1 - (\n  sum(rate(%s[%s]))\n  /\n  sum(rate(%s[%s]))\n)",
			selector("mesh_request_duration_seconds_bucket", d, fmt.Sprintf("le=%q", le)), w,
			selector("mesh_request_duration_seconds_count", d), w)
	case policy.IndicatorCustom:
		good := strings.ReplaceAll(s.Indicator.GoodQuery, policy.WindowPlaceholder, w)
		total := strings.ReplaceAll(s.Indicator.TotalQuery, policy.WindowPlaceholder, w)
		return fmt.Sprintf("1 - (\n  sum(%s)\n  /\n  sum(%s)\n)", strings.TrimSpace(good), strings.TrimSpace(total))
	default:
		return fmt.Sprintf("(\n  sum(rate(%s[%s]))\n  or vector(0)\n)\n/\nsum(rate(%s[%s]))",
			selector("mesh_requests_total", d, `outcome="failure"`), w,
			selector("mesh_requests_total", d), w)
	}
}

// TicketGroupSuffix ends the name of an SLO's slow group: the ticket
// alert and the windows only ticket rows use.
const TicketGroupSuffix = ":ticket"

// MaxSlowInterval caps the slow group's interval so its series stay within
// PromQL's default 5m lookback.
const MaxSlowInterval = time.Minute

// SlowInterval is the evaluation interval of the slow group: 4 evaluation
// intervals, at most MaxSlowInterval (never below the evaluation interval).
// Its windows are at least 4 × 4 evaluations long, so their ratios move
// little between two evaluations.
func SlowInterval(eval time.Duration) time.Duration {
	return max(eval, min(4*eval, MaxSlowInterval))
}

// GroupNames are the names of an SLO's rule groups: the fast one (page
// windows, page alert) and the slow one (ticket windows, ticket alert).
func GroupNames(name string) (fast, slow string) {
	return GroupPrefix + name, GroupPrefix + name + TicketGroupSuffix
}

// Rules returns the rule groups of one SLO document: the fast group,
// evaluated every evaluation interval, records the windows of the page
// rows (and the objective) and holds the page alert; the slow group,
// evaluated every SlowInterval, records the windows only ticket rows use
// and holds the ticket alert. Long windows read the most samples, so
// evaluating them less often is most of the rules' cost saved.
func Rules(d *policy.Document, opts Options) ([]rulefmt.RuleGroup, error) {
	s := d.SLO()
	if s == nil {
		return nil, fmt.Errorf("%s: not an SLO", d.Ref())
	}
	if opts.EvalInterval <= 0 {
		return nil, fmt.Errorf("evaluation interval must be positive")
	}
	lbls := Labels(d)
	budget := Budget(s.Objective)
	bws := Windows(s.Window.D(), opts.EvalInterval)
	fastName, slowName := GroupNames(d.Name)
	fast := rulefmt.RuleGroup{Name: fastName}
	slow := rulefmt.RuleGroup{Name: slowName}
	if iv := SlowInterval(opts.EvalInterval); iv != opts.EvalInterval {
		slow.Interval = model.Duration(iv)
	}
	pageWindow := map[time.Duration]bool{}
	for _, w := range bws {
		if w.Severity == SeverityPage {
			pageWindow[w.Long], pageWindow[w.Short] = true, true
		}
	}
	p := parser.NewParser(parser.Options{})
	for _, w := range WindowsOf(bws) {
		expr := ErrorRatioExpr(d, w)
		if _, err := p.ParseExpr(expr); err != nil {
			return nil, fmt.Errorf("%s: indicator: the error ratio over %s is not valid PromQL: %w", d.Ref(), PromDuration(w), err)
		}
		r := rulefmt.Rule{Record: ErrorRatioMetric(w), Expr: expr, Labels: maps.Clone(lbls)}
		if pageWindow[w] {
			fast.Rules = append(fast.Rules, r)
		} else {
			slow.Rules = append(slow.Rules, r)
		}
	}
	fast.Rules = append(fast.Rules, rulefmt.Rule{Record: ObjectiveMetric, Expr: "vector(" + formatFloat(roundSig(s.Objective/100, 10)) + ")", Labels: maps.Clone(lbls)})
	for _, sev := range []string{SeverityPage, SeverityTicket} {
		if (sev == SeverityPage && !s.Alerting.PageEnabled()) || (sev == SeverityTicket && !s.Alerting.TicketEnabled()) {
			continue
		}
		var conds []string
		var first BurnWindow
		for _, w := range bws {
			if w.Severity != sev {
				continue
			}
			if conds == nil {
				first = w
			}
			th := fmt.Sprintf("(%s * %s)", formatFloat(w.Factor), formatFloat(budget))
			conds = append(conds, fmt.Sprintf("(\n  %s%s > %s\n  and\n  %s%s > %s\n)",
				ErrorRatioMetric(w.Long), matcher(lbls), th, ErrorRatioMetric(w.Short), matcher(lbls), th))
		}
		al := maps.Clone(lbls)
		maps.Copy(al, s.Alerting.Labels)
		al["severity"] = sev
		ann := map[string]string{
			"summary":     fmt.Sprintf("%s is burning the error budget of SLO %s (%s%% over %s) too fast", d.Service, d.Name, formatFloat(s.Objective), s.Window),
			"description": fmt.Sprintf("Error ratio {{ $value | humanizePercentage }} over %s; %s fires above %sx the budget (%s%% of the budget spent in %s).", PromDuration(first.Long), sev, formatFloat(first.Factor), formatFloat(first.BudgetPercent), PromDuration(first.Long)),
			"slo_url":     link(opts.ExternalURL, "/slos/"+url.PathEscape(d.Name), nil),
			"traces_url":  link(opts.ExternalURL, "/traces", TracesQuery(d)),
		}
		maps.Copy(ann, s.Alerting.Annotations)
		r := rulefmt.Rule{Alert: AlertName, Expr: strings.Join(conds, "\nor\n"), Labels: al, Annotations: ann}
		if sev == SeverityPage {
			fast.Rules = append(fast.Rules, r)
		} else {
			slow.Rules = append(slow.Rules, r)
		}
	}
	out := []rulefmt.RuleGroup{fast}
	if len(slow.Rules) > 0 {
		out = append(out, slow)
	}
	return out, nil
}

// matcher selects one SLO's recorded series.
func matcher(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, l[k])
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TracesQuery is the trace search of an SLO's failing requests: its
// service, route and error status (the query API's /api/mesh/traces and
// the UI's /traces take it).
func TracesQuery(d *policy.Document) url.Values {
	q := url.Values{"service": {d.Service}, "status": {"error"}}
	if s := d.SLO(); s != nil && s.Route != "" {
		q.Set("attr", "http.route="+s.Route)
	}
	return q
}

func link(base, path string, q url.Values) string {
	u := strings.TrimSuffix(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// RuleGroups returns the rule groups of every SLO document in docs (other
// kinds are skipped), sorted by name. A document whose rules cannot be
// generated is reported in errs and left out.
func RuleGroups(docs []policy.Document, opts Options) (groups []rulefmt.RuleGroup, errs map[string]error) {
	for i := range docs {
		d := &docs[i]
		if d.Kind != policy.KindSLO || d.SLO() == nil {
			continue
		}
		gs, err := Rules(d, opts)
		if err != nil {
			if errs == nil {
				errs = map[string]error{}
			}
			errs[d.Name] = err
			continue
		}
		groups = append(groups, gs...)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Name < groups[j].Name })
	return groups, errs
}

// RuleFile writes groups as a Prometheus rule file (what promtool check
// rules and a Prometheus server's rule_files load).
func RuleFile(groups []rulefmt.RuleGroup) ([]byte, error) {
	var buf strings.Builder
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(rulefmt.RuleGroups{Groups: groups}); err != nil {
		return nil, fmt.Errorf("encoding rule groups: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return []byte(buf.String()), nil
}
