package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
)

// h1Transport is a lean HTTP/1.1 round tripper for the common request: a
// replayable method (GET, HEAD, OPTIONS, TRACE) without a body, upgrade or
// Expect header. It writes the request and reads the response on the
// calling goroutine, where http.Transport hands each request to a writer
// goroutine and the response back from a reader goroutine per connection;
// on a small request those hand-offs cost more than the proxying itself.
// Every other request goes to http.Transport (see protoSwitch).
//
// Keep-alive connections are pooled per address (LIFO, bounded per address
// and in total, closed after idleTimeout). A request that fails on a reused
// connection before any response byte arrived (the upstream closed the idle
// connection) is retried once on a new connection, as http.Transport does
// for replayable requests.
type h1Transport struct {
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	respTimeout    time.Duration // 0 = none
	idleTimeout    time.Duration // 0 = no limit
	maxIdlePerHost int
	maxIdle        int
	// mapsOnly turns off the request head written in order at once and
	// the verbatim response head: every message goes through header maps,
	// sorted writes and reorderHead (tests compare the two).
	mapsOnly bool

	mu      sync.Mutex
	idle    map[string][]*h1Conn
	nIdle   int
	sweeper *time.Timer
}

// maxResponseHeaderBytes bounds the status line and headers of a response,
// as http.Transport's default does.
const maxResponseHeaderBytes = 10 << 20

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error), respTimeout, idleTimeout time.Duration, maxIdlePerHost, maxIdle int) *h1Transport {
	return &h1Transport{dial: dial, respTimeout: respTimeout, idleTimeout: idleTimeout,
		maxIdlePerHost: maxIdlePerHost, maxIdle: maxIdle, idle: map[string][]*h1Conn{}}
}

// h1Eligible reports whether r can take the lean path.
func h1Eligible(r *http.Request) bool {
	if r.ProtoMajor == 2 || (r.Body != nil && r.Body != http.NoBody) || r.URL.Scheme != "http" {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, "":
	default:
		return false
	}
	h := r.Header
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	if _, ok := h["Expect"]; ok {
		return false
	}
	return !r.Close
}

// h1Conn is one upstream connection.
type h1Conn struct {
	c      net.Conn
	lr     limitedConnReader
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	idleAt time.Time
	reused bool
	abort  func() // unblocks I/O on c when the request's context ends; made once per connection
	// deadline is the read deadline set on c (zero: none). The response
	// timeout's deadline stays set after the head while the rest of the
	// response is already buffered, and is moved forward only when more
	// than deadlineSlack behind: setting one re-arms a runtime timer.
	deadline time.Time
}

// setReadDeadline sets the read deadline of c to t (zero: none) unless it
// is set to t already.
func (pc *h1Conn) setReadDeadline(t time.Time) {
	if t.Equal(pc.deadline) {
		return
	}
	_ = pc.c.SetReadDeadline(t)
	pc.deadline = t
}

// limitedConnReader reads from a connection at most n bytes (the response
// header limit) until the limit is lifted.
type limitedConnReader struct {
	c net.Conn
	n int64
}

func (l *limitedConnReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errResponseHeaderTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.c.Read(p)
	l.n -= int64(n)
	return n, err
}

var errResponseHeaderTooLong = fmt.Errorf("upstream response headers exceed %d bytes", maxResponseHeaderBytes)

// aLongTimeAgo is a deadline that makes blocked I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "80")
	}
	for attempt := 0; ; attempt++ {
		pc, err := t.get(ctx, addr)
		if err != nil {
			return nil, err
		}
		resp, beforeResponse, err := t.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		_ = pc.c.Close()
		if attempt == 0 && pc.reused && beforeResponse && ctx.Err() == nil && !isTimeout(err) {
			continue // the upstream closed the idle connection; try a new one
		}
		return nil, err
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange writes req on pc and reads the response head. beforeResponse
// reports that the error came before any response byte.
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, req *http.Request) (resp *http.Response, beforeResponse bool, err error) {
	c := pc.c
	stop := abortOnDone(ctx, pc.abort)
	fail := func(before bool, err error) (*http.Response, bool, error) {
		stop()
		return nil, before, err
	}
	// The request head in the client's field order, written so at once
	// when it can be; the response's names are recorded for the header
	// map path (headorder.go), not at all when the response is taken
	// verbatim.
	lc, _ := ctx.(*leanContext)
	wantVerbatim := lc != nil && lc.l.wantVerbatim && !t.mapsOnly
	oc, _ := c.(*orderConn)
	headOnly := true // the request is its head: what Flush writes is all of it
	if o := headOrdersOf(ctx); o != nil && oc != nil && !t.mapsOnly && writeRequestHeadInOrder(pc.bw, req, o.req) {
		oc.expectResp(o, wantVerbatim)
	} else {
		wantVerbatim = false
		armOrder(c, req)
		if !writeRequestHead(pc.bw, req) {
			headOnly = false
			if err := req.Write(pc.bw); err != nil {
				return fail(true, err)
			}
		}
	}
	if d, ok := c.(writeDeferrer); ok && headOnly && (!pc.reused || time.Since(pc.idleAt) < deferWriteIdleMax) {
		// The head leaves when the response is read (Peek below), from
		// inside the wait for it: no read that finds nothing yet.
		d.deferWrite()
	}
	if err := pc.bw.Flush(); err != nil {
		return fail(true, err)
	}
	if t.respTimeout > 0 {
		if want := time.Now().Add(t.respTimeout); pc.deadline.Before(want) {
			pc.setReadDeadline(want.Add(deadlineSlack(t.respTimeout)))
		}
	}
	pc.lr.n = maxResponseHeaderBytes
	if _, err := pc.br.Peek(1); err != nil {
		return fail(true, err)
	}
	// The lean path of an owned client connection takes the commonest
	// response head verbatim (appendVerbatimHead), without a header map.
	if wantVerbatim {
		var code int
		var cl int64
		if lc.l.head, code, cl, lc.l.verbatim = appendVerbatimHead(lc.l.head[:0], pc.br, req); lc.l.verbatim {
			oc.disarm()
			resp = &lc.l.conn.res
			*resp = http.Response{StatusCode: code, ContentLength: cl, Request: req}
			if cl == 0 {
				resp.Body = http.NoBody
			}
		} else {
			read, _ := pc.br.Peek(pc.br.Buffered())
			oc.catchUp(read)
		}
	}
	for resp == nil {
		if resp = readResponseHead(pc.br, req); resp == nil {
			if resp, err = http.ReadResponse(pc.br, req); err != nil {
				return fail(false, err)
			}
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(false, errors.New("upstream switched protocols without an upgrade request"))
		}
		if resp.StatusCode >= 200 {
			break
		}
		// 1xx informational: hand it on (ReverseProxy forwards it) and read on.
		if got1xx := got1xxHook(ctx); got1xx != nil {
			if err := got1xx(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
				return fail(false, err)
			}
		}
		resp = nil
	}
	pc.lr.n = math.MaxInt64
	buffered := resp.Body == http.NoBody || (resp.Body == nil && resp.ContentLength <= int64(pc.br.Buffered()))
	if !buffered {
		pc.setReadDeadline(time.Time{}) // the body is read without the response timeout
	}
	reusable := !resp.Close && (resp.ContentLength >= 0 || isChunked(resp.TransferEncoding))
	b := &h1Body{rc: resp.Body, t: t, pc: pc, stop: stop, reusable: reusable}
	if resp.Body == nil && resp.ContentLength > 0 { // parsed by readResponseHead
		b.rc, b.remain = nil, resp.ContentLength
	} else if resp.Body == http.NoBody || resp.Body == nil {
		b.release()
		return resp, false, nil
	}
	resp.Body = b
	return resp, false, nil
}

// deferWriteIdleMax is how long a pooled connection may have been idle
// for its request head to be written from inside the wait for the
// response (writeDeferrer). That wait registers with the poller after any
// close the upstream sent while the connection was idle, so it relies on
// the reset the write draws from a closed socket; an upstream that
// half-closes an idle connection and lingers (reading, not answering)
// draws none. A connection idle longer takes a plain write and read,
// which sees such a close at once.
const deferWriteIdleMax = 100 * time.Millisecond

// writeDeferrer holds a connection's writes until its next read, which
// sends them and waits for the answer without reading first
// (rawTCPConn.deferWrite).
type writeDeferrer interface {
	deferWrite()
}

// abortOnDone runs abort when ctx ends, as context.AfterFunc does. The
// lean request of an owned HTTP/1.1 connection, whose context only that
// connection ends (the client went away), registers abort with the
// connection instead: no child context and no allocation per request.
func abortOnDone(ctx context.Context, abort func()) (stop func() bool) {
	if lc, ok := ctx.(*leanContext); ok && lc.l.conn != nil && lc.Context == lc.l.conn.ctx {
		return lc.l.conn.onAbort(abort)
	}
	return context.AfterFunc(ctx, abort)
}

func isChunked(te []string) bool {
	return len(te) > 0 && te[0] == "chunked"
}

// h1Body returns its connection to the pool at EOF and closes it when the
// body is closed before EOF or fails.
type h1Body struct {
	rc       io.ReadCloser // nil: remain bytes are read from pc.br
	remain   int64
	t        *h1Transport
	pc       *h1Conn
	stop     func() bool
	reusable bool
	done     atomic.Bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done.Load() {
		return 0, io.EOF
	}
	if b.rc == nil {
		return b.readLength(p)
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.release()
	case err != nil:
		b.discard()
	}
	return n, err
}

// readLength reads the rest of a Content-Length body from the
// connection's buffered reader, handing the connection back with the
// last byte.
func (b *h1Body) readLength(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.pc.br.Read(p)
	b.remain -= int64(n)
	switch {
	case b.remain == 0:
		b.release()
		return n, io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.discard()
	}
	return n, err
}

// buffered returns the rest of a Content-Length body when all of it is in
// the connection's read buffer already (nil otherwise), without consuming
// it: consume hands the connection back once it is written elsewhere.
func (b *h1Body) buffered() []byte {
	if b.done.Load() || b.rc != nil || b.remain <= 0 || int64(b.pc.br.Buffered()) < b.remain {
		return nil
	}
	p, _ := b.pc.br.Peek(int(b.remain))
	return p
}

// consume ends a body returned whole by buffered.
func (b *h1Body) consume() {
	_, _ = b.pc.br.Discard(int(b.remain))
	b.remain = 0
	b.release()
}

func (b *h1Body) Close() error {
	if b.discard() && b.rc != nil {
		_ = b.rc.Close() // the connection is closed: this returns at once
	}
	return nil
}

// release hands the connection back (or closes it when it cannot be reused
// or the request was cancelled meanwhile).
func (b *h1Body) release() {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	if !b.stop() || !b.reusable {
		_ = b.pc.c.Close()
		return
	}
	b.t.putIdle(b.pc)
}

// discard closes the connection; false when already released.
func (b *h1Body) discard() bool {
	if !b.done.CompareAndSwap(false, true) {
		return false
	}
	b.stop()
	_ = b.pc.c.Close()
	return true
}

// get returns an idle connection to addr or dials one.
func (t *h1Transport) get(ctx context.Context, addr string) (*h1Conn, error) {
	t.mu.Lock()
	for list := t.idle[addr]; len(list) > 0; list = t.idle[addr] {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.nIdle--
		if t.idleTimeout > 0 && time.Since(pc.idleAt) > t.idleTimeout {
			_ = pc.c.Close()
			continue
		}
		t.mu.Unlock()
		return pc, nil
	}
	t.mu.Unlock()
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := &h1Conn{c: c, addr: addr, abort: func() { _ = c.SetDeadline(aLongTimeAgo) }}
	pc.lr = limitedConnReader{c: c, n: math.MaxInt64}
	pc.br = bufio.NewReaderSize(&pc.lr, 4096)
	pc.bw = bufio.NewWriterSize(c, 4096)
	return pc, nil
}

func (t *h1Transport) putIdle(pc *h1Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Bytes after a complete response are a protocol error: do not reuse.
	if t.nIdle >= t.maxIdle || len(t.idle[pc.addr]) >= t.maxIdlePerHost || pc.br.Buffered() > 0 {
		_ = pc.c.Close()
		return
	}
	pc.idleAt = time.Now()
	pc.reused = true
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
	t.nIdle++
	if t.idleTimeout > 0 && t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.idleTimeout, t.sweep)
	}
}

// sweep closes connections idle longer than idleTimeout and re-arms itself
// while connections are idle.
func (t *h1Transport) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for addr, list := range t.idle {
		kept := list[:0]
		for _, pc := range list {
			if now.Sub(pc.idleAt) >= t.idleTimeout {
				_ = pc.c.Close()
				t.nIdle--
				continue
			}
			kept = append(kept, pc)
		}
		clear(list[len(kept):])
		if len(kept) == 0 {
			delete(t.idle, addr)
		} else {
			t.idle[addr] = kept
		}
	}
	if t.nIdle > 0 {
		t.sweeper.Reset(t.idleTimeout / 2)
	} else {
		t.sweeper = nil
	}
}

// CloseIdleConnections closes every pooled connection.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, list := range t.idle {
		for _, pc := range list {
			_ = pc.c.Close()
		}
		delete(t.idle, addr)
	}
	t.nIdle = 0
}

// defaultUserAgent is what (*http.Request).Write sends when the request
// has no User-Agent header at all.
const defaultUserAgent = "Go-http-client/1.1"

// headerNewlineToSpace matches net/http's header value sanitising.
var headerNewlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

// maxFastHeaderKeys bounds the header keys writeRequestHead sorts on the
// stack; requests with more take (*http.Request).Write.
const maxFastHeaderKeys = 48

// writeRequestHead writes a bodyless GET or HEAD request to bw byte for
// byte as (*http.Request).Write would (request line, Host, User-Agent,
// the other headers sorted by key), without its per-request allocations
// (transfer writer, header sorter, formatted writes). It writes nothing and
// returns false for anything off that path (other methods, a body or
// trailers, a non-ASCII or zoned host, control bytes in the URI, a client
// trace that observes written headers, many headers); the caller then uses
// (*http.Request).Write.
func writeRequestHead(bw *bufio.Writer, r *http.Request) bool {
	method, host, ruri, ok := plainRequestLine(r)
	if !ok {
		return false
	}
	var keysBuf [maxFastHeaderKeys]string
	keys := keysBuf[:0]
	for k := range r.Header {
		if !writtenAsField(k) {
			continue
		}
		if len(keys) == maxFastHeaderKeys {
			return false
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	writeRequestLine(bw, method, ruri)
	writeField(bw, "Host", host)
	if ua := userAgent(r); ua != "" { // tested before trimming, as net/http does
		writeField(bw, "User-Agent", ua)
	}
	for _, k := range keys {
		for _, v := range r.Header[k] {
			writeField(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	return true
}

// writeRequestHeadInOrder writes what writeRequestHead writes, reordered
// by reorderHead into names (the client's field names as sent, headOrders),
// in one pass and without sorting: each name takes the next value of its
// field, in the client's case; the values no name takes (fields the proxy
// added) follow in writeRequestHead's order. False, with nothing written,
// where writeRequestHead declines or names has no Host or too many names.
func writeRequestHeadInOrder(bw *bufio.Writer, r *http.Request, names fieldNames) bool {
	method, host, ruri, ok := plainRequestLine(r)
	if !ok || len(r.Header) > maxFastHeaderKeys || !hasName(names, "Host") || strings.Count(names, "\n") > maxRewriteFields {
		return false
	}
	// The fields met so far, by name as sent (case aside), with their
	// values and how many of them are written.
	type use struct {
		name string
		vv   []string
		n    int
	}
	var usesBuf [maxFastHeaderKeys]use
	uses := usesBuf[:0]
	used := func(name string) int {
		return slices.IndexFunc(uses, func(u use) bool { return strings.EqualFold(u.name, name) })
	}
	ua := userAgent(r)
	hostDone, uaDone := false, false
	writeRequestLine(bw, method, ruri)
	for rest := names; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, "\n")
		if !isTokenString(name) {
			continue // the request target heads the names
		}
		switch {
		case strings.EqualFold(name, "Host"):
			if !hostDone {
				writeField(bw, name, host)
			}
			hostDone = true
			continue
		case strings.EqualFold(name, "User-Agent"):
			if !uaDone && ua != "" {
				writeField(bw, name, ua)
			}
			uaDone = true
			continue
		case strings.EqualFold(name, "Content-Length"), strings.EqualFold(name, "Transfer-Encoding"), strings.EqualFold(name, "Trailer"):
			continue
		}
		i := used(name)
		if i < 0 {
			uses = append(uses, use{name: name, vv: headerValues(r.Header, name)})
			i = len(uses) - 1
		}
		if u := &uses[i]; u.n < len(u.vv) {
			writeField(bw, name, u.vv[u.n])
			u.n++
		}
	}
	if !uaDone && ua != "" {
		writeField(bw, "User-Agent", ua)
	}
	var keysBuf [maxFastHeaderKeys]string
	keys := keysBuf[:0]
	for k, vv := range r.Header {
		if !writtenAsField(k) {
			continue
		}
		if i := used(k); i < 0 || uses[i].n < len(vv) {
			keys = append(keys, k)
		}
	}
	if len(keys) > 1 {
		slices.Sort(keys)
	}
	for _, k := range keys {
		vv := r.Header[k]
		if i := used(k); i >= 0 {
			vv = vv[uses[i].n:]
		}
		for _, v := range vv {
			writeField(bw, k, v)
		}
	}
	bw.WriteString("\r\n")
	return true
}

// headerValues is h.Values(name) for a token name, canonicalized on the
// stack instead of in a new string.
func headerValues(h http.Header, name string) []string {
	var buf [64]byte
	if len(name) > len(buf) {
		return h[textproto.CanonicalMIMEHeaderKey(name)]
	}
	b := buf[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	return h[string(b)] // no allocation for a map index
}

// plainRequestLine checks that r is a bodyless GET or HEAD request that
// writeRequestHead can write and returns its request line's parts and Host.
func plainRequestLine(r *http.Request) (method, host, ruri string, ok bool) {
	method = r.Method
	switch method {
	case "":
		method = http.MethodGet
	case http.MethodGet, http.MethodHead:
	default:
		return "", "", "", false
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 || r.Trailer != nil || r.Close || r.URL == nil {
		return "", "", "", false
	}
	if (r.Body != nil && r.Body != http.NoBody) || r.GetBody != nil {
		return "", "", "", false
	}
	if tr := httptrace.ContextClientTrace(r.Context()); tr != nil && (tr.WroteHeaderField != nil || tr.WroteRequest != nil || tr.WroteHeaders != nil) {
		return "", "", "", false
	}
	host = r.Host
	if host == "" {
		host = r.URL.Host
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c >= utf8.RuneSelf || c == '%' {
			return "", "", "", false // punycode or a zone: the general path
		}
	}
	if !httpguts.ValidHostHeader(host) {
		return "", "", "", false
	}
	if r.URL.Scheme != "http" && r.URL.Scheme != "" {
		return "", "", "", false
	}
	ruri = r.URL.RequestURI()
	for i := 0; i < len(ruri); i++ {
		if c := ruri[i]; c < ' ' || c == 0x7f {
			return "", "", "", false
		}
	}
	return method, host, ruri, true
}

// writtenAsField reports whether writeRequestHead writes the header key k
// among the sorted fields (Host and User-Agent go first; the framing
// fields and invalid names are not written).
func writtenAsField(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return false
	}
	return httpguts.ValidHeaderFieldName(k)
}

// userAgent is the User-Agent value (*http.Request).Write sends.
func userAgent(r *http.Request) string {
	if _, ok := r.Header["User-Agent"]; ok {
		return firstValue(r.Header, "User-Agent")
	}
	return defaultUserAgent
}

func writeRequestLine(bw *bufio.Writer, method, ruri string) {
	bw.WriteString(method)
	bw.WriteByte(' ')
	bw.WriteString(ruri)
	bw.WriteString(" HTTP/1.1\r\n")
}

// writeField writes one field line as (*http.Request).Write does.
func writeField(bw *bufio.Writer, name, value string) {
	if !plainFieldValue(value) {
		value = textproto.TrimString(sanitizeHeaderValue(value))
	}
	bw.WriteString(name)
	bw.WriteString(": ")
	bw.WriteString(value)
	bw.WriteString("\r\n")
}

// plainFieldValue reports whether v is written as it is: no CR or LF to
// replace (sanitizeHeaderValue) and no space to trim at either end
// (textproto.TrimString), the case of nearly every value.
func plainFieldValue(v string) bool {
	if v == "" {
		return true
	}
	if isASCIISpace(v[0]) || isASCIISpace(v[len(v)-1]) {
		return false
	}
	return strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0
}

// isASCIISpace is textproto.TrimString's notion of space.
func isASCIISpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\r'
}

func isTokenString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// sanitizeHeaderValue replaces CR and LF by spaces, allocating only when
// there is one.
func sanitizeHeaderValue(v string) string {
	if strings.ContainsAny(v, "\r\n") {
		return headerNewlineToSpace.Replace(v)
	}
	return v
}
