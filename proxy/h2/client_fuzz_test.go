package h2

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// FuzzClientParseResponse feeds arbitrary HPACK blocks, filtered as the
// Framer filters them (lowercase names, valid values), to the response
// header conversion: it must never panic, and what it accepts must be a
// well-formed response.
func FuzzClientParseResponse(f *testing.F) {
	seed := func(kv ...string) {
		var buf bytes.Buffer
		enc := hpack.NewEncoder(&buf)
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		f.Add(buf.Bytes())
	}
	seed(":status", "200", "content-type", "text/plain", "content-length", "5")
	seed(":status", "204")
	seed(":status", "200", "trailer", "grpc-status, grpc-message", "content-length", "1", "content-length", "2")
	seed(":status", "1000", "connection", "close")
	seed("x-a", "b")
	f.Fuzz(func(t *testing.T, block []byte) {
		var fields []hpack.HeaderField
		dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) { fields = append(fields, hf) })
		if _, err := dec.Write(block); err != nil {
			return
		}
		for _, hf := range fields {
			if !httpguts.ValidHeaderFieldValue(hf.Value) {
				return
			}
			name := strings.TrimPrefix(hf.Name, ":")
			if name == "" || strings.ToLower(name) != name || !httpguts.ValidHeaderFieldName(name) {
				return
			}
		}
		resp, err := clientParseResponse(fields)
		if err != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 || resp.ContentLength < -1 || resp.Header == nil {
			t.Fatalf("accepted malformed response: %+v", resp)
		}
		for k := range resp.Header {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("header key %q not canonical", k)
			}
		}
		tr := make(http.Header)
		_ = clientAddTrailers(tr, fields)
	})
}
