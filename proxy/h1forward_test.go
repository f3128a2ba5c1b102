package proxy

import (
	"net"
	"net/http"
	"testing"
)

// TestLeanForwardMatchesReverseProxy sends bodyless requests through the
// lean forwarding path and through httputil.ReverseProxy of the same
// handler, each behind a real net/http server and the handler's response
// recorder (which keeps net/http from adding Date and Content-Type), and checks that the app
// and the client read the same messages: hop-by-hop fields removed both
// ways (also those Connection names), "Te: trailers" kept, no Go
// User-Agent added, 1xx responses, streamed and chunked bodies with
// trailers.
func TestLeanForwardMatchesReverseProxy(t *testing.T) {
	app := startRawApp(t)
	cfg := baseConfig("frontend")
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "backend", Addrs: []string{app.addr}}}
	p := startProxy(t, cfg)
	h, ok := p.listeners[0].srv.Handler.(*httpHandler)
	if !ok {
		t.Fatalf("listener handler is %T", p.listeners[0].srv.Handler)
	}
	lean := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.leanEligible(r) {
			t.Errorf("%s %s: not eligible for the lean path", r.Method, r.URL)
		}
		h.forwardLean(&recorder{w: w}, r, nil)
	}))
	reverse := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.rp.ServeHTTP(&recorder{w: w}, r)
	}))
	cases := []fidelityCase{
		{name: "hop-by-hop fields",
			request:  "GET /h HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\nTe: trailers, deflate\r\nX-End: 2\r\n\r\n",
			response: "HTTP/1.1 200 OK\r\nConnection: X-Resp\r\nX-Resp: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nContent-Length: 2\r\n\r\nok"},
		{name: "no user agent, query kept",
			request:  "OPTIONS /o?a=1;b=2 HTTP/1.1\r\nHost: shop\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n\r\n",
			response: "HTTP/1.1 204 No Content\r\nAllow: GET\r\n\r\n"},
		{name: "early hints then chunked with trailer",
			request:  "GET /c HTTP/1.1\r\nHost: shop\r\nTe: trailers\r\n\r\n",
			response: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 9\r\n\r\n"},
		{name: "event stream",
			request:  "GET /events HTTP/1.1\r\nHost: shop\r\nAccept: text/event-stream\r\n\r\n",
			response: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nContent-Length: 12\r\n\r\ndata: hi\n\n\n\n"},
		{name: "head",
			request:  "HEAD /big HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8\r\n\r\n",
			response: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nEtag: \"v1\"\r\n\r\n"},
		{name: "upstream error status",
			request:  "GET /fail HTTP/1.1\r\nHost: shop\r\n\r\n",
			response: "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy"},
	}
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			wantUp, wantClient := app.exchange(t, reverse, fc)
			gotUp, gotClient := app.exchange(t, lean, fc)
			if g, w := normalizeMessage(t, gotUp, "date"), normalizeMessage(t, wantUp, "date"); g != w {
				t.Errorf("the app read through the lean path\n%s\nthrough ReverseProxy\n%s", g, w)
			}
			if g, w := normalizeMessage(t, finalHead(gotClient), "date"), normalizeMessage(t, finalHead(wantClient), "date"); g != w {
				t.Errorf("the client read through the lean path\n%s\nthrough ReverseProxy\n%s", g, w)
			}
			if g, w := gotClient[:len(gotClient)-len(finalHead(gotClient))], wantClient[:len(wantClient)-len(finalHead(wantClient))]; g != w {
				t.Errorf("interim responses through the lean path %q, through ReverseProxy %q", g, w)
			}
		})
	}
}

// serveHandler serves h on a real net/http server and returns its address.
func serveHandler(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}
