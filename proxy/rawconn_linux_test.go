//go:build linux

package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// rawPair returns a raw-I/O server side of a loopback TCP connection and
// its plain client side.
func rawPair(t *testing.T) (*rawTCPConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	r, ok := rawIO(server).(*rawTCPConn)
	if !ok {
		t.Fatalf("rawIO(%T) did not wrap the TCP connection", server)
	}
	t.Cleanup(func() { r.Close(); client.Close() })
	return r, client
}

func TestRawTCPConnReadWrite(t *testing.T) {
	r, client := rawPair(t)
	// A write larger than the socket buffers completes across waits in
	// the poller while the peer reads.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	var got []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, _ = io.ReadAll(io.LimitReader(client, int64(len(big))))
	}()
	if n, err := r.Write(big); n != len(big) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
	}
	wg.Wait()
	if !bytes.Equal(got, big) {
		t.Fatalf("peer read %d bytes, not what was written", len(got))
	}

	// Reads wait for data, then return what arrived.
	go func() {
		time.Sleep(20 * time.Millisecond)
		client.Write([]byte("hello"))
	}()
	buf := make([]byte, 64)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v", n, err)
	}

	// The end of the stream is io.EOF.
	client.Close()
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
	}
}

func TestRawTCPConnDeadlineAndClose(t *testing.T) {
	r, _ := rawPair(t)
	buf := make([]byte, 8)
	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" || oe.Addr == nil {
		t.Fatalf("Read error %#v is not a read *net.OpError with addresses", err)
	}
	r.SetReadDeadline(time.Time{})

	// Close unblocks a waiting Read with net.ErrClosed.
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read on a closed connection = %v; want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write on a closed connection = %v; want net.ErrClosed", err)
	}
}

func TestRawTCPConnPeerReset(t *testing.T) {
	r, client := rawPair(t)
	client.(*net.TCPConn).SetLinger(0) // close with a reset
	client.Close()
	time.Sleep(20 * time.Millisecond)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = r.Write(bytes.Repeat([]byte("x"), 64<<10))
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("Write to a reset connection = %v; want a write *net.OpError", err)
	}
}

func TestRawIOWrapsPeekedConn(t *testing.T) {
	r, client := rawPair(t)
	pc := &peekedConn{Conn: r.TCPConn}
	if rawIO(pc) != net.Conn(pc) {
		t.Fatal("rawIO replaced the peekedConn")
	}
	if _, ok := pc.Conn.(*rawTCPConn); !ok {
		t.Fatalf("peekedConn holds %T, want *rawTCPConn", pc.Conn)
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	if rawIO(c1) != c1 {
		t.Fatal("rawIO wrapped a connection that is not TCP")
	}
	_ = client
}
