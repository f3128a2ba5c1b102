package proxy

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// The lean forwarding path does for the common sidecar request (an
// HTTP/1.x or HTTP/2 GET, HEAD, OPTIONS or TRACE without a body or an
// upgrade, on an inbound or outbound listener) what httputil.ReverseProxy
// does, with the same headers, 1xx forwarding, flushing, trailers, errors
// and aborts, but without ReverseProxy's per-request allocations: the
// outgoing request's URL and context (with the field orders and the 1xx
// hook) live in one struct, response headers move into the response map
// instead of being copied value by value (and the request's into the
// outgoing request), and Content-Type is parsed only when it may name an
// event stream. Every other request takes ReverseProxy (httpHandler.rp).

// leanEligible reports whether r, on listener h, takes the lean path.
func (h *httpHandler) leanEligible(r *http.Request) bool {
	if h.t.kind != "inbound" && h.t.kind != "outbound" {
		return false // forward proxy and gateway rewrite requests in their own way
	}
	if (r.ProtoMajor != 1 && r.ProtoMajor != 2) || (r.Body != nil && r.Body != http.NoBody) || r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	if _, ok := r.Header["Upgrade"]; ok {
		return false
	}
	_, expect := r.Header["Expect"]
	return !expect
}

// leanRequest is the outgoing request of one lean forward.
type leanRequest struct {
	ctx    leanContext // the outgoing request's context, unless the request came with one (h1ServerConn.lctx)
	url    url.URL
	rw     http.ResponseWriter
	orders *headOrders   // the client's field order, nil when not kept
	conn   *h1ServerConn // the owned connection it arrived on, if any

	mu   sync.Mutex
	done bool // the round trip returned: 1xx responses no longer reach rw

	// The verbatim response (h1Transport.exchange, appendVerbatimHead):
	// wanted when the response goes to an owned connection and nothing
	// between the handler and the transport reads its header map.
	wantVerbatim bool
	verbatim     bool   // the response head was taken verbatim
	head         []byte // its field lines, as forwarded
}

// leanContext is the outgoing request's context: the request's, plus the
// field orders (headOrdersKey) and the 1xx hook (interimKey) without a
// context value each.
type leanContext struct {
	context.Context
	l *leanRequest
}

func (c *leanContext) Value(key any) any {
	switch key.(type) {
	case headOrdersKey:
		if c.l.orders != nil {
			return c.l.orders
		}
	case interimKey:
		if c.l.rw != nil { // forwardLean runs
			return interimHook(c.l)
		}
	}
	return c.Context.Value(key)
}

// interimKey carries the interimHook that receives a request's 1xx
// responses on the lean path (h1Transport looks for it before an
// httptrace.ClientTrace).
type interimKey struct{}

type interimHook interface {
	got1xx(code int, header textproto.MIMEHeader) error
}

// got1xxHook returns what receives the 1xx responses of a request with
// context ctx, nil when nothing does.
func got1xxHook(ctx context.Context) func(int, textproto.MIMEHeader) error {
	if h, ok := ctx.Value(interimKey{}).(interimHook); ok {
		return h.got1xx
	}
	if tr := httptrace.ContextClientTrace(ctx); tr != nil {
		return tr.Got1xxResponse
	}
	return nil
}

// got1xx forwards an interim response, as ReverseProxy does.
func (l *leanRequest) got1xx(code int, header textproto.MIMEHeader) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return nil
	}
	h := l.rw.Header()
	for k, vv := range header {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	l.rw.WriteHeader(code)
	clear(h)
	return nil
}

// forwardLean forwards r (leanEligible) upstream and copies the response
// to rec; orders is the client's field order, nil when not kept.
func (h *httpHandler) forwardLean(rec *recorder, r *http.Request, orders *headOrders) {
	var rw http.ResponseWriter = rec
	l := &rec.lean // allocated (or reset) with the recorder
	l.rw, l.orders = rw, orders
	if w, ok := rec.w.(*h1Writer); ok {
		l.conn = w.c
		// The header map of the response is read by nothing but
		// forwardLean when no policy chain wraps the transport.
		if l.wantVerbatim = orders != nil && h.p.policies == nil; l.wantVerbatim {
			l.head = w.head
		}
	}
	var out *http.Request
	if lc, ok := r.Context().(*leanContext); ok && lc.l == l {
		// An owned connection's request has this context already: a
		// copy, not a new request from WithContext.
		l.conn.out = *r
		out = &l.conn.out
	} else {
		l.ctx = leanContext{Context: r.Context(), l: l}
		out = r.WithContext(&l.ctx)
	}
	l.url = *r.URL
	out.URL = &l.url
	// The server read what it needs of the request head before calling
	// the handler, and the handler is done with it (trace headers are
	// injected already): the outgoing request takes the map over instead
	// of a copy.
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.Body = nil
	out.Close = false
	if l.conn == nil || l.conn.hopFields { // an owned connection's parse knows there are none
		trailers := httpguts.HeaderValuesContainsToken(out.Header["Te"], "trailers")
		removeHopByHop(out.Header)
		if trailers {
			out.Header.Set("Te", "trailers")
		}
	}
	// What ReverseProxy's Rewrite mode and newHTTPHandler's Rewrite do:
	// the forwarded headers and the query stay as the client sent them.
	out.URL.Scheme = "http"
	out.URL.Host = h.t.pick()
	if r.Trailer != nil {
		out.Trailer = r.Trailer
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // not Go's default
	}

	res, err := h.p.transport.RoundTrip(out)
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
	if err != nil {
		h.proxyError(rw, out, err)
		return
	}
	announced := 0
	if l.verbatim { // no header map: the head as appendVerbatimHead forwarded it
		w := rec.w.(*h1Writer)
		w.head = l.head // the scratch buffer, grown
		if rec.status == 0 {
			rec.status = res.StatusCode
		}
		w.writeVerbatimHead(res.StatusCode, l.head, res.ContentLength)
	} else {
		if res.StatusCode == http.StatusSwitchingProtocols {
			_ = res.Body.Close()
			h.proxyError(rw, out, fmt.Errorf("backend tried to switch protocol %q when %q was requested", upgradeOf(res.Header), ""))
			return
		}
		removeHopByHop(res.Header)
		dst := rw.Header()
		for k, vv := range res.Header {
			if old, ok := dst[k]; ok {
				dst[k] = append(old, vv...)
			} else {
				dst[k] = vv // res is this request's alone
			}
		}
		announced = len(res.Trailer)
		if announced > 0 {
			keys := make([]string, 0, announced)
			for k := range res.Trailer {
				keys = append(keys, k)
			}
			dst.Add("Trailer", strings.Join(keys, ", "))
		}
		rw.WriteHeader(res.StatusCode)
	}

	if err := h.copyLean(rw, res); err != nil {
		defer res.Body.Close()
		if r.Context().Value(http.ServerContextKey) == nil {
			return
		}
		panic(http.ErrAbortHandler) // as ReverseProxy: the server aborts the response
	}
	_ = res.Body.Close() // now, to fill in res.Trailer

	if len(res.Trailer) > 0 {
		_ = http.NewResponseController(rw).Flush() // forces chunking
	}
	dst := rw.Header()
	if len(res.Trailer) == announced {
		for k, vv := range res.Trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range res.Trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// copyLean copies the response body, flushing after every write when the
// length is unknown or the body is an event stream, as ReverseProxy does.
func (h *httpHandler) copyLean(rw http.ResponseWriter, res *http.Response) error {
	var w io.Writer = rw
	if res.ContentLength == -1 || isEventStream(res.Header["Content-Type"]) {
		f := &flushEach{w: rw, rc: http.NewResponseController(rw)}
		_ = f.rc.Flush() // the head goes out even if the body is slow
		w = f
	}
	if b, ok := res.Body.(*h1Body); ok {
		if p := b.buffered(); p != nil { // all read with the head: no copy through buf
			nw, werr := w.Write(p)
			if werr == nil && nw != len(p) {
				werr = io.ErrShortWrite
			}
			if werr == nil {
				b.consume()
			}
			return werr
		}
	}
	buf := h.p.bufPool.Get()
	defer h.p.bufPool.Put(buf)
	for {
		nr, rerr := res.Body.Read(buf)
		if rerr != nil && rerr != io.EOF && rerr != context.Canceled {
			h.p.errorLog.Printf("httputil: ReverseProxy read error during body copy: %v", rerr)
		}
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			if werr != nil {
				return werr
			}
			if nw != nr {
				return io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
	}
}

// flushEach flushes after every write.
type flushEach struct {
	w  io.Writer
	rc *http.ResponseController
}

func (f *flushEach) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	_ = f.rc.Flush()
	return n, err
}

// isEventStream reports whether a Content-Type names text/event-stream,
// parsing it only when it starts like one.
func isEventStream(ct []string) bool {
	if len(ct) == 0 {
		return false
	}
	v := strings.TrimLeft(ct[0], " \t")
	if len(v) < len("text/event-stream") || !strings.EqualFold(v[:len("text/event-stream")], "text/event-stream") {
		return false
	}
	base, _, _ := mime.ParseMediaType(ct[0])
	return base == "text/event-stream"
}

// hopHeaders are removed in both directions (RFC 9110 section 7.6.1),
// with the fields the Connection header names.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop removes hop-by-hop fields as ReverseProxy does.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for sf := range strings.SplitSeq(f, ",") {
			if sf = textproto.TrimString(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, f := range hopHeaders {
		if _, ok := h[f]; ok {
			delete(h, f)
		}
	}
}

// upgradeOf returns the protocol a header switches to, if any.
func upgradeOf(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}
