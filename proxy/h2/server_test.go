package h2

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// serverTestEnv is a Server on a loopback listener.
type serverTestEnv struct {
	srv   *Server
	addr  string
	conns atomic.Int32
	serve chan error // ServeConn results
}

func startServer(t testing.TB, h http.Handler, configure ...func(*Server)) *serverTestEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &serverTestEnv{srv: &Server{Handler: h}, addr: ln.Addr().String(), serve: make(chan error, 1000)}
	for _, f := range configure {
		f(env.srv)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			env.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				env.serve <- env.srv.ServeConn(context.Background(), c)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := env.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		wg.Wait()
	})
	return env
}

// h2cClient is Go's HTTP/2 client with prior knowledge over cleartext.
func h2cClient(t testing.TB) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestServerSimpleGET(t *testing.T) {
	var got *http.Request
	var gotCookie string
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		gotCookie = r.Header.Get("Cookie")
		w.Header().Set("X-Answer", "42")
		io.WriteString(w, "hello")
	}))
	c := h2cClient(t)
	req, _ := http.NewRequest("GET", "http://"+env.addr+"/path?q=1", nil)
	req.Header.Add("Cookie", "a=1")
	req.Header.Add("Cookie", "b=2")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello" || resp.Header.Get("X-Answer") != "42" || resp.ProtoMajor != 2 {
		t.Fatalf("response %d %q %v proto %d", resp.StatusCode, body, resp.Header, resp.ProtoMajor)
	}
	if resp.ContentLength != 5 || resp.Header.Get("Content-Type") == "" || resp.Header.Get("Date") == "" {
		t.Errorf("content-length %d, header %v", resp.ContentLength, resp.Header)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"Proto", got.Proto, "HTTP/2.0"},
		{"ProtoMajor", got.ProtoMajor, 2},
		{"Method", got.Method, "GET"},
		{"Host", got.Host, env.addr},
		{"RequestURI", got.RequestURI, "/path?q=1"},
		{"URL.Path", got.URL.Path, "/path"},
		{"URL.RawQuery", got.URL.RawQuery, "q=1"},
		{"ContentLength", got.ContentLength, int64(0)},
		{"Body", got.Body, http.NoBody},
		{"Cookie", gotCookie, "a=1; b=2"},
		{"HostHeader", got.Header.Get("Host"), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if got.RemoteAddr == "" {
		t.Error("empty RemoteAddr")
	}
}

func TestServerStatusAndBodyRules(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
			if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic(fmt.Sprintf("write on 204: %v", err))
			}
		case "/cl":
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(201)
			w.WriteHeader(500) // ignored
			if _, err := w.Write([]byte("abcd")); !errors.Is(err, http.ErrContentLength) {
				panic(fmt.Sprintf("write beyond content-length: %v", err))
			}
			w.Write([]byte("abc"))
		default:
			w.Write(bytes.Repeat([]byte("x"), 100))
		}
	}))
	c := h2cClient(t)
	tests := []struct {
		method, path string
		status       int
		body         string
		cl           int64
	}{
		{"GET", "/204", 204, "", 0},
		{"GET", "/cl", 201, "abc", 3},
		{"HEAD", "/", 200, "", 100},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://"+env.addr+tt.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || string(body) != tt.body || resp.ContentLength != tt.cl {
			t.Errorf("%s %s: %d %q cl %d, want %d %q cl %d", tt.method, tt.path, resp.StatusCode, body, resp.ContentLength, tt.status, tt.body, tt.cl)
		}
	}
}

func TestServerLargeBodies(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Sum", fmt.Sprintf("%x", h.Sum(nil)))
		w.Header().Set("X-Len", fmt.Sprint(n))
		w.Write(bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16))
	}))
	c := h2cClient(t)
	payload := bytes.Repeat([]byte("meshscope"), 4<<20/9+1)
	resp, err := c.Post("http://"+env.addr+"/", "application/octet-stream", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if want := fmt.Sprintf("%x", sha256.Sum256(payload)); resp.Header.Get("X-Sum") != want || resp.Header.Get("X-Len") != fmt.Sprint(len(payload)) {
		t.Errorf("server saw len %s sum %s, want %d %s", resp.Header.Get("X-Len"), resp.Header.Get("X-Sum"), len(payload), want)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 4<<20 {
		t.Errorf("response body %d bytes, %v", n, err)
	}
}

func TestServerConcurrentStreams(t *testing.T) {
	var mu sync.Mutex
	remotes := map[string]int{}
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes[r.RemoteAddr]++
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	c := h2cClient(t)
	// One request first so that the others share its connection.
	if resp, err := c.Get("http://" + env.addr + "/"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strings.Repeat(fmt.Sprint(i), 1000)
			resp, err := c.Post("http://"+env.addr+"/", "text/plain", strings.NewReader(want))
			if err != nil {
				errs <- err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != want {
				errs <- fmt.Errorf("stream %d: %d bytes, %v", i, len(b), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Go's client may race to dial spare connections, which it closes
	// unused (without a preface); every request must have been served on
	// the one connection.
	mu.Lock()
	defer mu.Unlock()
	if len(remotes) != 1 {
		t.Errorf("requests served on %d connections, want 1: %v", len(remotes), remotes)
	}
}

func TestServerFullDuplex(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		if err := http.NewResponseController(w).Flush(); err != nil {
			panic(err)
		}
		s := bufio.NewScanner(r.Body)
		for s.Scan() {
			fmt.Fprintf(w, "echo %s\n", s.Text())
			w.(http.Flusher).Flush()
		}
	}))
	c := h2cClient(t)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", "http://"+env.addr+"/", pr)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 5 {
		fmt.Fprintf(pw, "line %d\n", i)
		got, err := br.ReadString('\n')
		if want := fmt.Sprintf("echo line %d\n", i); err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after close: %q, %v", rest, err)
	}
}

func TestServerTrailers(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Trailer["X-Req-Trailer"]; !ok {
			panic("request trailer not pre-declared")
		}
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Declared")
		w.Header().Set("X-Got", r.Trailer.Get("X-Req-Trailer"))
		w.WriteHeader(200)
		w.Write([]byte("body"))
		w.Header().Set("X-Declared", "d")
		w.Header().Set(http.TrailerPrefix+"X-Undeclared", "u")
	}))
	c := h2cClient(t)
	req, _ := http.NewRequest("POST", "http://"+env.addr+"/", io.MultiReader(strings.NewReader("abc")))
	req.Trailer = http.Header{"X-Req-Trailer": nil}
	req.Header.Set("Content-Type", "text/plain")
	// Fill the trailer once the body is read, as a streaming client does.
	req.Body = io.NopCloser(&trailerFiller{r: strings.NewReader("abc"), fill: func() { req.Trailer.Set("X-Req-Trailer", "t") }})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "body" || resp.Header.Get("X-Got") != "t" {
		t.Errorf("body %q, X-Got %q", body, resp.Header.Get("X-Got"))
	}
	if resp.Trailer.Get("X-Declared") != "d" || resp.Trailer.Get("X-Undeclared") != "u" {
		t.Errorf("trailers %v", resp.Trailer)
	}
}

type trailerFiller struct {
	r    io.Reader
	fill func()
}

func (f *trailerFiller) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		f.fill()
	}
	return n, err
}

func TestServerGRPC(t *testing.T) {
	gs := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	env := startServer(t, gs)
	cc, err := grpc.NewClient(env.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "up"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check: %v, %v", resp, err)
	}
	// An error status travels in trailers.
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check(unknown) = %v, want NotFound", err)
	}
	// Server streaming: Watch sends the current status, then each change.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	w, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch first: %v, %v", m, err)
	}
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch second: %v, %v", m, err)
	}
	wcancel()
	if _, err := w.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
}

func TestServerTrailersOnly(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "5")
		w.Header().Set("Grpc-Message", "nope")
	}))
	// A raw client sees one HEADERS frame with END_STREAM.
	rc := dialRaw(t, env.addr)
	rc.writeHeaders(1, true, ":method", "POST", ":scheme", "http", ":path", "/x", ":authority", "a", "content-type", "application/grpc")
	f := rc.readUntil(func(f any) bool { _, ok := f.(*rawHeaders); return ok }).(*rawHeaders)
	if !f.endStream || f.fields["grpc-status"] != "5" || f.fields[":status"] != "200" {
		t.Errorf("HEADERS end=%v fields %v", f.endStream, f.fields)
	}
}

func TestServerInformational(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Write([]byte("done"))
	}))
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		if h.Get("Link") == "" {
			t.Errorf("1xx without Link: %v", h)
		}
		got = append(got, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "http://"+env.addr+"/", nil)
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(got) != 1 || got[0] != 103 || string(body) != "done" || resp.Header.Get("Link") != "" {
		t.Errorf("1xx %v, body %q, header %v", got, body, resp.Header)
	}
}

func TestServerClientCancel(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan error, 1)
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
		// Writes fail once the stream is reset.
		var err error
		for range 1000 {
			if _, err = w.Write(make([]byte, 32<<10)); err != nil {
				break
			}
		}
		canceled <- err
	}))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+env.addr+"/", nil)
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	resp.Body.Close()
	select {
	case err := <-canceled:
		if err == nil {
			t.Error("writes after reset succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler context not canceled after client cancel")
	}
}

func TestServerHandlerPanic(t *testing.T) {
	logs := &bytes.Buffer{}
	var mu sync.Mutex
	remotes := map[string]bool{}
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		remotes[r.RemoteAddr] = true
		mu.Unlock()
		switch r.URL.Path {
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/boom":
			panic("boom")
		}
		w.Write([]byte("ok"))
	}), func(s *Server) { s.Logger = slogTo(logs, &mu) })
	c := h2cClient(t)
	for _, p := range []string{"/abort", "/boom"} {
		if resp, err := c.Get("http://" + env.addr + p); err == nil {
			resp.Body.Close()
			t.Errorf("%s: got response %d, want stream reset", p, resp.StatusCode)
		}
	}
	resp, err := c.Get("http://" + env.addr + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(remotes) != 1 {
		t.Errorf("requests served on %d connections, want 1 (panics must not close it)", len(remotes))
	}
	if !strings.Contains(logs.String(), "boom") || strings.Contains(logs.String(), "abort") {
		t.Errorf("log %q", logs.String())
	}
}

func TestServerUnreadBody(t *testing.T) {
	// The handler answers without reading a large body: the stream is
	// reset with NO_ERROR and the connection window comes back, so more
	// requests still flow on the same connection.
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("early"))
	}))
	c := h2cClient(t)
	for i := range 8 {
		resp, err := c.Post("http://"+env.addr+"/", "application/octet-stream", bytes.NewReader(make([]byte, 512<<10)))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "early" {
			t.Fatalf("request %d: %q", i, b)
		}
	}
}

func TestServerShutdownWaitsForStream(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		w.Write([]byte("finished"))
	}))
	c := h2cClient(t)
	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://" + env.addr + "/")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-started
	done := make(chan error, 1)
	go func() { done <- env.srv.Shutdown(context.Background()) }()
	// New connections are refused once shutdown began.
	a, b := net.Pipe()
	defer b.Close()
	for {
		env.srv.mu.Lock()
		sd := env.srv.shutdown
		env.srv.mu.Unlock()
		if sd {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := env.srv.ServeConn(context.Background(), a); !errors.Is(err, ErrServerClosed) {
		t.Errorf("ServeConn after Shutdown: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a stream in flight", err)
	default:
	}
	close(release)
	if r := <-res; r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-env.serve; err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

func TestServerHeaderListTooLarge(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server) { s.MaxHeaderBytes = 2048 })
	req, _ := http.NewRequest("GET", "http://"+env.addr+"/", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 1500))
	req.Header.Set("X-Big2", strings.Repeat("b", 1500))
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		// Go's client refuses to send beyond the advertised limit.
		if !strings.Contains(err.Error(), "header list") {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), func(s *Server) { s.IdleTimeout = 50 * time.Millisecond })
	rc := dialRaw(t, env.addr)
	ga := rc.readUntil(func(f any) bool { _, ok := f.(*rawGoAway); return ok }).(*rawGoAway)
	if ga.code != 0 {
		t.Errorf("GOAWAY code %v, want NO_ERROR", ga.code)
	}
	if err := <-env.serve; err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

// TestServerIdleTimeoutCountsFromLastStream: a stream running longer than
// the idle timeout keeps the connection; the timeout runs from the end of
// the last stream.
func TestServerIdleTimeoutCountsFromLastStream(t *testing.T) {
	const idle = 100 * time.Millisecond
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * idle) }),
		func(s *Server) { s.IdleTimeout = idle })
	rc := dialRaw(t, env.addr)
	rc.writeHeaders(1, true, rawGet...)
	first := rc.readUntil(func(f any) bool {
		switch f.(type) {
		case *rawHeaders, *rawGoAway:
			return true
		}
		return false
	})
	if _, ok := first.(*rawHeaders); !ok {
		t.Fatalf("%T before the response: a running stream must keep the connection", first)
	}
	ended := time.Now()
	rc.readUntil(isGoAway)
	if d := time.Since(ended); d < idle*8/10 {
		t.Errorf("GOAWAY %v after the last stream ended, want %v", d, idle)
	}
}

func TestServerExpectContinue(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	// A long ExpectContinueTimeout: the body goes out only after 100.
	tr := &http.Transport{Protocols: p, ExpectContinueTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "http://"+env.addr+"/", strings.NewReader("payload"))
	req.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "payload" {
		t.Errorf("body %q", b)
	}
}

func TestServerShortBodyResets(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		w.Write([]byte("abc"))
	}))
	resp, err := h2cClient(t).Get("http://" + env.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("short body read without error: %q", b)
	}
}
