// Package topology builds the live service graph: nodes and edges with golden
// metrics, versions, health and mesh coverage, computed from the metrics
// store (so a past window replays exactly what the live view showed), and
// serves it as JSON and as a WebSocket stream of snapshot + diffs.
//
// graph.go holds the wire contract shared with the UI and the CLI.
// build.go turns the golden metrics (and the span-derived series) of one
// window into a graph with the PromQL engine, from the per-edge aggregates
// that aggregate.go appends (fed by the ingest hook of ingest.go) wherever
// they cover the window, else from the raw series; pairing.go is the span sink
// that pairs client and server spans into span-derived series appended to
// the same store; red.go is the one RED engine: the window's flows as
// tables (services, versions, routes, edges) and graphs, so every view of a
// figure shows the same digits; stream.go and diff.go fan graphs out to stream clients;
// topology.go wires them into the component (New, Run, RegisterRoutes,
// ConsumeSpans). The formats and rules are documented in docs/topology.md.
package topology
