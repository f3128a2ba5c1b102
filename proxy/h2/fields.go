package h2

import (
	"bytes"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// connectionSpecific reports whether a lowercase field name is one RFC
// 9113 8.2.2 forbids on HTTP/2, in either direction. "te" is left to the
// callers: "te: trailers" is allowed.
func connectionSpecific(lower string) bool {
	switch lower {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return true
	}
	return false
}

// commonFields are field names common enough that converting them between
// the canonical form of http.Header and HTTP/2's lowercase should not
// allocate.
var commonFields = []string{
	"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
	"Access-Control-Allow-Origin", "Age", "Allow", "Authorization", "Baggage", "Cache-Control",
	"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
	"Content-Location", "Content-Range", "Content-Type", "Cookie", "Date", "Etag",
	"Expect", "Expires", "From", "Grpc-Accept-Encoding", "Grpc-Encoding", "Grpc-Message",
	"Grpc-Status", "Grpc-Timeout", "Host", "If-Match", "If-Modified-Since", "If-None-Match",
	"If-Range", "If-Unmodified-Since", "Last-Modified", "Link", "Location", "Max-Forwards",
	"Origin", "Proxy-Authenticate", "Proxy-Authorization", "Range", "Referer", "Refresh",
	"Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security", "Te", "Trailer",
	"Traceparent", "Tracestate", "User-Agent", "Vary", "Via", "Www-Authenticate",
	"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id",
}

// canonicalOf maps the lowercase form of commonFields to the canonical
// one, lowerOf the other way; both read-only.
var canonicalOf, lowerOf = func() (map[string]string, map[string]string) {
	c := make(map[string]string, len(commonFields))
	l := make(map[string]string, len(commonFields))
	for _, k := range commonFields {
		c[strings.ToLower(k)] = k
		l[k] = strings.ToLower(k)
	}
	return c, l
}()

// canonicalKey is http.CanonicalHeaderKey of a lowercase field name.
func canonicalKey(lower string) string {
	if k, ok := canonicalOf[lower]; ok {
		return k
	}
	return http.CanonicalHeaderKey(lower)
}

// lowerKey is the HTTP/2 (lowercase) form of a field name.
func lowerKey(k string) string {
	if l, ok := lowerOf[k]; ok {
		return l
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(k)
		}
	}
	return k
}

// validWireFieldName reports a non-empty token without uppercase letters,
// as a field name must be on the wire (RFC 9113 8.2.1).
func validWireFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return httpguts.ValidHeaderFieldName(name)
}

// headerBuilder fills a header map with the first value of every name in
// one backing array, instead of a slice per name.
type headerBuilder struct {
	h    http.Header
	vals []string
}

// newHeaderBuilder returns a builder for h with room for n values.
func newHeaderBuilder(h http.Header, n int) headerBuilder {
	return headerBuilder{h: h, vals: make([]string, 0, n)}
}

func (b *headerBuilder) add(key, value string) {
	if vv, ok := b.h[key]; ok {
		b.h[key] = append(vv, value)
		return
	}
	if len(b.vals) == cap(b.vals) { // more values than announced
		b.h[key] = []string{value}
		return
	}
	i := len(b.vals)
	b.vals = append(b.vals, value)
	b.h[key] = b.vals[i : i+1 : i+1]
}

// perRequestField reports a field whose value is new with every request
// (trace context the proxy writes): indexing it in the HPACK dynamic table
// would only evict entries that repeat.
func perRequestField(lower string) bool {
	switch lower {
	case "traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid":
		return true
	}
	return false
}

// appendLiteralField appends name and value as an HPACK literal header
// field without indexing, new name (RFC 7541 6.2.2): neither side's
// dynamic table changes. It must follow at least one field written by the
// encoder, which puts any pending table size update first in the block.
func appendLiteralField(b *bytes.Buffer, name, value string) {
	b.WriteByte(0)
	appendHPACKString(b, name)
	appendHPACKString(b, value)
}

// appendHPACKString appends s as an HPACK string literal without Huffman
// coding: a 7-bit prefix length (RFC 7541 5.1, 5.2), then the bytes.
func appendHPACKString(b *bytes.Buffer, s string) {
	n := uint64(len(s))
	if n < 127 {
		b.WriteByte(byte(n))
	} else {
		b.WriteByte(127)
		for n -= 127; n >= 128; n >>= 7 {
			b.WriteByte(byte(n&0x7f | 0x80))
		}
		b.WriteByte(byte(n))
	}
	b.WriteString(s)
}
