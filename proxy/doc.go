// Package proxy is meshscope-proxy, the observing sidecar data plane.
//
// It accepts traffic on inbound listeners (mesh → local app), outbound
// listeners (local app → one upstream service) and an optional HTTP forward
// proxy listener, detects the protocol of each connection by peeking its first
// bytes, forwards HTTP/1.1, HTTP/2 (h2c and TLS ALPN), gRPC and WebSocket
// requests through net/http/httputil.ReverseProxy and anything else as opaque
// TCP. HTTP/1.x (plain or in terminated TLS) passes through a framing guard (h1guard.go)
// that refuses ambiguous framing (request smuggling) and oversized heads
// before net/http parses a byte; connections that send nothing are closed
// after detect_timeout, and at most max_detections wait at once
// (limits.go). Every request is recorded as one OpenTelemetry span per hop and in the
// golden metrics of docs/metrics.md, which are served on the admin /metrics
// endpoint and pushed to the collector over OTLP gRPC.
//
// The package must stay free of storage and PromQL imports so the sidecar
// binary stays small; a test enforces it.
package proxy
