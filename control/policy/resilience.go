package policy

import "math"

// Resilience is the spec of kind Resilience: how a caller balances load
// over a service's endpoints and protects itself and the service.
//
// Istio: DestinationRule trafficPolicy; Linkerd: balancer, failure accrual.
type Resilience struct {
	// LoadBalancer is p2c-ewma (power of two choices over peak-EWMA
	// latency) or round-robin.
	LoadBalancer string `yaml:"load_balancer" json:"load_balancer" default:"p2c-ewma"`
	// CircuitBreaker caps concurrency to the service. Default none.
	CircuitBreaker *CircuitBreaker `yaml:"circuit_breaker,omitempty" json:"circuit_breaker,omitempty"`
	// OutlierDetection ejects failing endpoints. Default none.
	OutlierDetection *OutlierDetection `yaml:"outlier_detection,omitempty" json:"outlier_detection,omitempty"`
	// RateLimit caps the request rate, applied at the service's inbound
	// proxy. Default none.
	RateLimit *RateLimit `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	// HealthCheck probes the service's instances. Default none.
	HealthCheck *HealthCheck `yaml:"health_check,omitempty" json:"health_check,omitempty"`
}

// Load balancers.
const (
	LoadBalancerP2CEWMA    = "p2c-ewma"
	LoadBalancerRoundRobin = "round-robin"
)

// CircuitBreaker caps concurrency per caller proxy and service (Envoy's
// cluster circuit breakers; defaults are Envoy's).
type CircuitBreaker struct {
	// MaxConnections is the most upstream connections.
	MaxConnections int `yaml:"max_connections" json:"max_connections" default:"1024"`
	// MaxPending is the most requests waiting for a connection.
	MaxPending int `yaml:"max_pending" json:"max_pending" default:"1024"`
	// MaxRequests is the most requests in flight.
	MaxRequests int `yaml:"max_requests" json:"max_requests" default:"1024"`
}

// OutlierDetection ejects endpoints after consecutive 5xx (Envoy's
// defaults). At least one endpoint may always be ejected, whatever
// MaxEjectionPercent says.
type OutlierDetection struct {
	// Consecutive5xx failures in a row eject an endpoint.
	Consecutive5xx int `yaml:"consecutive_5xx" json:"consecutive_5xx" default:"5"`
	// Interval between ejection sweeps.
	Interval Duration `yaml:"interval" json:"interval" default:"10s"`
	// BaseEjectionTime is the first ejection's length; each further
	// ejection of the same endpoint lasts that many times longer.
	BaseEjectionTime Duration `yaml:"base_ejection_time" json:"base_ejection_time" default:"30s"`
	// MaxEjectionPercent of a service's endpoints may be ejected at once.
	MaxEjectionPercent float64 `yaml:"max_ejection_percent" json:"max_ejection_percent" default:"10"`
}

// RateLimit is a token bucket at the service's inbound proxy; requests
// above it are answered 429.
type RateLimit struct {
	// RequestsPerSecond is the sustained rate; required.
	RequestsPerSecond float64 `yaml:"requests_per_second" json:"requests_per_second"`
	// Burst is the bucket size; default the rate rounded up (at least 1).
	Burst int `yaml:"burst" json:"burst"`
}

// HealthCheck probes each instance of the service over HTTP; an instance
// answering anything but 2xx UnhealthyThreshold times in a row is
// unhealthy until it answers 2xx again.
type HealthCheck struct {
	// Path probed with GET.
	Path string `yaml:"path" json:"path" default:"/healthz"`
	// Interval between probes.
	Interval Duration `yaml:"interval" json:"interval" default:"10s"`
	// UnhealthyThreshold failed probes in a row mark it unhealthy.
	UnhealthyThreshold int `yaml:"unhealthy_threshold" json:"unhealthy_threshold" default:"3"`
}

// Validate implements Spec.
func (r *Resilience) Validate() error {
	switch r.LoadBalancer {
	case LoadBalancerP2CEWMA, LoadBalancerRoundRobin:
	default:
		return fieldErr("load_balancer", "%q: want p2c-ewma or round-robin", r.LoadBalancer)
	}
	if c := r.CircuitBreaker; c != nil {
		for _, f := range []struct {
			path string
			v    int
		}{
			{"circuit_breaker.max_connections", c.MaxConnections},
			{"circuit_breaker.max_pending", c.MaxPending},
			{"circuit_breaker.max_requests", c.MaxRequests},
		} {
			if f.v < 1 {
				return fieldErr(f.path, "must be at least 1")
			}
		}
	}
	if o := r.OutlierDetection; o != nil {
		switch {
		case o.Consecutive5xx < 1:
			return fieldErr("outlier_detection.consecutive_5xx", "must be at least 1")
		case o.Interval <= 0:
			return fieldErr("outlier_detection.interval", "must be positive")
		case o.BaseEjectionTime <= 0:
			return fieldErr("outlier_detection.base_ejection_time", "must be positive")
		}
		if err := checkPercent("outlier_detection.max_ejection_percent", o.MaxEjectionPercent); err != nil {
			return err
		}
	}
	if l := r.RateLimit; l != nil {
		if !(l.RequestsPerSecond > 0) || math.IsInf(l.RequestsPerSecond, 0) {
			return fieldErr("rate_limit.requests_per_second", "must be positive")
		}
		if l.Burst < 1 {
			return fieldErr("rate_limit.burst", "must be at least 1")
		}
	}
	if h := r.HealthCheck; h != nil {
		switch {
		case h.Path == "" || h.Path[0] != '/':
			return fieldErr("health_check.path", "%q: must start with /", h.Path)
		case h.Interval <= 0:
			return fieldErr("health_check.interval", "must be positive")
		case h.UnhealthyThreshold < 1:
			return fieldErr("health_check.unhealthy_threshold", "must be at least 1")
		}
	}
	return nil
}

// setDefaults fills what tags cannot: the burst from the rate.
func (r *Resilience) setDefaults() {
	if l := r.RateLimit; l != nil && l.Burst == 0 && l.RequestsPerSecond > 0 && !math.IsInf(l.RequestsPerSecond, 0) {
		l.Burst = int(math.Max(1, math.Ceil(math.Min(l.RequestsPerSecond, 1e9))))
	}
}
