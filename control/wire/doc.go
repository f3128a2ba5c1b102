// Package wire is the protocol between a proxy and the control plane: one
// WebSocket per proxy at Path carrying JSON text messages, each an object
// with a "type" field.
//
//	proxy  → server  hello     once, first: who the proxy is and whom it calls
//	server → proxy   snapshot  the full config for the proxy's services, on
//	                           connect and after every change
//	proxy  → server  status    the proxy's view: config version applied, its
//	                           own health, endpoint health and ejections
//	server → proxy   error     why the server is closing the stream
//	proxy  → server  cert_request  a CSR for the proxy's mesh identity
//	server → proxy   cert      the signed certificate and trust bundle, or why not
//
// Liveness uses WebSocket ping/pong control frames: the server pings every
// PingInterval and drops a proxy it has not heard from for PongWait.
// Receivers ignore message types they do not know (delta is reserved), so
// either side may be newer. The protocol is documented in
// docs/control-plane.md. The package is light: the proxy binary imports it.
package wire
