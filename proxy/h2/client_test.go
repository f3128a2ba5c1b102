package h2

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clientTestServer starts a Go net/http server speaking h2c with prior
// knowledge and returns its address.
func clientTestServer(t testing.TB, h http.Handler) (*httptest.Server, string) {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Start()
	t.Cleanup(s.Close)
	return s, s.Listener.Addr().String()
}

// clientCountingDial counts dials so that tests can assert connection reuse.
type clientCountingDial struct{ n atomic.Int32 }

func (d *clientCountingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func newClientTestTransport(t testing.TB) (*Transport, *clientCountingDial) {
	d := &clientCountingDial{}
	tr := &Transport{Dial: d.dial}
	t.Cleanup(func() { _ = tr.Close() })
	return tr, d
}

func TestClientRequestResponse(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Conn", r.Header.Get("Connection")+r.Header.Get("Keep-Alive")+r.Header.Get("Upgrade"))
		w.Header().Set("X-Te", r.Header.Get("Te"))
		w.Header().Set("X-Custom", strings.Join(r.Header.Values("X-Custom"), ","))
		w.Header().Set("X-Cl", fmt.Sprint(r.ContentLength))
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
			return
		case "/len":
			w.Header().Set("Content-Length", "5")
		}
		_, _ = w.Write([]byte("hello"))
		_, _ = w.Write(body)
	}))
	tr, dials := newClientTestTransport(t)
	tests := []struct {
		name       string
		method     string
		path       string
		host       string
		header     http.Header
		body       string
		wantStatus int
		wantBody   string
		wantCL     int64
		wantHdr    map[string]string
	}{
		{name: "get", method: "GET", path: "/a/b?c=d", wantStatus: 200, wantBody: "hello", wantCL: 5,
			wantHdr: map[string]string{"X-Method": "GET", "X-Path": "/a/b?c=d", "X-Proto": "HTTP/2.0", "X-Host": addr}},
		{name: "host override", method: "GET", path: "/", host: "example.test", wantStatus: 200, wantBody: "hello", wantCL: 5,
			wantHdr: map[string]string{"X-Host": "example.test"}},
		{name: "connection-specific dropped", method: "GET", path: "/",
			header:     http.Header{"Connection": {"close"}, "Keep-Alive": {"1"}, "Upgrade": {"x"}, "Te": {"trailers"}, "X-Custom": {"a", "b"}},
			wantStatus: 200, wantBody: "hello", wantCL: 5,
			wantHdr: map[string]string{"X-Conn": "", "X-Te": "trailers", "X-Custom": "a,b"}},
		{name: "te other than trailers dropped", method: "GET", path: "/", header: http.Header{"Te": {"gzip"}},
			wantStatus: 200, wantBody: "hello", wantCL: 5, wantHdr: map[string]string{"X-Te": ""}},
		{name: "post", method: "POST", path: "/", body: "world", wantStatus: 200, wantBody: "helloworld", wantCL: 10,
			wantHdr: map[string]string{"X-Method": "POST", "X-Cl": "5"}},
		{name: "no content", method: "GET", path: "/empty", wantStatus: 204, wantBody: "", wantCL: 0},
		{name: "content-length", method: "GET", path: "/len", wantStatus: 200, wantBody: "hello", wantCL: 5},
		{name: "head", method: "HEAD", path: "/len", wantStatus: 200, wantBody: "", wantCL: 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, "http://"+addr+tc.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, vv := range tc.header {
				req.Header[k] = vv
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			got, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil {
				t.Fatalf("reading body: %v", err)
			}
			if resp.StatusCode != tc.wantStatus || string(got) != tc.wantBody || resp.ContentLength != tc.wantCL {
				t.Errorf("got %d %q cl=%d, want %d %q cl=%d", resp.StatusCode, got, resp.ContentLength, tc.wantStatus, tc.wantBody, tc.wantCL)
			}
			if resp.Proto != "HTTP/2.0" || resp.ProtoMajor != 2 || resp.Status != fmt.Sprintf("%d %s", tc.wantStatus, http.StatusText(tc.wantStatus)) {
				t.Errorf("proto %q %d status %q", resp.Proto, resp.ProtoMajor, resp.Status)
			}
			for k, v := range tc.wantHdr {
				if g := resp.Header.Get(k); g != v {
					t.Errorf("%s = %q, want %q", k, g, v)
				}
			}
		})
	}
	if n := dials.n.Load(); n != 1 {
		t.Errorf("%d dials, want 1 (connection reuse)", n)
	}
}

func TestClientLargeBodiesBothWays(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(w, r.Body)
	}))
	tr, _ := newClientTestTransport(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	for _, known := range []bool{true, false} {
		t.Run(fmt.Sprintf("content-length known=%v", known), func(t *testing.T) {
			var body io.Reader = bytes.NewReader(payload)
			if !known {
				body = io.MultiReader(body) // hides the length
			}
			req, _ := http.NewRequest("POST", "http://"+addr+"/", body)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			n, err := io.Copy(h, resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if want := sha256.Sum256(payload); n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), want[:]) {
				t.Fatalf("echo of %d bytes differs (got %d bytes)", len(payload), n)
			}
		})
	}
}

func TestClientConcurrentStreamsShareOneConnection(t *testing.T) {
	const n = 100
	var arrived sync.WaitGroup
	arrived.Add(n)
	release := make(chan struct{})
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		<-release // every stream is open at once
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	tr, dials := newClientTestTransport(t)
	go func() { arrived.Wait(); close(release) }()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/%d", addr, i), nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != fmt.Sprintf("/%d", i) {
				errs <- fmt.Errorf("stream %d: %q %v", i, b, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d := dials.n.Load(); d != 1 {
		t.Errorf("%d dials for %d concurrent streams, want 1", d, n)
	}
}

func TestClientFullDuplex(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(bytes.ToUpper(buf[:n]))
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	tr, _ := newClientTestTransport(t)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
	resp, err := tr.RoundTrip(req) // returns while the request body is open
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	for _, msg := range []string{"ping", "pong", "done"} {
		if _, err := pw.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		n, err := io.ReadAtLeast(resp.Body, buf, len(msg))
		if err != nil || string(buf[:n]) != strings.ToUpper(msg) {
			t.Fatalf("echo of %q: %q %v", msg, buf[:n], err)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Fatalf("after close: %q %v", rest, err)
	}
}

func TestClientTrailersBothWays(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Echo-Trailer")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Echo-Trailer", r.Trailer.Get("X-Req-Trailer"))
		w.Header().Set(http.TrailerPrefix+"X-Undeclared", "late")
	}))
	tr, _ := newClientTestTransport(t)
	req, _ := http.NewRequest("POST", "http://"+addr+"/", io.MultiReader(strings.NewReader("payload")))
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	pr, pw := io.Pipe()
	req.Body = pr
	go func() {
		_, _ = pw.Write([]byte("payload"))
		req.Trailer.Set("X-Req-Trailer", "from-client") // set before EOF, as net/http allows
		pw.Close()
	}()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Trailer["X-Echo-Trailer"]; !ok {
		t.Errorf("declared trailer key missing before the body is read: %v", resp.Trailer)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "body" {
		t.Fatalf("body %q %v", b, err)
	}
	if got := resp.Trailer.Get("X-Echo-Trailer"); got != "from-client" {
		t.Errorf("request trailer echoed as %q, want from-client", got)
	}
	if got := resp.Trailer.Get("X-Undeclared"); got != "late" {
		t.Errorf("undeclared trailer %q", got)
	}
}

func TestClientCancellation(t *testing.T) {
	handlerDone := make(chan error, 1)
	started := make(chan struct{}, 1)
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			w.WriteHeader(200)
			_, _ = w.Write(make([]byte, 1024))
			w.(http.Flusher).Flush()
		}
		started <- struct{}{}
		<-r.Context().Done() // ends only when the client resets the stream
		handlerDone <- r.Context().Err()
	}))
	tr, _ := newClientTestTransport(t)

	t.Run("context canceled before headers", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/wait", nil)
		go func() { <-started; cancel() }()
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("RoundTrip error %v, want context.Canceled", err)
		}
		if err := <-handlerDone; err == nil {
			t.Fatal("handler context not canceled")
		}
	})
	t.Run("context canceled while reading body", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/stream", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		<-started
		if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("Read error %v, want context.Canceled", err)
		}
		if err := <-handlerDone; err == nil {
			t.Fatal("handler context not canceled")
		}
	})
	t.Run("body closed early", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/stream", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		<-started
		resp.Body.Close()
		if err := <-handlerDone; err == nil {
			t.Fatal("handler context not canceled")
		}
		if _, err := resp.Body.Read(make([]byte, 1)); err == nil {
			t.Fatal("Read after Close succeeded")
		}
	})
	t.Run("response header timeout", func(t *testing.T) {
		tr2 := &Transport{ResponseHeaderTimeout: 50 * time.Millisecond}
		defer tr2.Close()
		req, _ := http.NewRequest("GET", "http://"+addr+"/wait", nil)
		if _, err := tr2.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "no response headers") {
			t.Fatalf("RoundTrip error %v, want a header timeout", err)
		}
		<-started
		if err := <-handlerDone; err == nil {
			t.Fatal("handler context not canceled")
		}
	})
}

func TestClientGracefulShutdownCompletesInFlight(t *testing.T) {
	inHandler := make(chan struct{})
	finish := make(chan struct{})
	srv, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(inHandler)
			<-finish
		}
		_, _ = io.WriteString(w, "done")
	}))
	tr, dials := newClientTestTransport(t)
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/slow", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-inHandler
	shut := make(chan error, 1)
	go func() { shut <- srv.Config.Shutdown(context.Background()) }()
	// The server sends GOAWAY; wait until the client saw it (its pool
	// forgets the connection) before letting the handler finish.
	for {
		tr.mu.Lock()
		n := len(tr.pools)
		tr.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(finish)
	if r := <-res; r.err != nil || r.body != "done" {
		t.Fatalf("in-flight stream: %q %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if d := dials.n.Load(); d != 1 {
		t.Errorf("%d dials", d)
	}
}

func TestClientOversizeResponseHeaders(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/many":
			for i := range 16 {
				w.Header().Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("x", 512))
			}
		case "/huge":
			w.Header().Set("X-Huge", strings.Repeat("x", 16<<10))
		}
		_, _ = io.WriteString(w, "ok")
	}))
	tr, dials := newClientTestTransport(t)
	tr.MaxHeaderBytes = 4 << 10
	get := func(path string) error {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	// Many fields over the limit: the stream is reset, the connection stays.
	if err := get("/many"); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("RoundTrip error %v, want header list too large", err)
	}
	if err := get("/small"); err != nil {
		t.Fatal(err)
	}
	if d := dials.n.Load(); d != 1 {
		t.Errorf("%d dials after a stream-level rejection, want 1", d)
	}
	// One field far beyond the limit: the Framer stops decoding and the
	// connection is closed; the next request dials again.
	if err := get("/huge"); err == nil {
		t.Fatal("huge header accepted")
	}
	if err := get("/small"); err != nil {
		t.Fatal(err)
	}
}

func TestClientIdleConnections(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	get := func(tr *Transport) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	t.Run("CloseIdleConnections", func(t *testing.T) {
		tr, dials := newClientTestTransport(t)
		get(tr)
		tr.CloseIdleConnections()
		get(tr)
		if d := dials.n.Load(); d != 2 {
			t.Errorf("%d dials, want 2 (idle connection closed)", d)
		}
	})
	t.Run("IdleConnTimeout", func(t *testing.T) {
		tr, dials := newClientTestTransport(t)
		tr.IdleConnTimeout = 10 * time.Millisecond
		get(tr)
		deadline := time.Now().Add(5 * time.Second)
		for {
			tr.mu.Lock()
			n := len(tr.pools)
			tr.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("idle connection not closed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		get(tr)
		if d := dials.n.Load(); d != 2 {
			t.Errorf("%d dials, want 2", d)
		}
	})
	t.Run("Close", func(t *testing.T) {
		tr, _ := newClientTestTransport(t)
		get(tr)
		tr.Close()
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, ErrTransportClosed) {
			t.Fatalf("RoundTrip after Close: %v", err)
		}
	})
}

func TestClientConcurrentFirstRequestsShareOneDial(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tr, dials := newClientTestTransport(t)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}()
	}
	wg.Wait()
	if d := dials.n.Load(); d != 1 {
		t.Errorf("%d dials, want 1", d)
	}
}

// clientFailingBody returns some bytes, then an error.
type clientFailingBody struct {
	sent   bool
	closed atomic.Bool
}

func (b *clientFailingBody) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		return copy(p, "partial"), nil
	}
	return 0, errors.New("upload broke")
}

func (b *clientFailingBody) Close() error { b.closed.Store(true); return nil }

func TestClientRequestBodyErrors(t *testing.T) {
	handlerErr := make(chan error, 1)
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		handlerErr <- err
	}))
	tr, _ := newClientTestTransport(t)
	body := &clientFailingBody{}
	req, _ := http.NewRequest("POST", "http://"+addr+"/", nil)
	req.Body = body
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "upload broke") {
		t.Fatalf("RoundTrip error %v, want the body's error", err)
	}
	if err := <-handlerErr; err == nil {
		t.Error("server read a complete body; want the stream reset")
	}
	if !body.closed.Load() {
		t.Error("request body not closed")
	}

	// A length that the body does not match is an error, not a hang.
	req, _ = http.NewRequest("POST", "http://"+addr+"/", strings.NewReader("short"))
	req.ContentLength = 10
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "shorter") {
		t.Fatalf("RoundTrip error %v, want a short body error", err)
	}
	<-handlerErr
}

// TestClientStreamEndUnblocksBodyWriter: when the server answers in full
// and stops the upload (RST_STREAM NO_ERROR), a request body blocked in
// Read is closed, so that the body writer does not linger.
func TestClientStreamEndUnblocksBodyWriter(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "early answer")
	}))
	tr, _ := newClientTestTransport(t)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+addr+"/", pr)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "early answer" {
		t.Fatalf("body %q %v", b, err)
	}
	defer resp.Body.Close() // not before: closing would reset the stream itself
	wrote := make(chan error, 1)
	go func() {
		_, err := pw.Write([]byte("more")) // blocks until the reader side closes
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("write to the request body: %v, want io.ErrClosedPipe", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("request body still open after the stream ended")
	}
}

// clientWriteCounter counts Write calls on a connection: each is a syscall.
type clientWriteCounter struct {
	net.Conn
	writes *atomic.Int32
}

func (c clientWriteCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestClientOneWritePerBodylessRequest: a GET leaves in a single write (its
// HEADERS with END_STREAM), and reading a small response writes nothing.
func TestClientOneWritePerBodylessRequest(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 1024))
	}))
	var writes atomic.Int32
	tr := &Transport{Dial: func(ctx context.Context, network, a string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		return clientWriteCounter{c, &writes}, nil
	}}
	defer tr.Close()
	get := func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get() // connection setup: preface, SETTINGS, SETTINGS ack
	before := writes.Load()
	const n = 20
	for range n {
		get()
	}
	if got := writes.Load() - before; got != n {
		t.Fatalf("%d writes for %d GETs, want one each", got, n)
	}
}

// TestClientClosedBodiesReturnConnectionWindow: bytes of responses closed
// unread go back to the connection window; otherwise a few abandoned
// responses would exhaust its 1 MiB and stall the connection.
func TestClientClosedBodiesReturnConnectionWindow(t *testing.T) {
	written := make(chan struct{}, 1)
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 768<<10))
		w.(http.Flusher).Flush()
		written <- struct{}{}
	}))
	tr, dials := newClientTestTransport(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 6 {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		<-written // most of the response is sent, so mostly buffered unread
		if i%2 == 0 {
			_, _ = resp.Body.Read(make([]byte, 1))
			resp.Body.Close() // abandon most of it
			continue
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != 768<<10 {
			t.Fatalf("request %d: read %d bytes: %v", i, n, err)
		}
	}
	if d := dials.n.Load(); d != 1 {
		t.Errorf("%d dials, want 1", d)
	}
}
