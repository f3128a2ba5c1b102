// Package promapi implements the Prometheus HTTP API (/api/v1/query,
// query_range, series, labels, label values, metadata, buildinfo,
// format_query, rules, alerts) over a storage.Queryable and the real PromQL
// engine, answering with the same JSON shapes, error types and HTTP status
// codes as Prometheus so that Grafana, promtool and other clients work
// unchanged.
package promapi
