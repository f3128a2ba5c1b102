package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingTCPApp accepts connections and counts them.
func countingTCPApp(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	addr := rawServer(t, func(c net.Conn) {
		n.Add(1)
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	})
	return addr, &n
}

// closedWithin reports whether the peer closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestSilentConnectionsClosed opens connections that send nothing to an
// auto-detecting listener: each is closed after detect_timeout and none
// reaches the app.
func TestSilentConnectionsClosed(t *testing.T) {
	const conns = 300
	app, accepted := countingTCPApp(t)
	cfg := baseConfig("client")
	cfg.DetectTimeout = Duration(300 * time.Millisecond)
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "db", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	var cs []net.Conn
	for range conns {
		c, err := net.Dial("tcp", p.ListenAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	for i, c := range cs {
		if !closedWithin(c, 30*time.Second) {
			t.Fatalf("connection %d still open", i)
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections reached the app, want 0", n)
	}
	if got := p.value(t, "meshscope_proxy_refused_connections_total", map[string]string{"reason": refusedDetectTimeout}); got != conns {
		t.Errorf("refused{detect_timeout} = %v, want %d", got, conns)
	}
	if got := p.value(t, "mesh_tcp_connections_total", nil); got != 0 {
		t.Errorf("mesh_tcp_connections_total = %v, want 0", got)
	}
}

// TestDetectionLimit fills max_detections with silent connections: one
// more is closed at once, and a slot frees when a connection is detected.
func TestDetectionLimit(t *testing.T) {
	const slots = 8
	app, accepted := countingTCPApp(t)
	cfg := baseConfig("client")
	cfg.DetectTimeout = Duration(time.Minute)
	cfg.MaxDetections = slots
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "db", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.ListenAddrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var idle []net.Conn
	for range slots {
		idle = append(idle, dial())
	}
	eventually(t, "every slot taken", func() bool {
		return p.value(t, "meshscope_proxy_detecting_connections", nil) == slots
	})
	extra := dial()
	if !closedWithin(extra, 30*time.Second) {
		t.Fatal("a connection beyond max_detections was not closed")
	}
	if got := p.value(t, "meshscope_proxy_refused_connections_total", map[string]string{"reason": refusedDetectLimit}); got != 1 {
		t.Errorf("refused{detect_limit} = %v, want 1", got)
	}
	// A client that speaks is detected (opaque here) and frees its slot.
	if _, err := idle[0].Write([]byte("\x00binary\n")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the app receives the detected connection", func() bool { return accepted.Load() == 1 })
	eventually(t, "slot freed", func() bool {
		return p.value(t, "meshscope_proxy_detecting_connections", nil) == slots-1
	})
	next := dial()
	if closedWithin(next, 200*time.Millisecond) {
		t.Error("a connection within max_detections was closed")
	}
}

// TestHTTP2HeaderLimit: over HTTP/2 the proxy advertises max_header_bytes
// (plus net/http's per-field allowance) as its header list limit; a client
// that honours it refuses to send a larger list, one that does not gets
// 431. Either way nothing reaches the app, and a list under the limit
// passes.
func TestHTTP2HeaderLimit(t *testing.T) {
	var served atomic.Int64
	app := startHTTPApp(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	cfg := baseConfig("client")
	cfg.MaxHeaderBytes = 16 << 10
	cfg.Upstreams = []Upstream{{Listen: "127.0.0.1:0", Service: "app", Addrs: []string{app}}}
	p := startProxy(t, cfg)
	do := func(size int) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+p.ListenAddrs()[0]+"/", nil)
		for i := range size / 512 {
			req.Header.Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("a", 500))
		}
		resp, err := h2cClient().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := do(12 << 10); err != nil || resp.StatusCode != http.StatusOK || served.Load() != 1 {
		t.Fatalf("12 KB list: %v %v, app served %d", resp, err, served.Load())
	}
	resp, err := do(20 << 10)
	switch {
	case err != nil && strings.Contains(err.Error(), "header list larger than"):
		t.Logf("the client refused: %v", err)
	case err == nil && resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge:
		t.Log("the proxy answered 431")
	default:
		t.Errorf("20 KB list: %v %v, want 431 or the client refusing", resp, err)
	}
	if served.Load() != 1 {
		t.Errorf("the app served %d requests, want 1", served.Load())
	}
}
