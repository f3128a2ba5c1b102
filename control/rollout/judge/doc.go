// Package judge is the statistics of canary analysis: the Mann-Whitney U
// test (exact distribution for small samples without ties, normal
// approximation with tie and continuity correction otherwise; grouped form
// for histogram buckets), the two-proportion z-test with Fisher's exact
// test for small counts, and the Kayenta-style judgement of an interval:
// a verdict per metric (pass, marginal, fail), a score 0–100 and an
// overall verdict. docs/rollouts.md describes the method and its limits.
package judge
