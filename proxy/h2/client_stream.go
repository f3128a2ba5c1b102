package h2

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// clientStream is one request/response exchange. Fields after notify are
// guarded by cc.mu.
type clientStream struct {
	cc      *clientConn
	id      uint32
	req     *http.Request
	isHead  bool
	notify  chan struct{} // capacity 1: state changed (headers, data, end, error)
	stopCtx func() bool   // unregisters the context.AfterFunc watcher
	// watched is the server stream whose request this stream forwards and
	// which aborts it when that request's context ends (serverStream.watch
	// instead of context.AfterFunc: no allocation).
	watched *serverStream
	reqBody io.ReadCloser // the body the writer copies, nil if none
	// reqBodyClosed makes closing reqBody happen once, by the writer when
	// done or by a failure that must unblock the writer's Read.
	reqBodyClosed atomic.Bool

	resp         *http.Response // final response headers, once received
	readErr      error          // io.EOF after END_STREAM, or why the stream failed
	rbuf         []byte         // received, unread DATA is rbuf[roff:]
	roff         int
	recvWindow   int64 // bytes the peer may still send on this stream
	recvUnacked  int64 // consumed bytes not yet returned by WINDOW_UPDATE
	declaredLen  int64 // content-length, -1 if none
	recvLen      int64
	remoteClosed bool // END_STREAM received or stream reset
	sendWindow   int64
	sendDone     bool  // END_STREAM sent (or there was no body)
	sendErr      error // makes the body writer stop
	bodyStarted  bool  // the body writer read from the request body
	// bodyReclaimed: RoundTrip took the unread request body back (to retry
	// or close it); the body writer must not touch it.
	bodyReclaimed bool
	bodyClosed    bool        // the caller closed the response body
	trailer       http.Header // received trailers, until Body's Read returns io.EOF
	onWait        func()      // clientBody.OnWait; only the reading goroutine uses it
	removed       bool        // no longer in cc.streams; its slot released
}

// wake signals a waiting RoundTrip or Body.Read without blocking.
func (cs *clientStream) wake() {
	select {
	case cs.notify <- struct{}{}:
	default:
	}
}

// closeReqBody closes the request body once.
func (cs *clientStream) closeReqBody() {
	if cs.reqBodyClosed.CompareAndSwap(false, true) {
		_ = cs.reqBody.Close()
	}
}

// stopBody closes the request body when the body writer owns it and has
// not finished, so that a writer blocked in Read (a streaming body) returns
// once the stream failed. Called without cc.mu: Close may block.
func (cs *clientStream) stopBody() {
	cc := cs.cc
	cc.mu.Lock()
	stop := cs.reqBody != nil && cs.bodyStarted && !cs.sendDone
	cc.mu.Unlock()
	if stop {
		cs.closeReqBody()
	}
}

// failLocked records err as the stream's outcome unless it already ended,
// and stops the body writer.
func (cs *clientStream) failLocked(err error) {
	if cs.readErr == nil {
		cs.readErr = err
	}
	if cs.sendErr == nil {
		cs.sendErr = err
	}
	cs.remoteClosed = true
}

// removeLocked drops the stream from its connection and releases its slot
// (cc.mu held). Buffered data stays readable.
func (cs *clientStream) removeLocked() {
	if cs.removed {
		return
	}
	cs.removed = true
	cc := cs.cc
	delete(cc.streams, cs.id)
	if cs.stopCtx != nil {
		cs.stopCtx()
	}
	if cs.watched != nil {
		cs.watched.unwatch(cs)
	}
	cc.cond.Broadcast()
	cc.releaseLocked()
}

// remoteEndLocked records the peer's END_STREAM: the body ends with
// io.EOF unless it already failed (cc.mu held).
func (cs *clientStream) remoteEndLocked() {
	cs.remoteClosed = true
	if cs.readErr == nil {
		cs.readErr = io.EOF
	}
	cs.maybeFinishLocked()
}

// maybeFinishLocked removes the stream once both directions ended.
func (cs *clientStream) maybeFinishLocked() {
	if cs.remoteClosed && cs.sendDone {
		cs.removeLocked()
	}
}

// discardLocked drops unread data, returning it to the connection window,
// and reports the connection WINDOW_UPDATE increment due.
func (cs *clientStream) discardLocked() uint32 {
	cc := cs.cc
	cc.recvUnacked += int64(len(cs.rbuf) - cs.roff)
	cs.rbuf, cs.roff = nil, 0
	return cc.takeConnUpdateLocked()
}

// contextEnded aborts the stream because its request's context ended.
func (cs *clientStream) contextEnded() {
	cs.abort(fmt.Errorf("h2: stream %d: %w", cs.id, context.Cause(cs.req.Context())), http2.ErrCodeCancel)
}

// abort ends the stream from our side: the caller's context ended, the
// response header timeout fired, or the request body failed. It sends
// RST_STREAM with code unless the stream already ended.
func (cs *clientStream) abort(err error, code http2.ErrCode) {
	cc := cs.cc
	cc.mu.Lock()
	if cs.removed {
		// Both directions ended already; a reader still sees its data.
		cc.mu.Unlock()
		return
	}
	cs.failLocked(err)
	connInc := cs.discardLocked()
	cs.removeLocked()
	cc.mu.Unlock()
	cs.wake()
	cc.writeRST(cs.id, code, connInc)
	cs.stopBody()
}

// writeBody copies the request body into DATA frames, then the trailers,
// and closes the body. It runs in its own goroutine so that RoundTrip can
// return the response while the body is still being sent.
func (cs *clientStream) writeBody(body io.ReadCloser, cl int64) {
	cc := cs.cc
	cc.mu.Lock()
	if cs.bodyReclaimed {
		cc.mu.Unlock()
		return
	}
	cs.bodyStarted = true
	stopped := cs.sendErr
	cc.mu.Unlock()
	var err error
	if stopped == nil {
		err = cs.sendBody(body, cl)
	}
	cs.closeReqBody()
	if err != nil {
		cs.abort(err, http2.ErrCodeCancel)
	}
}

func (cs *clientStream) sendBody(body io.Reader, cl int64) error {
	t := cs.cc.t
	bufp := t.getBodyBuf()
	defer t.putBodyBuf(bufp)
	buf := *bufp
	var sent int64
	for {
		n, rerr := body.Read(buf)
		sent += int64(n)
		if cl >= 0 && sent > cl {
			return fmt.Errorf("h2: request body longer than its ContentLength %d", cl)
		}
		eof := rerr == io.EOF || (cl >= 0 && sent == cl)
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("h2: reading request body: %w", rerr)
		}
		if eof && cl >= 0 && sent < cl {
			return fmt.Errorf("h2: request body of %d bytes shorter than its ContentLength %d", sent, cl)
		}
		trailers := eof && len(cs.req.Trailer) > 0
		if n > 0 || (eof && !trailers) {
			if err := cs.writeData(buf[:n], eof && !trailers); err != nil {
				return err
			}
		}
		if eof {
			if trailers {
				return cs.writeTrailers()
			}
			return nil
		}
	}
}

// writeData sends data as DATA frames within the peer's windows, waiting
// for WINDOW_UPDATEs as needed, and flushes before it waits and at the end.
func (cs *clientStream) writeData(data []byte, endStream bool) error {
	cc := cs.cc
	for {
		cc.mu.Lock()
		for cs.sendErr == nil && !cc.closed && len(data) > 0 &&
			(cs.sendWindow <= 0 || cc.sendWindow <= 0) {
			cc.cond.Wait()
		}
		if err := cs.sendErr; err != nil {
			cc.mu.Unlock()
			return errClientSendStopped(err)
		}
		if cc.closed {
			err := cc.err
			cc.mu.Unlock()
			return fmt.Errorf("h2: connection to %s closed: %w", cc.addr, err)
		}
		take := int64(len(data))
		take = min(take, cs.sendWindow, cc.sendWindow)
		cs.sendWindow -= take
		cc.sendWindow -= take
		cc.mu.Unlock()

		chunk := data[:take]
		data = data[take:]
		last := endStream && len(data) == 0

		cc.wmu.Lock()
		// Checked under wmu so that no DATA follows our RST_STREAM.
		cc.mu.Lock()
		serr := cs.sendErr
		cc.mu.Unlock()
		if serr != nil {
			cc.wmu.Unlock()
			return errClientSendStopped(serr)
		}
		err := cc.werr
		maxFrame := int(cc.wMaxFrame)
		for err == nil {
			n := min(len(chunk), maxFrame)
			err = cc.fr.WriteData(cs.id, last && n == len(chunk), chunk[:n])
			chunk = chunk[n:]
			if len(chunk) == 0 {
				break
			}
		}
		if err == nil {
			err = cc.bw.Flush()
		}
		if err != nil && cc.werr == nil {
			cc.werr = err
		}
		cc.wmu.Unlock()
		if err != nil {
			cc.close(err)
			return fmt.Errorf("h2: writing request body to %s: %w", cc.addr, err)
		}
		if last {
			cs.markSent()
		}
		if len(data) == 0 {
			return nil
		}
	}
}

// errClientSendStopped explains why the body writer stopped. A peer that
// answered in full and reset the stream with NO_ERROR is not a failure.
func errClientSendStopped(err error) error {
	if errors.Is(err, errClientStopSend) {
		return nil
	}
	return err
}

func (cs *clientStream) writeTrailers() error {
	cc := cs.cc
	cc.wmu.Lock()
	cc.mu.Lock()
	serr := cs.sendErr
	cc.mu.Unlock()
	if serr != nil {
		cc.wmu.Unlock()
		return errClientSendStopped(serr)
	}
	err := cc.werr
	if err == nil {
		cc.encodeTrailers(cs.req.Trailer)
		err = cc.writeHeaderBlock(cs.id, true)
		if err == nil {
			err = cc.bw.Flush()
		}
		if err != nil {
			cc.werr = err
		}
	}
	cc.wmu.Unlock()
	if err != nil {
		cc.close(err)
		return fmt.Errorf("h2: writing request trailers to %s: %w", cc.addr, err)
	}
	cs.markSent()
	return nil
}

func (cs *clientStream) markSent() {
	cc := cs.cc
	cc.mu.Lock()
	cs.sendDone = true
	cs.maybeFinishLocked()
	cc.mu.Unlock()
}

// clientBody is the response Body of a stream that did not end with its
// headers.
type clientBody struct{ cs *clientStream }

func (b *clientBody) Read(p []byte) (int, error) {
	cs := b.cs
	cc := cs.cc
	cc.mu.Lock()
	for {
		if cs.roff < len(cs.rbuf) {
			n := copy(p, cs.rbuf[cs.roff:])
			cs.roff += n
			if cs.roff == len(cs.rbuf) {
				cs.rbuf, cs.roff = cs.rbuf[:0], 0
			}
			cc.recvUnacked += int64(n)
			connInc := cc.takeConnUpdateLocked()
			var streamInc uint32
			if !cs.remoteClosed {
				cs.recvUnacked += int64(n)
				if cs.recvUnacked >= clientWindowUpdateMin {
					streamInc = uint32(cs.recvUnacked)
					cs.recvWindow += cs.recvUnacked
					cs.recvUnacked = 0
				}
			}
			cc.mu.Unlock()
			if connInc > 0 || streamInc > 0 {
				cc.writeWindowUpdates(cs.id, streamInc, connInc)
			}
			return n, nil
		}
		if err := cs.readErr; err != nil {
			cs.takeTrailerLocked()
			cc.mu.Unlock()
			return 0, err
		}
		if len(p) == 0 {
			cc.mu.Unlock()
			return 0, nil
		}
		cc.mu.Unlock()
		if cs.onWait != nil {
			cs.onWait() // a wake-up meanwhile stays in cs.notify
		}
		<-cs.notify
		cc.mu.Lock()
	}
}

// OnWait sets f to run on the reading goroutine each time Read is about
// to wait for more of the response (set it before the first Read). A
// proxy that holds back its flushes, so that the last data and the
// trailers leave in one write, flushes there: nothing it holds waits on
// the upstream.
func (b *clientBody) OnWait(f func()) { b.cs.onWait = f }

// takeTrailerLocked moves the received trailers into resp.Trailer once
// the body ended (cc.mu held; on the goroutine reading the body, as
// net/http does, so that the caller never sees the map change under it).
func (cs *clientStream) takeTrailerLocked() {
	if cs.trailer == nil || cs.readErr != io.EOF {
		return
	}
	if cs.resp.Trailer == nil {
		cs.resp.Trailer = make(http.Header, len(cs.trailer))
	}
	for k, vv := range cs.trailer {
		cs.resp.Trailer[k] = append(cs.resp.Trailer[k], vv...)
	}
	cs.trailer = nil
}

// Close discards unread data; before END_STREAM it resets the stream with
// CANCEL, which also stops a request body still being sent.
func (b *clientBody) Close() error {
	cs := b.cs
	cc := cs.cc
	cc.mu.Lock()
	if cs.bodyClosed {
		cc.mu.Unlock()
		return nil
	}
	cs.bodyClosed = true
	cs.takeTrailerLocked() // a body read to its end and then closed
	connInc := cs.discardLocked()
	rst := !cs.removed
	if rst {
		cs.failLocked(errClientBodyClose)
		cs.removeLocked()
	}
	cs.readErr = errClientBodyClose
	cc.mu.Unlock()
	cs.wake()
	switch {
	case rst:
		cc.writeRST(cs.id, http2.ErrCodeCancel, connInc)
		cs.stopBody()
	case connInc > 0:
		cc.writeWindowUpdates(0, 0, connInc)
	}
	return nil
}

// BufferedBody is a request body that can tell, without blocking, that
// all of its bytes have arrived: the request body of this package's
// Server once the client's END_STREAM is in (a gRPC unary request, a small
// POST). RoundTrip sends such a body, when it fits one DATA frame and the
// peer's windows, with the request headers in one write and without a
// body-writing goroutine.
type BufferedBody interface {
	// Buffered reports the bytes left to read and whether they are all
	// that is left: Reads then return them and io.EOF without waiting.
	Buffered() (n int, complete bool)
}

// clientInlineBody bounds a body sent with its headers.
const clientInlineBody = clientBodyBufSize

// inlineBody is a request body read whole before its headers are written.
type inlineBody struct {
	ok   bool
	data []byte
	buf  *[]byte // pooled, holds data
}

// takeInlineBody reads body whole when it is a complete BufferedBody of
// at most clientInlineBody bytes that agrees with cl and has no trailers
// to follow; otherwise it reads nothing.
func takeInlineBody(body io.ReadCloser, cl int64, trailers bool, t *Transport) (inlineBody, error) {
	bb, ok := body.(BufferedBody)
	if !ok || trailers {
		return inlineBody{}, nil
	}
	n, complete := bb.Buffered()
	if !complete || n > clientInlineBody || (cl >= 0 && int64(n) != cl) {
		return inlineBody{}, nil
	}
	ib := inlineBody{ok: true, buf: t.getBodyBuf()}
	ib.data = (*ib.buf)[:n]
	if _, err := io.ReadFull(body, ib.data); err != nil {
		ib.release(t)
		return inlineBody{}, fmt.Errorf("h2: reading request body: %w", err)
	}
	return ib, nil
}

func (ib *inlineBody) release(t *Transport) {
	if ib.buf != nil {
		t.putBodyBuf(ib.buf)
		ib.buf, ib.data = nil, nil
	}
}

// rest returns a body that yields the bytes already read, then closes
// body when closed.
func (ib *inlineBody) rest(body io.ReadCloser) io.ReadCloser {
	return readCloser{Reader: bytes.NewReader(bytes.Clone(ib.data)), Closer: body}
}

type readCloser struct {
	io.Reader
	io.Closer
}
