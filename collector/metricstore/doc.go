// Package metricstore is the embedded metrics storage of meshscope server:
// Prometheus' own TSDB opened in <data>/metrics, which the OTLP and
// remote-write receivers append to and PromQL reads from, plus a self-metrics
// appender that gathers the server's registry periodically and appends it
// so that meshscope_* series are queryable with PromQL too.
package metricstore
