package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestOwnedH1Loop sends raw requests on one connection to an outbound
// listener and checks the answers and whether the connection was handed
// over to the framing guard and net/http.
func TestOwnedH1Loop(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b))
	}))
	cfg := baseConfig("owned")
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	addr := p.ListenAddrs()[0]
	get := "GET /a?x=1 HTTP/1.1\r\nHost: app\r\n\r\n"
	tests := []struct {
		name      string
		send      []string // written one after the other, each after the previous answers
		want      []string // status and body of each response, in order
		handovers int64
		closed    bool // the proxy closes the connection after the last response
	}{
		{name: "keep-alive GETs", send: []string{get, get, get}, want: []string{"200 GET /a?x=1 ", "200 GET /a?x=1 ", "200 GET /a?x=1 "}},
		{name: "pipelined GETs", send: []string{get + "GET /b HTTP/1.1\r\nHost: app\r\n\r\n"}, want: []string{"200 GET /a?x=1 ", "200 GET /b "}},
		{name: "POST body hands over", send: []string{get, "POST /p HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\n\r\nhello", get},
			want: []string{"200 GET /a?x=1 ", "200 POST /p hello", "200 GET /a?x=1 "}, handovers: 1},
		{name: "smuggling after a GET", send: []string{get, "POST /p HTTP/1.1\r\nHost: app\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
			want: []string{"200 GET /a?x=1 ", "400 "}, handovers: 1, closed: true},
		{name: "bare LF", send: []string{"GET / HTTP/1.1\nHost: app\n\n"}, want: []string{"400 "}, handovers: 1, closed: true},
		{name: "no Host", send: []string{"GET / HTTP/1.1\r\n\r\n"}, want: []string{"400 "}, handovers: 1, closed: true},
		{name: "HTTP/1.0", send: []string{"GET /old HTTP/1.0\r\nHost: app\r\n\r\n"}, want: []string{"200 GET /old "}, handovers: 1, closed: true},
		{name: "Connection close", send: []string{"GET /c HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"}, want: []string{"200 GET /c "}, closed: true},
		{name: "oversize head", send: []string{"GET / HTTP/1.1\r\nHost: app\r\nX-Big: " + strings.Repeat("b", 2*cfg.MaxHeaderBytes) + "\r\n\r\n"}, want: []string{"431 "}, handovers: 1, closed: true},
	}
	l := p.listeners[0]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := l.handovers.Load()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			var got []string
			for _, s := range tc.send {
				if _, err := io.WriteString(c, s); err != nil {
					t.Fatal(err)
				}
				for n := strings.Count(s, " HTTP/1."); n > 0; n-- {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Fatalf("after %q: %v", got, err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					line := resp.Status[:4]
					if resp.StatusCode == 200 {
						line += string(b)
						if resp.Header.Get("X-Method") == "" {
							t.Errorf("response header lost: %v", resp.Header)
						}
					}
					got = append(got, line)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("responses %q, want %q", got, tc.want)
			}
			if n := l.handovers.Load() - before; n != tc.handovers {
				t.Errorf("%d handovers, want %d", n, tc.handovers)
			}
			if tc.closed {
				if b, err := br.ReadByte(); err == nil { // EOF, or a reset when unread bytes were left
					t.Errorf("connection not closed: read %q", b)
				}
			}
		})
	}
}

// TestOwnedH1Streaming checks that a flushed response part reaches the
// client before the upstream finishes (chunked through the owned writer).
func TestOwnedH1Streaming(t *testing.T) {
	release := make(chan struct{})
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	cfg := baseConfig("stream")
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	resp, err := http.Get("http://" + p.ListenAddrs()[0] + "/events")
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, err := br.ReadString('\n')
	close(release)
	if err != nil || first != "data: one\n" {
		t.Fatalf("first event %q, %v", first, err)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest %q", rest)
	}
	if p.listeners[0].handovers.Load() != 0 {
		t.Error("GET was handed over")
	}
}

// TestOwnedH1ClientGoneAfterFastRequests: the client-gone watcher, whose
// timer is not stopped between requests, still aborts a slow request
// that follows many fast ones on the same connection.
func TestOwnedH1ClientGoneAfterFastRequests(t *testing.T) {
	aborted := make(chan struct{}, 1)
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		select {
		case <-r.Context().Done():
			aborted <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	cfg := baseConfig("gone")
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	c, br := dialClient(t, p.ListenAddrs()[0])
	for i := 0; i < 30; i++ { // spread over more than one watch delay
		if _, err := io.WriteString(c, "GET /fast HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(h1WatchDelay / 10)
	}
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(h1WatchDelay / 2)
	c.Close()
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request was not aborted after the client left")
	}
}

// TestOwnedH1IdleTimeout: a connection idle longer than the idle timeout
// (plus its slack) is closed, and one that keeps sending requests stays
// open past it (the lazily extended deadline moves along).
func TestOwnedH1IdleTimeout(t *testing.T) {
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	cfg := baseConfig("idle")
	cfg.IdleTimeout = Duration(400 * time.Millisecond)
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	get := func(c net.Conn, br *bufio.Reader) error {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	busy, busyR := dialClient(t, p.ListenAddrs()[0])
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond {
		if err := get(busy, busyR); err != nil {
			t.Fatalf("busy connection failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	idle, idleR := dialClient(t, p.ListenAddrs()[0])
	if err := get(idle, idleR); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := idleR.ReadByte(); err == nil {
		t.Fatal("idle connection sent data")
	}
	if d := time.Since(start); d < 400*time.Millisecond || d > 3*time.Second {
		t.Errorf("idle connection closed after %v, want 400ms (+ slack)", d.Round(time.Millisecond))
	}
}

// dialClient connects a raw client to addr with a 10 s deadline, closed
// when the test ends.
func dialClient(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}
