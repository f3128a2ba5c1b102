// Package rollout is the rollout controller of `meshscope server`: it
// carries out Rollout documents (control/policy) by editing the service's
// Route through the policy store, judging every interval the canary against
// the stable version (control/rollout/judge) from the golden metrics (error
// counts, latency histograms) and the trace store (per-request latencies),
// holding while an SLO's error budget is low, rolling back on failure or a
// firing guard, and promoting after the last step. Its state lives in
// <data>/rollouts, one JSON file per rollout, and a restarted server
// resumes each rollout at its step. The API is /api/mesh/v1/rollouts;
// docs/rollouts.md describes the whole.
package rollout
