package h2

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// clientConnWindow and clientStreamWindow are the receive windows we
	// advertise: large enough that a 1 Gbit/s stream over a few ms of RTT is
	// not window-bound, small enough to bound the memory a connection buffers.
	clientConnWindow   = 1 << 20
	clientStreamWindow = 1 << 20
	// clientWindowUpdateMin batches WINDOW_UPDATEs: the consumed bytes are
	// returned once a quarter of the window is consumed, so a reader of
	// small chunks does not cause a frame per Read.
	clientWindowUpdateMin = clientStreamWindow / 4
	// clientInitialMaxStreams is assumed until the peer's SETTINGS say
	// otherwise (RFC 9113 leaves it unlimited; 100 is its recommended floor).
	clientInitialMaxStreams = 100
	clientMaxWindow         = 1<<31 - 1
	clientMaxStreamID       = 1<<31 - 1
	clientDefaultFrameSize  = 16 << 10
	clientDefaultWindow     = 65535
)

var (
	errClientConnIdle  = errors.New("h2: idle connection closed")
	errClientBodyClose = errors.New("h2: response body closed")
	errClientStopSend  = errors.New("h2: peer ended the stream before the request body was sent")
)

// clientRetryableError marks a failure where the peer did not process the
// request (GOAWAY above its last stream id, REFUSED_STREAM, or a connection
// found unusable before the request was written).
type clientRetryableError struct{ err error }

func (e *clientRetryableError) Error() string { return e.err.Error() }
func (e *clientRetryableError) Unwrap() error { return e.err }

// clientConnError is a connection error found while handling a frame: the
// reader sends GOAWAY with code and closes the connection.
type clientConnError struct {
	code http2.ErrCode
	msg  string
}

func (e clientConnError) Error() string {
	return fmt.Sprintf("h2: connection error %v: %s", e.code, e.msg)
}

// clientConn is one HTTP/2 connection of a Transport.
type clientConn struct {
	t        *Transport
	addr     string
	nc       net.Conn
	idleTime time.Duration

	// wmu serializes frame writes. Lock order: wmu before mu.
	wmu       sync.Mutex
	bw        *bufio.Writer
	fr        *http2.Framer      // writes under wmu; reads only in readLoop
	hbr       *headerBlockReader // decodes header blocks read from fr (readLoop)
	henc      *hpack.Encoder
	hbuf      bytes.Buffer
	werr      error  // first write error; later writes fail with it
	sentAway  bool   // GOAWAY written; close does not send another
	wMaxFrame uint32 // peer's SETTINGS_MAX_FRAME_SIZE, for writers

	mu          sync.Mutex
	cond        sync.Cond // on mu: send windows grew, a stream ended, conn closed
	streams     map[uint32]*clientStream
	nextID      uint32
	reserved    int // streams reserved by getConn and not yet finished
	maxStreams  uint32
	initWindow  int64 // peer's SETTINGS_INITIAL_WINDOW_SIZE
	sendWindow  int64 // connection-level window the peer granted us
	recvWindow  int64 // connection-level bytes the peer may still send
	recvUnacked int64 // consumed bytes not yet returned by WINDOW_UPDATE
	sawSettings bool
	goAway      bool // no new streams (GOAWAY received, closing, ids used up)
	closed      bool
	err         error // why the connection closed
	idleAt      time.Time
	idleTimer   *time.Timer
}

func newClientConn(t *Transport, addr string, nc net.Conn) (*clientConn, error) {
	cc := &clientConn{
		t:          t,
		addr:       addr,
		nc:         nc,
		idleTime:   t.IdleConnTimeout,
		bw:         bufio.NewWriterSize(nc, 32<<10),
		wMaxFrame:  clientDefaultFrameSize,
		streams:    make(map[uint32]*clientStream),
		nextID:     1,
		maxStreams: clientInitialMaxStreams,
		initWindow: clientDefaultWindow,
		sendWindow: clientDefaultWindow,
		recvWindow: clientConnWindow,
	}
	cc.cond.L = &cc.mu
	cc.henc = hpack.NewEncoder(&cc.hbuf)
	cc.fr = http2.NewFramer(cc.bw, bufio.NewReaderSize(nc, 32<<10))
	cc.fr.SetReuseFrames()
	cc.fr.SetMaxReadFrameSize(clientDefaultFrameSize)
	cc.fr.MaxHeaderListSize = t.maxHeaderBytes()
	cc.hbr = newHeaderBlockReader(cc.fr, cc.fr.MaxHeaderListSize)

	if _, err := cc.bw.WriteString(http2.ClientPreface); err != nil {
		return nil, fmt.Errorf("h2: writing preface to %s: %w", addr, err)
	}
	err := cc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingEnablePush, Val: 0},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: clientStreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: t.maxHeaderBytes()},
	)
	if err == nil {
		err = cc.fr.WriteWindowUpdate(0, clientConnWindow-clientDefaultWindow)
	}
	if err == nil {
		err = cc.bw.Flush()
	}
	if err != nil {
		return nil, fmt.Errorf("h2: writing settings to %s: %w", addr, err)
	}
	return cc, nil
}

// reserve takes a stream slot for a coming request (t.mu held).
func (cc *clientConn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed || cc.goAway || cc.reserved >= int(cc.maxStreams) ||
		uint64(cc.nextID)+2*uint64(cc.reserved) > clientMaxStreamID {
		return false
	}
	cc.reserved++
	cc.idleAt = time.Time{}
	if cc.idleTimer != nil {
		cc.idleTimer.Stop()
	}
	return true
}

// markClosingIfIdle stops cc taking streams if it has none (t.mu held).
func (cc *clientConn) markClosingIfIdle() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed || cc.reserved > 0 {
		return false
	}
	cc.goAway = true
	return true
}

// releaseLocked returns a reserved slot; when the connection goes idle it
// arms the idle timer, or closes the connection if it is draining.
func (cc *clientConn) releaseLocked() {
	cc.reserved--
	if cc.reserved > 0 || cc.closed {
		return
	}
	if cc.goAway && len(cc.streams) == 0 {
		// Draining after GOAWAY and nothing left: close from another
		// goroutine, as close takes locks the caller may hold.
		go cc.close(errClientConnIdle)
		return
	}
	if cc.idleTime > 0 {
		cc.idleAt = time.Now()
		if cc.idleTimer == nil {
			cc.idleTimer = time.AfterFunc(cc.idleTime, cc.onIdle)
		} else {
			cc.idleTimer.Reset(cc.idleTime)
		}
	}
}

func (cc *clientConn) onIdle() {
	t := cc.t
	t.mu.Lock()
	cc.mu.Lock()
	idle := !cc.closed && cc.reserved == 0 && !cc.idleAt.IsZero() &&
		time.Since(cc.idleAt) >= cc.idleTime
	if idle {
		cc.goAway = true
	}
	cc.mu.Unlock()
	t.mu.Unlock()
	if idle {
		cc.close(errClientConnIdle)
	}
}

// close closes the connection, failing its open streams with err. It sends
// GOAWAY when no writer holds the connection, without waiting for one.
func (cc *clientConn) close(err error) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	failed := cc.closeLocked(err)
	cc.mu.Unlock()
	for _, cs := range failed {
		cs.stopBody()
	}
	if cc.wmu.TryLock() {
		if cc.werr == nil && !cc.sentAway {
			_ = cc.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if cc.fr.WriteGoAway(0, http2.ErrCodeNo, nil) == nil {
				_ = cc.bw.Flush()
			}
			cc.werr = net.ErrClosed
		}
		cc.wmu.Unlock()
	}
	_ = cc.nc.Close()
	cc.t.removeConn(cc)
}

// closeLocked marks cc closed and fails its streams (cc.mu held), which it
// returns.
func (cc *clientConn) closeLocked(err error) []*clientStream {
	failed := make([]*clientStream, 0, len(cc.streams))
	cc.closed = true
	cc.err = err
	if cc.idleTimer != nil {
		cc.idleTimer.Stop()
	}
	for _, cs := range cc.streams {
		cs.failLocked(fmt.Errorf("h2: connection to %s closed: %w", cc.addr, err))
		cs.removeLocked()
		cs.wake()
		failed = append(failed, cs)
	}
	cc.cond.Broadcast()
	return failed
}

// writeCtl writes control frames and flushes. A write error closes the
// connection.
func (cc *clientConn) writeCtl(write func(fr *http2.Framer) error) {
	cc.wmu.Lock()
	err := cc.werr
	if err == nil {
		err = write(cc.fr)
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
	}
}

func (cc *clientConn) writeRST(id uint32, code http2.ErrCode, connInc uint32) {
	cc.writeCtl(func(fr *http2.Framer) error {
		if err := fr.WriteRSTStream(id, code); err != nil {
			return err
		}
		if connInc > 0 {
			return fr.WriteWindowUpdate(0, connInc)
		}
		return nil
	})
}

func (cc *clientConn) writeWindowUpdates(id, streamInc, connInc uint32) {
	cc.writeCtl(func(fr *http2.Framer) error {
		if streamInc > 0 {
			if err := fr.WriteWindowUpdate(id, streamInc); err != nil {
				return err
			}
		}
		if connInc > 0 {
			return fr.WriteWindowUpdate(0, connInc)
		}
		return nil
	})
}

// takeConnUpdateLocked returns the connection-level WINDOW_UPDATE increment
// due, if enough consumed bytes accumulated (cc.mu held).
func (cc *clientConn) takeConnUpdateLocked() uint32 {
	if cc.recvUnacked < clientWindowUpdateMin {
		return 0
	}
	inc := cc.recvUnacked
	cc.recvUnacked = 0
	cc.recvWindow += inc
	return uint32(inc)
}

// roundTrip opens a stream for req (a slot is reserved), writes its headers,
// starts the body copy if there is a body, and waits for the response
// headers. reclaimed reports that body was neither read nor closed, so that
// the caller may send it again or must close it.
func (cc *clientConn) roundTrip(req *http.Request, body io.ReadCloser) (resp *http.Response, reclaimed bool, err error) {
	cl := int64(0)
	if body != nil {
		cl = req.ContentLength
		if cl == 0 {
			cl = -1 // net/http: a 0 length with a non-nil Body means unknown
		}
	}
	// A small body that has arrived whole goes out with the headers.
	inline, err := takeInlineBody(body, cl, len(req.Trailer) > 0, cc.t)
	if err != nil {
		return nil, false, err
	}
	defer inline.release(cc.t)
	cs := &clientStream{
		cc:         cc,
		req:        req,
		notify:     make(chan struct{}, 1),
		recvWindow: clientStreamWindow,
		sendDone:   body == nil,
		reqBody:    body,
		isHead:     req.Method == http.MethodHead,
	}

	cc.wmu.Lock()
	cc.mu.Lock()
	if cc.closed || cc.werr != nil || cc.goAway {
		// GOAWAY arrived between reserve and here: the stream would be
		// above the peer's last stream id, so it is refused unsent.
		cerr := cc.err
		if cerr == nil {
			cerr = cc.werr
		}
		if cerr == nil {
			cerr = errors.New("GOAWAY received")
		}
		cc.releaseLocked()
		cc.mu.Unlock()
		cc.wmu.Unlock()
		return nil, true, &clientRetryableError{fmt.Errorf("h2: connection to %s unusable: %w", cc.addr, cerr)}
	}
	cs.id = cc.nextID
	cc.nextID += 2
	if cc.nextID > clientMaxStreamID {
		// Stream ids used up: drain, then close (releaseLocked).
		cc.goAway = true
	}
	cs.sendWindow = cc.initWindow
	if inline.ok {
		if n := int64(len(inline.data)); n <= cs.sendWindow && n <= cc.sendWindow && n <= int64(cc.wMaxFrame) {
			cs.sendWindow -= n
			cc.sendWindow -= n
			cs.bodyStarted, cs.sendDone = true, true
		} else {
			body = inline.rest(body) // outside the windows: the body writer sends it
			cs.reqBody = body
		}
	}
	cc.streams[cs.id] = cs
	cc.mu.Unlock()
	cc.encodeRequestHeaders(req, cl)
	sendBody := body != nil && !cs.sendDone
	werr := cc.writeHeaderBlock(cs.id, !sendBody && len(inline.data) == 0)
	if werr == nil && !sendBody && len(inline.data) > 0 {
		werr = cc.fr.WriteData(cs.id, true, inline.data)
	}
	if werr == nil {
		werr = cc.bw.Flush()
	}
	if werr != nil {
		cc.werr = werr
	}
	cc.wmu.Unlock()
	if werr != nil {
		cc.close(werr)
		return nil, true, fmt.Errorf("h2: writing request headers to %s: %w", cc.addr, werr)
	}

	ctx := req.Context()
	if ctx.Done() != nil {
		cc.mu.Lock()
		// A request that arrived on an HTTP/2 server stream is aborted by
		// that stream when its context ends (no allocation); any other
		// context through context.AfterFunc.
		if !cs.removed {
			if st := serverStreamOf(ctx); st != nil && st.watch(cs) {
				cs.watched = st
			} else {
				cs.stopCtx = context.AfterFunc(ctx, cs.contextEnded)
			}
		}
		cc.mu.Unlock()
	}
	switch {
	case sendBody:
		go cs.writeBody(body, cl)
	case body != nil:
		cs.closeReqBody() // sent whole with the headers
	}

	var timeout <-chan time.Time
	if d := cc.t.ResponseHeaderTimeout; d > 0 {
		tm := cc.t.getTimer(d)
		defer cc.t.putTimer(tm)
		timeout = tm.C
	}
	for {
		cc.mu.Lock()
		resp, err := cs.resp, cs.readErr
		if resp == nil && err != nil && body != nil && !cs.bodyStarted {
			cs.bodyReclaimed = true
			reclaimed = true
		}
		cc.mu.Unlock()
		if resp != nil {
			return resp, false, nil
		}
		if err != nil {
			return nil, reclaimed, err
		}
		select {
		case <-cs.notify:
		case <-timeout:
			cs.abort(fmt.Errorf("h2: stream %d: no response headers from %s within %v", cs.id, cc.addr, cc.t.ResponseHeaderTimeout), http2.ErrCodeCancel)
		}
	}
}

// writeHeaderBlock writes cc.hbuf as HEADERS and CONTINUATION frames
// (cc.wmu held).
func (cc *clientConn) writeHeaderBlock(id uint32, endStream bool) error {
	block := cc.hbuf.Bytes()
	maxFrame := int(cc.wMaxFrame)
	first := true
	for first || len(block) > 0 {
		chunk := block
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		block = block[len(chunk):]
		var err error
		if first {
			err = cc.fr.WriteHeaders(http2.HeadersFrameParam{
				StreamID:      id,
				BlockFragment: chunk,
				EndStream:     endStream,
				EndHeaders:    len(block) == 0,
			})
			first = false
		} else {
			err = cc.fr.WriteContinuation(id, len(block) == 0, chunk)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
