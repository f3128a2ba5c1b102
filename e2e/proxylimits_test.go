package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProxyRefusesBadFramingAndSilentConnections runs the proxy binary in
// front of an app that counts its connections and requests: silent
// connections are closed without reaching the app, smuggling attempts and
// oversized heads are refused with the connection closed, and a plain
// request still goes through.
func TestProxyRefusesBadFramingAndSilentConnections(t *testing.T) {
	var conns, requests atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	inbound := freeAddrs(t, 1)[0]
	p, _ := startProxy(t, "proxy-limits", "--service", "guarded", "--inbound", inbound+"="+ln.Addr().String(),
		"--detect-timeout", "300ms", "--max-header-bytes", "16384")

	// Silent connections are closed after --detect-timeout.
	var silent []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", inbound)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	for i, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("silent connection %d not closed: %v", i, err)
		}
	}

	for _, tc := range []struct{ name, req, status string }{
		{"CL.TE", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"TE.CL", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2c\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n", "400"},
		{"obs-fold", "GET /a HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", "400"},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"bad chunk size", "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", "400"},
		{"head above --max-header-bytes", "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n", "431"},
	} {
		c, err := net.Dial("tcp", inbound)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, tc.req); err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(c) // the proxy closes the connection
		c.Close()
		if !strings.HasPrefix(string(out), "HTTP/1.1 "+tc.status+" ") || strings.Count(string(out), "HTTP/1.1 ") != 1 {
			t.Errorf("%s: got %q, want one %s response and the connection closed", tc.name, out, tc.status)
		}
	}
	if n, r := conns.Load(), requests.Load(); n != 0 || r != 0 {
		t.Errorf("the app saw %d connections and %d requests, want none", n, r)
	}

	// A plain request still goes through.
	c, err := net.Dial("tcp", inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 || requests.Load() != 1 {
		t.Errorf("plain request: %v %v, app served %d", resp, err, requests.Load())
	}
	if p.exited() {
		t.Errorf("proxy exited: %s", p.tail(20))
	}
}

// TestProxyObserveKeepsHeaderCaseAndOrder runs the proxy binary (observe
// mode) in front of a raw TCP app that records the bytes it reads and
// answers with fields in its own case and order: both sides get the
// fields as the other sent them, the app only after them the trace
// context fields the proxy adds.
func TestProxyObserveKeepsHeaderCaseAndOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	const response = "HTTP/1.1 200 OK\r\nx-zed: 1\r\nETAG: \"v\"\r\nset-cookie: b=1\r\nSet-Cookie: a=2\r\ncontent-length: 2\r\n\r\nok"
	heads := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					heads <- head.String()
					if _, err := io.WriteString(c, response); err != nil {
						return
					}
				}
			}()
		}
	}()
	inbound := freeAddrs(t, 1)[0]
	startProxy(t, "proxy-order", "--service", "ordered", "--inbound", inbound+"="+ln.Addr().String())
	c, err := net.Dial("tcp", inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	const request = "GET /o HTTP/1.1\r\nx-zed: 1\r\nHost: shop\r\naccept: */*\r\nx-multi: b\r\nX-MULTI: a\r\nuser-agent: curl/8\r\n\r\n"
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(response))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("response: %v (read %q)", err, got)
	}
	if string(got) != response {
		t.Errorf("the client read\n%q\nwant the app's bytes\n%q", got, response)
	}
	head := <-heads
	sent := strings.TrimSuffix(request, "\r\n")
	if !strings.HasPrefix(head, sent) {
		t.Fatalf("the app read\n%q\nwant it to start with the client's head\n%q", head, sent)
	}
	for _, l := range strings.Split(strings.TrimSuffix(strings.TrimPrefix(head, sent), "\r\n"), "\r\n") {
		if name, _, _ := strings.Cut(l, ":"); l != "" && name != "Traceparent" && name != "Tracestate" {
			t.Errorf("the app read an added field %q", l)
		}
	}
}
