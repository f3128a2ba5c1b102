package proxy

// detected is the outcome of protocol detection.
type detected uint8

const (
	detectedOpaque detected = iota
	detectedHTTP            // HTTP/1.x request line or HTTP/2 connection preface
	detectedTLS             // TLS ClientHello
)

func (d detected) String() string {
	switch d {
	case detectedHTTP:
		return "http"
	case detectedTLS:
		return "tls"
	}
	return "opaque"
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2PrefaceHead is the part of the preface that reads as a request head.
const h2PrefaceHead = "PRI * HTTP/2.0\r\n\r\n"

// maxMethodLen bounds the request-method token the detector waits for.
const maxMethodLen = 24

// detectProtocol classifies a connection from its first bytes. more is true
// when b is a prefix that could still be either HTTP or not; the caller then
// peeks more bytes (or gives up and treats the connection as opaque).
//
// HTTP/1.x is recognised by a request line start: a method token of
// upper-case letters, '-' or '_', one space, then '/', '*' (OPTIONS *) or a
// letter (absolute-form URI or CONNECT authority). HTTP/2 by its client
// preface, TLS by a handshake record header (0x16 0x03).
func detectProtocol(b []byte) (d detected, more bool) {
	if len(b) == 0 {
		return detectedOpaque, true
	}
	if b[0] == 0x16 {
		if len(b) < 2 {
			return detectedOpaque, true
		}
		if b[1] == 0x03 {
			return detectedTLS, false
		}
		return detectedOpaque, false
	}
	// HTTP/2 preface (a prefix of it is undecided until it diverges; "PRI"
	// followed by a space is also a valid HTTP/1 method shape, but the
	// preface check comes first).
	n := min(len(b), len(h2Preface))
	if string(b[:n]) == h2Preface[:n] {
		if n == len(h2Preface) {
			return detectedHTTP, false
		}
		return detectedOpaque, true
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 'A' && c <= 'Z', c == '-', c == '_':
			if i >= maxMethodLen {
				return detectedOpaque, false
			}
			continue
		case c == ' ':
			if i == 0 {
				return detectedOpaque, false
			}
			if i+1 >= len(b) {
				return detectedOpaque, true
			}
			t := b[i+1]
			if t == '/' || t == '*' || (t >= 'a' && t <= 'z') || (t >= 'A' && t <= 'Z') || (t >= '0' && t <= '9') || t == '[' {
				return detectedHTTP, false
			}
			return detectedOpaque, false
		default:
			return detectedOpaque, false
		}
	}
	return detectedOpaque, true
}
