package judge

import (
	"fmt"
	"math"
	"sort"
)

// Verdicts of a metric and of an interval.
const (
	Pass     = "pass"
	Marginal = "marginal"
	Fail     = "fail"
	// NoData: too few requests to judge; the interval neither passes nor
	// fails.
	NoData = "no_data"
)

// Latency sources.
const (
	SourceTraces    = "traces"    // per-request durations of SERVER spans
	SourceHistogram = "histogram" // mesh_request_duration_seconds buckets
)

// Sample is what one version did over an interval.
type Sample struct {
	Requests uint64 `json:"requests"`
	Errors   uint64 `json:"errors"`
	// Latencies are per-request durations in seconds (trace source).
	Latencies []float64 `json:"-"`
	// Buckets are latency histogram counts per upper bound in seconds
	// (non-cumulative; +Inf allowed) for the histogram source.
	Buckets map[float64]uint64 `json:"-"`
}

// Config is what the judge compares against (from the Rollout document).
type Config struct {
	MinRequests uint64
	// MinSuccessRate is the fixed threshold in percent; 0 = none.
	MinSuccessRate float64
	// MaxP99 is the fixed p99 threshold in seconds; 0 = none.
	MaxP99 float64
	// Alpha is the significance level of the comparisons.
	Alpha float64
	// MaxDegradation is the tolerated relative latency increase in percent
	// (canary median over stable median).
	MaxDegradation float64
	// MaxErrorIncrease is the tolerated error-rate increase in percentage
	// points.
	MaxErrorIncrease float64
	// PassScore and MarginalScore split the score into verdicts.
	PassScore, MarginalScore float64
}

// Metric is the judgement of one metric.
type Metric struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // threshold or comparison
	Verdict string `json:"verdict"`
	// Canary and Stable are the compared figures (success rate in percent,
	// latency in seconds); Limit the threshold.
	Canary float64  `json:"canary"`
	Stable *float64 `json:"stable,omitempty"`
	Limit  *float64 `json:"limit,omitempty"`
	// P is the one-sided p-value of "canary worse"; Test names the test.
	P    *float64 `json:"p,omitempty"`
	Test string   `json:"test,omitempty"`
	// Effect is the difference: percentage points of error rate, or
	// relative latency change in percent.
	Effect *float64 `json:"effect,omitempty"`
	// ProbWorse is the Mann-Whitney common-language effect size: the chance
	// a canary request is slower than a stable one.
	ProbWorse *float64 `json:"prob_worse,omitempty"`
	Reason    string   `json:"reason"`
}

// Result is the judgement of an interval.
type Result struct {
	Verdict string   `json:"verdict"`
	Score   float64  `json:"score"`
	Metrics []Metric `json:"metrics"`
	// LatencySource says where the latency samples came from.
	LatencySource string  `json:"latency_source"`
	Canary        Figures `json:"canary"`
	Stable        Figures `json:"stable"`
	Reason        string  `json:"reason"`
}

// Figures summarise a version's interval.
type Figures struct {
	Requests    uint64   `json:"requests"`
	Errors      uint64   `json:"errors"`
	SuccessRate *float64 `json:"success_rate"`
	P50         *float64 `json:"p50"`
	P99         *float64 `json:"p99"`
	Samples     int      `json:"latency_samples"`
}

func ptr(v float64) *float64 { return &v }

func figures(s Sample, source string) Figures {
	f := Figures{Requests: s.Requests, Errors: s.Errors}
	if s.Requests > 0 {
		f.SuccessRate = ptr(100 * float64(s.Requests-min(s.Errors, s.Requests)) / float64(s.Requests))
	}
	switch source {
	case SourceTraces:
		f.Samples = len(s.Latencies)
		if len(s.Latencies) > 0 {
			v := append([]float64(nil), s.Latencies...)
			sort.Float64s(v)
			f.P50, f.P99 = ptr(quantile(v, 0.5)), ptr(quantile(v, 0.99))
		}
	case SourceHistogram:
		var n uint64
		for _, c := range s.Buckets {
			n += c
		}
		f.Samples = int(n)
		if n > 0 {
			f.P50, f.P99 = ptr(bucketQuantile(s.Buckets, 0.5)), ptr(bucketQuantile(s.Buckets, 0.99))
		}
	}
	return f
}

// quantile of sorted v (linear interpolation between closest ranks).
func quantile(v []float64, q float64) float64 {
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(v)-1)
	return v[lo] + (v[hi]-v[lo])*(pos-float64(lo))
}

// bucketQuantile interpolates within buckets like PromQL's
// histogram_quantile (the first bucket starts at 0; +Inf answers the
// largest finite bound).
func bucketQuantile(b map[float64]uint64, q float64) float64 {
	bounds := make([]float64, 0, len(b))
	var total uint64
	for le, c := range b {
		bounds = append(bounds, le)
		total += c
	}
	sort.Float64s(bounds)
	rank := q * float64(total)
	var cum float64
	lower := 0.0
	for i, le := range bounds {
		c := float64(b[le])
		if cum+c >= rank && c > 0 {
			if math.IsInf(le, 1) {
				if i > 0 {
					return bounds[i-1]
				}
				return 0
			}
			return lower + (le-lower)*(rank-cum)/c
		}
		cum += c
		if !math.IsInf(le, 1) {
			lower = le
		}
	}
	return lower
}

// Judge compares canary with stable over one interval. source is the
// latency source of both samples.
func Judge(cfg Config, canary, stable Sample, source string) Result {
	r := Result{LatencySource: source, Canary: figures(canary, source), Stable: figures(stable, source)}
	if canary.Requests < cfg.MinRequests || stable.Requests == 0 {
		r.Verdict = NoData
		r.Reason = fmt.Sprintf("canary served %d requests, stable %d; need %d canary requests and some stable traffic", canary.Requests, stable.Requests, cfg.MinRequests)
		return r
	}
	if cfg.MinSuccessRate > 0 {
		m := Metric{Name: "success_rate", Kind: "threshold", Canary: *r.Canary.SuccessRate, Limit: ptr(cfg.MinSuccessRate), Verdict: Pass}
		m.Reason = fmt.Sprintf("%.2f%% ≥ %.2f%%", m.Canary, cfg.MinSuccessRate)
		if m.Canary < cfg.MinSuccessRate {
			m.Verdict, m.Reason = Fail, fmt.Sprintf("%.2f%% < %.2f%%", m.Canary, cfg.MinSuccessRate)
		}
		r.Metrics = append(r.Metrics, m)
	}
	if cfg.MaxP99 > 0 && r.Canary.P99 != nil {
		m := Metric{Name: "latency_p99", Kind: "threshold", Canary: *r.Canary.P99, Limit: ptr(cfg.MaxP99), Verdict: Pass}
		m.Reason = fmt.Sprintf("p99 %s ≤ %s", seconds(m.Canary), seconds(cfg.MaxP99))
		if m.Canary > cfg.MaxP99 {
			m.Verdict, m.Reason = Fail, fmt.Sprintf("p99 %s > %s", seconds(m.Canary), seconds(cfg.MaxP99))
		}
		r.Metrics = append(r.Metrics, m)
	}
	r.Metrics = append(r.Metrics, compareErrors(cfg, canary, stable, r))
	if m, ok := compareLatency(cfg, canary, stable, source, r); ok {
		r.Metrics = append(r.Metrics, m)
	}
	// Score: pass 1, marginal 0.5, fail 0, over the judged metrics. Every
	// metric is critical: one fail fails the interval.
	var sum float64
	failed := ""
	for _, m := range r.Metrics {
		switch m.Verdict {
		case Pass:
			sum++
		case Marginal:
			sum += 0.5
		case Fail:
			if failed == "" {
				failed = m.Name + ": " + m.Reason
			}
		}
	}
	r.Score = math.Round(1000*sum/float64(len(r.Metrics))) / 10
	switch {
	case failed != "":
		r.Verdict, r.Reason = Fail, failed
	case r.Score < cfg.MarginalScore:
		r.Verdict, r.Reason = Fail, fmt.Sprintf("score %.1f below marginal_score %.0f", r.Score, cfg.MarginalScore)
	case r.Score < cfg.PassScore:
		r.Verdict, r.Reason = Marginal, fmt.Sprintf("score %.1f below pass_score %.0f", r.Score, cfg.PassScore)
	default:
		r.Verdict, r.Reason = Pass, fmt.Sprintf("score %.1f", r.Score)
	}
	return r
}

func seconds(s float64) string { return fmt.Sprintf("%.1fms", s*1000) }

func compareErrors(cfg Config, canary, stable Sample, r Result) Metric {
	m := Metric{Name: "error_rate", Kind: "comparison", Canary: 100 - *r.Canary.SuccessRate, Stable: ptr(100 - *r.Stable.SuccessRate)}
	pr, err := CompareProportions(min(canary.Errors, canary.Requests), canary.Requests, min(stable.Errors, stable.Requests), stable.Requests, Greater)
	if err != nil {
		m.Verdict, m.Reason = NoData, err.Error()
		return m
	}
	eff := m.Canary - *m.Stable
	m.P, m.Test, m.Effect = ptr(pr.P), "two-proportion "+pr.Method, ptr(eff)
	significant := pr.P < cfg.Alpha
	switch {
	case significant && eff > cfg.MaxErrorIncrease:
		m.Verdict = Fail
		m.Reason = fmt.Sprintf("error rate %.2f%% vs stable %.2f%% (+%.2f pp > %.2f pp, p=%.3g < %.3g)", m.Canary, *m.Stable, eff, cfg.MaxErrorIncrease, pr.P, cfg.Alpha)
	case eff > cfg.MaxErrorIncrease:
		m.Verdict = Marginal
		m.Reason = fmt.Sprintf("error rate %.2f%% vs stable %.2f%%: +%.2f pp but not significant (p=%.3g ≥ %.3g): needs more requests", m.Canary, *m.Stable, eff, pr.P, cfg.Alpha)
	case significant:
		m.Verdict = Pass
		m.Reason = fmt.Sprintf("error rate %.2f%% vs stable %.2f%%: significantly higher (p=%.3g) but within %.2f pp", m.Canary, *m.Stable, pr.P, cfg.MaxErrorIncrease)
	default:
		m.Verdict = Pass
		m.Reason = fmt.Sprintf("error rate %.2f%% vs stable %.2f%% (p=%.3g ≥ %.3g)", m.Canary, *m.Stable, pr.P, cfg.Alpha)
	}
	return m
}

func compareLatency(cfg Config, canary, stable Sample, source string, r Result) (Metric, bool) {
	if r.Canary.P50 == nil || r.Stable.P50 == nil {
		return Metric{}, false
	}
	var (
		res MWU
		err error
	)
	switch source {
	case SourceTraces:
		res, err = MannWhitney(canary.Latencies, stable.Latencies, Greater)
	default:
		g := make([]Group, 0, len(canary.Buckets)+len(stable.Buckets))
		for le, c := range canary.Buckets {
			g = append(g, Group{Value: le, X: c})
		}
		for le, c := range stable.Buckets {
			g = append(g, Group{Value: le, Y: c})
		}
		res, err = MannWhitneyGrouped(g, Greater)
	}
	m := Metric{Name: "latency", Kind: "comparison", Canary: *r.Canary.P50, Stable: ptr(*r.Stable.P50)}
	if err != nil {
		m.Verdict, m.Reason = NoData, err.Error()
		return m, true
	}
	eff := 0.0
	if *m.Stable > 0 {
		eff = 100 * (m.Canary / *m.Stable - 1)
	}
	m.P, m.Effect, m.ProbWorse = ptr(res.P), ptr(eff), ptr(res.Effect)
	m.Test = "mann-whitney (normal approx.)"
	if res.Exact {
		m.Test = "mann-whitney (exact)"
	}
	significant := res.P < cfg.Alpha
	switch {
	case significant && eff > cfg.MaxDegradation:
		m.Verdict = Fail
		m.Reason = fmt.Sprintf("p50 %s vs stable %s (+%.0f%% > %.0f%%, p=%.3g < %.3g)", seconds(m.Canary), seconds(*m.Stable), eff, cfg.MaxDegradation, res.P, cfg.Alpha)
	case eff > cfg.MaxDegradation:
		m.Verdict = Marginal
		m.Reason = fmt.Sprintf("p50 %s vs stable %s: +%.0f%% but not significant (p=%.3g ≥ %.3g): needs more requests", seconds(m.Canary), seconds(*m.Stable), eff, res.P, cfg.Alpha)
	case significant:
		m.Verdict = Pass
		m.Reason = fmt.Sprintf("p50 %s vs stable %s: significantly slower (p=%.3g) but within %.0f%%", seconds(m.Canary), seconds(*m.Stable), res.P, cfg.MaxDegradation)
	default:
		m.Verdict = Pass
		m.Reason = fmt.Sprintf("p50 %s vs stable %s (p=%.3g ≥ %.3g)", seconds(m.Canary), seconds(*m.Stable), res.P, cfg.Alpha)
	}
	return m, true
}
