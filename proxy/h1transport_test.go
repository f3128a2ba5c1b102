package proxy

import (
	"bufio"
	"bytes"
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

// answerOnce reads one request on c and answers it "ok" with keep-alive;
// false when no request came.
func answerOnce(c net.Conn) bool {
	if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
		return false
	}
	_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	return true
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

// TestWriteRequestHeadMatchesRequestWrite: the lean request writer emits
// exactly the bytes (*http.Request).Write does, and declines what it does
// not handle so the general path writes it.
func TestWriteRequestHeadMatchesRequestWrite(t *testing.T) {
	tests := []struct {
		name   string
		method string
		url    string
		host   string
		header http.Header
		fast   bool
		modify func(r *http.Request)
	}{
		{name: "plain get", method: "GET", url: "http://127.0.0.1:8080/api/items/7", fast: true},
		{name: "empty method is GET", method: "", url: "http://a.example/x", fast: true},
		{name: "head with query", method: "HEAD", url: "http://a.example/x?q=1;b=2&c=%20", fast: true},
		{name: "host header wins", method: "GET", url: "http://127.0.0.1:9/p", host: "svc.local:80", fast: true},
		{name: "headers sorted, multi-values, newlines", method: "GET", url: "http://a/p", fast: true, header: http.Header{
			"X-B": {"2", "3"}, "Accept": {"*/*"}, "X-A": {" spaced\r\nvalue "}, "Traceparent": {"00-abc-def-01"},
			"Content-Length": {"5"}, "Transfer-Encoding": {"chunked"}, "Trailer": {"X"}, "Host": {"ignored"},
		}},
		{name: "values trimmed and unfolded at either end", method: "GET", url: "http://a/p", fast: true, header: http.Header{
			"X-Lead": {" a"}, "X-Trail": {"b\t"}, "X-Cr": {"c\rd"}, "X-Lf": {"e\nf"}, "X-Blank": {" \t "}, "X-Empty": {""},
			"X-Plain": {"g h"}, "X-Crlf-End": {"i\r\n"},
		}},
		{name: "user agent kept", method: "GET", url: "http://a/p", fast: true, header: http.Header{"User-Agent": {"curl/8\n"}}},
		{name: "empty user agent suppressed", method: "GET", url: "http://a/p", fast: true, header: http.Header{"User-Agent": {""}}},
		{name: "invalid header name dropped", method: "GET", url: "http://a/p", fast: true, header: http.Header{"Bad Name": {"x"}, "Ok": {"y"}}},
		{name: "escaped path", method: "GET", url: "http://a/a%2Fb/%E2%9C%93", fast: true},
		{name: "options takes the general path", method: "OPTIONS", url: "http://a/p"},
		{name: "non-ascii host", method: "GET", url: "http://a/p", host: "bücher.example"},
		{name: "zone", method: "GET", url: "http://[fe80::1%25eth0]:80/p"},
		{name: "close", method: "GET", url: "http://a/p", modify: func(r *http.Request) { r.Close = true }},
		{name: "content length", method: "GET", url: "http://a/p", modify: func(r *http.Request) { r.ContentLength = 3 }},
		{name: "control byte in uri", method: "GET", url: "http://a/p", modify: func(r *http.Request) { r.URL.RawQuery = "a=\x01" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newReq := func() *http.Request {
				r, err := http.NewRequest(tt.method, tt.url, nil)
				if err != nil {
					t.Fatal(err)
				}
				r.Method = tt.method
				if tt.host != "" {
					r.Host = tt.host
				}
				for k, v := range tt.header {
					r.Header[k] = v
				}
				if tt.modify != nil {
					tt.modify(r)
				}
				return r
			}
			var fast bytes.Buffer
			bw := bufio.NewWriter(&fast)
			ok := writeRequestHead(bw, newReq())
			_ = bw.Flush()
			if ok != tt.fast {
				t.Fatalf("lean path taken = %v, want %v", ok, tt.fast)
			}
			if !ok {
				if fast.Len() != 0 {
					t.Fatalf("declined but wrote %q", fast.String())
				}
				return
			}
			var want bytes.Buffer
			if err := newReq().Write(&want); err != nil {
				t.Fatal(err)
			}
			if fast.String() != want.String() {
				t.Errorf("lean writer:\n%q\nRequest.Write:\n%q", fast.String(), want.String())
			}
		})
	}
}

// FuzzWriteRequestHead: whenever the lean writer takes a request, its bytes
// equal (*http.Request).Write's.
func FuzzWriteRequestHead(f *testing.F) {
	f.Add("GET", "/api/items/7", "q=1", "127.0.0.1:8080", "X-Test", "v", "curl/8")
	f.Add("HEAD", "/a%2Fb", "", "svc.local", "Accept", " a\r\nb ", "")
	f.Add("", "/", "x=;y", "[::1]:80", "bad name", "z", "ua\n")
	f.Fuzz(func(t *testing.T, method, path, rawQuery, host, key, value, ua string) {
		build := func() *http.Request {
			r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/", nil)
			if err != nil {
				t.Fatal(err)
			}
			r.Method = method
			r.URL.Path, r.URL.RawPath = path, ""
			r.URL.RawQuery = rawQuery
			r.Host = host
			r.Header[key] = []string{value, value + "2"}
			if ua != "" {
				r.Header["User-Agent"] = []string{ua}
			}
			return r
		}
		var lean bytes.Buffer
		bw := bufio.NewWriter(&lean)
		if !writeRequestHead(bw, build()) {
			_ = bw.Flush()
			if lean.Len() != 0 {
				t.Fatalf("declined but wrote %q", lean.String())
			}
			return
		}
		_ = bw.Flush()
		var want bytes.Buffer
		if err := build().Write(&want); err != nil {
			t.Fatalf("lean writer took a request Request.Write rejects: %v (wrote %q)", err, lean.String())
		}
		if lean.String() != want.String() {
			t.Fatalf("lean writer:\n%q\nRequest.Write:\n%q", lean.String(), want.String())
		}
	})
}

// TestH1TransportResponseTimeoutLazyDeadline: the response timeout's
// deadline, left set after a buffered response, still ends a later
// request's wait on the same connection, and it never cuts a body that
// arrives after the timeout.
func TestH1TransportResponseTimeoutLazyDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	srv := rawServer(t, func(c net.Conn) {
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			switch req.URL.Path {
			case "/fast":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			case "/slow-body":
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
				time.Sleep(2 * timeout)
				_, _ = io.WriteString(c, "cd")
			case "/hang":
				time.Sleep(10 * time.Second)
				return
			}
		}
	})
	tr := newTestH1Transport(timeout)
	get := func(path string) (string, error) {
		resp, err := tr.RoundTrip(newGet(t, context.Background(), "http://"+srv+path))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	for i := 0; i < 3; i++ {
		if b, err := get("/fast"); err != nil || b != "ok" {
			t.Fatalf("fast %d: %q, %v", i, b, err)
		}
	}
	time.Sleep(2 * timeout) // the connection idles past the deadline left set
	if b, err := get("/fast"); err != nil || b != "ok" {
		t.Fatalf("fast after idling: %q, %v", b, err)
	}
	if b, err := get("/slow-body"); err != nil || b != "abcd" {
		t.Fatalf("body arriving after the response timeout: %q, %v", b, err)
	}
	start := time.Now()
	_, err := get("/hang")
	if code, _ := classifyError(context.Background(), err); code != statusTimeout {
		t.Fatalf("hang: got %v (status %d), want a timeout", err, code)
	}
	if d := time.Since(start); d > timeout+deadlineSlack(timeout)+time.Second {
		t.Errorf("timed out after %v, want about %v", d.Round(time.Millisecond), timeout)
	}
}

// TestH1TransportRetriesStaleConnection: a pooled connection the upstream
// closed is noticed at once and the request retried on a new one. With the
// proxy's dialer (raw socket I/O, request heads written from inside the
// wait for the response) that is the reset the write draws when the
// connection was idle briefly, and the plain read when it was idle longer
// and the upstream lingers after a half-close (drawing no reset).
func TestH1TransportRetriesStaleConnection(t *testing.T) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		name   string
		dial   func(ctx context.Context, network, addr string) (net.Conn, error)
		linger bool
		idle   time.Duration
	}{
		{"plain dialer, closed", d.DialContext, false, 20 * time.Millisecond},
		{"closed, reused at once", wrapOrderDial(d.DialContext), false, 20 * time.Millisecond},
		{"half-closed and lingering, reused after the idle limit", wrapOrderDial(d.DialContext), true, deferWriteIdleMax + 50*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int32
			addr := rawServer(t, func(c net.Conn) {
				defer c.Close()
				conns.Add(1)
				if answerOnce(c) && tc.linger {
					_ = c.(*net.TCPConn).CloseWrite()
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.Copy(io.Discard, c)
				}
			})
			tr := newH1Transport(tc.dial, 5*time.Second, time.Minute, 4, 16)
			defer tr.CloseIdleConnections()
			for i := 0; i < 2; i++ {
				start := time.Now()
				resp, err := tr.RoundTrip(newGet(t, context.Background(), "http://"+addr+"/"))
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "ok" {
					t.Fatalf("request %d: body %q", i, b)
				}
				if el := time.Since(start); el > 2*time.Second {
					t.Fatalf("request %d took %v: the closed pooled connection was noticed late", i, el)
				}
				time.Sleep(tc.idle)
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
		})
	}
}
