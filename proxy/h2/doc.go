// Package h2 implements HTTP/2 (RFC 9113) for the sidecar proxy with few
// goroutine hand-offs and write syscalls per request, on top of
// golang.org/x/net/http2's Framer and hpack.
//
// Server serves prior-knowledge h2c and TLS (ALPN "h2") connections to an
// http.Handler: the connection's reader goroutine decodes frames and runs
// each stream's handler on a pooled worker goroutine, which writes its own
// frames under the connection's write mutex and flushes once, so a small
// response leaves in one write.
package h2
