package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fidelityCase is one request and the raw response the app answers it with.
type fidelityCase struct {
	name     string
	request  string
	response string
}

var fidelityCorpus = []fidelityCase{
	{
		name:     "get, names in any case and order, response without Date and Content-Type",
		request:  "GET /a?x=1;y=2 HTTP/1.1\r\nHost: shop\r\nuser-agent: curl/8\r\nX-Zed: 1\r\naccept: */*\r\nAccept: text/html\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	},
	{
		name:     "post with a body, response with Date and Content-Type",
		request:  "POST /items HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{\"id\": 1}",
		response: "HTTP/1.1 201 Created\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Type: application/json\r\nLocation: /items/1\r\nContent-Length: 2\r\n\r\n{}",
	},
	{
		name:     "chunked with trailers both ways",
		request:  "POST /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nTrailer: X-Result\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok!\r\n0\r\nX-Result: done\r\n\r\n",
	},
	{
		name:     "head, length without body",
		request:  "HEAD /big HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nEtag: \"v1\"\r\n\r\n",
	},
	{
		name:     "no content",
		request:  "DELETE /items/1 HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 204 No Content\r\nX-Request-Id: 42\r\n\r\n",
	},
	{
		name:     "not modified",
		request:  "GET /page HTTP/1.1\r\nHost: shop\r\nIf-None-Match: \"v1\"\r\n\r\n",
		response: "HTTP/1.1 304 Not Modified\r\nEtag: \"v1\"\r\nCache-Control: max-age=60\r\n\r\n",
	},
	{
		name:     "repeated fields keep their order",
		request:  "GET /c HTTP/1.1\r\nHost: shop\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nSet-Cookie: z=1\r\nSet-Cookie: a=2\r\nContent-Length: 0\r\n\r\n",
	},
	{
		name:     "html body that sniffing would label",
		request:  "GET /raw HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n<html>hi</html>",
	},
}

// teeConn records the bytes read from a connection.
type teeConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *teeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

func (c *teeConn) take() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.buf.String()
	c.buf.Reset()
	return s
}

// rawApp answers every request with the current case's raw response and
// records each raw request it read.
type rawApp struct {
	addr     string
	mu       sync.Mutex
	response string
	requests []string
}

func startRawApp(t *testing.T) *rawApp {
	t.Helper()
	a := &rawApp{}
	a.addr = rawServer(t, func(c net.Conn) {
		defer c.Close()
		tc := &teeConn{Conn: c}
		br := bufio.NewReader(tc)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, req.Body)
			a.mu.Lock()
			a.requests = append(a.requests, tc.take())
			resp := a.response
			a.mu.Unlock()
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
	return a
}

// exchange sends one raw request to addr and returns the raw request the
// app read and the raw response the client read.
func (a *rawApp) exchange(t *testing.T, addr string, fc fidelityCase) (upstream, client string) {
	t.Helper()
	a.mu.Lock()
	a.response, a.requests = fc.response, nil
	a.mu.Unlock()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, fc.request); err != nil {
		t.Fatal(err)
	}
	tc := &teeConn{Conn: c}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(fc.request)))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, req)
	for err == nil && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(br, req) // after a 1xx interim response
	}
	if err != nil {
		t.Fatalf("%s: response: %v", addr, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.requests) != 1 {
		t.Fatalf("the app read %d requests, want 1", len(a.requests))
	}
	return a.requests[0], tc.take()
}

// normalizeMessage turns a raw HTTP/1.1 message into a comparable form:
// the start line, the header and trailer lines with lower-cased names in
// a stable order (TestObserveModeHeaderCaseAndOrder checks case and
// order), the body with chunk framing removed, and the framing kind.
// Trace headers in skip are dropped.
func normalizeMessage(t *testing.T, raw string, skip ...string) string {
	t.Helper()
	head, rest, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		t.Fatalf("no end of head in %q", raw)
	}
	lines := strings.Split(head, "\r\n")
	fields := func(ls []string) []string {
		var out []string
		for _, l := range ls {
			name, value, _ := strings.Cut(l, ":")
			name = strings.ToLower(name)
			if slices.Contains(skip, name) {
				continue
			}
			out = append(out, name+": "+strings.TrimSpace(value))
		}
		slices.SortStableFunc(out, func(a, b string) int {
			an, _, _ := strings.Cut(a, ":")
			bn, _, _ := strings.Cut(b, ":")
			return strings.Compare(an, bn)
		})
		return out
	}
	hdr := fields(lines[1:])
	body, trailer := rest, []string(nil)
	chunked := slices.ContainsFunc(hdr, func(l string) bool { return strings.HasPrefix(l, "transfer-encoding: chunked") })
	if chunked {
		var b strings.Builder
		for {
			sizeLine, after, _ := strings.Cut(rest, "\r\n")
			var size int
			if _, err := fmt.Sscanf(sizeLine, "%x", &size); err != nil {
				t.Fatalf("chunk size %q: %v", sizeLine, err)
			}
			if size == 0 {
				tr, _, _ := strings.Cut(after, "\r\n\r\n")
				if tr != "" {
					trailer = fields(strings.Split(tr, "\r\n"))
				}
				break
			}
			b.WriteString(after[:size])
			rest = after[size+2:]
		}
		body = b.String()
	}
	return fmt.Sprintf("%s\n%s\n\n%q\ntrailer: %s", lines[0], strings.Join(hdr, "\n"), body, strings.Join(trailer, ", "))
}

// TestObserveModeFidelity sends a corpus of requests straight to an app
// and through an inbound and an outbound proxy, and compares what the app
// and the client read: the same start lines, fields (no Date or
// Content-Type added), bodies and trailers both ways; only the trace
// headers the proxy adds by design differ.
func TestObserveModeFidelity(t *testing.T) {
	app := startRawApp(t)
	icfg := baseConfig("backend")
	icfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app.addr}}
	in := startProxy(t, icfg)
	ocfg := baseConfig("frontend")
	ocfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "backend", Addrs: []string{app.addr}}}
	out := startProxy(t, ocfg)
	for _, fc := range fidelityCorpus {
		t.Run(fc.name, func(t *testing.T) {
			directUp, directClient := app.exchange(t, app.addr, fc)
			if directUp != fc.request || directClient != fc.response {
				t.Fatalf("direct exchange changed bytes: %q %q", directUp, directClient)
			}
			wantUp := normalizeMessage(t, directUp)
			wantClient := normalizeMessage(t, directClient)
			for _, p := range []*testProxy{in, out} {
				up, client := app.exchange(t, p.ListenAddrs()[0], fc)
				if got := normalizeMessage(t, up, "traceparent", "tracestate"); got != wantUp {
					t.Errorf("%s: the app read\n%s\nwant\n%s\n(raw %q)", p.cfg.Service, got, wantUp, up)
				}
				if got := normalizeMessage(t, client); got != wantClient {
					t.Errorf("%s: the client read\n%s\nwant\n%s\n(raw %q)", p.cfg.Service, got, wantClient, client)
				}
			}
		})
	}
}

// headLines returns the field lines of a raw HTTP/1.1 message's head, as
// written (name case and order kept), without the trace headers in skip.
func headLines(raw string, skip ...string) []string {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	var out []string
	for _, l := range strings.Split(head, "\r\n")[1:] {
		name, _, _ := strings.Cut(l, ":")
		if !slices.Contains(skip, strings.ToLower(name)) {
			out = append(out, l)
		}
	}
	return out
}

// TestObserveModeHeaderCaseAndOrder checks that field names reach the
// other side of an inbound and an outbound proxy in the case and order
// they were sent, both ways, on the lean path (GET) and http.Transport's
// (POST with a body, chunked response with trailers, 1xx before the
// response): the raw app records the bytes it reads, the client the
// bytes it gets. Only the trace context fields the proxy adds differ, and
// they come last; a traceparent the client sent keeps its place and case.
func TestObserveModeHeaderCaseAndOrder(t *testing.T) {
	app := startRawApp(t)
	icfg := baseConfig("backend")
	icfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app.addr}}
	in := startProxy(t, icfg)
	ocfg := baseConfig("frontend")
	ocfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "backend", Addrs: []string{app.addr}}}
	out := startProxy(t, ocfg)
	cases := []fidelityCase{
		{name: "get",
			request:  "GET /o HTTP/1.1\r\nx-zed: 1\r\nHost: shop\r\naccept: */*\r\nx-multi: b\r\nX-MULTI: a\r\nuser-agent: curl/8\r\n\r\n",
			response: "HTTP/1.1 200 OK\r\nx-zed: 1\r\nETAG: \"v\"\r\nset-cookie: b=1\r\nSet-Cookie: a=2\r\ncontent-length: 0\r\n\r\n"},
		{name: "post with traceparent",
			request:  "POST /p HTTP/1.1\r\nHOST: shop\r\nCONTENT-length: 2\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nz-last: 1\r\na-first: 2\r\n\r\nhi",
			response: "HTTP/1.1 201 Created\r\nzz: 1\r\ncontent-type: text/plain\r\nContent-LENGTH: 2\r\naa: 2\r\n\r\nok"},
		{name: "chunked response with trailer after 103",
			request:  "GET /c HTTP/1.1\r\nhost: shop\r\nexpect-ct: x\r\n\r\n",
			response: "HTTP/1.1 103 Early Hints\r\nlink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nx-b: 1\r\ntrailer: X-Sum\r\ntransfer-encoding: chunked\r\nA-c: 2\r\n\r\n2\r\nok\r\n0\r\nX-Sum: 9\r\n\r\n"},
	}
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			directUp, directClient := app.exchange(t, app.addr, fc)
			wantUp, wantClient := headLines(directUp), headLines(finalHead(directClient))
			for _, p := range []*testProxy{in, out} {
				up, client := app.exchange(t, p.ListenAddrs()[0], fc)
				got := headLines(up)
				if strings.HasPrefix(fc.name, "post with traceparent") { // replaced in place
					got = slices.Clone(got)
					for i, l := range got {
						if strings.HasPrefix(l, "traceparent: ") {
							got[i] = wantUp[i]
						}
					}
				}
				if len(got) < len(wantUp) || !slices.Equal(got[:len(wantUp)], wantUp) {
					t.Errorf("%s: the app read the fields\n%q\nwant (as sent, then trace context)\n%q", p.cfg.Service, got, wantUp)
				}
				for _, l := range got[min(len(wantUp), len(got)):] {
					if name, _, _ := strings.Cut(l, ":"); name != "Traceparent" && name != "Tracestate" {
						t.Errorf("%s: the app read an added field %q", p.cfg.Service, l)
					}
				}
				if got := headLines(finalHead(client)); !slices.Equal(got, wantClient) {
					t.Errorf("%s: the client read the fields\n%q\nwant (as the app sent them)\n%q\n(raw %q)", p.cfg.Service, got, wantClient, client)
				}
			}
		})
	}
}

// finalHead drops 1xx interim heads from a raw response.
func finalHead(raw string) string {
	for strings.HasPrefix(raw, "HTTP/1.1 1") && !strings.HasPrefix(raw, "HTTP/1.1 101") {
		_, raw, _ = strings.Cut(raw, "\r\n\r\n")
	}
	return raw
}
