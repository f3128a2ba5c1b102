// Package chain composes the policy layers of each destination service from
// a Spec (the proxy's view of a control-plane snapshot) into one
// http.RoundTripper per service:
//
//	route → mirror → fault → retry/timeout → breaker → balancer (+ outlier, health) → endpoint
//
// and, for the proxy's own service, the inbound chain (rate limit → app).
// Apply swaps the whole set atomically (copy on write): a request takes
// its chain once when it starts and keeps it to the end, so in-flight
// requests finish with the configuration they started with. Stateful parts
// (endpoint load, retry budgets, breaker counters, ejections, token
// buckets, health checkers) are kept across swaps while their policy is
// unchanged.
package chain
