package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Transport is an http.RoundTripper that speaks HTTP/2 with prior knowledge
// (h2c) over connections from Dial, as http.Transport with
// Protocols.SetUnencryptedHTTP2 does, with fewer goroutine hand-offs.
//
// Design: one clientConn per TCP connection owns a write mutex around a
// bufio.Writer, an http2.Framer and an HPACK encoder, and one reader
// goroutine. RoundTrip writes the request HEADERS itself under the write
// mutex and flushes once; a request without a body uses no goroutine of its
// own. The reader goroutine hands the response headers to the waiting
// RoundTrip with one channel signal and appends DATA to the stream's buffer,
// from which the response Body reads. A request body is copied by one
// goroutine per request so that the response can be returned (and read)
// while the body is still being sent (full duplex, as gRPC bidi streams need).
//
// Connections are pooled per address: a connection is reused while it has
// stream capacity (the peer's SETTINGS_MAX_CONCURRENT_STREAMS, 100 until the
// peer's SETTINGS arrive), else another is dialed; concurrent requests to an
// address without a usable connection share one dial. A connection that
// received GOAWAY takes no new streams; requests refused by GOAWAY or
// REFUSED_STREAM are retried once on another connection when their body was
// not started or Request.GetBody can replay it.
//
// Semantics follow net/http's HTTP/2 client, with these differences: no
// transparent gzip (Accept-Encoding is not added), no default User-Agent,
// 1xx responses (100, 103, ...) are skipped rather than reported, and
// ResponseHeaderTimeout counts from when the request headers are written
// (not the whole body), so that full-duplex streams work with it.
//
// The zero Transport is ready to use. A Transport must not be copied after
// first use.
type Transport struct {
	// Dial opens a connection to addr ("host:port"; the port defaults to 80,
	// 443 for https URLs). nil: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// ResponseHeaderTimeout bounds the wait for response headers after the
	// request headers are written; 0 = none.
	ResponseHeaderTimeout time.Duration

	// IdleConnTimeout closes a connection with no open stream after this
	// long; 0 = never.
	IdleConnTimeout time.Duration

	// MaxHeaderBytes bounds a response's header list as HTTP/2 counts it
	// (name + value + 32 bytes per field), advertised as
	// SETTINGS_MAX_HEADER_LIST_SIZE; 0 = 10 MiB as net/http.
	MaxHeaderBytes int

	mu     sync.Mutex
	pools  map[string]*clientPool
	closed bool

	// bufPool holds *[]byte request body copy buffers of clientBodyBufSize.
	bufPool sync.Pool
	// timers holds stopped response header timers (*time.Timer).
	timers sync.Pool
}

// ErrTransportClosed is returned by RoundTrip after Close.
var ErrTransportClosed = errors.New("h2: transport closed")

const (
	clientDefaultMaxHeaderBytes = 10 << 20
	clientBodyBufSize           = 16 << 10
)

// clientPool is the set of connections to one address.
type clientPool struct {
	conns   []*clientConn
	dialing *clientDial // the dial in progress, shared by concurrent requests
}

// clientDial is one dial that several RoundTrips wait for.
type clientDial struct {
	done chan struct{}
	err  error
	// canceled: the dial failed because the dialing request's context
	// ended, which says nothing about the address: waiters dial again.
	canceled bool
}

// RoundTrip sends req on a pooled HTTP/2 connection and returns the response
// once its headers arrive; the response Body streams the DATA frames.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	if req.URL == nil {
		clientCloseBody(body)
		return nil, errors.New("h2: request has no URL")
	}
	if err := clientCheckRequest(req); err != nil {
		clientCloseBody(body)
		return nil, err
	}
	addr := clientAddr(req)
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		clientCloseBody(body)
		return nil, fmt.Errorf("h2: request to %s: %w", addr, context.Cause(ctx))
	}
	var refusedBy *clientConn
	for attempt := 0; ; attempt++ {
		cc, err := t.getConn(ctx, addr, refusedBy)
		if err != nil {
			clientCloseBody(body)
			return nil, err
		}
		resp, reclaimed, err := cc.roundTrip(req, body)
		if err == nil {
			return resp, nil
		}
		var rerr *clientRetryableError
		if attempt > 0 || !errors.As(err, &rerr) {
			if reclaimed {
				clientCloseBody(body)
			}
			return nil, err
		}
		refusedBy = cc
		if !reclaimed && body != nil {
			if req.GetBody == nil {
				return nil, err
			}
			nb, gerr := req.GetBody()
			if gerr != nil {
				return nil, fmt.Errorf("h2: replaying the request body after %w: %w", err, gerr)
			}
			body = nb
			if body == http.NoBody {
				body = nil
			}
		}
	}
}

func clientCloseBody(b io.ReadCloser) {
	if b != nil {
		_ = b.Close()
	}
}

// clientAddr is the dial address of req: URL.Host with the scheme's default
// port when it has none. The common case (a port given) does not allocate.
func clientAddr(req *http.Request) string {
	u := req.URL
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// getConn returns a connection to addr other than avoid with one stream
// reserved for the caller, dialing one when none has capacity.
func (t *Transport) getConn(ctx context.Context, addr string, avoid *clientConn) (*clientConn, error) {
	t.mu.Lock()
	for {
		if t.closed {
			t.mu.Unlock()
			return nil, ErrTransportClosed
		}
		if t.pools == nil {
			t.pools = make(map[string]*clientPool)
		}
		p := t.pools[addr]
		if p == nil {
			p = &clientPool{}
			t.pools[addr] = p
		}
		for _, cc := range p.conns {
			if cc != avoid && cc.reserve() {
				t.mu.Unlock()
				return cc, nil
			}
		}
		if d := p.dialing; d != nil {
			t.mu.Unlock()
			select {
			case <-d.done:
			case <-ctx.Done():
				return nil, fmt.Errorf("h2: waiting for a connection to %s: %w", addr, ctx.Err())
			}
			if d.err != nil && !d.canceled {
				return nil, d.err
			}
			t.mu.Lock()
			continue
		}
		d := &clientDial{done: make(chan struct{})}
		p.dialing = d
		t.mu.Unlock()

		cc, err := t.dialConn(ctx, addr)

		t.mu.Lock()
		p.dialing = nil
		if err != nil {
			d.err = err
			d.canceled = ctx.Err() != nil
			if len(p.conns) == 0 && t.pools[addr] == p {
				delete(t.pools, addr)
			}
			close(d.done)
			t.mu.Unlock()
			return nil, err
		}
		if t.closed {
			close(d.done)
			t.mu.Unlock()
			cc.close(ErrTransportClosed)
			return nil, ErrTransportClosed
		}
		p.conns = append(p.conns, cc)
		ok := cc.reserve()
		close(d.done)
		if ok {
			t.mu.Unlock()
			return cc, nil
		}
	}
}

func (t *Transport) dialConn(ctx context.Context, addr string) (*clientConn, error) {
	dial := t.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("h2: dial %s: %w", addr, err)
	}
	cc, err := newClientConn(t, addr, nc)
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	go cc.readLoop()
	return cc, nil
}

// removeConn forgets cc so that no new request picks it.
func (t *Transport) removeConn(cc *clientConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pools[cc.addr]
	if p == nil {
		return
	}
	for i, c := range p.conns {
		if c == cc {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if len(p.conns) == 0 && p.dialing == nil {
		delete(t.pools, cc.addr)
	}
}

// CloseIdleConnections closes the connections that have no open or reserved
// stream.
func (t *Transport) CloseIdleConnections() {
	var idle []*clientConn
	t.mu.Lock()
	for _, p := range t.pools {
		for _, cc := range p.conns {
			if cc.markClosingIfIdle() {
				idle = append(idle, cc)
			}
		}
	}
	t.mu.Unlock()
	for _, cc := range idle {
		cc.close(errClientConnIdle)
	}
}

// Close closes every connection; streams still open fail. RoundTrip returns
// ErrTransportClosed afterwards.
func (t *Transport) Close() error {
	t.mu.Lock()
	t.closed = true
	var all []*clientConn
	for _, p := range t.pools {
		all = append(all, p.conns...)
	}
	t.pools = nil
	t.mu.Unlock()
	for _, cc := range all {
		cc.close(ErrTransportClosed)
	}
	return nil
}

func (t *Transport) maxHeaderBytes() uint32 {
	if t.MaxHeaderBytes <= 0 {
		return clientDefaultMaxHeaderBytes
	}
	if uint64(t.MaxHeaderBytes) > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(t.MaxHeaderBytes)
}

func (t *Transport) getBodyBuf() *[]byte {
	if b, ok := t.bufPool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, clientBodyBufSize)
	return &b
}

func (t *Transport) putBodyBuf(b *[]byte) { t.bufPool.Put(b) }

// getTimer returns a timer firing after d, reused from an earlier request
// when one is pooled (a timer costs three allocations).
func (t *Transport) getTimer(d time.Duration) *time.Timer {
	if tm, ok := t.timers.Get().(*time.Timer); ok {
		tm.Reset(d)
		return tm
	}
	return time.NewTimer(d)
}

// putTimer stops tm and pools it. Since Go 1.23 a stopped timer's channel
// holds no stale value, so the next Reset starts clean.
func (t *Transport) putTimer(tm *time.Timer) {
	tm.Stop()
	t.timers.Put(tm)
}
