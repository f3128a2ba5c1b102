// Package breaker is the circuit-breaking layer (Envoy's connection-pool
// thresholds): at most MaxRequests attempts in flight to a service and at
// most MaxConnections of them holding an upstream connection; an attempt
// without a free connection waits in a queue of at most MaxPending.
// Anything beyond fails fast with 503 ("breaker_open"). Observe mode counts
// the attempts that would have been refused and lets them through.
package breaker
