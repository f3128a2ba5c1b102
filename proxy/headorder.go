package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
)

// Header field order and name case on HTTP/1.1 (observe mode changes
// nothing). net/http reads field names into canonical case and writes
// them sorted; the proxy keeps the names as they were on the wire:
//
//   - the request guard (guardConn) records the field names of each
//     request head it validates, in order and case as sent;
//   - the upstream connection (orderConn) rewrites the request head
//     net/http writes into that order and case, and records the field
//     names of the response head it reads;
//   - the guard rewrites the response head net/http's server writes into
//     the order and case the upstream used.
//
// Rewriting only moves whole field lines and changes the case of names:
// values are net/http's. Lines the other side did not send (trace context
// headers the proxy adds, framing fields the server sets) keep net/http's
// relative order at the end, a Host line without a position at the start.

// fieldNames is one head's field names as sent, each followed by '\n'.
type fieldNames = string

// headOrders travels with a request (context): the request's field names
// as the client sent them, and the response's as the upstream sent them.
type headOrders struct {
	req fieldNames

	mu   sync.Mutex // resp is written by the upstream connection's reader
	resp fieldNames
}

func (o *headOrders) setResp(names fieldNames) {
	o.mu.Lock()
	o.resp = names
	o.mu.Unlock()
}

func (o *headOrders) respNames() fieldNames {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.resp
}

type headOrdersKey struct{}

func headOrdersOf(ctx context.Context) *headOrders {
	o, _ := ctx.Value(headOrdersKey{}).(*headOrders)
	return o
}

// maxRewriteHead bounds a head held back for rewriting; a longer one
// passes unchanged.
const maxRewriteHead = 64 << 10

// maxRewriteFields bounds the field lines of a rewritten head.
const maxRewriteFields = 128

// headEnd returns the length of the head at the start of b (through its
// empty line, CRLF or bare LF), or -1 when b holds no complete head.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		line := b[i : i+j]
		i += j + 1
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			if i == j+1 { // an empty first line is no head
				continue
			}
			return i
		}
	}
}

// appendFieldNames appends the field names of head, in order, to dst.
func appendFieldNames(dst, head []byte) []byte {
	_, rest, _ := bytes.Cut(head, []byte{'\n'})
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte{'\n'})
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if name, _, ok := bytes.Cut(line, []byte{':'}); ok && len(name) > 0 {
			dst = append(append(dst, name...), '\n')
		}
	}
	return dst
}

// isInterim reports whether head is a 1xx response other than 101.
func isInterim(head []byte) bool {
	return len(head) > 12 && bytes.HasPrefix(head, []byte("HTTP/1.")) && head[9] == '1' && !bytes.HasPrefix(head[9:], []byte("101"))
}

// reorderHead appends head (a start line, CRLF-terminated field lines as
// net/http writes them, an empty line) to dst with its field lines in the
// order and name case of names; see the package comment above.
func reorderHead(dst, head []byte, names fieldNames) []byte {
	type line struct{ start, colon, end int }
	var buf [32]line
	lines := buf[:0]
	i := bytes.IndexByte(head, '\n') + 1
	start := head[:i]
	complete := false
	for i < len(head) {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			return append(dst, head...)
		}
		end := i + j + 1
		if j == 0 || (j == 1 && head[i] == '\r') { // the empty line
			complete = end == len(head)
			break
		}
		c := bytes.IndexByte(head[i:end], ':')
		if c <= 0 || len(lines) == maxRewriteFields {
			return append(dst, head...) // not a head net/http wrote
		}
		lines = append(lines, line{i, i + c, end})
		i = end
	}
	if !complete {
		return append(dst, head...)
	}
	var usedBuf [maxRewriteFields]bool
	used := usedBuf[:len(lines)]
	dst = append(dst, start...)
	if !hasName(names, "Host") { // a Host line no name places goes first
		for k, l := range lines {
			if asciiEqualFold(head[l.start:l.colon], "Host") {
				used[k] = true
				dst = append(dst, head[l.start:l.end]...)
			}
		}
	}
	for rest := names; rest != ""; {
		name, after, _ := strings.Cut(rest, "\n")
		rest = after
		for k, l := range lines {
			if !used[k] && l.colon-l.start == len(name) && asciiEqualFold(head[l.start:l.colon], name) {
				used[k] = true
				dst = append(dst, name...)
				dst = append(dst, head[l.colon:l.end]...)
				break
			}
		}
	}
	for k, l := range lines {
		if !used[k] {
			dst = append(dst, head[l.start:l.end]...)
		}
	}
	return append(dst, "\r\n"...)
}

// hasName reports whether names holds name (ASCII case-insensitively).
func hasName(names fieldNames, name string) bool {
	for rest := names; rest != ""; {
		n, after, _ := strings.Cut(rest, "\n")
		if strings.EqualFold(n, name) {
			return true
		}
		rest = after
	}
	return false
}

// headRewriter holds back the next head written through it (after any 1xx
// interim responses) and writes it reordered by names. Safe for
// concurrent use.
type headRewriter struct {
	mu    sync.Mutex
	names fieldNames // "" = pass through
	buf   []byte     // an incomplete head held back
	out   []byte     // scratch for the rewritten bytes
}

// expect makes the next head follow names.
func (h *headRewriter) expect(names fieldNames) {
	h.mu.Lock()
	h.names, h.buf = names, h.buf[:0]
	h.mu.Unlock()
}

func (h *headRewriter) write(w io.Writer, p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names == "" {
		return w.Write(p)
	}
	in := p
	if len(h.buf) > 0 {
		h.buf = append(h.buf, p...)
		in = h.buf
	}
	out := h.out[:0]
	defer func() { h.out = out[:0] }()
	for {
		n := headEnd(in)
		if n < 0 {
			if len(in) > maxRewriteHead {
				break // too long to hold: unchanged
			}
			h.buf = append(h.buf[:0], in...)
			if len(out) > 0 {
				if _, err := w.Write(out); err != nil {
					return 0, err
				}
			}
			return len(p), nil
		}
		if isInterim(in[:n]) {
			out = append(out, in[:n]...)
			in = in[n:]
			continue
		}
		out = reorderHead(out, in[:n], h.names)
		in = in[n:]
		break
	}
	out = append(out, in...)
	h.names, h.buf = "", h.buf[:0]
	if _, err := w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// orderConn is an upstream HTTP/1.1 connection that writes the request
// head in the client's field order and records the response head's.
type orderConn struct {
	net.Conn
	out headRewriter

	mu       sync.Mutex
	dst      *headOrders // where the next response head's names go; nil = none
	lazy     bool        // recording waits for catchUp
	rbuf     []byte
	lastResp fieldNames // the previous response's names, reused when the next repeats them
}

// wrapOrderDial makes every dialed upstream connection an orderConn.
func wrapOrderDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &orderConn{Conn: rawIO(c)}, nil
	}
}

// expect arms c for the request of o: its head is written in o.req's
// order, the response head's names are stored in o.resp.
func (c *orderConn) expect(o *headOrders) {
	c.out.expect(o.req)
	c.expectResp(o, false)
}

// expectResp makes c store the next response head's names in o.resp
// (the request head is written in order already); lazy defers the
// recording until catchUp, which a response taken verbatim never calls.
func (c *orderConn) expectResp(o *headOrders, lazy bool) {
	c.mu.Lock()
	c.dst, c.lazy, c.rbuf = o, lazy, c.rbuf[:0]
	c.mu.Unlock()
}

// catchUp starts a deferred recording with the response bytes read so far.
func (c *orderConn) catchUp(read []byte) {
	c.mu.Lock()
	if c.lazy && c.dst != nil {
		c.lazy = false
		c.capture(read)
	}
	c.mu.Unlock()
}

// disarm drops a deferred recording.
func (c *orderConn) disarm() {
	c.mu.Lock()
	c.dst, c.lazy = nil, false
	c.mu.Unlock()
}

func (c *orderConn) Write(p []byte) (int, error) { return c.out.write(c.Conn, p) }

// deferWrite is the connection's (h1Transport.exchange); a no-op when it
// has none.
func (c *orderConn) deferWrite() {
	if d, ok := c.Conn.(writeDeferrer); ok {
		d.deferWrite()
	}
}

func (c *orderConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.dst != nil && !c.lazy {
			c.capture(p[:n])
		}
		c.mu.Unlock()
	}
	return n, err
}

// capture collects response bytes until the final head is complete;
// c.mu is held.
func (c *orderConn) capture(p []byte) {
	c.rbuf = append(c.rbuf, p...)
	for {
		n := headEnd(c.rbuf)
		if n < 0 {
			if len(c.rbuf) > maxRewriteHead {
				c.dst, c.rbuf = nil, c.rbuf[:0]
			}
			return
		}
		if isInterim(c.rbuf[:n]) {
			c.rbuf = c.rbuf[:copy(c.rbuf, c.rbuf[n:])]
			continue
		}
		// The names go after the head in rbuf, then into one string.
		all := appendFieldNames(c.rbuf[:n], c.rbuf[:n])
		c.rbuf = all
		if names := all[n:]; string(names) != c.lastResp {
			c.lastResp = string(names)
		}
		c.dst.setResp(c.lastResp)
		c.dst, c.rbuf = nil, c.rbuf[:0]
		return
	}
}

// CloseWrite half-closes the connection (tunnels).
func (c *orderConn) CloseWrite() error {
	closeWrite(c.Conn)
	return nil
}

// armOrder prepares conn for r when r carries field orders.
func armOrder(conn net.Conn, r *http.Request) {
	if o := headOrdersOf(r.Context()); o != nil {
		if oc, ok := conn.(*orderConn); ok {
			oc.expect(o)
		}
	}
}

// withOrderTrace arms the connection http.Transport picks for r.
func withOrderTrace(r *http.Request) *http.Request {
	if headOrdersOf(r.Context()) == nil || r.ProtoMajor == 2 {
		return r
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { armOrder(info.Conn, r) }}
	return r.WithContext(httptrace.WithClientTrace(r.Context(), trace))
}
