package h2

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"
)

func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestServerTLS serves a *tls.Conn after an ALPN "h2" handshake: requests
// carry its ConnectionState.
func TestServerTLS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := &tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}, NextProtos: []string{"h2"}}
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || r.TLS.NegotiatedProtocol != "h2" {
			w.WriteHeader(500)
			return
		}
		w.Write([]byte("secure"))
	})}
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			served <- err
			return
		}
		served <- srv.ServeConn(context.Background(), tc)
	}()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("status %d proto %d", resp.StatusCode, resp.ProtoMajor)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

// TestServerContextCancelClosesConn: canceling ServeConn's context closes
// the connection abruptly and fails in-flight handlers' contexts.
func TestServerContextCancelClosesConn(t *testing.T) {
	started := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})}
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.ServeConn(ctx, a) }()
	rc := &rawClient{t: t, c: b}
	rc.init()
	go func() {
		// net.Pipe is synchronous: keep reading so the server's writes
		// complete.
		for {
			if _, err := rc.fr.ReadFrame(); err != nil {
				return
			}
		}
	}()
	b.Write([]byte(serverPreface))
	rc.fr.WriteSettings()
	rc.writeHeaders(1, true, rawGet...)
	<-started
	cancel()
	select {
	case err := <-served:
		if err == nil {
			t.Error("ServeConn returned nil after its context was canceled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeConn did not return after cancel")
	}
}
