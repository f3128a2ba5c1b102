// Package balancer is the load-balancing layer, the last before the
// endpoint: it narrows a service's endpoints to the version the route chose,
// drops the ones a filter (outlier detection, health checking) excludes in
// enforce mode, picks one — power of two choices over peak-EWMA latency
// (default, as Linkerd) or round-robin — and sends the attempt there,
// feeding the outcome back to the filters and the latency estimate.
package balancer
