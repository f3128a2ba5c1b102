// Package healthcheck actively checks a service's endpoints: every Interval
// it sends GET Path to each endpoint; UnhealthyThreshold failures in a row
// (no answer within the interval, or a status outside 200–399) mark it
// unhealthy, one success marks it healthy again. The balancer consults it
// as a filter (enforce mode) or records "unhealthy" for requests that went
// to an unhealthy endpoint (observe mode).
package healthcheck
