package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshscope/meshscope/proxy/h2"
)

// listener accepts connections on one address, detects their protocol and
// hands HTTP connections to an http.Server and the rest to the TCP forwarder.
type listener struct {
	p        *Proxy
	flag     string
	ln       net.Listener
	protocol string
	t        *target
	srv      *http.Server
	h2       *h2.Server // HTTP/2 connections: h2c prior knowledge and TLS with ALPN h2
	httpLn   *chanListener
	owned    ownedSet // connections served by the owned HTTP/1.1 loop (h1server.go)
	// handovers counts owned connections handed to the guard and net/http.
	handovers atomic.Int64
}

func (p *Proxy) addListener(flag, addr, protocol string, t *target) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, addr, err)
	}
	if protocol == "" {
		protocol = ProtocolAuto
	}
	l := &listener{p: p, flag: flag, ln: ln, protocol: protocol, t: t}
	l.httpLn = newChanListener(ln.Addr())
	protos := new(http.Protocols)
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	l.srv = &http.Server{
		Handler:           p.newHTTPHandler(t),
		Protocols:         protos,
		ReadHeaderTimeout: 30 * time.Second,
		// The framing guard enforces max_header_bytes on HTTP/1.1 exactly
		// (net/http adds 4 KB of slack to this); HTTP/2 uses it for its
		// header list limit.
		MaxHeaderBytes: p.cfg.MaxHeaderBytes,
		ConnContext:    connContext,
		IdleTimeout:    time.Duration(p.cfg.IdleTimeout),
		ErrorLog:       p.errorLog,
	}
	l.h2 = &h2.Server{
		Handler:        l.srv.Handler,
		MaxHeaderBytes: p.cfg.MaxHeaderBytes,
		IdleTimeout:    time.Duration(p.cfg.IdleTimeout),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ctx = context.WithValue(ctx, http.ServerContextKey, l.srv)
			ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
			return connContext(ctx, c)
		},
		Logger: p.logger,
	}
	p.listeners = append(p.listeners, l)
	return nil
}

// serveH2 serves c, whose next bytes are the HTTP/2 client preface (h2c
// with prior knowledge, or TLS after ALPN h2), until it closes.
func (l *listener) serveH2(c net.Conn) {
	if err := l.h2.ServeConn(context.Background(), c); err != nil && !errors.Is(err, h2.ErrServerClosed) {
		l.p.logger.Debug("HTTP/2 connection ended", "client", c.RemoteAddr().String(), "err", err)
	}
}

// serve runs the accept loop and the HTTP server until stopAccepting.
func (l *listener) serve() error {
	srvErr := make(chan error, 1)
	go func() { srvErr <- l.srv.Serve(l.httpLn) }()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				if err := <-srvErr; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("%s %s: %w", l.flag, l.ln.Addr(), err)
				}
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			l.p.logger.Warn("accept failed", "listener", l.ln.Addr().String(), "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !l.p.beginConn(c) {
			_ = c.Close() // accepted after the drain began waiting
			continue
		}
		go func() {
			defer l.p.endConn(c)
			l.handleConn(c)
		}()
	}
}

func (l *listener) stopAccepting() {
	_ = l.ln.Close()
	l.httpLn.Close()
}

// handleConn routes one accepted connection by protocol.
func (l *listener) handleConn(c net.Conn) {
	if l.p.mesh != nil && l.t.kind == "inbound" && l.protocol != ProtocolOpaque {
		var ok bool
		if c, ok = l.meshAccept(c); !ok {
			return
		}
	}
	switch l.protocol {
	case ProtocolOpaque:
		l.p.forwardTCP(c, l.t, l.t.pick())
		return
	case ProtocolHTTP:
		if l.ownedH1() {
			l.serveH1(c)
			return
		}
		l.httpLn.push(l.p.limits.guard(c))
		return
	}
	if !l.p.limits.startDetect() {
		_ = c.Close()
		return
	}
	br := bufio.NewReaderSize(c, 1024)
	proto, silent := l.detect(c, br)
	l.p.limits.endDetect()
	if silent {
		// Nothing arrived: not forwarded, so idle connections cannot
		// reach the app (server-speaks-first ports are declared opaque).
		l.p.limits.refused.WithLabelValues(refusedDetectTimeout).Inc()
		_ = c.Close()
		return
	}
	pc := &peekedConn{Conn: c, r: br}
	switch proto {
	case detectedHTTP:
		if l.ownedH1() {
			l.serveH1(pc)
			return
		}
		l.httpLn.push(l.p.limits.guard(pc))
	case detectedTLS:
		if l.p.tlsConf != nil {
			l.serveTLS(pc)
			return
		}
		l.forwardOpaque(pc)
	default:
		l.forwardOpaque(pc)
	}
}

// tlsHandshakeTimeout bounds a client's TLS handshake, as net/http's
// header timeout bounds a plain request head.
const tlsHandshakeTimeout = 30 * time.Second

// serveTLS terminates TLS: HTTP/2 (ALPN h2) goes to the HTTP/2 server,
// HTTP/1.x through the framing guard to net/http like plain text.
func (l *listener) serveTLS(c net.Conn) {
	tc := tls.Server(c, l.p.tlsConf)
	ctx, cancel := context.WithTimeout(context.Background(), tlsHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.p.logger.Debug("TLS handshake failed", "client", c.RemoteAddr().String(), "err", err)
		_ = c.Close()
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == "h2" {
		l.serveH2(tc)
		return
	}
	g := l.p.limits.guard(tc).(*guardConn)
	g.tls = true
	l.httpLn.push(g)
}

func (l *listener) forwardOpaque(c net.Conn) {
	if l.t.kind == "forward" {
		_ = c.Close() // the forward proxy speaks HTTP only
		return
	}
	l.p.forwardTCP(c, l.t, l.t.pick())
}

// detect peeks at the first bytes, waiting at most detect_timeout for them;
// silent reports that not one byte arrived.
func (l *listener) detect(c net.Conn, br *bufio.Reader) (proto detected, silent bool) {
	_ = c.SetReadDeadline(time.Now().Add(time.Duration(l.p.cfg.DetectTimeout)))
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	n := 1
	for {
		b, err := br.Peek(n)
		proto, more := detectProtocol(b)
		if !more || err != nil || len(b) >= br.Size() {
			if len(b) == 0 {
				return detectedOpaque, true
			}
			if more {
				return detectedOpaque, false // undecided when the client stopped or the timeout hit
			}
			return proto, false
		}
		n = len(b) + 1
		if bb := br.Buffered(); bb >= n {
			n = bb
		}
	}
}

// peekedConn is a connection whose first bytes sit in a bufio.Reader.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

// Read returns the peeked bytes first, then reads the connection directly
// (no extra copy through the detection buffer).
func (c *peekedConn) Read(b []byte) (int, error) {
	if c.r != nil {
		if c.r.Buffered() > 0 {
			return c.r.Read(b)
		}
		c.r = nil // drained: drop the buffer
	}
	return c.Conn.Read(b)
}

// chanListener feeds detected connections to an http.Server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// forwardTCP splices c to addr as opaque TCP and records the connection.
func (p *Proxy) forwardTCP(c net.Conn, t *target, addr string) {
	p.forwardTCPAs(c, t, addr, t.dstService, t.dstVersion, nil)
}

// forwardTCPAs splices c to addr, labelling the connection with dstService;
// connected, when set, is called with the outcome of connecting upstream
// (CONNECT uses it to answer the client) and stops the splice on error.
//
// The caller keeps the drain waiting while it runs: a connection of a
// listener is counted from its accept (beginConn), a CONNECT tunnel by
// its HTTP request (p.inflight).
func (p *Proxy) forwardTCPAs(c net.Conn, t *target, addr, dstService, dstVersion string, connected func(error) error) {
	p.trackTCP(c, true)
	defer p.trackTCP(c, false)
	defer c.Close()

	k := peerLabels{direction: t.direction, dstService: dstService, dstVersion: dstVersion}
	if t.kind == "inbound" {
		k.srcService, k.srcVersion = serviceUnknown, versionUnknown
	} else {
		k.srcService, k.srcVersion = p.cfg.Service, p.cfg.Version
	}
	var s *tcpSeries
	if p.metrics != nil {
		s = p.metrics.tcpConn(k)
		s.conns.Inc()
		s.open.Inc()
		defer s.open.Dec()
	}
	up, err := p.dial(context.Background(), "tcp", addr)
	if err != nil {
		p.logger.Debug("tcp upstream connect failed", "addr", addr, "err", err)
		if connected != nil {
			_ = connected(err)
		}
		return
	}
	p.trackTCP(up, true)
	defer p.trackTCP(up, false)
	defer up.Close()
	if connected != nil {
		if err := connected(nil); err != nil {
			return
		}
	}
	var wg sync.WaitGroup
	var sent int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent, _ = io.Copy(up, c)
		closeWrite(up)
	}()
	received, _ := io.Copy(c, up)
	closeWrite(c)
	wg.Wait()
	if s != nil {
		s.sent.Add(float64(sent))
		s.received.Add(float64(received))
	}
}

func closeWrite(c net.Conn) {
	type closeWriter interface{ CloseWrite() error }
	for {
		if pc, ok := c.(*peekedConn); ok {
			c = pc.Conn
			continue
		}
		if g, ok := c.(*guardConn); ok {
			c = g.Conn
			continue
		}
		break
	}
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// beginConn counts an accepted connection in tcpWG and tracks it (closed
// when the drain times out, also while its protocol is being detected);
// false once the drain waits on tcpWG.
func (p *Proxy) beginConn(c net.Conn) bool {
	p.tcpMu.Lock()
	defer p.tcpMu.Unlock()
	if p.tcpClosed {
		return false
	}
	p.tcpWG.Add(1)
	p.tcpConns[c] = struct{}{}
	return true
}

func (p *Proxy) endConn(c net.Conn) {
	p.trackTCP(c, false)
	p.tcpWG.Done()
}

func (p *Proxy) trackTCP(c net.Conn, add bool) {
	p.tcpMu.Lock()
	if add {
		p.tcpConns[c] = struct{}{}
	} else {
		delete(p.tcpConns, c)
	}
	p.tcpMu.Unlock()
}

// serveConnect tunnels a forward-proxy CONNECT request as opaque TCP.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, t *target) {
	hostport := r.Host
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	svc, up := p.resolveForward(hostOnly(hostport))
	if up != nil {
		hostport = up.pick()
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "cannot tunnel over this connection", http.StatusBadRequest)
		return
	}
	tunnelGuard(c)
	var conn net.Conn = c
	if brw.Reader.Buffered() > 0 {
		conn = &peekedConn{Conn: c, r: brw.Reader}
	}
	p.forwardTCPAs(conn, t, hostport, svc, versionUnknown, func(dialErr error) error {
		if dialErr != nil {
			_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			return dialErr
		}
		_, err := io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n")
		return err
	})
}

// RawSocketIO returns c reading and writing with raw system calls on its
// non-blocking socket, as the proxy's own HTTP/1.1 connections do
// (rawconn_linux.go); c itself on other systems or for a connection that
// is not TCP. Exported for benchmarks that compare against the proxy's
// socket I/O.
func RawSocketIO(c net.Conn) net.Conn { return rawIO(c) }
