// Package metricstore is the metrics storage of meshscope server. By
// default (Store) it is Prometheus' own TSDB opened in <data>/metrics, which
// the OTLP and remote-write receivers append to and PromQL reads from. With
// --metrics-store remote (Remote) it is a shared Prometheus-compatible store:
// appends go to a write-ahead log that Prometheus' remote-write queue sends,
// and reads use remote read; with --prometheus-url, RemoteEngine evaluates
// PromQL in the store over its Prometheus HTTP API (docs/scale-out.md). A
// self-metrics appender gathers the server's registry periodically and
// appends it so that meshscope_* series are queryable with PromQL too.
package metricstore
