package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// smugglingCase is one line of testdata/smuggling.txt.
type smugglingCase struct {
	name    string
	status  int // refused with this status; 0 = forwarded
	pass    int // requests the upstream must see when forwarded
	request []byte
}

func loadSmugglingCorpus(t *testing.T) []smugglingCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "smuggling.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var out []smugglingCase
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			t.Fatalf("smuggling.txt:%d: want name, expect and request separated by tabs", i+1)
		}
		req, err := strconv.Unquote(f[2])
		if err != nil {
			t.Fatalf("smuggling.txt:%d: request: %v", i+1, err)
		}
		c := smugglingCase{name: f[0], request: []byte(req)}
		if n, ok := strings.CutPrefix(f[1], "pass "); ok {
			c.pass, err = strconv.Atoi(n)
		} else {
			c.status, err = strconv.Atoi(f[1])
		}
		if err != nil {
			t.Fatalf("smuggling.txt:%d: expect %q: %v", i+1, f[1], err)
		}
		out = append(out, c)
	}
	return out
}

// recordingApp is an HTTP/1.1 app that records the raw bytes it receives
// and the requests it serves.
type recordingApp struct {
	addr string

	mu    sync.Mutex
	raw   bytes.Buffer
	paths []string
	// bodyErr is the error reading the last request's body, if any.
	bodyErr error
	// started is signalled when a request's first 5 body bytes were read.
	started chan struct{}
}

type recordingConn struct {
	net.Conn
	app *recordingApp
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.app.mu.Lock()
	c.app.raw.Write(p[:n])
	c.app.mu.Unlock()
	return n, err
}

type recordingListener struct {
	net.Listener
	app *recordingApp
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{Conn: c, app: l.app}, nil
}

func startRecordingApp(t *testing.T) *recordingApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &recordingApp{addr: ln.Addr().String(), started: make(chan struct{}, 1)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		head := make([]byte, 5)
		n, err := io.ReadFull(r.Body, head)
		if n == 5 {
			select {
			case a.started <- struct{}{}:
			default:
			}
		}
		if err == nil {
			_, err = io.Copy(io.Discard, r.Body)
		} else if errors.Is(err, io.ErrUnexpectedEOF) || err == io.EOF {
			err = nil
		}
		a.mu.Lock()
		a.paths = append(a.paths, r.URL.Path)
		a.bodyErr = err
		a.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	})}
	go func() { _ = srv.Serve(recordingListener{Listener: ln, app: a}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

// reset forgets what was received so far.
func (a *recordingApp) reset() {
	a.mu.Lock()
	a.raw.Reset()
	a.paths, a.bodyErr = nil, nil
	a.mu.Unlock()
}

func (a *recordingApp) seen() (raw string, paths []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.raw.String(), append([]string(nil), a.paths...)
}

// smugglingResult is what a client saw sending one case.
type smugglingResult struct {
	statuses []int // the statuses of the responses read
	closed   bool  // the connection was closed after them
	err      error
}

func (r smugglingResult) String() string {
	if r.err != nil && len(r.statuses) == 0 {
		return "no response (" + r.err.Error() + ")"
	}
	s := fmt.Sprint(r.statuses)
	if r.closed {
		s += " closed"
	} else {
		s += " open"
	}
	return s
}

// sendRaw writes req to addr and reads up to want responses (waiting up to
// wait), then, when closeWait > 0, whether the connection is closed within
// closeWait.
func sendRaw(addr string, req []byte, want int, wait, closeWait time.Duration) smugglingResult {
	return sendRawWith(func() (net.Conn, error) { return net.Dial("tcp", addr) }, req, want, wait, closeWait)
}

// sendRawWith is sendRaw over a connection from dial.
func sendRawWith(dial func() (net.Conn, error), req []byte, want int, wait, closeWait time.Duration) smugglingResult {
	var res smugglingResult
	c, err := dial()
	if err != nil {
		res.err = err
		return res
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(req); err != nil {
		res.err = err
		return res
	}
	br := bufio.NewReader(c)
	for len(res.statuses) < want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			res.err = err
			res.closed = errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
			return res
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		res.statuses = append(res.statuses, resp.StatusCode)
		if resp.Close {
			break
		}
	}
	if closeWait <= 0 {
		return res
	}
	// A closed connection reads EOF at once; an open one times out.
	_ = c.SetReadDeadline(time.Now().Add(closeWait))
	_, err = br.ReadByte()
	res.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	return res
}

// startNginx runs the Debian nginx as a reverse proxy in front of app, or
// returns "" when nginx is not installed.
func startNginx(t *testing.T, app string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			return ""
		}
		bin = "/usr/sbin/nginx"
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen %[2]s;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, addr, app)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited: %s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s: %s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSmugglingCorpus sends every case of testdata/smuggling.txt through
// the proxy's inbound and outbound listeners (plain and over TLS the proxy
// terminates) and, when installed, nginx,
// and checks that no smuggled request reaches the upstream and that the
// proxy refuses bad framing with the corpus' status, forwarding nothing
// and closing the connection.
func TestSmugglingCorpus(t *testing.T) {
	corpus := loadSmugglingCorpus(t)
	inApp, outApp := startRecordingApp(t), startRecordingApp(t)
	icfg := baseConfig("backend")
	icfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: inApp.addr}}
	in := startProxy(t, icfg)
	ocfg := baseConfig("frontend")
	ocfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "backend", Addrs: []string{outApp.addr}, Protocol: ProtocolHTTP}}
	out := startProxy(t, ocfg)
	// The same inbound listener, reached over TLS the proxy terminates.
	certFile, keyFile, pool := writeCert(t)
	tlsApp := startRecordingApp(t)
	tcfg := baseConfig("backend")
	tcfg.TLS = TLS{CertFile: certFile, KeyFile: keyFile}
	tcfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: tlsApp.addr}}
	tin := startProxy(t, tcfg)
	dialTCP := func(addr string) func() (net.Conn, error) {
		return func() (net.Conn, error) { return net.Dial("tcp", addr) }
	}
	dialTLS := func() (net.Conn, error) {
		return tls.Dial("tcp", tin.ListenAddrs()[0], &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	}
	targets := []struct {
		name string
		dial func() (net.Conn, error)
		app  *recordingApp
		p    *testProxy
	}{
		{"inbound", dialTCP(in.ListenAddrs()[0]), inApp, in},
		{"outbound", dialTCP(out.ListenAddrs()[0]), outApp, out},
		{"inbound over TLS", dialTLS, tlsApp, tin},
	}
	var nginxApp *recordingApp
	var nginx string
	if testing.Short() {
		t.Log("-short: nginx side skipped")
	} else {
		nginxApp = startRecordingApp(t)
		if nginx = startNginx(t, nginxApp.addr); nginx == "" {
			t.Log("nginx not installed: nginx side skipped")
		}
	}
	refused := 0
	var results []string
	defer func() {
		if len(results) > 0 {
			t.Logf("corpus results:\n%s", strings.Join(results, "\n"))
		}
	}()
	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			want := max(c.pass, 1)
			for _, tg := range targets {
				tg.app.reset()
				closeWait := time.Duration(0)
				if c.status != 0 {
					closeWait = 5 * time.Second // the proxy closes at once
				}
				res := sendRawWith(tg.dial, c.request, want, 10*time.Second, closeWait)
				raw, paths := tg.app.seen()
				if strings.Contains(raw, "/smuggled") && !strings.Contains(c.name, "body_looks_like_request") {
					t.Errorf("%s: upstream received a smuggled request: %q", tg.name, raw)
				}
				if c.status != 0 {
					if len(res.statuses) != 1 || res.statuses[0] != c.status || !res.closed {
						t.Errorf("%s: got %v, want %d and the connection closed", tg.name, res, c.status)
					}
					if raw != "" {
						t.Errorf("%s: upstream received %q, want nothing", tg.name, raw)
					}
					continue
				}
				if len(res.statuses) != c.pass || len(paths) != c.pass {
					t.Errorf("%s: got %v, upstream served %v; want %d forwarded", tg.name, res, paths, c.pass)
				}
				for _, s := range res.statuses {
					if s != http.StatusOK {
						t.Errorf("%s: status %d, want 200", tg.name, s)
					}
				}
			}
			if nginx == "" {
				return
			}
			nginxApp.reset()
			// nginx is only observed: short waits keep the test fast.
			res := sendRaw(nginx, c.request, want, 2*time.Second, 200*time.Millisecond)
			_, paths := nginxApp.seen()
			nginxRefused := len(paths) == 0 && len(res.statuses) > 0 && res.statuses[0] >= 400
			results = append(results, fmt.Sprintf("%-32s proxy %-7s nginx %v (upstream served %d)", c.name, expectString(c), res, len(paths)))
			// nginx is the reference: the proxy must refuse whatever it refuses.
			if nginxRefused && c.status == 0 {
				t.Errorf("nginx refuses this request (%v) but the proxy forwards it", res)
			}
		})
		if c.status != 0 {
			refused++
		}
	}
	// Every refusal is counted by reason.
	for _, tg := range targets {
		if got := tg.p.value(t, "meshscope_proxy_rejected_requests_total", nil); got != float64(refused) {
			t.Errorf("%s: meshscope_proxy_rejected_requests_total = %v, want %d", tg.name, got, refused)
		}
	}
}

func expectString(c smugglingCase) string {
	if c.status != 0 {
		return strconv.Itoa(c.status)
	}
	return "pass " + strconv.Itoa(c.pass)
}

// TestBadChunkAbortsUpstream sends a chunked request whose bad chunk
// arrives after the upstream started receiving the body: the upstream
// request is aborted before its last chunk, the client gets 400 and its
// connection is closed.
func TestBadChunkAbortsUpstream(t *testing.T) {
	app := startRecordingApp(t)
	cfg := baseConfig("backend")
	cfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app.addr}}
	p := startProxy(t, cfg)
	c, err := net.Dial("tcp", p.ListenAddrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-app.started:
	case <-time.After(15 * time.Second):
		t.Fatal("the app never received the first chunk")
	}
	if _, err := io.WriteString(c, "zz\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "chunk size") {
		t.Errorf("status %d %q, want 400 naming the chunk size", resp.StatusCode, body)
	}
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("connection not closed after the framing error: %v", err)
	}
	eventually(t, "the app's body read fails", func() bool {
		_, paths := app.seen()
		app.mu.Lock()
		defer app.mu.Unlock()
		return len(paths) == 1 && app.bodyErr != nil
	})
	raw, paths := app.seen()
	if strings.Contains(raw, "\r\n0\r\n\r\n") || strings.Contains(raw, "smuggled") || len(paths) != 1 {
		t.Errorf("upstream received a complete message or more: served %v, raw %q", paths, raw)
	}
	if got := p.value(t, "meshscope_proxy_rejected_requests_total", map[string]string{"reason": "chunk_size"}); got != 1 {
		t.Errorf("rejected{reason=chunk_size} = %v, want 1", got)
	}
}

// TestHeaderSizeLimit checks that request heads above max_header_bytes get
// 431 and nothing is forwarded, and that heads just under it pass.
func TestHeaderSizeLimit(t *testing.T) {
	app := startRecordingApp(t)
	for _, limit := range []int{0, 8 << 10} { // 0: the default, 64 KB
		cfg := baseConfig("backend")
		cfg.Inbound = []Inbound{{Listen: "127.0.0.1:0", App: app.addr}}
		if limit != 0 {
			cfg.MaxHeaderBytes = limit
		}
		limit = cfg.MaxHeaderBytes
		p := startProxy(t, cfg)
		head := func(size int) []byte {
			start := "GET /a HTTP/1.1\r\nHost: x\r\nX-Big: "
			pad := size - len(start) - 4
			return []byte(start + strings.Repeat("a", pad) + "\r\n\r\n")
		}
		for _, tc := range []struct {
			size   int
			status int
		}{
			{limit, http.StatusOK},
			{limit + 1, http.StatusRequestHeaderFieldsTooLarge},
			{limit + 64<<10, http.StatusRequestHeaderFieldsTooLarge},
		} {
			app.reset()
			closeWait := time.Duration(0)
			if tc.status != http.StatusOK {
				closeWait = 5 * time.Second
			}
			res := sendRaw(p.ListenAddrs()[0], head(tc.size), 1, 10*time.Second, closeWait)
			raw, _ := app.seen()
			if len(res.statuses) != 1 || res.statuses[0] != tc.status {
				t.Errorf("limit %d, head of %d bytes: got %v, want %d", limit, tc.size, res, tc.status)
			}
			if tc.status != http.StatusOK && (raw != "" || !res.closed) {
				t.Errorf("limit %d, head of %d bytes: upstream received %d bytes, closed=%v; want nothing and closed", limit, tc.size, len(raw), res.closed)
			}
		}
	}
}

// pipeConn is a net.Conn that reads from a fixed input and discards writes.
type pipeConn struct {
	net.Conn // nil: only Read, Write and Close are used
	r        io.Reader
}

func (c *pipeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *pipeConn) Close() error                { return nil }

// FuzzGuardConn feeds arbitrary bytes, in arbitrary read sizes, through the
// framing guard: it must not panic, must release a prefix of its input,
// and once it refused a request it must release nothing beyond it.
func FuzzGuardConn(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "smuggling.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fs := strings.SplitN(line, "\t", 3); len(fs) == 3 && line[0] != '#' {
			if req, err := strconv.Unquote(fs[2]); err == nil {
				f.Add([]byte(req), uint8(7))
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var rejected *framingError
		g := newGuardConn(&pipeConn{r: &stepReader{b: in, step: int(step)%64 + 1}}, 1024, func(fe *framingError) { rejected = fe })
		var out []byte
		buf := make([]byte, 100)
		for i := 0; i < 10*len(in)+10; i++ {
			n, err := g.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("released %q, not a prefix of the input %q", out, in)
		}
		if rejected != nil && rejected.status == 0 {
			t.Fatalf("refusal without status: %+v", rejected)
		}
	})
}

// stepReader returns at most step bytes per Read.
type stepReader struct {
	b    []byte
	step int
}

func (r *stepReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b[:min(len(r.b), r.step)])
	r.b = r.b[n:]
	return n, nil
}

// loopReader repeats one request forever.
type loopReader struct {
	req []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.req[r.off:])
	r.off = (r.off + n) % len(r.req)
	return n, nil
}

// BenchmarkGuardConn measures the framing guard's cost per request head
// (a typical 10-field GET), read as net/http's server reads it.
func BenchmarkGuardConn(b *testing.B) {
	req := []byte("GET /api/items/42?x=1 HTTP/1.1\r\nHost: catalog:8080\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.5\r\n" +
		"Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nTracestate: meshscope=web/v1\r\n" +
		"Cookie: session=abc123\r\nX-Request-Id: 7d1f0c\r\nConnection: keep-alive\r\n\r\n")
	g := newGuardConn(&pipeConn{r: &loopReader{req: req}}, 64<<10, nil)
	buf := make([]byte, 4096)
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	got := 0
	for b.Loop() {
		for got < len(req) {
			n, err := g.Read(buf[:min(len(buf), len(req)-got)])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		got -= len(req)
	}
}
