package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestH1Transport(respTimeout time.Duration) *h1Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return newH1Transport(d.DialContext, respTimeout, time.Minute, 4, 16)
}

func newGet(t *testing.T, ctx context.Context, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// rawServer accepts connections and runs serve on each.
func rawServer(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return ln.Addr().String()
}

// TestH1TransportReusesConnections: sequential requests share one
// connection; bodies of each framing arrive whole, trailers included.
func TestH1TransportReusesConnections(t *testing.T) {
	var conns atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/chunked":
				w.Header().Set("Trailer", "X-Sum")
				_, _ = io.WriteString(w, "part1-")
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, "part2")
				w.Header().Set("X-Sum", "42")
			case "/empty":
				w.WriteHeader(http.StatusNoContent)
			default:
				_, _ = io.WriteString(w, "hello")
			}
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	tr := newTestH1Transport(0)
	defer tr.CloseIdleConnections()
	base := "http://" + ln.Addr().String()
	for i := 0; i < 3; i++ {
		for _, tc := range []struct{ path, body, trailer string }{
			{"/plain", "hello", ""}, {"/chunked", "part1-part2", "42"}, {"/empty", "", ""},
		} {
			resp, err := tr.RoundTrip(newGet(t, context.Background(), base+tc.path))
			if err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != tc.body {
				t.Errorf("%s: body %q, %v; want %q", tc.path, b, err, tc.body)
			}
			if got := resp.Trailer.Get("X-Sum"); got != tc.trailer {
				t.Errorf("%s: trailer %q, want %q", tc.path, got, tc.trailer)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections, want 1 (keep-alive reuse)", n)
	}
}

// TestH1TransportRetriesStaleConnection: when the upstream closed a pooled
// connection, the request is retried once on a new one.
func TestH1TransportRetriesStaleConnection(t *testing.T) {
	var conns atomic.Int32
	addr := rawServer(t, func(c net.Conn) {
		defer c.Close()
		conns.Add(1)
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		// Answer one request with keep-alive, then close anyway.
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tr := newTestH1Transport(0)
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		resp, err := tr.RoundTrip(newGet(t, context.Background(), "http://"+addr+"/"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("request %d: body %q", i, b)
		}
		time.Sleep(20 * time.Millisecond) // let the server's close arrive
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestH1TransportInformational: 1xx responses are handed to the client
// trace (ReverseProxy forwards them) and the final response follows.
func TestH1TransportInformational(t *testing.T) {
	addr := rawServer(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
	})
	tr := newTestH1Transport(0)
	defer tr.CloseIdleConnections()
	var got []string
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, statusLabel(code)+" "+h.Get("Link"))
			return nil
		},
	})
	resp, err := tr.RoundTrip(newGet(t, ctx, "http://"+addr+"/"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "done" {
		t.Errorf("final response %d %q", resp.StatusCode, b)
	}
	if len(got) != 1 || got[0] != "103 </a.css>; rel=preload" {
		t.Errorf("1xx seen: %q", got)
	}
}

// TestH1TransportErrors: timeouts, cancellation, oversized headers and
// connect failures surface as errors classifyError understands.
func TestH1TransportErrors(t *testing.T) {
	hang := rawServer(t, func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	})
	huge := rawServer(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Big: ")
		chunk := strings.Repeat("a", 64<<10)
		for i := 0; i < (maxResponseHeaderBytes/len(chunk))+2; i++ {
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	})
	slowBody := rawServer(t, func(c net.Conn) {
		defer c.Close()
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
		time.Sleep(10 * time.Second)
	})

	t.Run("response timeout", func(t *testing.T) {
		tr := newTestH1Transport(100 * time.Millisecond)
		_, err := tr.RoundTrip(newGet(t, context.Background(), "http://"+hang+"/"))
		if code, _ := classifyError(context.Background(), err); code != statusTimeout {
			t.Errorf("got %v (status %d), want a timeout", err, code)
		}
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		tr := newTestH1Transport(0)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := tr.RoundTrip(newGet(t, ctx, "http://"+hang+"/"))
		if code, _ := classifyError(ctx, err); err == nil || code != statusClientGone {
			t.Errorf("got %v (status %d), want client gone", err, code)
		}
	})
	t.Run("cancel during body", func(t *testing.T) {
		tr := newTestH1Transport(0)
		ctx, cancel := context.WithCancel(context.Background())
		resp, err := tr.RoundTrip(newGet(t, ctx, "http://"+slowBody+"/"))
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(50*time.Millisecond, cancel)
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(resp.Body); done <- err }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("body read succeeded after cancel")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("body read not aborted by cancellation")
		}
		resp.Body.Close()
		if tr.nIdle != 0 {
			t.Errorf("%d idle connections after an aborted body, want 0", tr.nIdle)
		}
	})
	t.Run("huge headers", func(t *testing.T) {
		tr := newTestH1Transport(0)
		_, err := tr.RoundTrip(newGet(t, context.Background(), "http://"+huge+"/"))
		if !errors.Is(err, errResponseHeaderTooLong) {
			t.Errorf("got %v, want %v", err, errResponseHeaderTooLong)
		}
	})
	t.Run("connect failure", func(t *testing.T) {
		tr := newTestH1Transport(0)
		_, err := tr.RoundTrip(newGet(t, context.Background(), "http://"+freeAddr(t)+"/"))
		if code, reason := classifyError(context.Background(), err); code != statusUpstreamConnect || !strings.Contains(reason, "connect") {
			t.Errorf("got %v (%d %s), want a connect failure", err, code, reason)
		}
	})
}

func TestH1Eligible(t *testing.T) {
	mk := func(method string, body io.Reader, hdr ...string) *http.Request {
		r, _ := http.NewRequest(method, "http://example.test/", body)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return r
	}
	h2 := mk("GET", nil)
	h2.ProtoMajor = 2
	for _, tc := range []struct {
		name string
		r    *http.Request
		want bool
	}{
		{"GET", mk("GET", nil), true},
		{"HEAD", mk("HEAD", nil), true},
		{"POST without body", mk("POST", nil), false},
		{"POST", mk("POST", strings.NewReader("x")), false},
		{"upgrade", mk("GET", nil, "Upgrade", "websocket", "Connection", "Upgrade"), false},
		{"expect", mk("GET", nil, "Expect", "100-continue"), false},
		{"HTTP/2", h2, false},
	} {
		if got := h1Eligible(tc.r); got != tc.want {
			t.Errorf("%s: h1Eligible = %v, want %v", tc.name, got, tc.want)
		}
	}
}
