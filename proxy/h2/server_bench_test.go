package h2

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
)

// The server benchmarks compare Server with net/http's HTTP/2 server behind
// the same client (Go's http.Transport, h2c prior knowledge) and handler:
// sequential GETs of a 1 KB body on one connection, and the same from 16
// connections at once. Run with -cpu 1 to see the per-request cost without
// parallelism; allocs/op include the client's.
//
//	go test ./proxy/h2/ -run '^$' -bench BenchmarkServer -cpu 1 -benchmem

var benchBody = bytes.Repeat([]byte("x"), 1024)

func benchHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(benchBody)
	})
}

// startNetHTTPH2C serves h with net/http's server, HTTP/2 prior knowledge
// only.
func startNetHTTPH2C(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: p}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func benchServers(b *testing.B, run func(b *testing.B, url string)) {
	b.Run("impl=nethttp", func(b *testing.B) { run(b, "http://"+startNetHTTPH2C(b, benchHandler())+"/") })
	b.Run("impl=h2", func(b *testing.B) { run(b, "http://"+startServer(b, benchHandler()).addr+"/") })
}

func benchGet(b *testing.B, c *http.Client, url string) {
	resp, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != int64(len(benchBody)) {
		b.Fatalf("body %d bytes, %v", n, err)
	}
}

func BenchmarkServerSequential(b *testing.B) {
	benchServers(b, func(b *testing.B, url string) {
		c := h2cClient(b)
		benchGet(b, c, url)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			benchGet(b, c, url)
		}
	})
}

func BenchmarkServerParallel16(b *testing.B) {
	benchServers(b, func(b *testing.B, url string) {
		clients := make([]*http.Client, 16)
		for i := range clients {
			clients[i] = h2cClient(b)
			benchGet(b, clients[i], url)
		}
		var next atomic.Int32
		b.ReportAllocs()
		// 16 client goroutines in all, one per connection.
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			c := clients[int(next.Add(1)-1)%len(clients)]
			for pb.Next() {
				benchGet(b, c, url)
			}
		})
	})
}

//go:noinline
func benchStack(n int) byte {
	var buf [512]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return benchStack(n-1) + buf[3]
}

// BenchmarkServerDeepStack is BenchmarkServerSequential with a handler that
// uses about 40 KiB of stack, as the proxy's handlers do: it shows what
// reusing worker goroutines saves in stack growth.
func BenchmarkServerDeepStack(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		benchStack(64)
		w.Write(benchBody)
	})
	b.Run("impl=nethttp", func(b *testing.B) {
		url := "http://" + startNetHTTPH2C(b, h) + "/"
		c := h2cClient(b)
		b.ReportAllocs()
		for range b.N {
			benchGet(b, c, url)
		}
	})
	b.Run("impl=h2", func(b *testing.B) {
		url := "http://" + startServer(b, h).addr + "/"
		c := h2cClient(b)
		b.ReportAllocs()
		for range b.N {
			benchGet(b, c, url)
		}
	})
}
