package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// The owned HTTP/1.1 loop serves plain-text HTTP/1.1 connections of
// inbound and outbound listeners without net/http's server and without
// the framing guard: the proxy reads each request head once, from a
// per-connection buffer, checks it with a strict subset of the guard's
// rules, builds the *http.Request from per-connection objects reused from
// request to request and calls the listener's handler with a response
// writer that writes into the connection's buffer and flushes once per
// response (and on every Flush, for streaming).
//
// It serves only requests it fully understands: a request line
// "METHOD /origin-form HTTP/1.1" (not CONNECT), CRLF line ends, token
// field names, values without control bytes, exactly one valid Host, no
// body (no Content-Length other than 0, no Transfer-Encoding), no
// Upgrade, no Expect, a head that fits in the read buffer and
// max_header_bytes. At the first request that is anything else, the
// connection is handed over at that request's boundary, with the bytes
// already read replayed, to the framing guard and net/http's server for
// the rest of its life: their answers (400, 431, 501, 505, 100-continue,
// upgrades, chunked and Content-Length bodies, HTTP/1.0) stay exactly as
// they were.
//
// There is no background read while a request is served. A client that
// goes away is noticed when the response is written (a write error
// cancels the connection's context, so the request counts as 499), or,
// for a request still in flight after h1WatchDelay, by a watcher that
// then reads the connection as net/http's background read does: end of
// file cancels the context, which aborts the upstream request; a byte
// (a pipelined request) is kept for the next request.

// h1ReadBuffer is the owned loop's read buffer; a request head that does
// not fit is handed over to the guard.
const h1ReadBuffer = 4096

// h1WatchDelay is how long a request runs before the connection is
// watched for the client going away.
const h1WatchDelay = 100 * time.Millisecond

// h1PendingBody is how much of a response body is held before the head is
// written: a response finished within it gets a Content-Length, as
// net/http's server does.
const h1PendingBody = 2048

// h1Conn is one plain-text HTTP/1.1 client connection served by the
// owned loop.
type h1ServerConn struct {
	l      *listener
	c      net.Conn // the accepted connection (its first bytes may sit in a peekedConn)
	src    h1Source
	br     *bufio.Reader
	bw     h1Out
	ctx    context.Context // canceled when the client is gone
	cancel context.CancelFunc
	remote string

	messages int
	maxHead  int
	// deadline is the read deadline set on c (zero: none). The idle
	// deadline is moved forward only when it is more than deadlineSlack
	// behind, not at every request: setting a deadline re-arms a runtime
	// timer.
	deadline time.Time

	req    http.Request
	url    url.URL
	header http.Header
	w      h1Writer
	// rec is the recorder of the request being served, reused from
	// request to request, and lctx the context of every request: ctx,
	// with what forwardLean adds (leanContext), so that the lean path's
	// outgoing request is a copy of the request instead of a new one
	// from WithContext. lctx is set once: goroutines of an earlier
	// request may still read it.
	rec    recorder
	lctx   leanContext
	series seriesCache // of the golden metrics
	// The lean path's outgoing request and its verbatim response, kept
	// apart from rec: written whole when used, so not cleared with it.
	out http.Request
	res http.Response

	// Strings of the previous request, reused when the next repeats them
	// (keep-alive clients send the same heads again and again).
	lastTarget string
	lastKeys   []string // canonical field names by position
	lastRaw    []string // field names as sent, by position
	lastVals   []string // field values by position
	vals       []string // backing of the request's header values
	names      []byte
	lastNames  fieldNames
	curNames   fieldNames
	// hopFields: the request has a hop-by-hop field (removeHopByHop has
	// something to remove; the proxy adds none).
	hopFields bool

	idle atomic.Bool // waiting for a request (the drain closes idle connections)

	// Client-gone watcher, started by the listener's scan (ownedSet) for a
	// request served longer than h1WatchDelay.
	mu sync.Mutex
	// reqStart is when the request being served began: the watch's
	// reference and the handler's start (latency, span). Written by the
	// serving goroutine under mu; that goroutine also reads it without.
	reqStart  time.Time
	inRequest bool
	canWatch  bool
	watchDone chan struct{}
	// abort unblocks the upstream exchange of the request being served
	// when the request ends early (registered by onAbort; nil: none).
	abort     func()
	stopAbort func() bool // c.unregisterAbort, made once
	// Filled by the watcher, consumed by src (not concurrently: the loop
	// waits for the watcher before reading again).
	peek    [1]byte
	hasPeek bool
}

// h1Source reads the connection, returning a byte the watcher read first.
type h1Source struct{ c *h1ServerConn }

func (s h1Source) Read(p []byte) (int, error) {
	if s.c.hasPeek && len(p) > 0 {
		s.c.hasPeek = false
		p[0] = s.c.peek[0]
		return 1, nil
	}
	return s.c.c.Read(p)
}

// h1ConnKey carries the owned connection in its requests' context.
type h1ConnKey struct{}

// ownedH1 reports whether plain-text HTTP/1.x connections of l are served
// by the owned loop.
func (l *listener) ownedH1() bool {
	return l.t.kind == "inbound" || l.t.kind == "outbound"
}

// serveH1 serves c (plain text, HTTP/1.x or the HTTP/2 preface detected)
// until it closes: HTTP/1.x in the owned loop (or, for what that loop
// does not take, the guard and net/http), HTTP/2 in the HTTP/2 server.
func (l *listener) serveH1(c net.Conn) {
	if h2c := l.serveOwnedH1(c); h2c != nil {
		l.serveH2(h2c)
	}
}

// serveOwnedH1 runs the owned HTTP/1.1 loop on c; it returns the
// connection, from its first byte, when that is the HTTP/2 client preface.
func (l *listener) serveOwnedH1(c net.Conn) (h2c net.Conn) {
	c = rawIO(c)
	sc := &h1ServerConn{l: l, c: c, maxHead: l.p.cfg.MaxHeaderBytes, header: make(http.Header)}
	sc.src = h1Source{sc}
	sc.br = bufio.NewReaderSize(sc.src, h1ReadBuffer)
	sc.bw = newH1Out(c, h1WriteBuffer)
	sc.remote = c.RemoteAddr().String()
	base := context.WithValue(withMeshConn(context.Background(), c), http.ServerContextKey, l.srv)
	base = context.WithValue(base, http.LocalAddrContextKey, c.LocalAddr())
	base = context.WithValue(base, h1ConnKey{}, sc)
	sc.ctx, sc.cancel = context.WithCancel(base)
	sc.lctx = leanContext{Context: sc.ctx, l: &sc.rec.lean}
	sc.stopAbort = sc.unregisterAbort
	sc.w.c = sc
	l.owned.add(sc)
	handedOver := false
	defer func() {
		l.owned.remove(sc)
		sc.cancel()
		if !handedOver {
			_ = c.Close()
		}
	}()
	for {
		head, ok := sc.readHead()
		if !ok {
			return
		}
		if !sc.parse(head) {
			handedOver = true
			if sc.messages == 0 && string(head) == h2PrefaceHead {
				sc.setReadDeadline(time.Time{})
				return &peekedConn{Conn: c, r: sc.br}
			}
			sc.handOver()
			return nil
		}
		sc.br.Discard(len(head)) //nolint:errcheck // the head is buffered
		if !sc.serve() {
			return
		}
	}
}

// handOver passes the connection, from the request at the start of the
// read buffer on, to the framing guard and net/http's server.
func (c *h1ServerConn) handOver() {
	var conn net.Conn = c.c
	if c.br.Buffered() > 0 {
		conn = &peekedConn{Conn: c.c, r: c.br}
	}
	c.setReadDeadline(time.Time{})
	c.l.handovers.Add(1)
	g := newGuardConn(conn, c.l.p.limits.maxHead, c.l.p.limits.reject)
	g.messages = c.messages // an HTTP/2 preface is a connection's first bytes only
	c.l.httpLn.push(g)
}

// readHead waits for the next request head and returns it (still in the
// read buffer, through its empty line); false when the connection is to
// close. A head that is not complete within the buffer or that is
// malformed is returned as far as it arrived: parse hands it over.
func (c *h1ServerConn) readHead() ([]byte, bool) {
	cfg := c.l.p.cfg
	if c.br.Buffered() == 0 {
		if idle := time.Duration(cfg.IdleTimeout); idle > 0 {
			if want := time.Now().Add(idle); c.deadline.Before(want) {
				c.setReadDeadline(want.Add(deadlineSlack(idle)))
			}
		} else {
			c.setReadDeadline(time.Time{})
		}
		c.idle.Store(true)
		if c.l.p.draining.Load() {
			return nil, false
		}
		_, err := c.br.Peek(1)
		c.idle.Store(false)
		if err != nil {
			return nil, false
		}
	}
	headerSet := false
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if i := bytes.Index(buf, []byte("\r\n\r\n")); i >= 0 {
			return buf[:i+4], true
		}
		if len(buf) >= c.br.Size() || len(buf) > c.maxHead || hasBareLF(buf) {
			return buf, true // too long, or a bare LF: the guard answers
		}
		if !headerSet {
			c.setReadDeadline(time.Now().Add(30 * time.Second))
			headerSet = true
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			if len(buf) > 0 && !isTimeout(err) && !errors.Is(err, net.ErrClosed) {
				// Part of a head, then the end: net/http answers 400
				// to what it can parse; hand it over.
				b, _ := c.br.Peek(c.br.Buffered())
				return b, true
			}
			return nil, false
		}
	}
}

// parse builds c.req from head; false hands the request over.
func (c *h1ServerConn) parse(head []byte) bool {
	if len(head) > c.maxHead || !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		return false
	}
	lineEnd := bytes.IndexByte(head, '\n')
	line := head[:lineEnd-1]
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	target, version, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || !isToken(method) || len(target) == 0 || target[0] != '/' || string(version) != "HTTP/1.1" || string(method) == http.MethodConnect {
		return false
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return false
		}
	}
	// The request target: reused when it repeats.
	if string(target) != c.lastTarget {
		c.lastTarget = string(target)
	}
	c.url = url.URL{}
	if bytes.IndexByte(target, '%') >= 0 || bytes.IndexByte(target, '#') >= 0 {
		u, err := url.ParseRequestURI(c.lastTarget)
		if err != nil {
			return false
		}
		c.url = *u
	} else if path, query, ok := stringsCut(c.lastTarget, '?'); ok {
		c.url.Path, c.url.RawQuery, c.url.ForceQuery = path, query, query == ""
	} else {
		c.url.Path = path
	}

	clear(c.header)
	c.vals = c.vals[:0]
	c.hopFields = false
	c.names = append(append(c.names[:0], target...), '\n')
	h := c.header
	var host string
	hosts, closeConn := 0, false
	pos := 0
	for rest := head[lineEnd+1 : len(head)-2]; len(rest) > 0; pos++ {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		if len(line) < 2 || line[len(line)-2] != '\r' {
			return false
		}
		line = line[:len(line)-2]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			return false // obs-fold, whitespace before the colon, bad name
		}
		name := line[:colon]
		value := trimOWS(line[colon+1:])
		for _, b := range value {
			if (b < ' ' && b != '\t') || b == 0x7f {
				return false
			}
		}
		c.names = append(append(c.names, name...), '\n')
		key := c.fieldKey(pos, name)
		switch key {
		case "Transfer-Encoding", "Upgrade", "Expect", "Trailer", "Http2-Settings":
			return false
		case "Content-Length":
			if string(value) != "0" || h[key] != nil {
				return false
			}
		}
		v := c.fieldValue(pos, value)
		switch key {
		case "Host":
			hosts++
			host = v
			continue // r.Host, not a header field
		case "Connection":
			if one := [1]string{v}; httpguts.HeaderValuesContainsToken(one[:], "close") {
				closeConn = true
			}
			c.hopFields = true
		case "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te":
			c.hopFields = true
		}
		c.vals = append(c.vals, v)
		vv := h[key]
		if vv == nil {
			h[key] = c.vals[len(c.vals)-1 : len(c.vals) : len(c.vals)]
		} else {
			h[key] = append(vv, v)
		}
	}
	if hosts != 1 || !httpguts.ValidHostHeader(host) {
		return false // net/http answers 400
	}
	if hp, ok := h["Pragma"]; ok && len(hp) > 0 && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	if string(c.names) != c.lastNames {
		c.lastNames = string(c.names)
	}
	c.curNames = c.lastNames
	r := http.Request{
		Method:     c.method(method),
		URL:        &c.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       host,
		Close:      closeConn,
		RemoteAddr: c.remote,
		RequestURI: c.lastTarget,
	}
	c.req = *r.WithContext(&c.lctx)
	c.messages++
	return true
}

// hasBareLF reports whether a line in b ends in LF without CR.
func hasBareLF(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

func stringsCut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// method returns the method's string without allocating for common ones.
func (c *h1ServerConn) method(m []byte) string {
	for _, s := range [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch, http.MethodTrace} {
		if string(m) == s {
			return s
		}
	}
	return string(m)
}

// fieldKey returns the canonical name of the pos-th field, reusing the
// previous request's string when it had the same name there.
func (c *h1ServerConn) fieldKey(pos int, name []byte) string {
	if pos < len(c.lastRaw) && c.lastRaw[pos] == string(name) {
		return c.lastKeys[pos]
	}
	raw := string(name)
	key := textproto.CanonicalMIMEHeaderKey(raw)
	if pos < len(c.lastRaw) {
		c.lastRaw[pos], c.lastKeys[pos] = raw, key
	} else if pos == len(c.lastRaw) && pos < maxRewriteFields {
		c.lastRaw, c.lastKeys = append(c.lastRaw, raw), append(c.lastKeys, key)
	}
	return key
}

// fieldValue returns the pos-th field's value, reusing the previous
// request's string when it had the same value there.
func (c *h1ServerConn) fieldValue(pos int, value []byte) string {
	if pos < len(c.lastVals) && c.lastVals[pos] == string(value) {
		return c.lastVals[pos]
	}
	v := string(value)
	if pos < len(c.lastVals) {
		c.lastVals[pos] = v
	} else if pos == len(c.lastVals) && pos < maxRewriteFields {
		c.lastVals = append(c.lastVals, v)
	}
	return v
}

// serve runs the handler for c.req and finishes its response; false when
// the connection is to close.
func (c *h1ServerConn) serve() (keep bool) {
	w := &c.w
	w.reset(&c.req)
	c.startWatch()
	defer func() {
		watched := c.stopWatch()
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.l.p.errorLog.Printf("http: panic serving %v: %v\n%s", c.remote, v, buf)
			}
			_ = c.bw.Flush()
			keep = false
			return
		}
		keep = w.finish() && watched && c.ctx.Err() == nil
	}()
	c.l.srv.Handler.ServeHTTP(w, &c.req)
	return true
}

// startWatch marks a request being served; the listener's scan watches
// the client once the request has run for h1WatchDelay.
func (c *h1ServerConn) startWatch() {
	now := time.Now()
	c.mu.Lock()
	c.inRequest = true
	c.canWatch = c.br.Buffered() == 0 // pipelined bytes: net/http does not watch either
	c.reqStart = now
	c.mu.Unlock()
	if c.canWatch {
		c.l.owned.requestStarted()
	}
}

// maybeWatch starts watching the client when the request being served
// has run for h1WatchDelay by now.
func (c *h1ServerConn) maybeWatch(now time.Time) {
	c.mu.Lock()
	if !c.inRequest || !c.canWatch || c.watchDone != nil || now.Sub(c.reqStart) < h1WatchDelay {
		c.mu.Unlock()
		return
	}
	done := make(chan struct{})
	c.watchDone = done
	c.mu.Unlock()
	go c.watch(done)
}

// watch reads the connection while a slow request is served.
func (c *h1ServerConn) watch(done chan struct{}) {
	defer close(done)
	_ = c.c.SetReadDeadline(time.Time{})
	n, err := c.c.Read(c.peek[:])
	c.mu.Lock()
	defer c.mu.Unlock()
	if n == 1 {
		c.hasPeek = true
		return
	}
	if err != nil && c.inRequest {
		c.endRequestLocked() // the client is gone: abort the request
	}
}

// endRequestLocked cancels the request's context and aborts its upstream
// exchange; c.mu is held.
func (c *h1ServerConn) endRequestLocked() {
	c.cancel()
	if abort := c.abort; abort != nil {
		c.abort = nil
		abort()
	}
}

// onAbort registers abort to run when the request being served ends
// early, as context.AfterFunc(c.ctx, abort) does, without a child context
// or goroutine per request; stop unregisters it and reports whether it
// had not run. abort must not block.
func (c *h1ServerConn) onAbort(abort func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		abort()
		return alreadyAborted
	}
	c.abort = abort
	return c.stopAbort
}

func alreadyAborted() bool { return false }

func (c *h1ServerConn) unregisterAbort() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	registered := c.abort != nil
	c.abort = nil
	return registered
}

// stopWatch ends watching after a request; false when the watcher found
// the connection closed.
func (c *h1ServerConn) stopWatch() bool {
	if !c.canWatch {
		c.mu.Lock()
		c.inRequest = false
		c.mu.Unlock()
		return true
	}
	c.l.owned.requestEnded()
	c.mu.Lock()
	c.inRequest = false
	done := c.watchDone
	c.mu.Unlock()
	if done == nil {
		return true
	}
	c.setReadDeadline(time.Unix(1, 0)) // end the watcher's read
	<-done
	c.mu.Lock()
	c.watchDone = nil
	c.mu.Unlock()
	c.setReadDeadline(time.Time{})
	return c.ctx.Err() == nil
}

// setReadDeadline sets the read deadline of c to t (zero: none) unless it
// is set to t already.
func (c *h1ServerConn) setReadDeadline(t time.Time) {
	if t.Equal(c.deadline) {
		return
	}
	_ = c.c.SetReadDeadline(t)
	c.deadline = t
}

// deadlineSlack is how far past its nominal time a lazily extended
// deadline may be set: a deadline of d is met within d + d/16, at most one
// second late, and is re-armed at most once per slack.
func deadlineSlack(d time.Duration) time.Duration {
	return min(d/16, time.Second)
}

// takeOrder returns the field names of the request being served.
func (c *h1ServerConn) takeOrder(string) fieldNames { return c.curNames }

// expectResp makes the response head follow the upstream's field order.
func (c *h1ServerConn) expectResp(names fieldNames) { c.w.order = names }

func (c *h1ServerConn) resume() {}

// h1Writer is the owned loop's http.ResponseWriter (and http.Flusher).
type h1Writer struct {
	c      *h1ServerConn
	req    *http.Request
	header http.Header

	status      int  // 0 until WriteHeader with a final status
	headWritten bool // the head is in bw
	chunked     bool
	noBody      bool  // HEAD, 1xx, 204, 304
	cl          int64 // declared Content-Length, -1 when none
	written     int64
	closeAfter  bool
	pending     []byte // body held before the head is written
	order       fieldNames
	trailers    []string // announced trailer names
	err         error

	keys []string
	head []byte
	out  []byte
}

func (w *h1Writer) reset(r *http.Request) {
	if w.header == nil {
		w.header = make(http.Header)
	}
	clear(w.header)
	w.req = r
	w.status, w.headWritten, w.chunked, w.noBody, w.cl, w.written = 0, false, false, false, -1, 0
	w.closeAfter, w.pending, w.order, w.trailers, w.err = r.Close, w.pending[:0], "", w.trailers[:0], nil
}

func (w *h1Writer) Header() http.Header { return w.header }

func (w *h1Writer) WriteHeader(code int) {
	if w.status != 0 {
		return // superfluous, as net/http (which logs it)
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An interim response goes out now, with the header map as it is.
		w.appendHead(code, -1)
		w.write(w.out)
		w.flush()
		return
	}
	w.status = code
	if v, ok := w.header["Content-Length"]; ok && len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.cl = n
		}
	}
	w.noBody = w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified || code < 200
}

func (w *h1Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil // eaten, as net/http does
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headWritten {
		if len(w.pending)+len(p) <= h1PendingBody {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.writeHead(false)
	}
	w.body(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// Flush writes what the handler wrote so far to the client.
func (w *h1Writer) Flush() { _ = w.FlushError() }

// FlushError is the flusher http.ResponseController looks for.
func (w *h1Writer) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headWritten {
		w.writeHead(false)
	}
	w.flush()
	return w.err
}

// finish completes the response after the handler returned; false when
// the connection cannot serve another request.
func (w *h1Writer) finish() bool {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headWritten {
		w.writeHead(true)
	}
	if w.chunked {
		w.out = append(w.out[:0], "0\r\n"...)
		w.out = w.appendTrailers(w.out)
		w.out = append(w.out, "\r\n"...)
		w.write(w.out)
	}
	w.flush()
	if w.cl >= 0 && w.written < w.cl && !w.noBody {
		return false // short body: the client cannot find the next response
	}
	return w.err == nil && !w.closeAfter
}

// writeHead puts the response head and the held body into bw; done says
// the handler returned (the whole body is held).
func (w *h1Writer) writeHead(done bool) {
	w.headWritten = true
	h := w.header
	if vv, ok := h["Trailer"]; ok && !w.noBody {
		for _, v := range vv {
			for _, k := range splitTokens(v) {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(k))
			}
		}
	}
	prefixTrailers := false
	for k := range h {
		if isTrailerKey(k) {
			prefixTrailers = true
			break
		}
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		w.closeAfter = true
	}
	if w.c.l.p.draining.Load() {
		w.closeAfter = true // as net/http's server during Shutdown
	}
	var autoCL int64 = -1
	switch {
	case w.noBody || w.cl >= 0:
	case done && len(w.trailers) == 0 && !prefixTrailers:
		autoCL = int64(len(w.pending))
		w.cl = autoCL
	default:
		w.chunked = true
	}
	w.appendHead(w.status, autoCL)
	w.write(w.out)
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = w.pending[:0]
		w.body(p)
	}
}

func isTrailerKey(k string) bool {
	return len(k) > len(http.TrailerPrefix) && k[:len(http.TrailerPrefix)] == http.TrailerPrefix
}

// appendHead formats the status line and header map into w.out as
// net/http's server does (sorted names, newlines in values replaced by
// spaces, nil values left out, trailer pseudo-fields skipped, then the
// framing fields it sets: Content-Length, Connection, Transfer-Encoding),
// and reorders it into the upstream's field order when one is kept;
// autoCL is a Content-Length to add (-1: none).
func (w *h1Writer) appendHead(code int, autoCL int64) {
	b := append(w.head[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	keys := w.keys[:0]
	for k, vv := range w.header {
		if len(vv) > 0 && !isTrailerKey(k) && (code < 200 || !w.chunked || k != "Content-Length") && httpguts.ValidHeaderFieldName(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range w.header[k] {
			b = appendFieldLine(b, k, v)
		}
	}
	if code >= 200 {
		if autoCL >= 0 {
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, autoCL, 10)
			b = append(b, "\r\n"...)
		}
		if w.closeAfter && !httpguts.HeaderValuesContainsToken(w.header["Connection"], "close") {
			b = append(b, "Connection: close\r\n"...)
		}
		if w.chunked {
			b = append(b, "Transfer-Encoding: chunked\r\n"...)
		}
	}
	b = append(b, "\r\n"...)
	w.keys, w.head = keys[:0], b
	if w.order != "" && code >= 200 {
		w.out = reorderHead(w.out[:0], b, w.order)
		return
	}
	w.out = append(w.out[:0], b...)
}

// writeVerbatimHead writes the head of a response whose field lines
// (fields, each CRLF-terminated, as appendVerbatimHead forwards them)
// include a Content-Length of cl: the bytes appendHead and reorderHead
// would write for them, without the header map. The body follows through
// Write.
func (w *h1Writer) writeVerbatimHead(code int, fields []byte, cl int64) {
	w.status, w.headWritten, w.cl = code, true, cl
	if w.c.l.p.draining.Load() {
		w.closeAfter = true // as net/http's server during Shutdown
	}
	b := append(w.out[:0], "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	b = append(b, "\r\n"...)
	b = append(b, fields...)
	if w.closeAfter {
		b = append(b, "Connection: close\r\n"...)
	}
	w.out = append(b, "\r\n"...)
	w.write(w.out)
}

func appendFieldLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	v = textproto.TrimString(v)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// appendTrailers appends the trailer fields of a chunked response.
func (w *h1Writer) appendTrailers(b []byte) []byte {
	for _, k := range w.trailers {
		for _, v := range w.header[k] {
			b = appendFieldLine(b, k, v)
		}
	}
	for k, vv := range w.header {
		if isTrailerKey(k) {
			name := k[len(http.TrailerPrefix):]
			if !httpguts.ValidHeaderFieldName(name) {
				continue
			}
			for _, v := range vv {
				b = appendFieldLine(b, name, v)
			}
		}
	}
	return b
}

func splitTokens(v string) []string {
	var out []string
	for len(v) > 0 {
		var tok string
		tok, v, _ = stringsCut(v, ',')
		if tok = textproto.TrimString(tok); tok != "" {
			out = append(out, tok)
		}
	}
	return out
}

// body writes p as (a chunk of) the body.
func (w *h1Writer) body(p []byte) {
	if w.chunked {
		var size [20]byte
		s := strconv.AppendInt(size[:0], int64(len(p)), 16)
		s = append(s, "\r\n"...)
		w.write(s)
		w.write(p)
		w.write([]byte("\r\n"))
		return
	}
	w.write(p)
}

func (w *h1Writer) write(p []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.c.bw.Write(p); err != nil {
		w.fail(err)
	}
}

func (w *h1Writer) flush() {
	if w.err != nil {
		return
	}
	if err := w.c.bw.Flush(); err != nil {
		w.fail(err)
	}
}

// fail notes that the client cannot be written to: the client is gone,
// and the request's context says so.
func (w *h1Writer) fail(err error) {
	w.err = err
	w.c.mu.Lock()
	w.c.endRequestLocked()
	w.c.mu.Unlock()
}

// ownedSet tracks a listener's owned connections for the drain and the
// client-gone watch. One scan per listener, running while requests are
// served, starts watching the clients of requests served longer than
// h1WatchDelay (checked every h1WatchDelay/2): a timer per connection
// would wake the process for every connection, every h1WatchDelay.
type ownedSet struct {
	mu    sync.Mutex
	conns map[*h1ServerConn]struct{}

	busy     atomic.Int64 // connections serving a watchable request
	scanning atomic.Bool  // the scan runs
}

// requestStarted counts a watchable request and starts the scan if it
// does not run.
func (s *ownedSet) requestStarted() {
	s.busy.Add(1)
	if !s.scanning.Load() && s.scanning.CompareAndSwap(false, true) {
		go s.scan()
	}
}

func (s *ownedSet) requestEnded() { s.busy.Add(-1) }

// scan checks the connections every h1WatchDelay/2 and ends after 20
// checks without a request.
func (s *ownedSet) scan() {
	t := time.NewTicker(h1WatchDelay / 2)
	defer t.Stop()
	quiet := 0
	for now := range t.C {
		if s.busy.Load() == 0 {
			if quiet++; quiet < 20 {
				continue
			}
			s.scanning.Store(false)
			// A request that started meanwhile saw the scan running:
			// take it on, unless a new scan did.
			if s.busy.Load() == 0 || !s.scanning.CompareAndSwap(false, true) {
				return
			}
		}
		quiet = 0
		s.mu.Lock()
		for c := range s.conns {
			c.maybeWatch(now)
		}
		s.mu.Unlock()
	}
}

func (s *ownedSet) add(c *h1ServerConn) {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*h1ServerConn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *ownedSet) remove(c *h1ServerConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeIdle wakes the connections waiting for a request (the drain
// began, p.draining is set): each sees the drain and closes. A connection
// that becomes idle later sees the drain itself; busy ones answer with
// Connection: close and close after their response.
func (s *ownedSet) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.idle.Load() {
			_ = c.c.SetReadDeadline(time.Now())
		}
	}
}
