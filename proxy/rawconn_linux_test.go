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

func TestRawTCPConnWritePair(t *testing.T) {
	r, client := rawPair(t)
	// Both halves larger than the socket buffers: the writev completes
	// across waits in the poller, then the rest of the second half.
	a := bytes.Repeat([]byte("a1"), 1<<20)
	b := bytes.Repeat([]byte("b2"), 1<<20)
	var got []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		got, _ = io.ReadAll(io.LimitReader(client, int64(len(a)+len(b))))
	}()
	if n, err := r.writePair(a, b); n != len(a)+len(b) || err != nil {
		t.Fatalf("writePair = %d, %v; want %d, nil", n, err, len(a)+len(b))
	}
	wg.Wait()
	if !bytes.Equal(got, append(append([]byte{}, a...), b...)) {
		t.Fatalf("peer read %d bytes, not a then b", len(got))
	}

	// Either half empty: the other alone.
	for _, tc := range []struct{ a, b string }{{"", "only b"}, {"only a", ""}, {"x", "y"}} {
		if n, err := r.writePair([]byte(tc.a), []byte(tc.b)); n != len(tc.a)+len(tc.b) || err != nil {
			t.Fatalf("writePair(%q, %q) = %d, %v", tc.a, tc.b, n, err)
		}
		buf := make([]byte, len(tc.a)+len(tc.b))
		if _, err := io.ReadFull(client, buf); err != nil || string(buf) != tc.a+tc.b {
			t.Fatalf("after writePair(%q, %q) the peer read %q, %v", tc.a, tc.b, buf, err)
		}
	}

	// A peer gone: the error names the operation, as Write's.
	client.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ { // the reset arrives after a write or two
		_, err = r.writePair([]byte("head"), bytes.Repeat([]byte("x"), 64<<10))
		time.Sleep(time.Millisecond)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("writePair to a closed peer = %v; want a write *net.OpError", err)
	}
}

func TestPairWriterOfOwnedConnection(t *testing.T) {
	r, _ := rawPair(t)
	if pairWriterOf(r) == nil {
		t.Fatal("a raw-I/O TCP connection has no pairWriter")
	}
	if pairWriterOf(&peekedConn{Conn: r}) == nil {
		t.Fatal("a peeked raw-I/O TCP connection has no pairWriter")
	}
}

func TestRawTCPConnDeferredWrite(t *testing.T) {
	t.Run("held until the read, then answered", func(t *testing.T) {
		r, client := rawPair(t)
		r.deferWrite()
		if n, err := r.Write([]byte("ping")); n != 4 || err != nil {
			t.Fatalf("held Write = %d, %v", n, err)
		}
		_ = client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, _ := client.Read(make([]byte, 8)); n != 0 {
			t.Fatalf("the peer read %d bytes before the Read that sends them", n)
		}
		_ = client.SetReadDeadline(time.Time{})
		go func() {
			buf := make([]byte, 4)
			if _, err := io.ReadFull(client, buf); err == nil && string(buf) == "ping" {
				client.Write([]byte("pong"))
			}
		}()
		buf := make([]byte, 8)
		if n, err := r.Read(buf); err != nil || string(buf[:n]) != "pong" {
			t.Fatalf("Read = %q, %v; want pong", buf[:n], err)
		}
		// Back to plain writes.
		if _, err := r.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf[:1]); err != nil || buf[0] != 'x' {
			t.Fatalf("peer read %q, %v after a plain Write", buf[:1], err)
		}
	})
	t.Run("more than the socket takes", func(t *testing.T) {
		r, client := rawPair(t)
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
		r.deferWrite()
		if _, err := r.Write(big); err != nil {
			t.Fatal(err)
		}
		go func() {
			got, _ := io.ReadAll(io.LimitReader(client, int64(len(big))))
			if bytes.Equal(got, big) {
				client.Write([]byte("all"))
			}
		}()
		buf := make([]byte, 8)
		if n, err := r.Read(buf); err != nil || string(buf[:n]) != "all" {
			t.Fatalf("Read = %q, %v; want the peer's answer to all 4 MiB", buf[:n], err)
		}
	})
	t.Run("peer gone before the write", func(t *testing.T) {
		// A pooled connection the peer closed while it was idle: the
		// close arrived before the Read registered to wait, and the write
		// draws a reset, which ends the wait at once.
		r, client := rawPair(t)
		client.Close()
		time.Sleep(20 * time.Millisecond)
		r.deferWrite()
		if _, err := r.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := r.Read(make([]byte, 8))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("Read on a connection the peer closed returned no error")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read after a held write to a closed peer still waits after 5s")
		}
	})
	t.Run("deadline while waiting", func(t *testing.T) {
		r, _ := rawPair(t)
		r.deferWrite()
		_, _ = r.Write([]byte("no answer"))
		_ = r.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
		if _, err := r.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past the deadline = %v; want os.ErrDeadlineExceeded", err)
		}
	})
}
