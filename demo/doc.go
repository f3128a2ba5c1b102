// Package demo runs the Meshscope demo: a small shop of HTTP services written
// in Go, each meshed service behind its own meshscope-proxy process, a
// meshscope server as a child process, and a steady load generator.
//
// The shop (see Shop) is web → catalog, cart, checkout; catalog → inventory
// (two versions, v1 and v2, each its own instance and proxy); cart → pricing
// (pricing runs without a proxy, so the graph shows an unmeshed node);
// checkout → payments (about 2 % errors and a slow tail). Services forward the
// incoming trace headers (W3C traceparent/tracestate, B3) on their outgoing
// calls, so one trace spans every hop.
//
// Run is what `meshscope demo` calls. It owns every process it starts: on
// cancel it stops the load, the proxies and the server, and on Linux the
// children are started in their own process group with a parent-death signal
// so none outlives the demo even if the demo itself is killed.
package demo
