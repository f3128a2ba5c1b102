package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var (
	errServerStreamClosed = errors.New("h2: stream closed")
	errServerBodyClosed   = errors.New("h2: read on closed request body")
)

// serverStream is one request/response exchange. Fields after cond are
// guarded by sc.mu.
type serverStream struct {
	sc     *serverConn
	id     uint32
	ctx    streamContext // the request's context
	cancel context.CancelFunc
	// watcher is the outgoing client stream that forwards this request,
	// aborted when the request's context ends (watch).
	watcher atomic.Pointer[clientStream]
	req     *http.Request
	body    serverBody
	rw      serverResponseWriter
	cond    sync.Cond // signals body data, window changes and resets
	// expectContinue is set for "expect: 100-continue" until the first
	// body read sends 100 (Continue) or the final header goes out.
	expectContinue atomic.Bool

	sendWin    int64 // the client's window for our DATA on this stream
	recvWin    int64 // what the client may still send on this stream
	unsent     int64 // consumed stream-window bytes not yet returned
	buf        []byte
	roff       int   // read offset into buf
	declLen    int64 // request content-length, -1 if none
	gotLen     int64
	remoteDone bool  // END_STREAM received
	bodyErr    error // returned by Read once buf is drained
	// trailerFields are the request's trailers, not yet in req.Trailer.
	trailerFields []hpack.HeaderField
	bodyClosed    bool
	handlerDone   bool
	removed       bool
	resetErr      error // non-nil once the stream was reset or the connection died
}

func (sc *serverConn) newStream(id uint32, head serverRequestHead, endStream bool) *serverStream {
	st := &serverStream{sc: sc, id: id, declLen: head.contentLength}
	st.cond.L = &sc.mu
	st.ctx.st = st
	st.ctx.Context, st.cancel = context.WithCancel(sc.baseCtx)
	sc.mu.Lock()
	st.sendWin = sc.peerInitWin
	sc.mu.Unlock()
	st.recvWin = serverWindow
	// WithContext of a zero Request on the stack: one Request on the heap,
	// not a literal and its copy.
	// (Assigning a whole Request literal would clear its context.)
	var zero http.Request
	req := zero.WithContext(&st.ctx)
	req.Method, req.URL, req.Host, req.RequestURI = head.method, head.url, head.authority, head.requestURI
	req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
	req.Header, req.Trailer, req.ContentLength = head.header, head.trailer, head.contentLength
	req.RemoteAddr, req.TLS = sc.remoteAddr, sc.tlsState
	if endStream {
		req.Body = http.NoBody
		req.ContentLength = 0
		st.remoteDone = true
		st.bodyErr = io.EOF
	} else {
		st.body.st = st
		req.Body = &st.body
		if len(head.header["Expect"]) == 1 && strings.EqualFold(head.header["Expect"][0], "100-continue") {
			st.expectContinue.Store(true)
		}
	}
	st.req = req
	st.rw = serverResponseWriter{st: st, header: make(http.Header), contentLength: -1}
	return st
}

// streamContext is a stream's request context: a context.WithCancel
// child of the connection's that also answers serverStreamKey with its
// stream, so that a client stream forwarding the request can register
// with the stream (watch) instead of with context.AfterFunc. It lives in
// the stream: no allocation of its own.
type streamContext struct {
	context.Context
	st *serverStream
}

// serverStreamKey is the context key under which a stream's request
// context returns its *serverStream.
type serverStreamKey struct{}

func (c *streamContext) Value(key any) any {
	if _, ok := key.(serverStreamKey); ok {
		return c.st
	}
	return c.Context.Value(key)
}

// serverStreamOf returns the server stream whose request context ends
// exactly when ctx does (ctx is that context, or wraps it without a
// cancellation of its own), nil if there is none.
func serverStreamOf(ctx context.Context) *serverStream {
	st, _ := ctx.Value(serverStreamKey{}).(*serverStream)
	if st == nil || ctx.Done() != st.ctx.Done() {
		return nil
	}
	return st
}

// watch registers cs to be aborted when st's request context ends, as
// context.AfterFunc would; false when another client stream is
// registered already or the context has ended (the caller then uses
// context.AfterFunc, which runs at once for an ended context).
func (st *serverStream) watch(cs *clientStream) bool {
	if !st.watcher.CompareAndSwap(nil, cs) {
		return false
	}
	if st.ctx.Err() != nil && st.watcher.CompareAndSwap(cs, nil) {
		return false // ended meanwhile, and end did not take cs
	}
	return true
}

// unwatch drops cs's registration, unless end took it already (cs is
// being aborted).
func (st *serverStream) unwatch(cs *clientStream) {
	st.watcher.CompareAndSwap(cs, nil)
}

// end cancels the request's context and aborts the client stream that
// watches it, on its own goroutine as context.AfterFunc would (callers
// may hold sc.mu).
func (st *serverStream) end() {
	st.cancel()
	if cs := st.watcher.Swap(nil); cs != nil {
		go cs.contextEnded()
	}
}

// run serves the stream on the current goroutine.
func (st *serverStream) run() {
	rw := &st.rw
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				st.sc.log.Error("h2: handler panic", "remote", st.sc.remoteAddr, "uri", st.req.RequestURI, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			}
			rw.abort(http2.ErrCodeInternal)
		}
		st.end()
		st.sc.mu.Lock()
		st.sc.handlers--
		st.sc.mu.Unlock()
	}()
	st.sc.handler.ServeHTTP(rw, st.req)
	rw.finish()
}

// serverBody is a request body fed by the connection's reader.
type serverBody struct{ st *serverStream }

func (b *serverBody) Read(p []byte) (int, error) {
	st := b.st
	sc := st.sc
	if st.expectContinue.Load() {
		st.sendContinue()
	}
	sc.mu.Lock()
	for len(st.buf) == st.roff && st.bodyErr == nil && !st.bodyClosed {
		st.cond.Wait()
	}
	if st.bodyClosed {
		sc.mu.Unlock()
		return 0, errServerBodyClosed
	}
	if len(st.buf) == st.roff {
		err := st.bodyErr
		if err == io.EOF && st.trailerFields != nil {
			if st.req.Trailer == nil {
				st.req.Trailer = make(http.Header)
			}
			for _, hf := range st.trailerFields {
				k := canonicalKey(hf.Name)
				st.req.Trailer[k] = append(st.req.Trailer[k], hf.Value)
			}
			st.trailerFields = nil
		}
		sc.mu.Unlock()
		return 0, err
	}
	n := copy(p, st.buf[st.roff:])
	st.roff += n
	if st.roff == len(st.buf) {
		st.buf = st.buf[:0]
		st.roff = 0
	}
	connInc := sc.returnConnLocked(int64(n))
	var streamInc int64
	st.unsent += int64(n)
	if !st.remoteDone && st.resetErr == nil && st.unsent >= serverWindowThreshold {
		streamInc = st.unsent
		st.recvWin += streamInc
		st.unsent = 0
	}
	sc.mu.Unlock()
	if connInc > 0 || streamInc > 0 {
		sc.writeWindowUpdates(connInc, st.id, streamInc)
	}
	return n, nil
}

// Buffered reports the body bytes received and not yet read, and whether
// they are all there is (END_STREAM arrived, no trailers follow): the
// client sends such a body with its headers (BufferedBody).
func (b *serverBody) Buffered() (n int, complete bool) {
	st := b.st
	st.sc.mu.Lock()
	defer st.sc.mu.Unlock()
	if st.bodyClosed {
		return 0, false
	}
	return len(st.buf) - st.roff, st.remoteDone && st.bodyErr == io.EOF && st.trailerFields == nil && !st.expectContinue.Load()
}

// sendContinue answers "expect: 100-continue" unless the final header
// was already written (rw.sentHeader only changes under wmu).
func (st *serverStream) sendContinue() {
	sc := st.sc
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if !st.expectContinue.Swap(false) || st.rw.sentHeader || sc.werr != nil || st.isReset() != nil {
		return
	}
	sc.hbuf.Reset()
	_ = sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
	sc.writeHeaderBlockLocked(st.id, false)
	sc.flushLocked()
}

// Close discards unread data, returning it to the connection window.
func (b *serverBody) Close() error {
	b.st.closeBody()
	return nil
}

func (st *serverStream) closeBody() {
	sc := st.sc
	sc.mu.Lock()
	if st.bodyClosed {
		sc.mu.Unlock()
		return
	}
	st.bodyClosed = true
	inc := sc.returnConnLocked(int64(len(st.buf) - st.roff))
	st.buf = nil
	st.roff = 0
	st.cond.Broadcast()
	sc.mu.Unlock()
	if inc > 0 {
		sc.writeWindowUpdates(inc, 0, 0)
	}
}

// serverResponseWriter implements http.ResponseWriter and http.Flusher.
//
// Body bytes collect in buf (up to one maximum-size frame) so that a small
// response goes out as HEADERS and one DATA frame with END_STREAM. Header
// changes after WriteHeader still apply until the HEADERS frame is written
// (first Flush, or more than a frame of body); net/http snapshots at
// WriteHeader instead.
type serverResponseWriter struct {
	st            *serverStream
	header        http.Header
	status        int
	wroteHeader   bool // the final status is chosen
	sentHeader    bool // its HEADERS frame is written
	bodyAllowed   bool
	isHead        bool
	contentLength int64 // declared by the handler, -1 if not
	written       int64
	buf           []byte
	bufp          *[]byte  // buf's pool entry
	autoLength    bool     // send content-length computed at the end
	trailers      []string // declared through the Trailer header, canonical
	done          bool
}

func (rw *serverResponseWriter) Header() http.Header { return rw.header }

func (rw *serverResponseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if rw.wroteHeader || rw.done {
		return
	}
	if code < 200 {
		if code == http.StatusSwitchingProtocols {
			return // not defined for HTTP/2 (RFC 9113 8.6)
		}
		rw.writeInformational(code)
		return
	}
	rw.wroteHeader = true
	rw.status = code
	rw.isHead = rw.st.req.Method == http.MethodHead
	rw.bodyAllowed = code != http.StatusNoContent && code != http.StatusNotModified
	if vv := rw.header["Content-Length"]; len(vv) == 1 {
		if n, err := strconv.ParseInt(vv[0], 10, 64); err == nil && n >= 0 {
			rw.contentLength = n
		}
	}
	for _, v := range rw.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if k != "" && httpguts.ValidTrailerHeader(k) {
				rw.trailers = append(rw.trailers, k)
			}
		}
	}
}

func (rw *serverResponseWriter) writeInformational(code int) {
	sc := rw.st.sc
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if sc.werr != nil || rw.st.isReset() != nil {
		return
	}
	sc.hbuf.Reset()
	_ = sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: serverStatusString(code)})
	rw.encodeFields()
	sc.writeHeaderBlockLocked(rw.st.id, false)
	sc.flushLocked()
}

func (rw *serverResponseWriter) Write(p []byte) (int, error) {
	return rw.write(len(p), p, "")
}

func (rw *serverResponseWriter) WriteString(s string) (int, error) {
	return rw.write(len(s), nil, s)
}

func (rw *serverResponseWriter) write(n int, p []byte, s string) (int, error) {
	if rw.done {
		return 0, errServerStreamClosed
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if err := rw.st.isReset(); err != nil {
		return 0, err
	}
	if rw.contentLength >= 0 && rw.written+int64(n) > rw.contentLength {
		return 0, http.ErrContentLength
	}
	rw.written += int64(n)
	if rw.isHead {
		return n, nil
	}
	if rw.buf == nil {
		rw.bufp = rw.st.sc.srv.getBuf()
		rw.buf = (*rw.bufp)[:0]
	}
	if len(rw.buf)+n <= cap(rw.buf) {
		if p != nil {
			rw.buf = append(rw.buf, p...)
		} else {
			rw.buf = append(rw.buf, s...)
		}
		return n, nil
	}
	// More than a frame's worth: send what is buffered and this write.
	if err := rw.send(false, false); err != nil {
		return 0, err
	}
	if p == nil {
		p = []byte(s)
	}
	if err := rw.sendData(p, false, false); err != nil {
		return 0, err
	}
	return n, nil
}

// Flush sends the header and buffered body now.
func (rw *serverResponseWriter) Flush() { _ = rw.FlushError() }

// FlushError is Flush reporting a reset stream or a dead connection; used
// by http.ResponseController.
func (rw *serverResponseWriter) FlushError() error {
	if rw.done {
		return errServerStreamClosed
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.send(false, true)
}

// SetReadDeadline is not supported: a handler bounds its work with the
// request's context. It returns http.ErrNotSupported.
func (rw *serverResponseWriter) SetReadDeadline(time.Time) error { return http.ErrNotSupported }

// SetWriteDeadline is not supported, as SetReadDeadline.
func (rw *serverResponseWriter) SetWriteDeadline(time.Time) error { return http.ErrNotSupported }

// EnableFullDuplex reports success: HTTP/2 streams are always full duplex.
func (rw *serverResponseWriter) EnableFullDuplex() error { return nil }

func (st *serverStream) isReset() error {
	st.sc.mu.Lock()
	err := st.resetErr
	st.sc.mu.Unlock()
	return err
}

// finish completes the response after the handler returned.
func (rw *serverResponseWriter) finish() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if !rw.sentHeader && rw.bodyAllowed && rw.contentLength < 0 && (rw.written > 0 || !rw.isHead) {
		if _, ok := rw.header["Content-Length"]; !ok {
			rw.autoLength = true
			rw.contentLength = rw.written
		}
	}
	if rw.bodyAllowed && !rw.isHead && rw.contentLength >= 0 && rw.written != rw.contentLength {
		// The body is shorter than the content-length the handler
		// declared: send what there is, then reset instead of END_STREAM
		// so the client does not take it as complete.
		_ = rw.send(false, false)
		rw.abort(http2.ErrCodeInternal)
		return
	}
	_ = rw.send(true, true)
	rw.release()
}

func (rw *serverResponseWriter) release() {
	rw.done = true
	if rw.bufp != nil {
		*rw.bufp = rw.buf[:0]
		rw.st.sc.srv.bufPool.Put(rw.bufp)
		rw.buf, rw.bufp = nil, nil
	}
	rw.st.closeBody()
}

// abort resets the stream with code (handler panic, short body).
func (rw *serverResponseWriter) abort(code http2.ErrCode) {
	st := rw.st
	sc := st.sc
	if !rw.done {
		rw.release()
	}
	sc.wmu.Lock()
	sc.mu.Lock()
	reset := st.resetErr != nil
	st.handlerDone = true
	if !reset {
		sc.closeStreamLocked(st, errors.New("h2: handler aborted the response"))
	}
	sc.mu.Unlock()
	if !reset && sc.werr == nil {
		_ = sc.wfr.WriteRSTStream(st.id, code)
		sc.flushLocked()
	}
	sc.wmu.Unlock()
}

// send writes the HEADERS frame if not yet written and the buffered body;
// final ends the stream (with trailers if any), flush writes to the socket.
func (rw *serverResponseWriter) send(final, flush bool) error {
	sc := rw.st.sc
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if sc.werr != nil {
		rw.markDone(final)
		return sc.werr
	}
	if err := rw.st.isReset(); err != nil {
		rw.markDone(final)
		return err
	}
	var trailers []hpack.HeaderField
	if final {
		trailers = rw.collectTrailers()
	}
	body := rw.buf
	rw.buf = rw.buf[:0]
	if rw.isHead {
		body = nil
	}
	if !rw.sentHeader {
		rw.sentHeader = true
		rw.st.expectContinue.Store(false)
		sc.hbuf.Reset()
		_ = sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: serverStatusString(rw.status)})
		rw.encodeFields()
		if rw.autoLength {
			_ = sc.henc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(rw.written, 10)})
		}
		if _, ok := rw.header["Date"]; !ok {
			_ = sc.henc.WriteField(hpack.HeaderField{Name: "date", Value: sc.srv.date()})
		}
		if _, ok := rw.header["Content-Type"]; !ok && rw.bodyAllowed && len(body) > 0 && len(rw.header["Content-Encoding"]) == 0 {
			_ = sc.henc.WriteField(hpack.HeaderField{Name: "content-type", Value: http.DetectContentType(body)})
		}
		end := final && len(body) == 0 && len(trailers) == 0
		sc.writeHeaderBlockLocked(rw.st.id, end)
		if end {
			return rw.endLocked(flush)
		}
	}
	if len(body) > 0 || final && len(trailers) == 0 {
		if err := rw.sendDataLocked(body, final && len(trailers) == 0); err != nil {
			rw.markDone(final)
			return err
		}
	}
	if final && len(trailers) > 0 {
		sc.hbuf.Reset()
		for _, f := range trailers {
			_ = sc.henc.WriteField(f)
		}
		sc.writeHeaderBlockLocked(rw.st.id, true)
	}
	if final {
		return rw.endLocked(flush)
	}
	if flush {
		sc.flushLocked()
	}
	return sc.werr
}

func (rw *serverResponseWriter) markDone(final bool) {
	if !final {
		return
	}
	sc := rw.st.sc
	sc.mu.Lock()
	rw.st.handlerDone = true
	sc.mu.Unlock()
}

// endLocked closes our side after END_STREAM was written; sc.wmu is held.
// A client still sending is told to stop with RST_STREAM(NO_ERROR)
// (RFC 9113 8.1).
func (rw *serverResponseWriter) endLocked(flush bool) error {
	st := rw.st
	sc := st.sc
	sc.mu.Lock()
	st.handlerDone = true
	rst := !st.remoteDone && st.resetErr == nil
	if rst {
		sc.closeStreamLocked(st, errServerStreamClosed)
	} else {
		sc.removeStreamLocked(st)
	}
	sc.mu.Unlock()
	if rst {
		_ = sc.wfr.WriteRSTStream(st.id, http2.ErrCodeNo)
	}
	if flush {
		sc.flushLocked()
	}
	return sc.werr
}

// sendData writes p as DATA frames, taking wmu.
func (rw *serverResponseWriter) sendData(p []byte, end, flush bool) error {
	sc := rw.st.sc
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if err := rw.sendDataLocked(p, end); err != nil {
		return err
	}
	if flush {
		sc.flushLocked()
	}
	return sc.werr
}

// sendDataLocked writes p as DATA frames within the client's windows,
// waiting (with wmu released) while a window is exhausted; sc.wmu is held.
func (rw *serverResponseWriter) sendDataLocked(p []byte, end bool) error {
	st := rw.st
	sc := st.sc
	if len(p) == 0 {
		if end {
			_ = sc.wfr.WriteData(st.id, true, nil)
		}
		return sc.werr
	}
	for len(p) > 0 {
		if sc.werr != nil {
			return sc.werr
		}
		sc.mu.Lock()
		n := int64(len(p))
		n = min(n, sc.sendConnWin, st.sendWin, int64(sc.peerMaxFrame.Load()))
		for n <= 0 && st.resetErr == nil {
			// Let the peer see what we have, and let others write, while
			// we wait for a WINDOW_UPDATE.
			sc.mu.Unlock()
			sc.flushLocked()
			sc.wmu.Unlock()
			sc.mu.Lock()
			for st.resetErr == nil && (sc.sendConnWin <= 0 || st.sendWin <= 0) {
				st.cond.Wait()
			}
			sc.mu.Unlock()
			sc.wmu.Lock()
			sc.mu.Lock()
			n = min(int64(len(p)), sc.sendConnWin, st.sendWin, int64(sc.peerMaxFrame.Load()))
		}
		if err := st.resetErr; err != nil {
			sc.mu.Unlock()
			return err
		}
		sc.sendConnWin -= n
		st.sendWin -= n
		sc.mu.Unlock()
		chunk := p[:n]
		p = p[n:]
		_ = sc.wfr.WriteData(st.id, end && len(p) == 0, chunk)
	}
	return sc.werr
}

// collectTrailers gathers the declared trailers and those set with
// http.TrailerPrefix.
func (rw *serverResponseWriter) collectTrailers() []hpack.HeaderField {
	var out []hpack.HeaderField
	for _, k := range rw.trailers {
		for _, v := range rw.header[k] {
			if httpguts.ValidHeaderFieldValue(v) {
				out = append(out, hpack.HeaderField{Name: lowerKey(k), Value: v})
			}
		}
	}
	for k, vv := range rw.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok {
			continue
		}
		name = strings.ToLower(name)
		if !httpguts.ValidTrailerHeader(name) || !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				out = append(out, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	return out
}

// encodeFields hpack-encodes the handler's header fields into sc.hbuf,
// leaving out trailers and connection-specific fields; sc.wmu is held.
func (rw *serverResponseWriter) encodeFields() {
	enc := rw.st.sc.henc
	for k, vv := range rw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) || rw.isTrailer(k) {
			continue
		}
		name := lowerKey(k)
		if connectionSpecific(name) || !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			_ = enc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
}

func (rw *serverResponseWriter) isTrailer(k string) bool {
	for _, t := range rw.trailers {
		if t == k {
			return true
		}
	}
	return false
}

func serverStatusString(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 206:
		return "206"
	case 301:
		return "301"
	case 302:
		return "302"
	case 304:
		return "304"
	case 400:
		return "400"
	case 403:
		return "403"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}
