package h2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ErrServerClosed is returned by ServeConn for connections offered after
// Shutdown.
var ErrServerClosed = errors.New("h2: server shut down")

// errServerDrained ends the reader loop gracefully.
var errServerDrained = errors.New("h2: connection drained")

const (
	serverPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// serverDefaultMaxStreams matches net/http's HTTP/2 server default.
	serverDefaultMaxStreams = 250
	// serverWindow is the receive window advertised for the connection and
	// for every stream: large enough that a 1 MiB body never waits for a
	// round trip, small enough to bound a connection's buffered bodies.
	serverWindow = 1 << 20
	// serverWindowThreshold batches WINDOW_UPDATEs: consumed bytes are
	// returned once a quarter of the window has been read, so a small body
	// costs no frame of its own.
	serverWindowThreshold = serverWindow / 4
	// serverMaxReadFrame is the frame size we accept; we advertise the
	// protocol's default, so nothing larger is legal.
	serverMaxReadFrame = 16 << 10
	// serverWriteBuf holds a response's frames until its single flush; two
	// maximum-size DATA frames fit.
	serverWriteBuf = 32 << 10
	// serverWorkerIdle is how long an idle handler goroutine waits for the
	// next stream before exiting: reusing it saves growing a fresh stack.
	serverWorkerIdle = 10 * time.Second
	// serverMaxWindow is the largest legal flow-control window (RFC 9113 6.9.1).
	serverMaxWindow = 1<<31 - 1
)

// Server serves HTTP/2 connections (prior-knowledge h2c, or TLS after ALPN
// "h2") to Handler.
//
// Each connection has one reader goroutine (the caller of ServeConn), which
// decodes frames, and one goroutine per stream running Handler; a handler
// writes its own frames into the connection's buffer under a write mutex and
// flushes once when it returns or calls Flush, so a small response leaves in
// one write syscall.
type Server struct {
	// Handler serves every request; nil answers 404 to all.
	Handler http.Handler
	// MaxHeaderBytes bounds a request's header list
	// (SETTINGS_MAX_HEADER_LIST_SIZE, in bytes as RFC 9113 counts them,
	// enforced on decode); a larger list is answered 431. 0 means
	// http.DefaultMaxHeaderBytes (1 MiB).
	MaxHeaderBytes int
	// IdleTimeout closes a connection with no open stream for this long
	// (GOAWAY NO_ERROR first). 0 means no timeout.
	IdleTimeout time.Duration
	// MaxConcurrentStreams is advertised and enforced with
	// RST_STREAM(REFUSED_STREAM); 0 means 250.
	MaxConcurrentStreams uint32
	// ConnContext, if set, derives each connection's base context, as
	// http.Server.ConnContext.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// Logger receives handler panics and connection errors; nil discards.
	Logger *slog.Logger

	initOnce sync.Once
	// work hands a stream to an idle worker goroutine; unbuffered, so a send
	// succeeds only when a worker is waiting.
	work chan *serverStream
	// stop is closed by Shutdown and makes idle workers exit.
	stop chan struct{}

	// dateCache holds the Date value of the current second.
	dateCache atomic.Pointer[serverDate]

	// bufPool recycles response body buffers (*[]byte).
	bufPool sync.Pool

	mu       sync.Mutex
	conns    map[*serverConn]struct{}
	shutdown bool
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.work = make(chan *serverStream)
		s.stop = make(chan struct{})
		s.conns = make(map[*serverConn]struct{})
	})
}

func (s *Server) getBuf() *[]byte {
	if b, ok := s.bufPool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 16<<10)
	return &b
}

type serverDate struct {
	unix  int64
	value string
}

// date is the Date field value for now, formatted once per second.
func (s *Server) date() string {
	now := time.Now()
	if d := s.dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.value
	}
	d := &serverDate{unix: now.Unix(), value: now.UTC().Format(http.TimeFormat)}
	s.dateCache.Store(d)
	return d.value
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// ServeConn serves c, whose next bytes are the client preface, until the
// client closes it, a connection error, the idle timeout, or Shutdown; it
// closes c before returning. ctx cancellation closes the connection
// abruptly. It returns nil when the connection ended gracefully.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	s.init()
	sc := s.newConn(ctx, c)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = c.Close()
		return ErrServerClosed
	}
	s.conns[sc] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		close(sc.done)
	}()
	// The connection's context ends with ctx or with whatever ConnContext
	// derived it from: either ends the connection, and so every stream's
	// request context (serverStream.end), which client streams watch.
	stop := context.AfterFunc(sc.baseCtx, func() { sc.abort(fmt.Errorf("h2: serve: %w", context.Cause(sc.baseCtx))) })
	defer stop()
	err := sc.serve()
	stop() // abort cancels the context itself: no goroutine for that
	sc.abort(err)
	_ = c.Close()
	if sc.graceful.Load() {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		return fmt.Errorf("h2: serve: %w", cause)
	}
	return err
}

// Shutdown sends GOAWAY (NO_ERROR, last processed stream id) to every
// connection being served, lets their open streams finish, and returns when
// they have all closed or ctx ends (then it closes them and returns ctx's
// error). Connections offered to ServeConn afterwards are refused.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.mu.Lock()
	if !s.shutdown {
		s.shutdown = true
		close(s.stop)
	}
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		// Asynchronous: a connection whose writer is stuck must not hold
		// up the others or ctx.
		go sc.startDrain(http2.ErrCodeNo)
	}
	for i, sc := range conns {
		select {
		case <-sc.done:
		case <-ctx.Done():
			for _, sc := range conns[i:] {
				sc.abort(fmt.Errorf("h2: shutdown: %w", ctx.Err()))
			}
			return fmt.Errorf("h2: shutdown: %w", ctx.Err())
		}
	}
	return nil
}

// dispatch runs st's handler on an idle worker if one waits, else on a new
// goroutine that then stays around as a worker.
func (s *Server) dispatch(st *serverStream) {
	select {
	case s.work <- st:
	default:
		go s.worker(st)
	}
}

// worker runs st, then the streams dispatch hands it, until it has waited
// serverWorkerIdle for one. Its timer is not moved at every stream: when
// it fires, the worker exits only if idle long enough, else re-arms it.
func (s *Server) worker(st *serverStream) {
	t := time.NewTimer(serverWorkerIdle)
	defer t.Stop()
	for {
		st.run()
		idleSince := time.Now()
		for st = nil; st == nil; {
			select {
			case st = <-s.work:
			case <-t.C:
				idle := time.Since(idleSince)
				if idle >= serverWorkerIdle {
					return
				}
				t.Reset(serverWorkerIdle - idle)
			case <-s.stop:
				return
			}
		}
	}
}

// serverConn is one HTTP/2 connection.
//
// Locking: mu guards stream state and flow-control windows; wmu guards the
// write side (bw, wfr, henc, hbuf). A goroutine holding wmu may take mu;
// nobody takes wmu while holding mu.
type serverConn struct {
	srv        *Server
	c          net.Conn
	log        *slog.Logger
	handler    http.Handler
	baseCtx    context.Context
	cancel     context.CancelCauseFunc
	remoteAddr string
	tlsState   *tls.ConnectionState
	maxStreams uint32
	maxHeader  uint32
	done       chan struct{}
	graceful   atomic.Bool // the connection ends without error
	closed     atomic.Bool

	br  *bufio.Reader
	rfr *http2.Framer
	hbr *headerBlockReader // decodes header blocks read from rfr

	// peerMaxFrame is the client's SETTINGS_MAX_FRAME_SIZE.
	peerMaxFrame atomic.Uint32

	wmu  sync.Mutex
	bw   *bufio.Writer
	wfr  *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
	werr error
	// ctlPending is set when control frames (acks, RST_STREAM) wait in bw;
	// atomic so the reader checks it without taking wmu.
	ctlPending atomic.Bool

	mu          sync.Mutex
	streams     map[uint32]*serverStream
	maxID       uint32 // highest client stream id seen
	goingAway   bool   // we sent GOAWAY
	peerGoAway  bool   // the client sent GOAWAY
	sendConnWin int64  // the client's connection window for our DATA
	peerInitWin int64  // the client's SETTINGS_INITIAL_WINDOW_SIZE
	recvConnWin int64  // what the client may still send on the connection
	connUnsent  int64  // consumed bytes not yet returned by WINDOW_UPDATE
	// recentResets remembers the last streams closed by RST_STREAM: frames
	// the client sent before seeing the reset are ignored rather than
	// taken as a connection error (RFC 9113 5.1).
	recentResets [32]uint32
	resetNext    int
	handlers     int // running handlers, including those of reset streams
	// The idle timer runs from the preface to the end of the connection,
	// re-armed by onIdle, not moved at every stream: idleSince is when
	// the last stream ended (or the connection started).
	idleTimer   *time.Timer
	idleTimeout time.Duration
	idleSince   time.Time
}

func (s *Server) newConn(ctx context.Context, c net.Conn) *serverConn {
	base := ctx
	if s.ConnContext != nil {
		base = s.ConnContext(ctx, c)
	}
	base, cancel := context.WithCancelCause(base)
	sc := &serverConn{
		srv:         s,
		c:           c,
		log:         s.logger(),
		handler:     s.Handler,
		baseCtx:     base,
		cancel:      cancel,
		maxStreams:  s.MaxConcurrentStreams,
		maxHeader:   uint32(s.MaxHeaderBytes),
		done:        make(chan struct{}),
		streams:     make(map[uint32]*serverStream),
		sendConnWin: 65535,
		peerInitWin: 65535,
		recvConnWin: serverWindow,
		idleTimeout: s.IdleTimeout,
	}
	if ra := c.RemoteAddr(); ra != nil {
		sc.remoteAddr = ra.String()
	}
	if sc.handler == nil {
		sc.handler = http.NotFoundHandler()
	}
	if sc.maxStreams == 0 {
		sc.maxStreams = serverDefaultMaxStreams
	}
	if s.MaxHeaderBytes <= 0 {
		sc.maxHeader = http.DefaultMaxHeaderBytes
	}
	// *tls.Conn, or a wrapper that exposes its state (e.g. after a peek).
	if tc, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		cs := tc.ConnectionState()
		sc.tlsState = &cs
	}
	sc.peerMaxFrame.Store(16384)
	sc.br = bufio.NewReaderSize(c, 16<<10)
	sc.rfr = http2.NewFramer(nil, sc.br)
	sc.rfr.SetMaxReadFrameSize(serverMaxReadFrame)
	sc.rfr.MaxHeaderListSize = sc.maxHeader
	sc.rfr.SetReuseFrames()
	sc.hbr = newHeaderBlockReader(sc.rfr, sc.maxHeader)
	sc.bw = bufio.NewWriterSize(c, serverWriteBuf)
	sc.wfr = http2.NewFramer(sc.bw, nil)
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	return sc
}

// abort ends the connection: every stream fails, handlers' contexts are
// canceled and c is closed, which stops the reader.
func (sc *serverConn) abort(err error) {
	if !sc.closed.CompareAndSwap(false, true) {
		return
	}
	if err == nil {
		err = errors.New("h2: connection closed")
	}
	sc.cancel(err)
	sc.mu.Lock()
	for _, st := range sc.streams {
		sc.closeStreamLocked(st, fmt.Errorf("h2: connection closed: %w", err))
	}
	if sc.idleTimer != nil {
		sc.idleTimer.Stop()
	}
	sc.mu.Unlock()
	_ = sc.c.Close()
}

// serverConnError is a connection error: GOAWAY with code, then close.
type serverConnError struct {
	code   http2.ErrCode
	reason string
}

func (e serverConnError) Error() string {
	return fmt.Sprintf("h2: connection error %v: %s", e.code, e.reason)
}

// serve is the reader loop.
func (sc *serverConn) serve() error {
	sc.wmu.Lock()
	settings := []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: sc.maxStreams},
		{ID: http2.SettingInitialWindowSize, Val: serverWindow},
		{ID: http2.SettingMaxHeaderListSize, Val: sc.maxHeader},
	}
	_ = sc.wfr.WriteSettings(settings...)
	_ = sc.wfr.WriteWindowUpdate(0, serverWindow-65535)
	sc.flushLocked()
	sc.wmu.Unlock()

	var preface [len(serverPreface)]byte
	if _, err := io.ReadFull(sc.br, preface[:]); err != nil {
		return fmt.Errorf("h2: reading client preface: %w", err)
	}
	if string(preface[:]) != serverPreface {
		return sc.connError(serverConnError{http2.ErrCodeProtocol, "bad client preface"})
	}
	if sc.idleTimeout > 0 {
		sc.mu.Lock()
		if sc.idleTimer == nil && !sc.closed.Load() {
			sc.idleSince = time.Now()
			sc.idleTimer = time.AfterFunc(sc.idleTimeout, sc.onIdle)
		}
		sc.mu.Unlock()
	}
	first := true
	for {
		f, err := sc.rfr.ReadFrame()
		if hf, ok := f.(*http2.HeadersFrame); ok && err == nil {
			var mh *http2.MetaHeadersFrame
			if mh, err = sc.hbr.read(hf); err == nil {
				f = mh
			}
		}
		if err != nil {
			if sc.closed.Load() {
				return nil
			}
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				sc.mu.Lock()
				if se.StreamID > sc.maxID && se.StreamID%2 == 1 {
					sc.maxID = se.StreamID
				}
				st := sc.streams[se.StreamID]
				if st != nil {
					sc.closeStreamLocked(st, fmt.Errorf("h2: stream error: %w", se))
				}
				sc.mu.Unlock()
				sc.writeRST(se.StreamID, se.Code, false)
				sc.flushIfIdle()
				continue
			case errors.As(err, &ce):
				return sc.connError(serverConnError{http2.ErrCode(ce), "frame: " + err.Error()})
			case errors.Is(err, http2.ErrFrameTooLarge):
				return sc.connError(serverConnError{http2.ErrCodeFrameSize, "frame too large"})
			case errors.Is(err, io.EOF):
				sc.graceful.Store(true)
				return nil
			}
			return fmt.Errorf("h2: reading frame: %w", err)
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return sc.connError(serverConnError{http2.ErrCodeProtocol, "first frame is not SETTINGS"})
			}
			first = false
		}
		if err := sc.processFrame(f); err != nil {
			if err == errServerDrained {
				sc.graceful.Store(true)
				return nil
			}
			var ce serverConnError
			if errors.As(err, &ce) {
				return sc.connError(ce)
			}
			return err
		}
		sc.flushIfIdle()
	}
}

// connError sends GOAWAY with e's code and returns e.
func (sc *serverConn) connError(e serverConnError) error {
	sc.mu.Lock()
	sc.goingAway = true
	last := sc.maxID
	sc.mu.Unlock()
	sc.wmu.Lock()
	if sc.werr == nil {
		_ = sc.wfr.WriteGoAway(last, e.code, []byte(e.reason))
		sc.flushLocked()
	}
	sc.wmu.Unlock()
	sc.log.Debug("h2: connection error", "remote", sc.remoteAddr, "code", e.code.String(), "reason", e.reason)
	return e
}

// startDrain sends GOAWAY and closes the connection once its streams end.
func (sc *serverConn) startDrain(code http2.ErrCode) {
	sc.mu.Lock()
	if sc.goingAway {
		sc.mu.Unlock()
		return
	}
	sc.goingAway = true
	last := sc.maxID
	idle := len(sc.streams) == 0
	sc.mu.Unlock()
	sc.wmu.Lock()
	if sc.werr == nil {
		_ = sc.wfr.WriteGoAway(last, code, nil)
		sc.flushLocked()
	}
	sc.wmu.Unlock()
	if idle {
		sc.graceful.Store(true)
		sc.abort(nil)
	}
}

// flushLocked writes out the buffer; sc.wmu is held. A write error is
// sticky and closes the connection.
func (sc *serverConn) flushLocked() {
	sc.ctlPending.Store(false)
	if sc.werr != nil {
		return
	}
	if err := sc.bw.Flush(); err != nil {
		sc.werr = fmt.Errorf("h2: write: %w", err)
		go sc.abort(sc.werr)
	}
}

// flushIfIdle flushes control frames the reader wrote once no further
// frame is already buffered, so acks for a burst of frames share a write
// and a handler's flush may have carried them already.
func (sc *serverConn) flushIfIdle() {
	if sc.br.Buffered() > 0 || !sc.ctlPending.Load() {
		return
	}
	sc.wmu.Lock()
	if sc.ctlPending.Load() {
		sc.flushLocked()
	}
	sc.wmu.Unlock()
}

// writeRST writes RST_STREAM; flush forces it out now.
func (sc *serverConn) writeRST(id uint32, code http2.ErrCode, flush bool) {
	sc.wmu.Lock()
	if sc.werr == nil {
		_ = sc.wfr.WriteRSTStream(id, code)
		sc.ctlPending.Store(true)
		if flush {
			sc.flushLocked()
		}
	}
	sc.wmu.Unlock()
}

// writeWindowUpdates returns consumed bytes to the client and flushes, so a
// sender waiting on its window proceeds.
func (sc *serverConn) writeWindowUpdates(connInc int64, id uint32, streamInc int64) {
	sc.wmu.Lock()
	if sc.werr == nil {
		if connInc > 0 {
			_ = sc.wfr.WriteWindowUpdate(0, uint32(connInc))
		}
		if streamInc > 0 {
			_ = sc.wfr.WriteWindowUpdate(id, uint32(streamInc))
		}
		sc.flushLocked()
	}
	sc.wmu.Unlock()
}

// returnConnLocked counts n consumed connection-window bytes and reports
// the increment to send now, if the batch is full; sc.mu is held.
func (sc *serverConn) returnConnLocked(n int64) int64 {
	sc.connUnsent += n
	if sc.connUnsent < serverWindowThreshold {
		return 0
	}
	inc := sc.connUnsent
	sc.connUnsent = 0
	sc.recvConnWin += inc
	return inc
}

func (sc *serverConn) processFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return sc.onHeaders(f)
	case *http2.DataFrame:
		return sc.onData(f)
	case *http2.SettingsFrame:
		return sc.onSettings(f)
	case *http2.WindowUpdateFrame:
		return sc.onWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		sc.wmu.Lock()
		if sc.werr == nil {
			_ = sc.wfr.WritePing(true, f.Data)
			sc.ctlPending.Store(true)
		}
		sc.wmu.Unlock()
		return nil
	case *http2.RSTStreamFrame:
		sc.mu.Lock()
		defer sc.mu.Unlock()
		if f.StreamID > sc.maxID {
			return serverConnError{http2.ErrCodeProtocol, "RST_STREAM on idle stream"}
		}
		if st := sc.streams[f.StreamID]; st != nil {
			sc.closeStreamLocked(st, fmt.Errorf("h2: stream reset by client: %w", http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode}))
		}
		return nil
	case *http2.GoAwayFrame:
		sc.mu.Lock()
		sc.peerGoAway = true
		idle := len(sc.streams) == 0
		sc.mu.Unlock()
		if idle {
			return errServerDrained
		}
		return nil // the last stream to end closes the connection
	case *http2.PushPromiseFrame:
		return serverConnError{http2.ErrCodeProtocol, "PUSH_PROMISE from client"}
	case *http2.ContinuationFrame:
		// The header block reader consumes CONTINUATION frames; one here
		// is out of sequence (the Framer reports that itself, this is a
		// backstop).
		return serverConnError{http2.ErrCodeProtocol, "unexpected CONTINUATION"}
	}
	// PRIORITY and unknown frame types are ignored (RFC 9113 5.3.2, 5.5).
	return nil
}

func (sc *serverConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var err error
	_ = f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			sc.mu.Lock()
			delta := int64(s.Val) - sc.peerInitWin
			sc.peerInitWin = int64(s.Val)
			for _, st := range sc.streams {
				st.sendWin += delta
				if st.sendWin > serverMaxWindow {
					err = serverConnError{http2.ErrCodeFlowControl, "stream window overflow"}
				}
				st.cond.Broadcast()
			}
			sc.mu.Unlock()
		case http2.SettingMaxFrameSize:
			sc.peerMaxFrame.Store(s.Val)
		case http2.SettingHeaderTableSize:
			sc.wmu.Lock()
			sc.henc.SetMaxDynamicTableSizeLimit(s.Val)
			sc.wmu.Unlock()
		}
		return nil
	})
	if err != nil {
		return err
	}
	sc.wmu.Lock()
	if sc.werr == nil {
		_ = sc.wfr.WriteSettingsAck()
		sc.ctlPending.Store(true)
	}
	sc.wmu.Unlock()
	return nil
}

func (sc *serverConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if f.StreamID == 0 {
		sc.sendConnWin += inc
		if sc.sendConnWin > serverMaxWindow {
			return serverConnError{http2.ErrCodeFlowControl, "connection window overflow"}
		}
		for _, st := range sc.streams {
			st.cond.Broadcast()
		}
		return nil
	}
	if f.StreamID > sc.maxID {
		return serverConnError{http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream"}
	}
	st := sc.streams[f.StreamID]
	if st == nil {
		return nil // closed stream: ignore (RFC 9113 6.9)
	}
	st.sendWin += inc
	if st.sendWin > serverMaxWindow {
		sc.closeStreamLocked(st, errors.New("h2: stream window overflow"))
		go sc.writeRST(f.StreamID, http2.ErrCodeFlowControl, true)
		return nil
	}
	st.cond.Broadcast()
	return nil
}

func (sc *serverConn) onData(f *http2.DataFrame) error {
	id := f.StreamID
	n := int64(f.Length)
	data := f.Data()
	sc.mu.Lock()
	if n > sc.recvConnWin {
		sc.mu.Unlock()
		return serverConnError{http2.ErrCodeFlowControl, "DATA beyond the connection window"}
	}
	sc.recvConnWin -= n
	st := sc.streams[id]
	if st == nil || st.remoteDone {
		if id > sc.maxID {
			sc.mu.Unlock()
			return serverConnError{http2.ErrCodeProtocol, "DATA on idle stream"}
		}
		inc := sc.returnConnLocked(n)
		ignore := st == nil && sc.recentlyResetLocked(id)
		if st != nil {
			sc.closeStreamLocked(st, errors.New("h2: DATA after END_STREAM"))
		}
		sc.mu.Unlock()
		if inc > 0 {
			sc.writeWindowUpdates(inc, 0, 0)
		}
		if !ignore {
			sc.writeRST(id, http2.ErrCodeStreamClosed, false)
		}
		return nil
	}
	if n > st.recvWin {
		inc := sc.returnConnLocked(n)
		sc.closeStreamLocked(st, errors.New("h2: DATA beyond the stream window"))
		sc.mu.Unlock()
		if inc > 0 {
			sc.writeWindowUpdates(inc, 0, 0)
		}
		sc.writeRST(id, http2.ErrCodeFlowControl, false)
		return nil
	}
	st.recvWin -= n
	// Padding is flow-controlled but never read: return it at once.
	connInc := sc.returnConnLocked(n - int64(len(data)))
	st.gotLen += int64(len(data))
	if st.declLen >= 0 && (st.gotLen > st.declLen || f.StreamEnded() && st.gotLen != st.declLen) {
		connInc += sc.returnConnLocked(int64(len(data)))
		sc.closeStreamLocked(st, errors.New("h2: request body does not match content-length"))
		sc.mu.Unlock()
		if connInc > 0 {
			sc.writeWindowUpdates(connInc, 0, 0)
		}
		sc.writeRST(id, http2.ErrCodeProtocol, false)
		return nil
	}
	if st.bodyClosed {
		connInc += sc.returnConnLocked(int64(len(data)))
	} else if len(data) > 0 {
		if st.roff > 0 && len(st.buf)+len(data) > cap(st.buf) {
			k := copy(st.buf, st.buf[st.roff:])
			st.buf = st.buf[:k]
			st.roff = 0
		}
		st.buf = append(st.buf, data...)
		st.cond.Broadcast()
	}
	if f.StreamEnded() {
		sc.remoteEndLocked(st)
	}
	sc.mu.Unlock()
	if connInc > 0 {
		sc.writeWindowUpdates(connInc, 0, 0)
	}
	return nil
}

// remoteEndLocked records END_STREAM from the client; sc.mu is held.
func (sc *serverConn) remoteEndLocked(st *serverStream) {
	st.remoteDone = true
	if st.bodyErr == nil {
		st.bodyErr = io.EOF
	}
	st.cond.Broadcast()
	if st.handlerDone {
		sc.removeStreamLocked(st)
	}
}

func (sc *serverConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return serverConnError{http2.ErrCodeProtocol, "HEADERS on an even stream id"}
	}
	sc.mu.Lock()
	if st := sc.streams[id]; st != nil {
		err := sc.trailersLocked(st, f)
		sc.mu.Unlock()
		if err != nil {
			sc.writeRST(id, http2.ErrCodeProtocol, false)
		}
		return nil
	}
	if id <= sc.maxID {
		reset := sc.recentlyResetLocked(id)
		sc.mu.Unlock()
		if reset {
			return nil
		}
		return serverConnError{http2.ErrCodeProtocol, "HEADERS on a closed or lower stream id"}
	}
	sc.maxID = id
	// Handlers of streams the client reset still count against a multiple
	// of the limit, so resets cannot pile up goroutines.
	if sc.goingAway || sc.peerGoAway || uint32(len(sc.streams)) >= sc.maxStreams || sc.handlers >= 2*int(sc.maxStreams) {
		sc.mu.Unlock()
		sc.writeRST(id, http2.ErrCodeRefusedStream, false)
		return nil
	}
	sc.mu.Unlock()

	if f.Truncated {
		sc.writeStatusOnly(id, http.StatusRequestHeaderFieldsTooLarge, !f.StreamEnded())
		return nil
	}
	head, err := serverParseRequestHead(f.Fields, f.StreamEnded())
	if err != nil {
		sc.log.Debug("h2: malformed request", "remote", sc.remoteAddr, "err", err)
		sc.writeRST(id, http2.ErrCodeProtocol, false)
		return nil
	}
	st := sc.newStream(id, head, f.StreamEnded())
	sc.mu.Lock()
	if sc.closed.Load() {
		sc.mu.Unlock()
		st.end()
		return nil
	}
	sc.streams[id] = st
	sc.handlers++
	sc.mu.Unlock()
	sc.srv.dispatch(st)
	return nil
}

// writeStatusOnly answers a stream with a bodiless status, resetting it
// with NO_ERROR if the client is still sending.
func (sc *serverConn) writeStatusOnly(id uint32, status int, reset bool) {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	if sc.werr != nil {
		return
	}
	sc.hbuf.Reset()
	_ = sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: serverStatusString(status)})
	sc.writeHeaderBlockLocked(id, true)
	if reset {
		_ = sc.wfr.WriteRSTStream(id, http2.ErrCodeNo)
	}
	sc.ctlPending.Store(true)
}

// writeHeaderBlockLocked writes sc.hbuf as HEADERS plus CONTINUATION
// frames no larger than the client's maximum frame size.
func (sc *serverConn) writeHeaderBlockLocked(id uint32, endStream bool) {
	block := sc.hbuf.Bytes()
	max := int(sc.peerMaxFrame.Load())
	first := block
	if len(first) > max {
		first = first[:max]
	}
	block = block[len(first):]
	_ = sc.wfr.WriteHeaders(http2.HeadersFrameParam{
		StreamID:      id,
		BlockFragment: first,
		EndStream:     endStream,
		EndHeaders:    len(block) == 0,
	})
	for len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		_ = sc.wfr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// closeStreamLocked ends st abnormally (reset by either side, connection
// gone): its handler's context is canceled, its reads and writes fail.
// sc.mu is held.
func (sc *serverConn) closeStreamLocked(st *serverStream, err error) {
	if st.resetErr == nil {
		st.resetErr = err
	}
	if st.bodyErr == nil || st.bodyErr == io.EOF && len(st.buf) > st.roff {
		st.bodyErr = err
	}
	st.end()
	st.cond.Broadcast()
	if !st.removed {
		sc.recentResets[sc.resetNext] = st.id
		sc.resetNext = (sc.resetNext + 1) % len(sc.recentResets)
	}
	sc.removeStreamLocked(st)
}

func (sc *serverConn) recentlyResetLocked(id uint32) bool {
	for _, r := range sc.recentResets {
		if r == id {
			return true
		}
	}
	return false
}

// removeStreamLocked drops st from the open streams and, when the last one
// goes, drains a connection that is going away or arms the idle timer.
func (sc *serverConn) removeStreamLocked(st *serverStream) {
	if st.removed {
		return
	}
	st.removed = true
	delete(sc.streams, st.id)
	if len(sc.streams) > 0 {
		return
	}
	if sc.goingAway || sc.peerGoAway {
		sc.graceful.Store(true)
		// The closing goroutine flushes first, under wmu, which we may
		// not take while holding mu.
		go func() {
			sc.wmu.Lock()
			sc.flushLocked()
			sc.wmu.Unlock()
			sc.abort(nil)
		}()
		return
	}
	if sc.idleTimer != nil {
		sc.idleSince = time.Now() // onIdle measures from here
	}
}

// onIdle drains the connection once it has had no stream for idleTimeout,
// else re-arms the timer for when that may be.
func (sc *serverConn) onIdle() {
	sc.mu.Lock()
	if sc.closed.Load() {
		sc.mu.Unlock()
		return
	}
	wait := sc.idleTimeout
	if len(sc.streams) == 0 {
		wait -= time.Since(sc.idleSince)
	}
	if wait > 0 {
		sc.idleTimer.Reset(wait)
		sc.mu.Unlock()
		return
	}
	sc.mu.Unlock()
	sc.startDrain(http2.ErrCodeNo)
}
