package proxy

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// verbatimCorpus holds upstream responses the verbatim head takes, then
// ones it leaves to the header map path.
var verbatimCorpus = []fidelityCase{
	{name: "plain",
		request:  "GET /a HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
	{name: "names in any case, padded and empty values",
		request:  "GET /b HTTP/1.1\r\nHost: shop\r\nUser-Agent: curl/8\r\n\r\n",
		response: "HTTP/1.1 404 Not Found\r\ncontent-length:\t3 \r\nx-trace-ID:  a b  \r\nX-Empty:\r\nETAG:\"v\"\r\n\r\nnah"},
	{name: "repeated fields between others",
		request:  "GET /c HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nSet-Cookie: z=1\r\nX-A: 1\r\nSet-Cookie: a=2\r\nContent-Length: 0\r\nset-cookie: m=3\r\n\r\n"},
	{name: "status without reason, and one without a text",
		request:  "GET /d HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 503\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nbusy"},
	{name: "unknown status with its own reason",
		request:  "GET /e HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 299 Fine Really\r\nContent-Length: 2\r\n\r\nok"},
	{name: "client asks to close",
		request:  "GET /f HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{name: "body filling most of the buffer",
		request:  "GET /g HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n" + strings.Repeat("x", 3000)},
	{name: "body larger than the buffer",
		request:  "GET /h HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + strings.Repeat("y", 9000)},
	{name: "event stream read whole",
		request:  "GET /es HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\ncontent-type:  Text/Event-Stream; charset=utf-8\r\nContent-Length: 12\r\n\r\ndata: hi\n\n\n\n"},
	// The header map path from here on.
	{name: "event stream longer than the buffer",
		request:  "GET /el HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 6000\r\n\r\n" + strings.Repeat("data: x\n\n", 600)},
	{name: "hop-by-hop fields",
		request:  "GET /i HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nContent-Length: 2\r\n\r\nok"},
	{name: "connection names a field",
		request:  "GET /j HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nConnection: X-Resp\r\nX-Resp: 1\r\nContent-Length: 2\r\n\r\nok"},
	{name: "pragma",
		request:  "GET /k HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 2\r\n\r\nok"},
	{name: "chunked",
		request:  "GET /l HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
	{name: "head",
		request:  "HEAD /m HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
	{name: "no content",
		request:  "GET /n HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 204 No Content\r\nX-Id: 1\r\n\r\n"},
	{name: "early hints first",
		request:  "GET /o HTTP/1.1\r\nHost: shop\r\n\r\n",
		response: "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
}

// orderedRequests are requests whose heads the upstream connection writes
// in the client's order at once (writeRequestHeadInOrder), then ones it
// leaves to the sorted write and reorderHead.
var orderedRequests = []fidelityCase{
	{name: "names in any case and order",
		request: "GET /r1 HTTP/1.1\r\nx-zed: 1\r\nHost: shop\r\naccept: */*\r\nx-multi: b\r\nX-MULTI: a\r\nuser-agent: curl/8\r\nAccept: text/html\r\n\r\n"},
	{name: "trace context sent in the middle",
		request: "GET /r2 HTTP/1.1\r\nHOST: shop\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nz-last: 1\r\ntracestate: a=1\r\na-first: 2\r\n\r\n"},
	{name: "hop-by-hop fields, no user agent",
		request: "GET /r3 HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nX-End: 2\r\n\r\n"},
	{name: "two user agents, pragma, zero length",
		request: "GET /r4 HTTP/1.1\r\nUser-Agent: a\r\nHost: shop\r\nuser-agent: b\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n"},
	{name: "b3 fields",
		request: "GET /r5 HTTP/1.1\r\nHost: shop\r\nX-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\nX-B3-ParentSpanId: 0020000000000001\r\nX-B3-Sampled: 1\r\nX-B3-Flags: 1\r\n\r\n"},
	{name: "b3 single field",
		request: "HEAD /r6 HTTP/1.1\r\nb3: 463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1\r\nHost: shop\r\n\r\n"},
	{name: "padded and empty values, escaped query",
		request: "GET /r7?q=a%20b&x HTTP/1.1\r\nHost:   shop  \r\nX-Pad:  a  b \r\nX-Empty:\r\n\r\n"},
	{name: "options (sorted, then reordered)",
		request: "OPTIONS /r8 HTTP/1.1\r\nx-b: 1\r\nHost: shop\r\nX-A: 1\r\n\r\n"},
}

// maskTraceValues replaces the values of the trace context fields in a
// raw message's head, which differ from request to request, by "*".
func maskTraceValues(raw string) string {
	head, rest, _ := strings.Cut(raw, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	for i, l := range lines[1:] {
		name, _, _ := strings.Cut(l, ":")
		switch n := strings.ToLower(name); {
		case n == "traceparent", n == "tracestate", n == "b3", strings.HasPrefix(n, "x-b3-"):
			lines[i+1] = name + ": *"
		}
	}
	return strings.Join(lines, "\r\n") + "\r\n\r\n" + rest
}

// verbatimTaken is how many cases at the start of verbatimCorpus the
// verbatim head takes.
const verbatimTaken = 9

// TestVerbatimResponseMatchesHeaderMapPath sends each case through an
// inbound and an outbound proxy with the verbatim response head and the
// request head written in order at once, and through the same proxies
// without them (the header map, sorted writes and reorderHead), and
// checks that the app and the client read the same bytes, but for the
// values of the trace context fields.
func TestVerbatimResponseMatchesHeaderMapPath(t *testing.T) {
	app := startRawApp(t)
	off := func(p *Proxy) { p.fast.mapsOnly = true }
	icfg := baseConfig("backend")
	icfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app.addr}}
	ocfg := baseConfig("frontend")
	ocfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "backend", Addrs: []string{app.addr}}}
	pairs := [][2]*testProxy{
		{startProxy(t, icfg), startProxyWith(t, icfg, off)},
		{startProxy(t, ocfg), startProxyWith(t, ocfg, off)},
	}
	cases := slices.Clone(verbatimCorpus)
	for _, fc := range orderedRequests {
		fc.response = verbatimCorpus[0].response
		cases = append(cases, fc)
	}
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			for _, pair := range pairs {
				upOn, on := app.exchange(t, pair[0].ListenAddrs()[0], fc)
				upOff, off := app.exchange(t, pair[1].ListenAddrs()[0], fc)
				if on != off {
					t.Errorf("%s: the client read\n%q\nwith the verbatim head, and\n%q\nwithout", pair[0].cfg.Service, on, off)
				}
				if g, w := maskTraceValues(upOn), maskTraceValues(upOff); g != w {
					t.Errorf("%s: the app read\n%q\nwith the verbatim head, and\n%q\nwithout", pair[0].cfg.Service, g, w)
				}
				for _, l := range headLines(upOn) {
					name, value, _ := strings.Cut(l, ":")
					switch n := strings.ToLower(name); {
					case n == "te" && strings.TrimSpace(value) == "trailers":
					case n == "connection", n == "keep-alive", n == "proxy-connection", n == "proxy-authorization", n == "te", n == "x-hop":
						t.Errorf("%s: the app read the hop-by-hop field %q", pair[0].cfg.Service, l)
					}
				}
			}
		})
	}
}

// TestAppendVerbatimHead checks which heads the verbatim path takes and
// what it forwards of them.
func TestAppendVerbatimHead(t *testing.T) {
	for i, fc := range verbatimCorpus {
		t.Run(fc.name, func(t *testing.T) {
			method, _, _ := strings.Cut(fc.request, " ")
			head, body, _ := strings.Cut(fc.response, "\r\n\r\n")
			br := bufio.NewReaderSize(strings.NewReader(fc.response), 4096)
			if _, err := br.Peek(1); err != nil {
				t.Fatal(err)
			}
			buffered := br.Buffered()
			prefix := []byte("kept:")
			out, code, cl, ok := appendVerbatimHead(prefix, br, &http.Request{Method: method})
			if ok != (i < verbatimTaken) {
				t.Fatalf("taken %v, want %v", ok, i < verbatimTaken)
			}
			if !ok {
				if string(out) != "kept:" || br.Buffered() != buffered {
					t.Fatalf("declined, but dst is %q and %d of %d bytes are left", out, br.Buffered(), buffered)
				}
				return
			}
			if cl != int64(len(body)) {
				t.Errorf("Content-Length %d, want %d", cl, len(body))
			}
			if rest, _ := br.Peek(br.Buffered()); br.Buffered() != buffered-len(head)-4 || !strings.HasPrefix(body, string(rest)) {
				t.Errorf("%d bytes left after the head, want the %d of the body read so far", br.Buffered(), buffered-len(head)-4)
			}
			if want, _ := strconv.Atoi(fc.response[len("HTTP/1.1 ") : len("HTTP/1.1 ")+3]); code != want {
				t.Errorf("code %d, want %d", code, want)
			}
			var want strings.Builder
			want.WriteString("kept:")
			for _, line := range strings.Split(head, "\r\n")[1:] {
				name, value, _ := strings.Cut(line, ":")
				want.WriteString(name + ": " + strings.Trim(value, " \t") + "\r\n")
			}
			if string(out) != want.String() {
				t.Errorf("forwarded\n%q\nwant\n%q", out, want.String())
			}
		})
	}
}
