// Package topology builds the live service graph: nodes and edges with golden
// metrics, versions, health and mesh coverage, computed from the metrics
// store (so a past window replays exactly what the live view showed), and
// serves it as JSON and as a WebSocket stream of snapshot + diffs.
//
// graph.go holds the wire contract shared with the UI and the CLI.
package topology
