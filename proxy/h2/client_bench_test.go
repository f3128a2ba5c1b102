package h2

import (
	"io"
	"net/http"
	"testing"
)

// BenchmarkClientGet compares sequential (and, as Parallel, 16 concurrent)
// 1 KB GETs over h2c against one net/http server, made by net/http's
// HTTP/2 client and by Transport. Run with -cpu 1 to see per-request CPU:
//
//	go test ./proxy/h2/ -run X -bench BenchmarkClientGet -cpu 1 -benchmem -count 5
func BenchmarkClientGet(b *testing.B) {
	body := make([]byte, 1024)
	_, addr := clientTestServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body)
	}))
	url := "http://" + addr + "/"
	clients := []struct {
		name string
		rt   func(b *testing.B) http.RoundTripper
	}{
		{"nethttp", func(b *testing.B) http.RoundTripper {
			p := new(http.Protocols)
			p.SetUnencryptedHTTP2(true)
			tr := &http.Transport{Protocols: p}
			b.Cleanup(tr.CloseIdleConnections)
			return tr
		}},
		{"h2", func(b *testing.B) http.RoundTripper {
			tr := &Transport{}
			b.Cleanup(func() { _ = tr.Close() })
			return tr
		}},
	}
	get := func(b *testing.B, rt http.RoundTripper, buf []byte) {
		req, _ := http.NewRequest("GET", url, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.ReadFull(resp.Body, buf)
		if err != nil || n != len(body) {
			b.Fatalf("read %d: %v", n, err)
		}
		_, _ = resp.Body.Read(buf) // reach EOF so the stream ends cleanly
		resp.Body.Close()
	}
	for _, c := range clients {
		b.Run(c.name+"/Sequential", func(b *testing.B) {
			rt := c.rt(b)
			buf := make([]byte, 2048)
			get(b, rt, buf[:len(body)])
			b.ReportAllocs()
			for b.Loop() {
				get(b, rt, buf[:len(body)])
			}
		})
		b.Run(c.name+"/Parallel16", func(b *testing.B) {
			rt := c.rt(b)
			get(b, rt, make([]byte, len(body)))
			b.ReportAllocs()
			b.SetParallelism(16) // times GOMAXPROCS: 16 goroutines at -cpu 1
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, len(body))
				for pb.Next() {
					get(b, rt, buf)
				}
			})
		})
	}
}
