// Package gateway is meshscope-proxy --gateway: the ingress gateway at the
// edge of the mesh, configured by one kind: Gateway document (a static
// --config file, or applied through the control plane).
//
// Listeners terminate TLS with a certificate per SNI host (HTTP/2 and
// HTTP/1.1 over ALPN, optional h2c, HTTP → HTTPS redirects); routes match
// host and path (prefix, exact or RE2) and send to mesh services, with
// JWT validation (jwt.go, jwks.go), per-client token-bucket rate limits
// (ratelimit.go), body-size limits, header rewrites and CORS. The routing
// decision plugs into proxy.Edge, so every request — forwarded or answered
// here with 401/404/413/429 — is recorded by the sidecar's own span and
// golden-metric code with direction="ingress".
//
// Configuration and certificates are reloaded (file change, SIGHUP, or a
// control-plane snapshot) by swapping one immutable compiled state; open
// connections keep being served. See docs/gateway.md.
package gateway
