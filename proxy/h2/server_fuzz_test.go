package h2

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// FuzzServerParseRequestHead feeds arbitrary header lists (one field per
// line, "name: value") to the request conversion: it must never panic, and
// what it accepts must be a well-formed request.
func FuzzServerParseRequestHead(f *testing.F) {
	f.Add(":method: GET\n:scheme: http\n:path: /\n:authority: a\ncookie: a=1\ncookie: b=2", false)
	f.Add(":method: CONNECT\n:authority: a:443", false)
	f.Add(":method: POST\n:scheme: https\n:path: /x?y\ncontent-length: 10\ntrailer: grpc-status, x", false)
	f.Add(":method: OPTIONS\n:scheme: http\n:path: *\nhost: h\nte: trailers", true)
	f.Add(":path: /\n:method: GET\nconnection: close", true)
	f.Fuzz(func(t *testing.T, list string, endStream bool) {
		var fields []hpack.HeaderField
		for _, line := range strings.Split(list, "\n") {
			name, value, _ := strings.Cut(line, ": ")
			fields = append(fields, hpack.HeaderField{Name: name, Value: value})
		}
		h, err := serverParseRequestHead(fields, endStream)
		if err != nil {
			return
		}
		if h.method == "" || h.url == nil || h.requestURI == "" {
			t.Fatalf("accepted without method/url: %+v", h)
		}
		if endStream && h.contentLength != 0 {
			t.Fatalf("content-length %d on a request without body", h.contentLength)
		}
		for k := range h.header {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("non-canonical key %q", k)
			}
			if connectionSpecific(strings.ToLower(k)) || k == "Host" {
				t.Fatalf("kept field %q", k)
			}
		}
		if te := h.header.Get("Te"); te != "" && te != "trailers" {
			t.Fatalf("accepted te %q", te)
		}
	})
}
