package h2

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// clientCheckRequest rejects requests whose fields could not be encoded
// validly, before any stream is opened for them.
func clientCheckRequest(req *http.Request) error {
	if req.Method != "" && !httpguts.ValidHeaderFieldName(req.Method) {
		return fmt.Errorf("h2: invalid method %q", req.Method)
	}
	if req.URL.Host == "" {
		return errors.New("h2: request URL has no host")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("h2: invalid host %q", host)
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("h2: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h2: invalid value for header field %q", k)
			}
		}
	}
	for k, vv := range req.Trailer {
		if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidTrailerHeader(k) {
			return fmt.Errorf("h2: invalid trailer field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("h2: invalid value for trailer field %q", k)
			}
		}
	}
	return nil
}

// clientSendContentLength reports whether a content-length field is sent
// for a body of length cl (-1 unknown), as net/http decides: always for a
// known positive length, and a zero length only for methods that normally
// carry a body.
func clientSendContentLength(method string, cl int64) bool {
	if cl > 0 {
		return true
	}
	if cl < 0 {
		return false
	}
	switch method {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// encodeRequestHeaders HPACK-encodes req's header block into cc.hbuf.
// Called with cc.wmu held (the encoder's dynamic table follows wire order).
func (cc *clientConn) encodeRequestHeaders(req *http.Request, cl int64) {
	cc.hbuf.Reset()
	enc := cc.henc
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	if method != http.MethodConnect {
		scheme := req.URL.Scheme
		if scheme == "" {
			scheme = "http"
		}
		enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: scheme})
	}
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: host})
	if method != http.MethodConnect {
		path := req.URL.RequestURI()
		enc.WriteField(hpack.HeaderField{Name: ":path", Value: path})
	}
	declareTrailers := len(req.Trailer) > 0
	for k, vv := range req.Header {
		name := lowerKey(k)
		switch {
		case connectionSpecific(name), name == "host", name == "content-length":
			continue
		case name == "trailer" && declareTrailers:
			continue
		case name == "te":
			// Only "te: trailers" is allowed on HTTP/2 (RFC 9113 §8.2.2).
			if httpguts.HeaderValuesContainsToken(vv, "trailers") {
				enc.WriteField(hpack.HeaderField{Name: "te", Value: "trailers"})
			}
			continue
		}
		if perRequestField(name) {
			for _, v := range vv {
				appendLiteralField(&cc.hbuf, name, v)
			}
			continue
		}
		for _, v := range vv {
			enc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
	if declareTrailers {
		var b strings.Builder
		for k := range req.Trailer {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(lowerKey(k))
		}
		enc.WriteField(hpack.HeaderField{Name: "trailer", Value: b.String()})
	}
	if clientSendContentLength(method, cl) {
		enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(cl, 10)})
	}
}

// encodeTrailers HPACK-encodes req.Trailer into cc.hbuf (cc.wmu held).
func (cc *clientConn) encodeTrailers(tr http.Header) {
	cc.hbuf.Reset()
	for k, vv := range tr {
		name := lowerKey(k)
		for _, v := range vv {
			cc.henc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
}

// clientStatusLine is http.Response.Status for code without allocating in
// the common case.
func clientStatusLine(code int) string {
	switch code {
	case 200:
		return "200 OK"
	case 204:
		return "204 No Content"
	case 404:
		return "404 Not Found"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

// clientParseResponse turns a response header block (as the Framer decoded
// and partly validated it: lowercase names, valid values, known pseudo
// fields without duplicates) into an http.Response without Body. It rejects
// what the Framer does not: a missing or malformed :status,
// connection-specific fields and a malformed content-length.
func clientParseResponse(fields []hpack.HeaderField) (*http.Response, error) {
	var status string
	var nRegular int
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			if f.Name != ":status" {
				return nil, fmt.Errorf("h2: pseudo-header %q in a response", f.Name)
			}
			status = f.Value
			continue
		}
		nRegular++
	}
	if len(status) != 3 || status[0] < '1' || status[0] > '9' ||
		status[1] < '0' || status[1] > '9' || status[2] < '0' || status[2] > '9' {
		return nil, fmt.Errorf("h2: malformed :status %q", status)
	}
	code := int(status[0]-'0')*100 + int(status[1]-'0')*10 + int(status[2]-'0')
	resp := &http.Response{
		StatusCode:    code,
		Status:        clientStatusLine(code),
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		ContentLength: -1,
		Header:        make(http.Header, nRegular),
	}
	hb := newHeaderBuilder(resp.Header, nRegular)
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			continue
		}
		if connectionSpecific(f.Name) || f.Name == "te" {
			return nil, fmt.Errorf("h2: connection-specific field %q in a response", f.Name)
		}
		hb.add(canonicalKey(f.Name), f.Value)
		if f.Name == "trailer" {
			for _, t := range strings.Split(f.Value, ",") {
				t = http.CanonicalHeaderKey(strings.TrimSpace(t))
				if t == "" || !httpguts.ValidTrailerHeader(t) {
					continue
				}
				if resp.Trailer == nil {
					resp.Trailer = make(http.Header)
				}
				resp.Trailer[t] = nil
			}
		}
	}
	if cls := resp.Header["Content-Length"]; len(cls) > 0 {
		for _, v := range cls[1:] {
			if v != cls[0] {
				return nil, errors.New("h2: conflicting content-length values")
			}
		}
		n, err := strconv.ParseUint(cls[0], 10, 63)
		if err != nil {
			return nil, fmt.Errorf("h2: malformed content-length %q", cls[0])
		}
		resp.ContentLength = int64(n)
	}
	return resp, nil
}

// clientAddTrailers stores a trailing header block's fields in tr.
func clientAddTrailers(tr http.Header, fields []hpack.HeaderField) error {
	for _, f := range fields {
		if strings.HasPrefix(f.Name, ":") {
			return fmt.Errorf("h2: pseudo-header %q in trailers", f.Name)
		}
		if connectionSpecific(f.Name) {
			return fmt.Errorf("h2: connection-specific field %q in trailers", f.Name)
		}
		key := canonicalKey(f.Name)
		tr[key] = append(tr[key], f.Value)
	}
	return nil
}
