package h2

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// wholeBody is a request body that has all of its bytes from the start,
// as the server's request body has once END_STREAM arrived.
type wholeBody struct {
	*bytes.Reader
	closed atomic.Bool
}

func (b *wholeBody) Buffered() (int, bool) { return b.Len(), true }
func (b *wholeBody) Close() error          { b.closed.Store(true); return nil }

// TestClientSendsWholeBodyWithHeaders: a BufferedBody that fits one DATA
// frame leaves with its HEADERS in one write; a larger one, or one that
// disagrees with ContentLength, goes through the body writer. Either way
// the server gets the exact bytes and the body is closed.
func TestClientSendsWholeBodyWithHeaders(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Len", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	}))
	var writes atomic.Int32
	tr := &Transport{Dial: func(ctx context.Context, network, a string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, a)
		if err != nil {
			return nil, err
		}
		return clientWriteCounter{c, &writes}, nil
	}}
	defer tr.Close()
	post := func(size int, cl int64) (echo []byte, nwrites int32) {
		t.Helper()
		payload := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		body := &wholeBody{Reader: bytes.NewReader(payload)}
		req, _ := http.NewRequest("POST", "http://"+addr+"/", nil)
		req.Body, req.ContentLength = body, cl
		before := writes.Load()
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		nwrites = writes.Load() - before
		echo, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(echo, payload) {
			t.Fatalf("%d bytes: echo of %d bytes, err %v", size, len(echo), err)
		}
		if !body.closed.Load() {
			t.Errorf("%d bytes: request body not closed", size)
		}
		return echo, nwrites
	}
	post(1, 1) // connection setup
	for _, tc := range []struct {
		name     string
		size     int
		cl       int64
		oneWrite bool
	}{
		{"empty", 0, 0, true},
		{"1 KB", 1024, 1024, true},
		{"1 KB, unknown length", 1024, -1, true},
		{"16 KB, one frame", clientInlineBody, clientInlineBody, true},
		{"larger than one frame", clientInlineBody + 1, clientInlineBody + 1, false},
	} {
		_, n := post(tc.size, tc.cl)
		// WINDOW_UPDATEs for the response may follow a read; the request
		// itself is one write exactly when it went out inline.
		if tc.oneWrite && n != 1 {
			t.Errorf("%s: %d writes, want the request in one", tc.name, n)
		}
		if !tc.oneWrite && n < 2 {
			t.Errorf("%s: %d writes, want HEADERS and DATA apart", tc.name, n)
		}
	}

	// A length that disagrees with the bytes is not sent inline; the body
	// writer reports it and the request fails.
	payload := []byte("abc")
	req, _ := http.NewRequest("POST", "http://"+addr+"/", nil)
	req.Body, req.ContentLength = &wholeBody{Reader: bytes.NewReader(payload)}, 5
	if resp, err := tr.RoundTrip(req); err == nil {
		_, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil && resp.StatusCode == http.StatusOK {
			t.Errorf("a 3-byte body declared as 5 bytes was answered %d without error", resp.StatusCode)
		}
	}
}

// TestServerBodyBuffered: the server's request body reports its bytes as
// whole once END_STREAM arrived, and reading them drains it.
func TestServerBodyBuffered(t *testing.T) {
	type report struct {
		n        int
		complete bool
		body     []byte
		after    int
	}
	got := make(chan report, 1)
	env := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bb, ok := r.Body.(BufferedBody)
		if !ok {
			got <- report{n: -1}
			return
		}
		var rep report
		deadline := time.Now().Add(5 * time.Second)
		for {
			rep.n, rep.complete = bb.Buffered()
			if rep.complete || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond) // END_STREAM still on its way
		}
		rep.body, _ = io.ReadAll(r.Body)
		rep.after, _ = bb.Buffered()
		got <- rep
	}))
	tr := &Transport{}
	defer tr.Close()
	payload := bytes.Repeat([]byte("x"), 3000)
	req, _ := http.NewRequest("POST", "http://"+env.addr+"/", nil)
	req.Body, req.ContentLength = &wholeBody{Reader: bytes.NewReader(payload)}, int64(len(payload))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	rep := <-got
	if rep.n != len(payload) || !rep.complete || !bytes.Equal(rep.body, payload) || rep.after != 0 {
		t.Fatalf("Buffered %d complete %v, read %d bytes, %d left after reading; want %d, true, %d, 0", rep.n, rep.complete, len(rep.body), rep.after, len(payload), len(payload))
	}
}

// TestClientTrailersAppearAtEOF: trailers that arrive with the headers and
// body are not written into resp.Trailer while the caller may look at it
// (ReverseProxy reads it before the body); they are there once Body
// returned io.EOF. Run with -race.
func TestClientTrailersAppearAtEOF(t *testing.T) {
	_, addr := clientTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("message"))
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	}))
	tr := &Transport{}
	defer tr.Close()
	for i := range 50 {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(resp.Trailer); n != 0 {
			t.Fatalf("request %d: %d trailers before the body was read", i, n)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "message" || resp.Trailer.Get("Grpc-Status") != "0" {
			t.Fatalf("request %d: body %q err %v trailer %v", i, body, err, resp.Trailer)
		}
	}
}
