package judge

import (
	"errors"
	"math"
	"sort"
)

// Alternative is the alternative hypothesis of a test.
type Alternative int

// Alternatives. Greater means "the first sample (the canary) tends to be
// larger" (slower, more errors): the one-sided "canary worse" test.
const (
	TwoSided Alternative = iota
	Greater
)

// ExactLimit is the largest sample size (of each sample) for which the
// Mann-Whitney test uses the exact distribution of U (when there are no
// ties); above it, or with ties, it uses the normal approximation with tie
// correction and continuity correction.
const ExactLimit = 20

// MWU is the result of a Mann-Whitney U test.
type MWU struct {
	// U is the statistic of the first sample: the number of pairs (x, y)
	// with x > y, ties counting one half.
	U float64 `json:"u"`
	// P is the p-value of the requested alternative.
	P float64 `json:"p"`
	// Z is the standardised statistic (0 for the exact method).
	Z float64 `json:"z"`
	// Exact is true when the exact distribution was used.
	Exact bool `json:"exact"`
	// Effect is the common-language effect size U/(n1·n2): the chance that
	// a random x is larger than a random y (0.5 = no difference).
	Effect float64 `json:"effect"`
	N1     int     `json:"n1"`
	N2     int     `json:"n2"`
}

// ErrEmpty is returned when a sample is empty.
var ErrEmpty = errors.New("judge: empty sample")

// MannWhitney tests whether x and y come from the same distribution. It
// does not modify x or y.
func MannWhitney(x, y []float64, alt Alternative) (MWU, error) {
	g := make([]Group, 0, len(x)+len(y))
	for _, v := range x {
		g = append(g, Group{Value: v, X: 1})
	}
	for _, v := range y {
		g = append(g, Group{Value: v, Y: 1})
	}
	return MannWhitneyGrouped(g, alt)
}

// Group is a value and how many observations of each sample have it: the
// form histogram buckets give (every observation of a bucket ties).
type Group struct {
	Value float64
	X, Y  uint64
}

// MannWhitneyGrouped is MannWhitney over grouped observations; equal
// values (in one group or several) are ties.
func MannWhitneyGrouped(groups []Group, alt Alternative) (MWU, error) {
	g := append([]Group(nil), groups...)
	sort.SliceStable(g, func(i, j int) bool { return g[i].Value < g[j].Value })
	var n1, n2 uint64
	for _, v := range g {
		n1 += v.X
		n2 += v.Y
	}
	if n1 == 0 || n2 == 0 {
		return MWU{}, ErrEmpty
	}
	// Rank sum of x with mid-ranks; tie term sum(t³ - t).
	var (
		rank  float64 // ranks used so far
		r1    float64
		ties  float64
		tied  bool
		start int
	)
	for start < len(g) {
		end := start
		var t, tx uint64
		for end < len(g) && g[end].Value == g[start].Value {
			t += g[end].X + g[end].Y
			tx += g[end].X
			end++
		}
		mid := rank + (float64(t)+1)/2
		r1 += float64(tx) * mid
		rank += float64(t)
		if t > 1 {
			tied = true
			tf := float64(t)
			ties += tf*tf*tf - tf
		}
		start = end
	}
	f1, f2 := float64(n1), float64(n2)
	u1 := r1 - f1*(f1+1)/2
	u2 := f1*f2 - u1
	res := MWU{U: u1, N1: int(n1), N2: int(n2), Effect: u1 / (f1 * f2)}
	if !tied && n1 <= ExactLimit && n2 <= ExactLimit {
		res.Exact = true
		dist := uDistribution(int(n1), int(n2))
		switch alt {
		case Greater:
			res.P = tailGE(dist, u1)
		default:
			res.P = math.Min(1, 2*tailGE(dist, math.Max(u1, u2)))
		}
		return res, nil
	}
	n := f1 + f2
	mu := f1 * f2 / 2
	sigma := math.Sqrt(f1 * f2 / 12 * ((n + 1) - ties/(n*(n-1))))
	if sigma == 0 { // every observation ties: no evidence either way
		res.P = 1
		return res, nil
	}
	u := u1
	if alt == TwoSided {
		u = math.Max(u1, u2)
	}
	z := (u - mu - 0.5) / sigma
	res.Z = (u1 - mu) / sigma
	p := normSF(z)
	if alt == TwoSided {
		p *= 2
	}
	res.P = math.Min(1, math.Max(0, p))
	return res, nil
}

// uDistribution returns the probabilities of U = 0..n1·n2 for samples of
// sizes n1 and n2 without ties (the number of ways to reach each U over
// all C(n1+n2, n1) orderings).
func uDistribution(n1, n2 int) []float64 {
	// f[i][j][u]: counts for sizes i, j; f(i,j,u) = f(i-1,j,u-j) + f(i,j-1,u).
	maxU := n1 * n2
	prev := make([][]float64, n2+1) // row i-1
	for j := range prev {
		prev[j] = make([]float64, maxU+1)
		prev[j][0] = 1 // i = 0: one ordering, U = 0
	}
	for i := 1; i <= n1; i++ {
		cur := make([][]float64, n2+1)
		for j := 0; j <= n2; j++ {
			cur[j] = make([]float64, maxU+1)
			for u := 0; u <= i*j; u++ {
				var c float64
				if u-j >= 0 {
					c += prev[j][u-j]
				}
				if j > 0 {
					c += cur[j-1][u]
				}
				cur[j][u] = c
			}
		}
		prev = cur
	}
	counts := prev[n2]
	var total float64
	for _, c := range counts {
		total += c
	}
	out := make([]float64, len(counts))
	for u, c := range counts {
		out[u] = c / total
	}
	return out
}

// tailGE is P(U >= u).
func tailGE(dist []float64, u float64) float64 {
	k := int(math.Ceil(u - 1e-9))
	var p float64
	for i := max(k, 0); i < len(dist); i++ {
		p += dist[i]
	}
	return math.Min(1, p)
}

// normSF is the standard normal survival function P(Z > z).
func normSF(z float64) float64 { return 0.5 * math.Erfc(z/math.Sqrt2) }

// Proportions is the result of a test comparing two error rates.
type Proportions struct {
	// Method is "z" (two-proportion z-test, pooled variance) or "fisher"
	// (Fisher's exact test, used when an expected cell count is below 5).
	Method string  `json:"method"`
	P      float64 `json:"p"`
	Z      float64 `json:"z,omitempty"`
	// Rate1 and Rate2 are the error rates of the two samples (0..1).
	Rate1 float64 `json:"rate1"`
	Rate2 float64 `json:"rate2"`
}

// FisherMinExpected is the smallest expected cell count the z-test is used
// with; below it the test falls back to Fisher's exact test.
const FisherMinExpected = 5

// CompareProportions tests whether errors1/total1 and errors2/total2
// differ (Greater: whether the first is larger).
func CompareProportions(errors1, total1, errors2, total2 uint64, alt Alternative) (Proportions, error) {
	if total1 == 0 || total2 == 0 {
		return Proportions{}, ErrEmpty
	}
	if errors1 > total1 || errors2 > total2 {
		return Proportions{}, errors.New("judge: more errors than requests")
	}
	e1, n1, e2, n2 := float64(errors1), float64(total1), float64(errors2), float64(total2)
	res := Proportions{Rate1: e1 / n1, Rate2: e2 / n2}
	n := n1 + n2
	errs := e1 + e2
	okAll := n - errs
	minExp := math.Min(math.Min(n1*errs/n, n2*errs/n), math.Min(n1*okAll/n, n2*okAll/n))
	if minExp < FisherMinExpected {
		res.Method = "fisher"
		res.P = fisher(int(errors1), int(total1-errors1), int(errors2), int(total2-errors2), alt)
		return res, nil
	}
	res.Method = "z"
	p := errs / n
	se := math.Sqrt(p * (1 - p) * (1/n1 + 1/n2))
	res.Z = (res.Rate1 - res.Rate2) / se
	if alt == Greater {
		res.P = normSF(res.Z)
	} else {
		res.P = math.Min(1, 2*normSF(math.Abs(res.Z)))
	}
	return res, nil
}

// fisher is Fisher's exact test of the 2×2 table [[a, b], [c, d]]
// (a = errors of the first sample, b = its successes). Greater tests
// whether the first row's error odds are larger.
func fisher(a, b, c, d int, alt Alternative) float64 {
	r1, c1, n := a+b, a+c, a+b+c+d
	lo := max(0, c1-(n-r1))
	hi := min(r1, c1)
	logC := func(n, k int) float64 {
		x, _ := math.Lgamma(float64(n + 1))
		y, _ := math.Lgamma(float64(k + 1))
		z, _ := math.Lgamma(float64(n - k + 1))
		return x - y - z
	}
	den := logC(n, c1)
	pmf := func(k int) float64 { return math.Exp(logC(r1, k) + logC(n-r1, c1-k) - den) }
	var p float64
	if alt == Greater {
		for k := a; k <= hi; k++ {
			p += pmf(k)
		}
		return math.Min(1, p)
	}
	obs := pmf(a)
	for k := lo; k <= hi; k++ {
		if v := pmf(k); v <= obs*(1+1e-7) {
			p += v
		}
	}
	return math.Min(1, p)
}
