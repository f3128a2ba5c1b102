package h2

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient speaks HTTP/2 frame by frame, to provoke protocol errors.
type rawClient struct {
	t    testing.TB
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

type rawHeaders struct {
	id        uint32
	endStream bool
	fields    map[string]string
}
type rawGoAway struct {
	last uint32
	code http2.ErrCode
}
type rawRST struct {
	id   uint32
	code http2.ErrCode
}
type rawData struct {
	id   uint32
	data []byte
	end  bool
}

func dialRawNoPreface(t testing.TB, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawClient{t: t, c: c}
	rc.init()
	return rc
}

func (rc *rawClient) init() {
	rc.fr = http2.NewFramer(rc.c, rc.c)
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.henc = hpack.NewEncoder(&rc.hbuf)
}

// dialRaw connects and sends the preface and an empty SETTINGS frame.
func dialRaw(t testing.TB, addr string, settings ...http2.Setting) *rawClient {
	rc := dialRawNoPreface(t, addr)
	if _, err := io.WriteString(rc.c, serverPreface); err != nil {
		t.Fatal(err)
	}
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawClient) writeHeaders(id uint32, end bool, kv ...string) {
	rc.t.Helper()
	rc.hbuf.Reset()
	for i := 0; i < len(kv); i += 2 {
		rc.henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		rc.t.Fatal(err)
	}
}

// readUntil returns the first frame for which match is true, failing the
// test on a read error or timeout.
func (rc *rawClient) readUntil(match func(any) bool) any {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("reading frames: %v", err)
		}
		var v any
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			m := map[string]string{}
			for _, hf := range f.Fields {
				m[hf.Name] = hf.Value
			}
			v = &rawHeaders{f.StreamID, f.StreamEnded(), m}
		case *http2.GoAwayFrame:
			v = &rawGoAway{f.LastStreamID, f.ErrCode}
		case *http2.RSTStreamFrame:
			v = &rawRST{f.StreamID, f.ErrCode}
		case *http2.DataFrame:
			v = &rawData{f.StreamID, append([]byte(nil), f.Data()...), f.StreamEnded()}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				rc.fr.WriteSettingsAck()
			}
			v = f
		default:
			v = f
		}
		if match(v) {
			return v
		}
	}
}

func isGoAway(f any) bool { _, ok := f.(*rawGoAway); return ok }
func isRST(f any) bool    { _, ok := f.(*rawRST); return ok }

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body); w.Write([]byte("ok")) })
}

var rawGet = []string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "a"}

func TestServerProtocolErrors(t *testing.T) {
	env := startServer(t, okHandler())
	tests := []struct {
		name    string
		preface bool
		send    func(rc *rawClient)
		want    any // *rawGoAway or *rawRST (matched on code and stream)
	}{
		{"bad preface", false, func(rc *rawClient) { io.WriteString(rc.c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") },
			&rawGoAway{code: http2.ErrCodeProtocol}},
		{"first frame not SETTINGS", false, func(rc *rawClient) {
			io.WriteString(rc.c, serverPreface)
			rc.fr.WritePing(false, [8]byte{})
		}, &rawGoAway{code: http2.ErrCodeProtocol}},
		{"decreasing stream id", true, func(rc *rawClient) {
			rc.writeHeaders(5, true, rawGet...)
			rc.writeHeaders(3, true, rawGet...)
		}, &rawGoAway{code: http2.ErrCodeProtocol}},
		{"DATA on idle stream", true, func(rc *rawClient) { rc.fr.WriteData(7, true, []byte("x")) },
			&rawGoAway{code: http2.ErrCodeProtocol}},
		{"even stream id", true, func(rc *rawClient) { rc.writeHeaders(2, true, rawGet...) },
			&rawGoAway{code: http2.ErrCodeProtocol}},
		{"PUSH_PROMISE", true, func(rc *rawClient) {
			rc.writeHeaders(1, false, rawGet...)
			rc.hbuf.Reset()
			rc.henc.WriteField(hpack.HeaderField{Name: ":method", Value: "GET"})
			rc.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: rc.hbuf.Bytes(), EndHeaders: true})
		}, &rawGoAway{code: http2.ErrCodeProtocol}},
		{"connection-specific field", true, func(rc *rawClient) {
			rc.writeHeaders(1, true, append(rawGet, "connection", "keep-alive")...)
		}, &rawRST{id: 1, code: http2.ErrCodeProtocol}},
		{"te other than trailers", true, func(rc *rawClient) {
			rc.writeHeaders(1, true, append(rawGet, "te", "gzip")...)
		}, &rawRST{id: 1, code: http2.ErrCodeProtocol}},
		{"uppercase field name", true, func(rc *rawClient) {
			rc.writeHeaders(1, true, append(rawGet, "X-Upper", "1")...)
		}, &rawRST{id: 1, code: http2.ErrCodeProtocol}},
		{"missing :path", true, func(rc *rawClient) {
			rc.writeHeaders(1, true, ":method", "GET", ":scheme", "http", ":authority", "a")
		}, &rawRST{id: 1, code: http2.ErrCodeProtocol}},
		{"body longer than content-length", true, func(rc *rawClient) {
			rc.writeHeaders(1, false, append([]string{":method", "POST", ":scheme", "http", ":path", "/", ":authority", "a"}, "content-length", "2")...)
			rc.fr.WriteData(1, true, []byte("abc"))
		}, &rawRST{id: 1, code: http2.ErrCodeProtocol}},
		{"connection window overflow", true, func(rc *rawClient) {
			rc.fr.WriteWindowUpdate(0, 1<<31-1)
		}, &rawGoAway{code: http2.ErrCodeFlowControl}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rc *rawClient
			if tt.preface {
				rc = dialRaw(t, env.addr)
			} else {
				rc = dialRawNoPreface(t, env.addr)
			}
			tt.send(rc)
			switch want := tt.want.(type) {
			case *rawGoAway:
				got := rc.readUntil(isGoAway).(*rawGoAway)
				if got.code != want.code {
					t.Errorf("GOAWAY %v, want %v", got.code, want.code)
				}
			case *rawRST:
				got := rc.readUntil(isRST).(*rawRST)
				if *got != *want {
					t.Errorf("RST_STREAM %+v, want %+v", got, want)
				}
				// The connection survives a stream error.
				rc.writeHeaders(101, true, rawGet...)
				h := rc.readUntil(func(f any) bool { h, ok := f.(*rawHeaders); return ok && h.id == 101 }).(*rawHeaders)
				if h.fields[":status"] != "200" {
					t.Errorf("after stream error: %v", h.fields)
				}
			}
		})
	}
}

func TestServerRefusedStream(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }), func(s *Server) { s.MaxConcurrentStreams = 1 })
	rc := dialRaw(t, env.addr)
	rc.writeHeaders(1, true, rawGet...)
	rc.writeHeaders(3, true, rawGet...)
	got := rc.readUntil(isRST).(*rawRST)
	if *got != (rawRST{3, http2.ErrCodeRefusedStream}) {
		t.Errorf("RST %+v, want stream 3 REFUSED_STREAM", got)
	}
}

func TestServerRespectsClientWindow(t *testing.T) {
	body := strings.Repeat("w", 1000)
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	rc := dialRaw(t, env.addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
	rc.writeHeaders(1, true, rawGet...)
	var got []byte
	for len(got) < 100 {
		d := rc.readUntil(func(f any) bool { _, ok := f.(*rawData); return ok }).(*rawData)
		got = append(got, d.data...)
	}
	if len(got) != 100 {
		t.Fatalf("got %d bytes within a 100-byte window", len(got))
	}
	// Raising the window by SETTINGS (which adjusts open streams) and by
	// WINDOW_UPDATE releases the rest.
	rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 500})
	rc.fr.WriteWindowUpdate(1, 500)
	for {
		d := rc.readUntil(func(f any) bool { _, ok := f.(*rawData); return ok }).(*rawData)
		got = append(got, d.data...)
		if d.end {
			break
		}
	}
	if string(got) != body {
		t.Errorf("got %d bytes, want %d", len(got), len(body))
	}
}

func TestServerPingAndPriority(t *testing.T) {
	env := startServer(t, okHandler())
	rc := dialRaw(t, env.addr)
	rc.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 10})
	rc.fr.WritePing(false, [8]byte{1, 2, 3, 4, 5, 6, 7, 8})
	p := rc.readUntil(func(f any) bool { p, ok := f.(*http2.PingFrame); return ok && p.IsAck() }).(*http2.PingFrame)
	if p.Data != [8]byte{1, 2, 3, 4, 5, 6, 7, 8} {
		t.Errorf("PING ack data %v", p.Data)
	}
	rc.writeHeaders(1, true, rawGet...)
	rc.readUntil(func(f any) bool { h, ok := f.(*rawHeaders); return ok && h.id == 1 })
}

func TestServerClientGoAway(t *testing.T) {
	release := make(chan struct{})
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release; w.Write([]byte("bye")) }))
	rc := dialRaw(t, env.addr)
	rc.writeHeaders(1, true, rawGet...)
	rc.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	close(release)
	d := rc.readUntil(func(f any) bool { d, ok := f.(*rawData); return ok && d.end }).(*rawData)
	if string(d.data) != "bye" {
		t.Errorf("data %q", d.data)
	}
	if err := <-env.serve; err != nil {
		t.Errorf("ServeConn: %v", err)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func slogTo(w io.Writer, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, nil))
}

// TestServerFramesAfterEarlyResponse: a handler answers before the request
// body ends, so the stream is reset with NO_ERROR; DATA and trailers the
// client had already sent are ignored and the connection stays up.
func TestServerFramesAfterEarlyResponse(t *testing.T) {
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("early")) }))
	rc := dialRaw(t, env.addr)
	rc.writeHeaders(1, false, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "a", "trailer", "x-t")
	got := rc.readUntil(isRST).(*rawRST)
	if *got != (rawRST{1, http2.ErrCodeNo}) {
		t.Fatalf("RST %+v, want stream 1 NO_ERROR", got)
	}
	rc.fr.WriteData(1, false, []byte("late body"))
	rc.writeHeaders(1, true, "x-t", "v")
	rc.writeHeaders(3, true, rawGet...)
	f := rc.readUntil(func(f any) bool {
		switch f := f.(type) {
		case *rawGoAway:
			return true
		case *rawHeaders:
			return f.id == 3
		}
		return false
	})
	if h, ok := f.(*rawHeaders); !ok || h.fields[":status"] != "200" {
		t.Errorf("after late frames: %+v", f)
	}
}

// countingConn counts Write calls (one per write syscall on a TCP conn).
type countingConn struct {
	net.Conn
	writes atomic.Int32
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestServerOneWritePerResponse: HEADERS and DATA with END_STREAM of a
// small response leave in a single write.
func TestServerOneWritePerResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(strings.Repeat("x", 1024)))
	})}
	conns := make(chan *countingConn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		cc := &countingConn{Conn: c}
		conns <- cc
		srv.ServeConn(context.Background(), cc)
	}()
	defer srv.Shutdown(context.Background())
	rc := dialRaw(t, ln.Addr().String())
	cc := <-conns
	rc.writeHeaders(1, true, rawGet...)
	rc.readUntil(func(f any) bool { d, ok := f.(*rawData); return ok && d.end })
	before := cc.writes.Load()
	for id := uint32(3); id < 23; id += 2 {
		rc.writeHeaders(id, true, rawGet...)
		rc.readUntil(func(f any) bool { d, ok := f.(*rawData); return ok && d.end && d.id == id })
	}
	if n := cc.writes.Load() - before; n != 10 {
		t.Errorf("%d writes for 10 responses, want 10", n)
	}
}

// TestServerConnectionWindowAndFrameSize: with a large stream window but
// the default 65535-byte connection window, exactly that much arrives, in
// DATA frames no larger than the default maximum frame size, until the
// client raises the connection window.
func TestServerConnectionWindowAndFrameSize(t *testing.T) {
	body := strings.Repeat("c", 100<<10)
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	rc := dialRaw(t, env.addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	rc.writeHeaders(1, true, rawGet...)
	var got []byte
	readData := func() *rawData {
		d := rc.readUntil(func(f any) bool { _, ok := f.(*rawData); return ok }).(*rawData)
		if len(d.data) > 16384 {
			t.Fatalf("DATA frame of %d bytes, above the default maximum frame size", len(d.data))
		}
		got = append(got, d.data...)
		return d
	}
	for len(got) < 65535 {
		readData()
	}
	if len(got) != 65535 {
		t.Fatalf("%d bytes within the 65535-byte connection window", len(got))
	}
	// Nothing more may come until the window grows: a PING round trip
	// shows the server is idle rather than still sending.
	rc.fr.WritePing(false, [8]byte{9})
	rc.readUntil(func(f any) bool {
		if d, ok := f.(*rawData); ok {
			t.Fatalf("DATA (%d bytes) beyond the connection window", len(d.data))
		}
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck()
	})
	rc.fr.WriteWindowUpdate(0, 1<<20)
	for !readData().end {
	}
	if string(got) != body {
		t.Errorf("got %d bytes, want %d", len(got), len(body))
	}
}

// TestServerEnforcesReceiveWindow: a client that sends more than the
// advertised 1 MiB while the handler reads nothing gets FLOW_CONTROL_ERROR.
func TestServerEnforcesReceiveWindow(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	rc := dialRaw(t, env.addr)
	rc.writeHeaders(1, false, ":method", "POST", ":scheme", "http", ":path", "/", ":authority", "a")
	chunk := make([]byte, 16384)
	// The server keeps reading, so these writes do not block.
	for range serverWindow/len(chunk) + 1 {
		if err := rc.fr.WriteData(1, false, chunk); err != nil {
			t.Fatal(err)
		}
	}
	got := rc.readUntil(isGoAway).(*rawGoAway)
	if got.code != http2.ErrCodeFlowControl {
		t.Errorf("GOAWAY %v, want FLOW_CONTROL_ERROR", got.code)
	}
}
