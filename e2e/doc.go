// Package e2e holds the end-to-end tests: they build bin/meshscope and
// bin/meshscope-proxy, start the real binaries on free loopback ports with
// temporary data directories, send traffic through proxies and assert
// through the server's HTTP APIs (Jaeger traces, Prometheus query, mesh
// graph) that telemetry made the whole trip. They also cover the failure
// contract (collector down, bad flags, ports in use) and `meshscope demo`.
//
// Set MESHSCOPE_E2E_BIN to a directory holding both binaries (e.g. bin/
// after `make build`) to skip building them; -short skips the package.
package e2e
