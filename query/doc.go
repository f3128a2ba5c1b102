// Package query is Meshscope's read side: it serves the Prometheus-compatible
// HTTP API (/api/v1/...), the Jaeger-compatible query API (/jaeger/api/...)
// and the native API (/api/mesh/... except the graph endpoints, which the
// topology package serves) over the embedded TSDB and the configured trace
// store. The `meshscope` CLI subcommands (stat, top, traces, graph, check)
// live in query/cli and talk to these endpoints over HTTP.
//
// The wire formats are documented in docs/api.md.
package query
