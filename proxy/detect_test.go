package proxy

import (
	"bytes"
	"testing"
)

func TestDetectProtocol(t *testing.T) {
	tests := []struct {
		in   string
		want detected
		more bool
	}{
		{"GET / HTTP/1.1\r\n", detectedHTTP, false},
		{"POST /x HTTP/1.1\r\n", detectedHTTP, false},
		{"OPTIONS * HTTP/1.1\r\n", detectedHTTP, false},
		{"CONNECT example.com:443 HTTP/1.1\r\n", detectedHTTP, false},
		{"GET http://example.com/ HTTP/1.1\r\n", detectedHTTP, false},
		{"M-SEARCH * HTTP/1.1\r\n", detectedHTTP, false},
		{h2Preface, detectedHTTP, false},
		{"PRI * HTTP/2.0\r\n", detectedOpaque, true}, // preface prefix: wait
		{"G", detectedOpaque, true},
		{"GET", detectedOpaque, true},
		{"GET ", detectedOpaque, true},
		{"", detectedOpaque, true},
		{"\x16\x03\x01\x02\x00", detectedTLS, false},
		{"\x16", detectedOpaque, true},
		{"\x16\x01", detectedOpaque, false},
		{"hello\n", detectedOpaque, false},
		{"\x00\x00\x00\x08\x04\xd2\x16\x2f", detectedOpaque, false}, // PostgreSQL SSLRequest
		{"*1\r\n$4\r\nPING\r\n", detectedOpaque, false},             // Redis
		{"PING \r\n", detectedOpaque, false},
		{" GET /", detectedOpaque, false},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1", detectedOpaque, false},
	}
	for _, tt := range tests {
		got, more := detectProtocol([]byte(tt.in))
		if got != tt.want || more != tt.more {
			t.Errorf("detect(%q) = %v,%v; want %v,%v", tt.in, got, more, tt.want, tt.more)
		}
	}
}

// FuzzDetectProtocol: detection never panics, a decision is stable once
// made (more bytes never change it), and a prefix decides no more than
// the whole.
func FuzzDetectProtocol(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", h2Preface, "\x16\x03\x01", "hello", "PRI * HT", "", "CONNECT a:1 HTTP/1.1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, more := detectProtocol(b)
		if !more {
			for _, extra := range [][]byte{{'x'}, {0}, []byte(" / HTTP/1.1")} {
				d2, more2 := detectProtocol(append(bytes.Clone(b), extra...))
				if d2 != d || more2 {
					t.Fatalf("decision for %q changed with more bytes: %v → %v,%v", b, d, d2, more2)
				}
			}
		}
		if d != detectedOpaque && more {
			t.Fatalf("undecided result must be opaque: %q", b)
		}
	})
}
