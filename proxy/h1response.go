package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
)

// readResponseHead parses the common upstream response head straight from
// br's buffer: HTTP/1.1, a final status other than 204 and 304, exactly one
// plain Content-Length, and field lines that need no folding, trimming
// beyond spaces and tabs, or validation failures. It makes one string of
// the head and slices the field names and values from it, where
// http.ReadResponse allocates a reader, a string per line and value, a
// transfer reader and a limited body. It consumes the head and returns the
// response with a nil Body (the caller reads ContentLength bytes from br),
// or returns nil and consumes nothing when the head is anything else or
// has not fully arrived; http.ReadResponse then reads it, with its own
// results and errors.
func readResponseHead(br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	const statusPrefix = "HTTP/1.1 "
	if len(buf) < len(statusPrefix)+3 || string(buf[:len(statusPrefix)]) != statusPrefix {
		return nil
	}
	code := 0
	for _, c := range buf[len(statusPrefix) : len(statusPrefix)+3] {
		if !isDigit(c) {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	// Count the field lines and check every byte of the head once.
	fields := 0
	for i := 0; i < end; i++ {
		switch c := buf[i]; {
		case c == '\r':
			if buf[i+1] != '\n' {
				return nil // a bare CR
			}
			fields++
			i++
		case c == '\n':
			return nil // a bare LF
		case (c < ' ' && c != '\t') || c == 0x7f:
			return nil // a control byte: http.ReadResponse reports it
		}
	}
	head := string(buf[:end+2]) // through the last field line's CRLF
	statusLine, rest := cutCRLF(head)
	if len(statusLine) > len(statusPrefix)+3 && statusLine[len(statusPrefix)+3] != ' ' {
		return nil
	}
	hdr := make(http.Header, fields)
	values := make([]string, fields)
	cl := int64(-1)
	for rest != "" {
		var line string
		line, rest = cutCRLF(rest)
		colon := -1
		for i := 0; i < len(line); i++ {
			if line[i] == ':' {
				colon = i
				break
			}
			if !isTchar(line[i]) {
				return nil
			}
		}
		if colon <= 0 {
			return nil
		}
		key := textproto.CanonicalMIMEHeaderKey(line[:colon])
		value := trimOWSString(line[colon+1:])
		switch key {
		case "Content-Length":
			if cl >= 0 || len(value) == 0 || len(value) > 18 {
				return nil
			}
			cl = 0
			for i := 0; i < len(value); i++ {
				if !isDigit(value[i]) {
					return nil
				}
				cl = cl*10 + int64(value[i]-'0')
			}
		case "Transfer-Encoding", "Trailer", "Connection", "Pragma":
			return nil // framing, closing and cache fix-ups: http.ReadResponse
		}
		if vv, ok := hdr[key]; ok {
			hdr[key] = append(vv, value)
			continue
		}
		values[0] = value
		hdr[key], values = values[:1:1], values[1:]
	}
	if cl < 0 {
		return nil // no length: read to close, http.ReadResponse
	}
	_, _ = br.Discard(end + 4)
	resp := &http.Response{
		Status: statusLine[len(statusPrefix):], Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		StatusCode: code, Header: hdr, ContentLength: cl, Request: req,
	}
	if cl == 0 {
		resp.Body = http.NoBody
	}
	return resp
}

// cutCRLF splits s at its first CRLF.
func cutCRLF(s string) (line, rest string) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return s[:i], s[i+2:]
		}
	}
	return s, ""
}

// trimOWSString strips spaces and tabs at both ends.
func trimOWSString(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// appendVerbatimHead handles the commonest upstream response of the lean
// path without a header map: a final status other than 204 and 304 to a
// request other than HEAD, exactly one plain Content-Length, no framing,
// connection, hop-by-hop or Pragma field, field lines that need no
// folding, and, for an event stream, the whole body already in br's
// buffer (the header map path flushes an event stream after every
// write). It appends to dst the field lines the proxy forwards, each as
// "name: value" with the name as the upstream sent it and the value
// without surrounding spaces and tabs (exactly the lines the header map
// path writes, in the upstream's order), consumes the head and returns
// the status code and the body's length (the body follows in br). ok is
// false, with nothing consumed and dst unchanged, for anything else: the
// header map path reads it.
func appendVerbatimHead(dst []byte, br *bufio.Reader, req *http.Request) (out []byte, code int, cl int64, ok bool) {
	if req.Method == http.MethodHead {
		return dst, 0, 0, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	const statusPrefix = "HTTP/1.1 "
	if end < len(statusPrefix)+3 || string(buf[:len(statusPrefix)]) != statusPrefix {
		return dst, 0, 0, false
	}
	for _, c := range buf[len(statusPrefix) : len(statusPrefix)+3] {
		if !isDigit(c) {
			return dst, 0, 0, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return dst, 0, 0, false
	}
	lineEnd := bytes.IndexByte(buf[:end+2], '\n')
	if buf[lineEnd-1] != '\r' || (lineEnd > len(statusPrefix)+4 && buf[len(statusPrefix)+3] != ' ') {
		return dst, 0, 0, false
	}
	for _, c := range buf[:lineEnd-1] {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return dst, 0, 0, false
		}
	}
	start := len(dst)
	cl = -1
	eventStream := false
	for rest := buf[lineEnd+1 : end+2]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 1 || rest[i-1] != '\r' {
			return dst[:start], 0, 0, false
		}
		line := rest[:i-1]
		rest = rest[i+1:]
		colon := -1
		for j, c := range line {
			if c == ':' {
				colon = j
				break
			}
			if !isTchar(c) {
				return dst[:start], 0, 0, false
			}
		}
		if colon <= 0 {
			return dst[:start], 0, 0, false
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return dst[:start], 0, 0, false
			}
		}
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if cl >= 0 || len(value) == 0 || len(value) > 18 {
				return dst[:start], 0, 0, false
			}
			cl = 0
			for _, c := range value {
				if !isDigit(c) {
					return dst[:start], 0, 0, false
				}
				cl = cl*10 + int64(c-'0')
			}
		case asciiEqualFold(name, "Content-Type"):
			eventStream = eventStream || hasPrefixFold(value, "text/event-stream")
		case notVerbatim(name):
			return dst[:start], 0, 0, false
		}
		dst = append(dst, name...)
		dst = append(dst, ": "...)
		dst = append(dst, value...)
		dst = append(dst, "\r\n"...)
	}
	if cl < 0 || (eventStream && int64(len(buf)-end-4) < cl) {
		return dst[:start], 0, 0, false // no length, or an event stream still arriving
	}
	_, _ = br.Discard(end + 4)
	return dst, code, cl, true
}

// hasPrefixFold reports whether b starts with prefix, ASCII
// case-insensitively, after spaces and tabs.
func hasPrefixFold(b []byte, prefix string) bool {
	b = trimOWS(b)
	return len(b) >= len(prefix) && asciiEqualFold(b[:len(prefix)], prefix)
}

// notVerbatim reports whether a response field rules the verbatim head
// out: framing and connection fields, the hop-by-hop fields the proxy
// removes, and Pragma (which the header map path pairs with a
// Cache-Control).
func notVerbatim(name []byte) bool {
	for _, s := range hopHeaders { // the framing and connection fields among them
		if asciiEqualFold(name, s) {
			return true
		}
	}
	return asciiEqualFold(name, "Pragma")
}
