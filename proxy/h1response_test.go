package proxy

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestReadResponseHead checks the lean response-head parser against
// http.ReadResponse: the heads it takes give the same response, and the
// ones it declines are left unread for http.ReadResponse.
func TestReadResponseHead(t *testing.T) {
	const body = "0123456789"
	tests := []struct {
		name   string
		head   string
		method string
		fast   bool
	}{
		{"plain", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain\r\nDate: Sun, 06 Dec 2026 02:00:00 GMT\r\n\r\n", "GET", true},
		{"lower-case names and padded values", "HTTP/1.1 404 Not Found\r\ncontent-length:\t10 \r\nx-trace-ID:  a b  \r\n\r\n", "GET", true},
		{"repeated field", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 10\r\nSet-Cookie: b=2\r\n\r\n", "GET", true},
		{"empty value", "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 10\r\n\r\n", "GET", true},
		{"no reason phrase", "HTTP/1.1 503\r\nContent-Length: 10\r\n\r\n", "GET", true},
		{"zero length", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", true},
		{"leading zeros", "HTTP/1.1 200 OK\r\nContent-Length: 0010\r\n\r\n", "GET", true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", false},
		{"no length", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", "GET", false},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"signed length", "HTTP/1.1 200 OK\r\nContent-Length: +10\r\n\r\n", "GET", false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"pragma", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"trailer", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD", false},
		{"no content", "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"not modified", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 10\r\n\r\n", "GET", false},
		{"folded line", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"space before colon", "HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"control byte", "HTTP/1.1 200 OK\r\nX-A: 1\x01\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"no colon", "HTTP/1.1 200 OK\r\nX-A\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"status without space", "HTTP/1.1 200OK\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"short status", "HTTP/1.1 20 OK\r\nContent-Length: 10\r\n\r\n", "GET", false},
		{"incomplete head", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n", "GET", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wire := tc.head + body
			req, err := http.NewRequest(tc.method, "http://app/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReaderSize(strings.NewReader(wire), 4096)
			if _, err := br.Peek(1); err != nil {
				t.Fatal(err)
			}
			got := readResponseHead(br, req)
			if (got != nil) != tc.fast {
				t.Fatalf("readResponseHead took the head: %v, want %v", got != nil, tc.fast)
			}
			if got == nil {
				if br.Buffered() != len(wire) {
					t.Fatalf("declined head consumed %d bytes", len(wire)-br.Buffered())
				}
				return
			}
			want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(wire)), req)
			if err != nil {
				t.Fatalf("http.ReadResponse refuses a head the lean parser took: %v", err)
			}
			wantBody, _ := io.ReadAll(want.Body)
			if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
				got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor || got.ContentLength != want.ContentLength ||
				got.Close != want.Close || len(got.TransferEncoding) != 0 || got.Trailer != nil || got.Request != req {
				t.Fatalf("response = %+v, want %+v", got, want)
			}
			if !reflect.DeepEqual(got.Header, want.Header) {
				t.Fatalf("header = %q, want %q", got.Header, want.Header)
			}
			rest, _ := io.ReadAll(io.LimitReader(br, got.ContentLength))
			if string(rest) != string(wantBody) {
				t.Fatalf("body = %q, want %q", rest, wantBody)
			}
			if (got.Body == http.NoBody) != (got.ContentLength == 0) {
				t.Fatalf("Body %v for length %d", got.Body, got.ContentLength)
			}
		})
	}
}
