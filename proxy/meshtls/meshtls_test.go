package meshtls

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/ca"
	"github.com/meshscope/meshscope/control/wire"
)

func newCA(t *testing.T, lifetime time.Duration) *ca.CA {
	t.Helper()
	cfg := ca.DefaultConfig()
	cfg.Dir, cfg.CertLifetime = t.TempDir(), lifetime
	c, err := ca.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issue runs one request/answer round as the control client would.
func issue(t *testing.T, c *ca.CA, m *Mesh, service string) {
	t.Helper()
	req := m.CertRequest()
	if req == nil {
		t.Fatal("no certificate request")
	}
	iss, err := c.Sign(req, service, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Issued(&wire.Cert{Chain: string(iss.Chain), Bundle: string(iss.Bundle), SPIFFEID: iss.SPIFFEID, TrustDomain: c.TrustDomain()}); err != nil {
		t.Fatal(err)
	}
}

func newMesh(t *testing.T, service string) *Mesh {
	t.Helper()
	m, err := New(service, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// echoServer accepts with m.Accept and echoes one line prefixed with the
// peer identity (or "plain" for a replayed non-mesh connection).
func echoServer(t *testing.T, m *Mesh) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn, mesh, err := m.Accept(context.Background(), c)
				if err != nil {
					return
				}
				defer conn.Close()
				if !mesh {
					b := make([]byte, 5)
					n, _ := io.ReadFull(conn, b)
					conn.Write(append([]byte("plain:"), b[:n]...))
					return
				}
				line, _ := bufio.NewReader(conn).ReadString('\n')
				io.WriteString(conn, InfoOf(conn).Peer+" "+line)
			}()
		}
	}()
	return ln.Addr().String()
}

func peers(addr, service string) *wire.Snapshot {
	return &wire.Snapshot{Services: map[string]wire.Service{service: {Endpoints: []wire.Endpoint{{Address: addr, MTLS: true}}}}}
}

func TestMutualTLS(t *testing.T) {
	c := newCA(t, time.Hour)
	client, server := newMesh(t, "checkout"), newMesh(t, "payments")
	issue(t, c, client, "checkout")
	issue(t, c, server, "payments")
	addr := echoServer(t, server)
	var d net.Dialer
	dial := client.WrapDial(d.DialContext)

	// Not a known peer: plaintext dial (the server sees a non-mesh start).
	conn, err := dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if InfoOf(conn).TLS != TLSPlaintext {
		t.Error("unknown address dialed with mTLS")
	}
	conn.Close()

	client.SetPeers(peers(addr, "payments"))
	conn, err = dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := InfoOf(conn); got.TLS != TLSMutual || got.Peer != "spiffe://meshscope.local/service/payments" {
		t.Errorf("client side %+v", got)
	}
	io.WriteString(conn, "hi\n")
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if line != "spiffe://meshscope.local/service/checkout hi\n" {
		t.Errorf("server saw %q", line)
	}

	// The endpoint claims to be inventory: the payments certificate
	// there is refused.
	client.SetPeers(peers(addr, "inventory"))
	if _, err := dial(context.Background(), "tcp", addr); err == nil || !strings.Contains(err.Error(), "want service inventory") {
		t.Errorf("wrong identity accepted: %v", err)
	}

	// Another CA's certificate is refused by the server.
	rogue := newMesh(t, "checkout")
	issue(t, newCA(t, time.Hour), rogue, "checkout")
	rogue.SetPeers(peers(addr, "payments"))
	if conn, err := rogue.WrapDial(d.DialContext)(context.Background(), "tcp", addr); err == nil {
		// TLS 1.3: the client may finish before the server's verdict arrives.
		_, err = io.ReadAll(conn)
		if n, _ := conn.Read(make([]byte, 1)); n > 0 {
			t.Error("a certificate of another CA was accepted")
		}
	}
}

// TestAcceptReplaysOtherTLS: application TLS (no mesh ALPN) and TLS
// before the proxy has a certificate reach the normal path byte for byte.
func TestAcceptReplaysOtherTLS(t *testing.T) {
	c := newCA(t, time.Hour)
	server := newMesh(t, "payments")
	issue(t, c, server, "payments")
	addr := echoServer(t, server)
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	_ = tc.SetDeadline(time.Now().Add(3 * time.Second))
	// The replayed ClientHello's first 5 bytes come back from the
	// "plain" path: a TLS record header.
	go tc.Handshake()
	b := make([]byte, 11)
	n, _ := io.ReadFull(raw, b)
	if got := string(b[:6]); n < 7 || got != "plain:" || b[6] != 0x16 {
		t.Errorf("non-mesh TLS answer %q, want the replayed record header", b[:n])
	}
}

func TestRotationSchedule(t *testing.T) {
	c := newCA(t, 30*time.Second)
	m := newMesh(t, "web")
	now := time.Now()
	m.now = func() time.Time { return now }
	if m.Ready() {
		t.Fatal("ready without a certificate")
	}
	issue(t, c, m, "web")
	if !m.Ready() || m.ID() != "spiffe://meshscope.local/service/web" {
		t.Fatalf("after issue: ready %v id %q", m.Ready(), m.ID())
	}
	now = now.Add(19 * time.Second)
	if m.CertRequest() != nil {
		t.Error("request before 2/3 of the life")
	}
	now = now.Add(2 * time.Second)
	if m.CertRequest() == nil {
		t.Fatal("no request after 2/3 of the life")
	}
	if m.CertRequest() != nil {
		t.Error("a second request while one is outstanding")
	}
	now = now.Add(10 * time.Second) // expired, no answer came
	if m.Ready() {
		t.Error("an expired certificate is still used (the proxy must fall back to plaintext)")
	}
	if m.CertRequest() == nil {
		t.Error("no retry after the pending timeout")
	}
	// An answer for a key the proxy did not ask with is refused.
	other := newMesh(t, "web")
	req := other.CertRequest()
	iss, _ := c.Sign(req, "web", time.Now())
	if err := m.Issued(&wire.Cert{Chain: string(iss.Chain), Bundle: string(iss.Bundle), TrustDomain: c.TrustDomain()}); err == nil {
		t.Error("certificate for another key installed")
	}
	if err := m.Issued(&wire.Cert{Error: "denied"}); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Errorf("refusal: %v", err)
	}
}
