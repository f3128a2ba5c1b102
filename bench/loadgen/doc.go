// Package loadgen is Meshscope's HTTP/1.1 load generator for benchmarks;
// Config.NewExchanger plugs in other protocols (NewH2C for cleartext
// HTTP/2, NewGRPCHealth for gRPC unary calls) under the same schedule.
//
// RunConstantRate sends requests at a fixed total rate over a fixed number
// of keep-alive connections, each connection on its own schedule
// (wrk2-style). It corrects for coordinated omission: when a slow response
// holds a connection past the time its next request was due, that request's
// latency is counted from the time it was due, not from when it could
// finally be sent. Delays that are the generator's own (a timer waking late
// on an idle connection) are not charged to the server; they are reported
// separately as SendLag.
//
// RunClosedLoop sends as fast as responses come back on every connection,
// to find the maximum throughput.
//
// Latencies go into a log-linear Histogram (128 linear sub-buckets per
// power of two, under 0.8 % relative error) from which p50/p90/p99/p99.9
// and the exact maximum are read.
package loadgen
