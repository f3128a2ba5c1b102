package loadgen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	prevHigh := int64(-1)
	for i := 0; i < maxBuckets; i++ {
		high := bucketHigh(i)
		if high <= prevHigh {
			t.Fatalf("bucket %d high %d not above previous %d", i, high, prevHigh)
		}
		if got := bucketOf(prevHigh + 1); got != i {
			t.Fatalf("value %d (first of bucket %d) maps to bucket %d", prevHigh+1, i, got)
		}
		if got := bucketOf(high); got != i {
			t.Fatalf("value %d (last of bucket %d) maps to bucket %d", high, i, got)
		}
		prevHigh = high
		if high > int64(time.Hour) {
			break
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]int64, 100_000)
	for i := range vals {
		vals[i] = int64(r.ExpFloat64() * float64(500*time.Microsecond))
		h.Record(time.Duration(vals[i]))
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := int64(h.Quantile(q))
		if got < exact || float64(got-exact) > float64(exact)/subCount+1 {
			t.Errorf("q%v = %d, exact %d: outside 1/%d relative error", q, got, exact, subCount)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
		t.Errorf("max/min = %v/%v, want %v/%v", h.Max(), h.Min(), vals[len(vals)-1], vals[0])
	}
	if h.Quantile(1) != h.Max() {
		t.Errorf("q1 != max")
	}
	var merged, a, b Histogram
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(nil)
	if merged.Count() != 2 || merged.Max() != 3*time.Millisecond || merged.Min() != time.Millisecond || merged.Mean() != 2*time.Millisecond {
		t.Errorf("merge: %+v", merged.Summary())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Errorf("empty histogram not zero")
	}
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		head       bool
		wantStatus int
		wantBody   int
		wantKeep   bool
		wantErr    string
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 200, 5, true, ""},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n", false, 200, 5, true, ""},
		{"connection close", "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, 503, 0, false, ""},
		{"http/1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", false, 200, 1, true, ""},
		{"until eof", "HTTP/1.1 200 OK\r\n\r\nabcdef", false, 200, 6, false, ""},
		{"head", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, 200, 0, true, ""},
		{"no content", "HTTP/1.1 204 No Content\r\n\r\n", false, 204, 0, true, ""},
		{"bad status", "HTTX 200\r\n\r\n", false, 0, 0, false, "malformed status line"},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, 200, 0, false, "bad Content-Length"},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", false, 200, 2, false, "read body"},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, 200, 0, false, "bad chunk size"},
		{"bad header", "HTTP/1.1 200 OK\r\nnocolon\r\n\r\n", false, 200, 0, false, "malformed header"},
	}
	for _, tt := range tests {
		status, body, keep, err := readResponse(bufio.NewReader(strings.NewReader(tt.in)), tt.head)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || status != tt.wantStatus || body != tt.wantBody || keep != tt.wantKeep {
			t.Errorf("%s: got (%d, %d, %v, %v), want (%d, %d, %v)", tt.name, status, body, keep, err, tt.wantStatus, tt.wantBody, tt.wantKeep)
		}
	}
}

func FuzzReadResponse(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	f.Add("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	f.Add("HTTP/1.0 404 x\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		status, body, _, err := readResponse(bufio.NewReader(strings.NewReader(in)), false)
		if err == nil && (status < 0 || status > 999 || body < 0 || body > len(in)) {
			t.Fatalf("implausible result status=%d body=%d for %d input bytes", status, body, len(in))
		}
	})
}

func oneKB(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Length", "1024")
	_, _ = w.Write(make([]byte, 1024))
}

func TestConstantRateSendsEveryScheduledRequest(t *testing.T) {
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		oneKB(w, r)
	}))
	defer srv.Close()
	cfg := Config{Addr: srv.Listener.Addr().String(), Rate: 400, Connections: 4, Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, RequestBodyBytes: 100}
	res, err := RunConstantRate(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The schedule is fixed: 4 connections, one request every 10 ms each,
	// over 600 ms = 240 sent, of which the last 500 ms (200) are recorded.
	if got := res.Requests + res.Errors; got != 200 {
		t.Errorf("recorded %d requests (%d errors: %s), want 200", got, res.Errors, res.FirstError)
	}
	if served.Load() != 240 {
		t.Errorf("server saw %d requests, want 240", served.Load())
	}
	if res.Errors != 0 || res.ResponseBytes != res.Requests*1024 {
		t.Errorf("errors %d (%s), bytes %d", res.Errors, res.FirstError, res.ResponseBytes)
	}
	if res.Latency.Count() != res.Requests || res.Latency.Quantile(0.5) <= 0 {
		t.Errorf("latency histogram: %+v", res.Latency.Summary())
	}
}

func TestConstantRateCorrectsCoordinatedOmission(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 5 {
			time.Sleep(300 * time.Millisecond) // one stall holds the only connection
		}
		oneKB(w, r)
	}))
	defer srv.Close()
	res, err := RunConstantRate(context.Background(), Config{Addr: srv.Listener.Addr().String(), Rate: 100, Connections: 1, Duration: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	atLeast := func(h *Histogram, d time.Duration) int {
		n := 0
		for i := range h.counts {
			if bucketHigh(i) >= int64(d) {
				n += int(h.counts[i])
			}
		}
		return n
	}
	slow, slowService := atLeast(res.Latency, 100*time.Millisecond), atLeast(res.ServiceTime, 100*time.Millisecond)
	// Requests due every 10 ms during the 300 ms stall waited behind it:
	// corrected latency charges that wait, so well over one is slow, while
	// their service time (from the actual send) does not include it.
	if slow < 10 || slowService >= slow {
		t.Errorf("%d requests with latency ≥ 100 ms (want ≥ 10) and %d with service time ≥ 100 ms (want fewer): coordinated omission not corrected; %+v",
			slow, slowService, res.Latency.Summary())
	}
}

func TestClosedLoopAndErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		oneKB(w, r)
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	res, err := RunClosedLoop(context.Background(), Config{Addr: addr, Connections: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors != 0 || res.Throughput() <= 0 {
		t.Errorf("closed loop: %d requests, %d errors (%s)", res.Requests, res.Errors, res.FirstError)
	}
	res, err = RunConstantRate(context.Background(), Config{Addr: addr, Path: "/fail", Rate: 100, Connections: 1, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 10 || res.Requests != 0 || !strings.Contains(res.FirstError, "500") {
		t.Errorf("errors = %d, requests = %d, first %q; want 10 errors of status 500", res.Errors, res.Requests, res.FirstError)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Duration: time.Second, Rate: 1}, "Addr is empty"},
		{Config{Addr: "x:1", Rate: 1}, "Duration"},
		{Config{Addr: "x:1", Duration: time.Second}, "Rate"},
	}
	for _, tt := range tests {
		_, err := RunConstantRate(context.Background(), tt.cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := RunClosedLoop(context.Background(), Config{Addr: "127.0.0.1:1", Duration: time.Second, Timeout: time.Second}); err == nil {
		t.Error("dialing a closed port should fail")
	}
}

func ExampleRunConstantRate() {
	srv := httptest.NewServer(http.HandlerFunc(oneKB))
	defer srv.Close()
	res, err := RunConstantRate(context.Background(), Config{Addr: srv.Listener.Addr().String(), Rate: 100, Connections: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Requests, res.Errors)
	// Output: 20 0
}
