package meshtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/meshscope/meshscope/control/wire"
)

// errNotMesh aborts a server handshake whose ClientHello does not offer
// the mesh ALPN (or arrives before the proxy has a certificate).
var errNotMesh = errors.New("not mesh mTLS")

// Accept handles an inbound connection that starts with a TLS record.
// When its ClientHello offers wire.MeshALPN and the proxy holds a
// certificate, it completes the mTLS handshake and returns the decrypted
// connection (mesh true). Otherwise nothing has been written to c and the
// returned connection replays every byte read, for the listener's usual
// handling (application TLS passes through). An error means a mesh
// handshake failed; c is closed.
func (m *Mesh) Accept(ctx context.Context, c net.Conn) (_ net.Conn, mesh bool, _ error) {
	rc := &recordingConn{Conn: c}
	cfg := m.ServerConfig()
	tc := tls.Server(rc, &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.Contains(h.SupportedProtos, wire.MeshALPN) || m.current() == nil {
				return nil, errNotMesh
			}
			rc.commit()
			return cfg, nil
		},
	})
	err := tc.HandshakeContext(ctx)
	if err == nil {
		m.handshakes.WithLabelValues("server", "ok").Inc()
		return &Conn{Conn: tc, tc: tc, peer: spiffeOf(tc)}, true, nil
	}
	if !rc.committed() {
		return rc.replay(), false, nil
	}
	m.handshakes.WithLabelValues("server", "failed").Inc()
	_ = c.Close()
	return nil, false, err
}

// Admit counts an inbound connection and says whether it may proceed:
// plaintext is refused under a strict PeerAuthentication.
func (m *Mesh) Admit(mtls bool) bool {
	if mtls {
		m.conns.WithLabelValues(TLSMutual, "accepted").Inc()
		return true
	}
	if m.Strict() {
		m.conns.WithLabelValues(TLSPlaintext, "refused").Inc()
		return false
	}
	m.conns.WithLabelValues(TLSPlaintext, "accepted").Inc()
	return true
}

// recordingConn records what the handshake reads and swallows what it
// writes until the handshake is committed to mesh mTLS.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	buf  bytes.Buffer
	done bool
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if !c.done {
		c.buf.Write(b[:n])
	}
	c.mu.Unlock()
	return n, err
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if !done {
		return 0, errNotMesh // the alert of an aborted handshake goes nowhere
	}
	return c.Conn.Write(b)
}

func (c *recordingConn) commit() {
	c.mu.Lock()
	c.done = true
	c.buf = bytes.Buffer{}
	c.mu.Unlock()
}

func (c *recordingConn) committed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

func (c *recordingConn) replay() net.Conn {
	return &replayConn{Conn: c.Conn, r: io.MultiReader(bytes.NewReader(c.buf.Bytes()), c.Conn), n: c.buf.Len()}
}

// replayConn reads the recorded bytes, then the connection.
type replayConn struct {
	net.Conn
	r io.Reader
	n int
}

func (c *replayConn) Read(b []byte) (int, error) {
	if c.n > 0 {
		n, err := c.r.Read(b)
		c.n -= n
		return n, err
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes the underlying connection.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
