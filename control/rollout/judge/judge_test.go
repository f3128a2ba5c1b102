package judge

import (
	"math/rand/v2"
	"testing"
)

func lognormal(r *rand.Rand, n int, median float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = median * (1 + 0.3*r.NormFloat64()*0.5)
		if out[i] < 0 {
			out[i] = median / 10
		}
	}
	return out
}

func TestJudge(t *testing.T) {
	cfg := Config{MinRequests: 50, MinSuccessRate: 90, MaxP99: 0.5, Alpha: 0.05, MaxDegradation: 10, MaxErrorIncrease: 1, PassScore: 90, MarginalScore: 60}
	r := rand.New(rand.NewPCG(1, 2))
	base := lognormal(r, 400, 0.010)
	same := lognormal(r, 400, 0.010)
	double := lognormal(r, 400, 0.020)
	slight := lognormal(r, 400, 0.0103)
	cases := []struct {
		name           string
		canary, stable Sample
		want           string
		failing        string // metric expected to fail
	}{
		{"healthy", Sample{Requests: 400, Errors: 1, Latencies: same}, Sample{Requests: 400, Errors: 1, Latencies: base}, Pass, ""},
		{"too few", Sample{Requests: 20, Latencies: same[:20]}, Sample{Requests: 400, Latencies: base}, NoData, ""},
		{"20% failing", Sample{Requests: 400, Errors: 80, Latencies: same}, Sample{Requests: 400, Latencies: base}, Fail, "success_rate"},
		{"5% failing above threshold", Sample{Requests: 400, Errors: 20, Latencies: same}, Sample{Requests: 400, Latencies: base}, Fail, "error_rate"},
		{"2x latency", Sample{Requests: 400, Latencies: double}, Sample{Requests: 400, Latencies: base}, Fail, "latency"},
		{"3% slower: significant but tolerated", Sample{Requests: 400, Latencies: slight}, Sample{Requests: 400, Latencies: base}, Pass, ""},
		{"1.7 pp more errors, too few to tell: marginal", Sample{Requests: 60, Errors: 1, Latencies: same[:60]}, Sample{Requests: 400, Latencies: base}, Marginal, ""},
		{"slow beyond p99 threshold", Sample{Requests: 400, Latencies: append(lognormal(r, 390, 0.01), 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)}, Sample{Requests: 400, Latencies: base}, Fail, "latency_p99"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Judge(cfg, c.canary, c.stable, SourceTraces)
			if got.Verdict != c.want {
				t.Fatalf("verdict %s (%s), want %s; metrics %+v", got.Verdict, got.Reason, c.want, got.Metrics)
			}
			if c.failing != "" {
				found := false
				for _, m := range got.Metrics {
					if m.Name == c.failing && m.Verdict == Fail {
						found = true
					}
				}
				if !found {
					t.Errorf("metric %s did not fail: %+v", c.failing, got.Metrics)
				}
			}
			if got.Verdict == Pass && got.Score < cfg.PassScore {
				t.Errorf("pass with score %v", got.Score)
			}
		})
	}
}

func TestJudgeHistogram(t *testing.T) {
	cfg := Config{MinRequests: 50, Alpha: 0.05, MaxDegradation: 10, MaxErrorIncrease: 1, PassScore: 90, MarginalScore: 60}
	stable := Sample{Requests: 1000, Buckets: map[float64]uint64{0.005: 300, 0.01: 500, 0.025: 200}}
	same := Sample{Requests: 500, Buckets: map[float64]uint64{0.005: 150, 0.01: 250, 0.025: 100}}
	slow := Sample{Requests: 500, Buckets: map[float64]uint64{0.01: 100, 0.025: 300, 0.05: 100}}
	if got := Judge(cfg, same, stable, SourceHistogram); got.Verdict != Pass {
		t.Errorf("same distribution: %s %s", got.Verdict, got.Reason)
	}
	got := Judge(cfg, slow, stable, SourceHistogram)
	if got.Verdict != Fail || got.LatencySource != SourceHistogram {
		t.Errorf("slow canary: %s %s", got.Verdict, got.Reason)
	}
	if q := bucketQuantile(stable.Buckets, 0.5); q <= 0.005 || q > 0.01 {
		t.Errorf("median %v outside its bucket", q)
	}
}
