package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// The HTTP/1.1 request guard checks the framing of every request on a
// plain-text HTTP/1.x connection (RFC 9112) before net/http sees its
// bytes, so that the proxy and the app can never disagree on where a
// request ends (request smuggling). It sits between the connection and
// net/http's server as a net.Conn: Read hands net/http only bytes it has
// validated.
//
// What is refused (answered with the status below and the connection
// closed):
//
//   - 400: Content-Length together with Transfer-Encoding; a header line
//     folded onto the previous one (obs-fold); a line ending in a bare LF
//     or containing a bare CR; a NUL or other control byte in the request
//     line or a header; a header name with whitespace before the colon or
//     a character outside the token set; a Content-Length that is not
//     plain decimal digits (signs, hex, lists, empty) or more than
//     one Content-Length field; a Transfer-Encoding that does not
//     end in chunked or applies chunked twice, or one in an HTTP/1.0
//     request; a chunk size that is not 1–16 hex digits, followed by
//     anything but a well-formed chunk extension; chunk data not followed
//     by CRLF; more than 8 KB of chunk overhead beyond the data; framing
//     fields in a trailer section.
//   - 431: a request head (request line and header lines) or trailer
//     section larger than max_header_bytes.
//   - 501: a Transfer-Encoding other than chunked alone ("gzip, chunked").
//   - 505: an HTTP version other than 1.0 and 1.1.
//
// A request head is released to net/http only once every byte received
// with it has been checked: a request whose body (or a request pipelined
// behind it) is malformed within what arrived so far is refused as a
// whole and nothing of it is forwarded. Chunks that arrive later are
// checked as they stream; a bad chunk then aborts the upstream request
// before its last chunk, so the upstream never receives a complete
// message, and the client gets 400.
type guardConn struct {
	net.Conn
	maxHead  int
	onReject func(*framingError)
	tls      bool // the guarded connection is TLS the proxy terminated

	mu sync.Mutex
	// buf holds bytes read from Conn: buf[:rel] were handed to net/http,
	// buf[rel:ok] are validated, buf[ok:scan] are validated but withheld,
	// buf[scan:] are not parsed yet (an incomplete line).
	buf            []byte
	rel, ok, scan  int
	withhold       int // index of the final LF of the newest request head, -1 when none is held
	st             guardState
	remain         int64 // bytes left in a Content-Length body or a chunk
	excess         int64 // chunk overhead beyond the data (as net/http counts it)
	head           int   // bytes of the current head or trailer section
	messages       int
	sawEmpty       bool // an empty line before this request line
	lastPost       bool
	post, connect  bool
	upgrade        bool
	http10         bool
	cl             string
	hasCL          bool
	te             []string
	nTE            int
	headDone       bool
	err            *framingError
	errInHead      bool        // err is answered by net/http's request reader
	reported       atomic.Bool // err was returned to net/http's request reader
	replaced       atomic.Bool // the error response was written
	bodyErr        atomic.Pointer[framingError]
	maxBufCapacity int
	// h2 reads an HTTP/2 connection (after its preface) ahead of the
	// server's framer, which reads each frame's 9-byte header and then its
	// payload straight from the connection: one read system call per
	// frame instead of two, and frames that arrived together take one.
	h2 *bufio.Reader

	// Field order (headorder.go): names collects the request target and
	// field names of the head being parsed; orders holds those of
	// validated heads until their handlers take them; out rewrites the
	// response heads written back.
	names     []byte
	lastNames fieldNames // the previous head's names, reused when the next head repeats them
	orders    []fieldNames
	out       headRewriter
}

// maxPendingOrders bounds the field orders of pipelined requests kept for
// their handlers; the oldest is dropped beyond it.
const maxPendingOrders = 8

// framingError is a request the guard refuses.
type framingError struct {
	status int    // 400, 431, 501 or 505
	kind   string // bounded label of meshscope_proxy_rejected_requests_total
	reason string
}

func (e *framingError) Error() string { return "request framing: " + e.reason }

type guardState uint8

const (
	gsRequestLine guardState = iota // before a request line
	gsField                         // in the header section
	gsBody                          // in a Content-Length body
	gsChunkSize                     // before a chunk-size line
	gsChunkData                     // in chunk data
	gsChunkCRLF                     // after chunk data
	gsTrailer                       // in the trailer section
	gsAwait                         // after an Upgrade or CONNECT request, until the handler tunnels or resumes
	gsPass                          // tunnel or HTTP/2: bytes pass unparsed
)

const (
	// maxChunkLine bounds a chunk-size line (with extensions), as net/http does.
	maxChunkLine = 4096
	// maxChunkExcess bounds chunk overhead beyond 16 bytes per chunk plus
	// twice the chunk's data; net/http allows 16 KB, the guard refuses first.
	maxChunkExcess = 8 << 10
	guardBufSize   = 4096
	// h2ReadAhead is the read-ahead buffer of an HTTP/2 connection: a few
	// frames of requests and control frames; larger DATA payloads are
	// read past it.
	h2ReadAhead = 4096
)

// cannedBadRequest is what net/http's server writes when reading a request
// fails with an error it does not know; the guard replaces it with the
// status and reason of its own error.
const cannedBadRequest = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"

func newGuardConn(c net.Conn, maxHead int, onReject func(*framingError)) *guardConn {
	return &guardConn{Conn: c, maxHead: maxHead, onReject: onReject, withhold: -1,
		maxBufCapacity: max(maxHead, maxChunkLine) + guardBufSize}
}

// Read returns validated bytes; a framing error is returned in place of
// the bytes it concerns.
func (g *guardConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	g.mu.Lock()
	for {
		if g.st == gsPass && g.rel == len(g.buf) {
			g.buf, g.rel, g.ok, g.scan = nil, 0, 0, 0
			h2 := g.h2
			g.mu.Unlock()
			if h2 != nil {
				return h2.Read(p) // reads of its buffer size or more go straight to Conn
			}
			return g.Conn.Read(p)
		}
		g.process()
		if n := g.release(p); n > 0 {
			g.mu.Unlock()
			return n, nil
		}
		// net/http's background read (one byte, while a handler runs)
		// must not see an error meant for the next request: it would
		// cancel the request in flight. It waits for more bytes instead,
		// until net/http aborts it.
		if g.err != nil && (len(p) > 1 || !g.errInHead) {
			err := g.report()
			g.mu.Unlock()
			return 0, err
		}
		if !g.makeRoom() {
			g.fail(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "more than %d bytes sent ahead of an upgrade", g.maxBufCapacity)
			err := g.report()
			g.mu.Unlock()
			return 0, err
		}
		tail := g.buf[len(g.buf):cap(g.buf)]
		g.mu.Unlock()
		n, err := g.Conn.Read(tail)
		g.mu.Lock()
		g.buf = g.buf[:len(g.buf)+n]
		if err != nil && n == 0 {
			g.process()
			n := g.release(p)
			g.mu.Unlock()
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
	}
}

// release copies validated bytes into p; g.mu is held.
func (g *guardConn) release(p []byte) int {
	n := copy(p, g.buf[g.rel:g.ok])
	g.rel += n
	return n
}

// report returns the framing error to net/http, noting that its request
// reader got it when it concerns a request head; g.mu is held.
func (g *guardConn) report() error {
	if g.errInHead {
		g.reported.Store(true)
	}
	return g.err
}

// makeRoom makes space at the end of buf, moving unreleased bytes to the
// front or growing it up to maxBufCapacity; false when buf is full.
func (g *guardConn) makeRoom() bool {
	if g.buf == nil {
		g.buf = make([]byte, 0, guardBufSize)
		return true
	}
	if cap(g.buf)-len(g.buf) >= 512 {
		return true
	}
	if g.rel > 0 {
		n := copy(g.buf, g.buf[g.rel:])
		g.buf = g.buf[:n]
		g.ok -= g.rel
		g.scan -= g.rel
		if g.withhold >= 0 {
			g.withhold -= g.rel
		}
		g.rel = 0
	}
	if len(g.buf) < cap(g.buf) {
		return true
	}
	if cap(g.buf) >= g.maxBufCapacity {
		return false
	}
	nb := make([]byte, len(g.buf), min(2*cap(g.buf), g.maxBufCapacity))
	copy(nb, g.buf)
	g.buf = nb
	return true
}

// Write passes responses through, replacing net/http's generic 400 for a
// refused request by the guard's status and reason.
func (g *guardConn) Write(p []byte) (int, error) {
	if g.reported.Load() && string(p) == cannedBadRequest && g.replaced.CompareAndSwap(false, true) {
		g.mu.Lock()
		fe := g.err
		g.mu.Unlock()
		if _, err := g.Conn.Write(framingResponse(fe)); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return g.out.write(g.Conn, p)
}

// takeOrder returns the field names of the request with target uri as the
// client sent them ("" when not recorded).
func (g *guardConn) takeOrder(uri string) fieldNames {
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(g.orders) > 0 {
		o := g.orders[0]
		g.dropOrder()
		if len(o) > len(uri) && o[len(uri)] == '\n' && o[:len(uri)] == uri {
			return o[len(uri)+1:]
		}
	}
	return ""
}

// expectResp makes the next response head written follow names.
func (g *guardConn) expectResp(names fieldNames) { g.out.expect(names) }

// dropOrder removes the oldest pending order, keeping the slice's
// capacity; g.mu is held.
func (g *guardConn) dropOrder() {
	n := copy(g.orders, g.orders[1:])
	g.orders[n] = ""
	g.orders = g.orders[:n]
}

// CloseWrite half-closes the underlying connection (tunnels).
func (g *guardConn) CloseWrite() error {
	closeWrite(g.Conn)
	return nil
}

func framingResponse(fe *framingError) []byte {
	text := fmt.Sprintf("%d %s: %s\n", fe.status, http.StatusText(fe.status), fe.reason)
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		fe.status, http.StatusText(fe.status), len(text), text)
}

// tunnel stops parsing: the connection was hijacked (WebSocket, CONNECT).
func (g *guardConn) tunnel() {
	g.mu.Lock()
	g.st = gsPass
	g.err, g.errInHead, g.withhold = nil, false, -1
	g.scan, g.ok = len(g.buf), len(g.buf)
	g.mu.Unlock()
}

// resume parses again after an Upgrade or CONNECT request that was
// answered without taking over the connection.
func (g *guardConn) resume() {
	g.mu.Lock()
	if g.st == gsAwait {
		g.st = gsRequestLine
	}
	g.mu.Unlock()
}

// bodyError is the framing error found in the body of the request being
// served, if any.
func (g *guardConn) bodyError() *framingError { return g.bodyErr.Load() }

func (g *guardConn) fail(status int, kind, format string, args ...any) {
	if g.err != nil {
		return
	}
	g.err = &framingError{status: status, kind: kind, reason: fmt.Sprintf(format, args...)}
	switch g.st {
	case gsRequestLine, gsField:
		g.errInHead = true
	default:
		g.bodyErr.Store(g.err)
	}
	if g.onReject != nil {
		g.onReject(g.err)
	}
}

func (g *guardConn) bad(kind, format string, args ...any) {
	g.fail(http.StatusBadRequest, kind, format, args...)
}

// process parses what has arrived and moves ok forward.
func (g *guardConn) process() {
loop:
	for g.err == nil && g.scan < len(g.buf) {
		switch g.st {
		case gsPass:
			g.scan = len(g.buf)
		case gsAwait:
			break loop
		case gsBody, gsChunkData:
			n := min(int64(len(g.buf)-g.scan), g.remain)
			g.scan += int(n)
			g.remain -= n
			if g.remain == 0 {
				if g.st == gsBody {
					g.endMessage()
				} else {
					g.st = gsChunkCRLF
				}
			}
		case gsChunkCRLF:
			if g.buf[g.scan] != '\r' || (len(g.buf)-g.scan >= 2 && g.buf[g.scan+1] != '\n') {
				g.bad("chunk_data", "chunk data not followed by CRLF")
				break loop
			}
			if len(g.buf)-g.scan < 2 {
				break loop
			}
			g.scan += 2
			g.st = gsChunkSize
		default:
			limit := maxChunkLine
			if g.st != gsChunkSize {
				limit = g.maxHead - g.head
			}
			rest := g.buf[g.scan:]
			i := bytes.IndexByte(rest, '\n')
			if (i < 0 && len(rest) > limit) || i+1 > limit {
				if g.st == gsChunkSize {
					g.bad("chunk_size", "chunk-size line longer than %d bytes", maxChunkLine)
				} else {
					g.fail(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request header section larger than %d bytes", g.maxHead)
				}
				break loop
			}
			if i < 0 {
				break loop
			}
			g.line(rest[:i+1])
			if g.err != nil {
				break loop
			}
			g.scan += i + 1
			if g.headDone {
				g.headDone = false
				g.withhold = g.scan - 1
			}
		}
	}
	switch {
	case g.err != nil && g.withhold >= g.rel:
		// Refuse the request whose head is still held: nothing of it
		// reaches the app.
		g.ok = g.withhold
		g.errInHead = true
		g.bodyErr.Store(nil)
	case g.err != nil:
		g.ok = g.scan
	default:
		// Everything received with the newest head checked out.
		g.withhold = -1
		g.ok = g.scan
	}
}

// line handles one complete line (ending in LF).
func (g *guardConn) line(line []byte) {
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		g.bad("bare_lf", "line ends in a bare LF")
		return
	}
	b := line[:n-2]
	if bytes.IndexByte(b, '\r') >= 0 {
		g.bad("bare_cr", "bare CR inside a line")
		return
	}
	if bytes.IndexByte(b, 0) >= 0 {
		g.bad("nul", "NUL byte")
		return
	}
	switch g.st {
	case gsRequestLine:
		g.requestLine(b, n)
	case gsField, gsTrailer:
		g.head += n
		g.fieldLine(b)
	case gsChunkSize:
		g.chunkSize(b, n)
	}
}

func (g *guardConn) requestLine(b []byte, n int) {
	if len(b) == 0 {
		// net/http skips one empty line after a POST body (old clients
		// add one); anything else is refused.
		if g.lastPost && !g.sawEmpty {
			g.sawEmpty = true
			return
		}
		g.bad("request_line", "empty line before the request line")
		return
	}
	if g.messages == 0 && string(b) == "PRI * HTTP/2.0" {
		g.st = gsPass // HTTP/2 connection preface
		g.h2 = bufio.NewReaderSize(g.Conn, h2ReadAhead)
		return
	}
	g.head = n
	if g.head > g.maxHead {
		g.fail(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request header section larger than %d bytes", g.maxHead)
		return
	}
	method, rest, ok1 := bytes.Cut(b, []byte{' '})
	target, version, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !isToken(method) {
		g.bad("request_line", "malformed request line")
		return
	}
	for _, c := range target {
		if c <= ' ' || c == 0x7f {
			g.bad("request_line", "control byte or space in the request target")
			return
		}
	}
	switch string(version) {
	case "HTTP/1.1":
		g.http10 = false
	case "HTTP/1.0":
		g.http10 = true
	default:
		if len(version) == 8 && string(version[:5]) == "HTTP/" && isDigit(version[5]) && version[6] == '.' && isDigit(version[7]) {
			g.fail(http.StatusHTTPVersionNotSupported, "version", "HTTP version %s not supported on this connection", version)
			return
		}
		g.bad("request_line", "malformed HTTP version")
		return
	}
	g.post = string(method) == http.MethodPost
	g.connect = string(method) == http.MethodConnect
	g.upgrade, g.hasCL, g.cl, g.te, g.nTE = false, false, "", g.te[:0], 0
	g.names = append(append(g.names[:0], target...), '\n')
	g.st = gsField
}

func (g *guardConn) fieldLine(b []byte) {
	if g.head > g.maxHead {
		g.fail(http.StatusRequestHeaderFieldsTooLarge, "header_too_large", "request header section larger than %d bytes", g.maxHead)
		return
	}
	if len(b) == 0 {
		if g.st == gsTrailer {
			g.endMessage()
		} else {
			g.endHead()
		}
		return
	}
	if b[0] == ' ' || b[0] == '\t' {
		g.bad("obs_fold", "header line folded onto the previous one (obs-fold)")
		return
	}
	colon := bytes.IndexByte(b, ':')
	if colon <= 0 {
		g.bad("field", "header line without a name and colon")
		return
	}
	name := b[:colon]
	if c := name[len(name)-1]; c == ' ' || c == '\t' {
		g.bad("field", "whitespace between header name %q and colon", clip(bytes.TrimRight(name, " \t")))
		return
	}
	if !isToken(name) {
		g.bad("field", "invalid character in header name %q", clip(name))
		return
	}
	if g.st == gsField {
		g.names = append(append(g.names, name...), '\n')
	}
	value := trimOWS(b[colon+1:])
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			g.bad("ctl", "control byte 0x%02x in header %s", c, clip(name))
			return
		}
	}
	switch {
	case asciiEqualFold(name, "Content-Length"), asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Trailer"), asciiEqualFold(name, "Host"):
		if g.st == gsTrailer {
			g.bad("trailer", "%s in a trailer section", clip(name))
			return
		}
	}
	if g.st == gsTrailer {
		return
	}
	switch {
	case asciiEqualFold(name, "Content-Length"):
		if len(value) == 0 || len(value) > 18 || !allDigits(value) {
			g.bad("content_length", "Content-Length %q is not a decimal number of bytes", clip(value))
			return
		}
		if g.hasCL {
			// RFC 9110 allows merging equal values; nginx refuses any
			// repetition, and so does the proxy.
			g.bad("content_length", "more than one Content-Length (%q and %q)", g.cl, clip(value))
			return
		}
		g.hasCL, g.cl = true, string(value)
	case asciiEqualFold(name, "Transfer-Encoding"):
		g.nTE++
		for _, el := range bytes.Split(value, []byte{','}) {
			el = trimOWS(el)
			if len(el) == 0 {
				continue
			}
			if !isToken(el) {
				g.bad("transfer_encoding", "malformed Transfer-Encoding %q", clip(value))
				return
			}
			g.te = append(g.te, string(bytes.ToLower(el)))
		}
	case asciiEqualFold(name, "Upgrade"):
		g.upgrade = true
	}
}

// endHead decides the body framing of a complete request head.
func (g *guardConn) endHead() {
	g.headDone = true
	if len(g.orders) == maxPendingOrders {
		g.dropOrder()
	}
	if string(g.names) != g.lastNames { // keep-alive clients repeat their heads: no string per request
		g.lastNames = string(g.names)
	}
	g.orders = append(g.orders, g.lastNames)
	switch {
	case g.nTE > 0:
		if g.hasCL {
			g.bad("cl_te", "Content-Length and Transfer-Encoding together")
			return
		}
		if g.http10 {
			g.bad("transfer_encoding", "Transfer-Encoding in an HTTP/1.0 request")
			return
		}
		if len(g.te) == 0 || g.te[len(g.te)-1] != "chunked" {
			g.bad("transfer_encoding", "Transfer-Encoding does not end in chunked")
			return
		}
		for _, c := range g.te[:len(g.te)-1] {
			if c == "chunked" {
				g.bad("transfer_encoding", "chunked applied more than once")
				return
			}
		}
		if len(g.te) > 1 {
			g.fail(http.StatusNotImplemented, "transfer_encoding", "only the chunked transfer coding is supported")
			return
		}
		g.st, g.excess = gsChunkSize, 0
	case g.hasCL:
		n, _ := strconv.ParseInt(g.cl, 10, 64)
		if n > 0 {
			g.st, g.remain = gsBody, n
			return
		}
		g.endMessage()
	default:
		g.endMessage()
	}
}

func (g *guardConn) endMessage() {
	g.messages++
	g.lastPost, g.sawEmpty = g.post, false
	g.bodyErr.Store(nil)
	if g.upgrade || g.connect {
		g.st = gsAwait
		return
	}
	g.st = gsRequestLine
}

// chunkSize parses chunk-size [ chunk-ext ] (without CRLF); n is the
// line's length with CRLF.
func (g *guardConn) chunkSize(b []byte, n int) {
	i := 0
	for i < len(b) && isHex(b[i]) {
		i++
	}
	if i == 0 {
		g.bad("chunk_size", "chunk size %q is not hexadecimal", clip(b))
		return
	}
	if i > 16 {
		g.bad("chunk_size", "chunk size %q has more than 16 digits", clip(b[:i]))
		return
	}
	size, err := strconv.ParseUint(string(b[:i]), 16, 64)
	if err != nil || size > 1<<62 {
		g.bad("chunk_size", "chunk size %q too large", clip(b[:i]))
		return
	}
	if !validChunkExt(b[i:]) {
		g.bad("chunk_ext", "malformed chunk extension %q", clip(b[i:]))
		return
	}
	g.excess += int64(n) - 16 - 2*int64(min(size, 1<<20))
	g.excess = max(g.excess, 0)
	if g.excess > maxChunkExcess {
		g.bad("chunk_ext", "more than %d bytes of chunk overhead", maxChunkExcess)
		return
	}
	if size == 0 {
		g.st, g.head = gsTrailer, 0
		return
	}
	g.st, g.remain = gsChunkData, int64(size)
}

// validChunkExt checks *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ),
// except that net/http allows no whitespace before the first ";".
func validChunkExt(b []byte) bool {
	if len(b) > 0 && b[0] != ';' {
		return false
	}
	skip := func() {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
			b = b[1:]
		}
	}
	token := func() bool {
		j := 0
		for j < len(b) && isTchar(b[j]) {
			j++
		}
		b = b[j:]
		return j > 0
	}
	for len(b) > 0 {
		skip()
		if len(b) == 0 || b[0] != ';' {
			return false
		}
		b = b[1:]
		skip()
		if !token() {
			return false
		}
		skip()
		if len(b) == 0 || b[0] != '=' {
			continue
		}
		b = b[1:]
		skip()
		if len(b) > 0 && b[0] == '"' {
			b = b[1:]
			closed := false
			for len(b) > 0 && !closed {
				c := b[0]
				switch {
				case c == '"':
					closed = true
				case c == '\\':
					if len(b) < 2 || (b[1] < ' ' && b[1] != '\t') || b[1] == 0x7f {
						return false
					}
					b = b[1:]
				case (c < ' ' && c != '\t') || c == 0x7f:
					return false
				}
				b = b[1:]
			}
			if !closed {
				return false
			}
		} else if !token() {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// clip shortens a value quoted in an error message.
func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// trimOWS strips spaces and tabs at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
