// Package outlier is passive outlier detection (Envoy's consecutive-5xx
// ejection): an endpoint that fails Consecutive5xx attempts in a row (5xx,
// connect failure or reset) is ejected for BaseEjectionTime times the number
// of times it has been ejected (capped at MaxEjectionTime); the multiplier
// decays by one for every Interval the endpoint stays in. At most
// MaxEjectionPercent of the endpoints are ejected at once, but always at
// least one may be. The balancer consults it as a filter; in observe mode
// ejections are tracked and reported but traffic is not steered.
package outlier
