package h2

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serverRequestHead is a request's decoded HEADERS block.
type serverRequestHead struct {
	method        string
	authority     string
	requestURI    string
	url           *url.URL
	header        http.Header
	trailer       http.Header
	contentLength int64
}

// serverParseRequestHead validates a request header list (RFC 9113 8.2,
// 8.3) and converts it to net/http's form. The Framer has already checked
// field names and values and the position of pseudo-header fields; this
// checks them again because it is cheap and keeps the function safe on its
// own.
func serverParseRequestHead(fields []hpack.HeaderField, endStream bool) (serverRequestHead, error) {
	var h serverRequestHead
	var scheme, path string
	var sawMethod, sawScheme, sawPath, sawAuthority, sawRegular bool
	nregular := 0
	for _, f := range fields {
		if !strings.HasPrefix(f.Name, ":") {
			nregular++
		}
	}
	h.header = make(http.Header, nregular)
	hb := newHeaderBuilder(h.header, nregular)
	var cookies []string
	for _, f := range fields {
		if !httpguts.ValidHeaderFieldValue(f.Value) {
			return h, fmt.Errorf("invalid value for field %q", f.Name)
		}
		if name, ok := strings.CutPrefix(f.Name, ":"); ok {
			if sawRegular {
				return h, errors.New("pseudo-header field after a regular field")
			}
			var seen *bool
			switch name {
			case "method":
				h.method, seen = f.Value, &sawMethod
			case "scheme":
				scheme, seen = f.Value, &sawScheme
			case "path":
				path, seen = f.Value, &sawPath
			case "authority":
				h.authority, seen = f.Value, &sawAuthority
			default:
				return h, fmt.Errorf("unknown pseudo-header field %q", f.Name)
			}
			if *seen {
				return h, fmt.Errorf("duplicate pseudo-header field %q", f.Name)
			}
			*seen = true
			continue
		}
		sawRegular = true
		if !validWireFieldName(f.Name) {
			return h, fmt.Errorf("invalid field name %q", f.Name)
		}
		if connectionSpecific(f.Name) {
			return h, fmt.Errorf("connection-specific field %q", f.Name)
		}
		if f.Name == "te" && f.Value != "trailers" {
			return h, fmt.Errorf("te field %q other than \"trailers\"", f.Value)
		}
		if f.Name == "cookie" {
			cookies = append(cookies, f.Value)
			continue
		}
		hb.add(canonicalKey(f.Name), f.Value)
	}
	if len(cookies) > 0 {
		// RFC 9113 8.2.3: split cookie fields are joined for HTTP/1.1
		// semantics.
		h.header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if !sawMethod || h.method == "" {
		return h, errors.New("missing :method")
	}
	if !serverValidMethod(h.method) {
		return h, fmt.Errorf("invalid :method %q", h.method)
	}
	if h.method == http.MethodConnect {
		if sawScheme || sawPath || !sawAuthority || h.authority == "" {
			return h, errors.New("CONNECT needs :authority and no :scheme or :path")
		}
		h.url = &url.URL{Host: h.authority}
		h.requestURI = h.authority
	} else {
		if !sawScheme || scheme == "" || !sawPath || path == "" {
			return h, errors.New("missing :scheme or :path")
		}
		if path == "*" && h.method != http.MethodOptions {
			return h, errors.New(":path \"*\" on a method other than OPTIONS")
		}
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return h, fmt.Errorf("invalid :path: %w", err)
		}
		h.url = u
		h.requestURI = path
	}
	if hosts := h.header["Host"]; len(hosts) > 0 {
		if h.authority == "" {
			h.authority = hosts[0]
		}
		delete(h.header, "Host")
	}
	h.contentLength = -1
	if vv := h.header["Content-Length"]; len(vv) > 0 {
		n, err := serverParseContentLength(vv)
		if err != nil {
			return h, err
		}
		h.contentLength = n
	}
	if endStream {
		if h.contentLength > 0 {
			return h, errors.New("content-length on a request without a body")
		}
		h.contentLength = 0
	}
	for _, v := range h.header["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if k == "" || !httpguts.ValidTrailerHeader(k) {
				continue
			}
			if h.trailer == nil {
				h.trailer = make(http.Header)
			}
			h.trailer[k] = nil
		}
	}
	return h, nil
}

// serverParseContentLength accepts one or more identical decimal values.
func serverParseContentLength(vv []string) (int64, error) {
	for _, v := range vv[1:] {
		if v != vv[0] {
			return 0, errors.New("conflicting content-length fields")
		}
	}
	v := vv[0]
	if v == "" || len(v) > 19 {
		return 0, fmt.Errorf("invalid content-length %q", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("invalid content-length %q", v)
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid content-length %q: %w", v, err)
	}
	return n, nil
}

// trailersLocked applies a HEADERS block arriving on an open stream: the
// request's trailers, which must end the stream and carry no pseudo-header
// field. Any error has closed the stream. sc.mu is held.
func (sc *serverConn) trailersLocked(st *serverStream, f *http2.MetaHeadersFrame) error {
	err := func() error {
		if st.remoteDone {
			return errors.New("HEADERS after END_STREAM")
		}
		if !f.StreamEnded() {
			return errors.New("trailers without END_STREAM")
		}
		if st.declLen >= 0 && st.gotLen != st.declLen {
			return errors.New("request body does not match content-length")
		}
		for _, hf := range f.Fields {
			if strings.HasPrefix(hf.Name, ":") || !validWireFieldName(hf.Name) || !httpguts.ValidHeaderFieldValue(hf.Value) {
				return fmt.Errorf("invalid trailer field %q", hf.Name)
			}
			k := canonicalKey(hf.Name)
			if !httpguts.ValidTrailerHeader(k) {
				return fmt.Errorf("forbidden trailer field %q", hf.Name)
			}
		}
		return nil
	}()
	if err != nil {
		sc.closeStreamLocked(st, fmt.Errorf("h2: %w", err))
		return err
	}
	// The body reader moves them into Request.Trailer on the handler's
	// goroutine, so a handler may look at the map before EOF without a
	// race.
	st.trailerFields = slices.Clone(f.Fields) // f.Fields is reused for the next block
	sc.remoteEndLocked(st)
	return nil
}

func serverValidMethod(m string) bool {
	return httpguts.ValidHeaderFieldName(m)
}
