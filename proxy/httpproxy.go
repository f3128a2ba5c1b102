package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/meshscope/meshscope/proxy/h2"
)

// Status codes the proxy reports for its own failures.
const (
	statusClientGone      = 499
	statusUpstreamConnect = http.StatusBadGateway
	statusTimeout         = http.StatusGatewayTimeout
)

// target says where one listener's requests go and how they are labelled.
type target struct {
	kind       string // "inbound", "outbound", "forward"
	direction  string
	dstService string // forward proxy: resolved per request
	dstVersion string
	addrs      []string
	discover   func(service string) string // with --control-plane: a discovered endpoint
	next       atomic.Uint64
	spanKind   trace.SpanKind
}

// pick returns the next address round-robin.
func (t *target) pick() string {
	switch len(t.addrs) {
	case 0: // discovered: the policy balancer sets HTTP requests' address
		if t.discover != nil {
			return t.discover(t.dstService)
		}
		return ""
	case 1:
		return t.addrs[0]
	}
	return t.addrs[(t.next.Add(1)-1)%uint64(len(t.addrs))]
}

// httpHandler forwards and records the requests of one listener.
type httpHandler struct {
	p      *Proxy
	t      *target
	rp     *httputil.ReverseProxy
	router EdgeRouter // gateway listeners only (edge.go)
}

// forwardedHeaders are removed by ReverseProxy.Rewrite; observe mode puts
// them back so the app sees exactly what the client sent.
var forwardedHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

func (p *Proxy) newHTTPHandler(t *target) *httpHandler {
	h := &httpHandler{p: p, t: t}
	h.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			if t.kind == "forward" {
				hostport := forwardHost(pr.In)
				if _, up := p.resolveForward(hostOnly(hostport)); up != nil {
					hostport = up.pick()
				}
				pr.Out.URL.Host = hostport
			} else {
				pr.Out.URL.Host = t.pick()
			}
			// ReverseProxy drops query parameters it cannot parse (such as
			// ones with ';'); the app must see the query as sent.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery
			// Request trailers arrive after the body; the clone made
			// before it was read has none, so pass the one the server
			// fills in (http.Transport writes it after the body).
			if pr.In.Trailer != nil {
				pr.Out.Trailer = pr.In.Trailer
			}
			for _, k := range forwardedHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			// An HTTP/2 body that arrived whole says so through
			// ReverseProxy's no-close wrapper, so that proxy/h2's client
			// sends it with the request headers.
			if bb, ok := pr.In.Body.(h2.BufferedBody); ok && pr.Out.Body != nil {
				pr.Out.Body = bufferedOutBody{ReadCloser: pr.Out.Body, in: bb}
			}
		},
		ModifyResponse: func(res *http.Response) error {
			noteUpstreamBody(res)
			return nil
		},
		Transport:     p.transport,
		FlushInterval: 0, // streaming (unknown length, SSE, gRPC) responses are flushed per write by ReverseProxy
		ErrorHandler:  h.proxyError,
		ErrorLog:      p.errorLog,
		BufferPool:    p.bufPool,
	}
	return h
}

// resolveForward names the service a forward-proxy request for host goes
// to: the --route entry for host, else the service of that name; it is
// "external" when neither names a service. When the service has an
// --upstream, its target is returned and the request goes to the
// upstream's addresses instead of the host.
func (p *Proxy) resolveForward(host string) (string, *target) {
	svc, ok := p.cfg.Routes[host]
	if !ok {
		svc = host
	}
	if t, ok := p.services[svc]; ok {
		return t.dstService, t
	}
	if ok {
		return svc, nil
	}
	return serviceExternal, nil
}

// forwardHost returns host:port a forward-proxy request is for.
func forwardHost(r *http.Request) string {
	host := r.Host
	if r.URL.IsAbs() && r.URL.Host != "" {
		host = r.URL.Host
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(strings.Trim(host, "[]"), "80")
	}
	return host
}

// hostOnly strips the port.
func hostOnly(hostport string) string {
	if !strings.Contains(hostport, ":") {
		return hostport // no port (and no error for SplitHostPort to allocate)
	}
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func isGRPC(r *http.Request) bool {
	ct := firstValue(r.Header, "Content-Type")
	return strings.HasPrefix(ct, "application/grpc")
}

func isWebSocket(r *http.Request) bool {
	return r.ProtoMajor == 1 && strings.EqualFold(firstValue(r.Header, "Upgrade"), "websocket")
}

// firstValue is h.Get(key) for a key in canonical form, without
// canonicalizing it again.
func firstValue(h http.Header, key string) string {
	if vv := h[key]; len(vv) > 0 {
		return vv[0]
	}
	return ""
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.p
	var rec *recorder
	var start time.Time
	if hw, ok := w.(*h1Writer); ok {
		rec = &hw.c.rec // one request at a time per owned connection
		*rec = recorder{w: w}
		start = hw.c.reqStart // read as the request began (startWatch)
	} else {
		rec = &recorder{w: w}
	}
	lean := h.leanEligible(r) // h1forward.go
	var orders *headOrders
	if g := orderKeeperOf(r); g != nil {
		defer g.resume() // an Upgrade or CONNECT that did not take the connection over
		// Keep the client's and the upstream's field order (headorder.go).
		if names := g.takeOrder(r.RequestURI); names != "" {
			rec.guard, rec.order.req = g, names
			orders = &rec.order
			if !lean { // the lean path's context carries them
				r = r.WithContext(context.WithValue(r.Context(), headOrdersKey{}, orders))
			}
		}
	}
	if start.IsZero() {
		start = time.Now()
	}
	p.inflight.Add(1)
	p.self.inflight.Inc()

	k := requestKey{protocol: protoHTTP1}
	k.direction = h.t.direction
	switch {
	case isGRPC(r):
		k.protocol = protoGRPC
	case r.ProtoMajor == 2:
		k.protocol = protoHTTP2
	case isWebSocket(r):
		k.protocol = protoWebSocket
	}
	k.route = p.routes.route(r.URL.Path)
	switch h.t.kind {
	case "inbound":
		k.dstService, k.dstVersion = p.cfg.Service, p.cfg.Version
		if svc, ver, ok := meshCaller(r.Header); ok {
			k.srcService, k.srcVersion = p.callers.intern(svc), p.callers.intern(ver)
		} else {
			k.srcService, k.srcVersion = serviceUnknown, versionUnknown
		}
	case "outbound":
		k.srcService, k.srcVersion = p.cfg.Service, p.cfg.Version
		k.dstService, k.dstVersion = h.t.dstService, versionUnknown
	case "gateway":
		var cancel context.CancelFunc
		if r, cancel = p.edgeRequest(h, r, &k); cancel != nil {
			defer cancel()
		}
	default: // forward proxy
		if r.Method == http.MethodConnect {
			p.inflight.Done()
			p.self.inflight.Dec()
			p.serveConnect(w, r, h.t)
			return
		}
		k.srcService, k.srcVersion = p.cfg.Service, p.cfg.Version
		k.dstVersion = versionUnknown
		k.dstService, _ = p.resolveForward(hostOnly(forwardHost(r)))
	}
	if p.policies != nil {
		r = withPolicyState(r, p, &k, h.t.kind == "inbound")
	}

	// Trace context: continue the caller's trace, start this hop's span,
	// and hand the hop's context on.
	var span *hopSpan // nil when not recorded
	if p.tracing {
		ctx, b3 := extractTrace(r.Context(), r.Header)
		parent := trace.SpanContextFromContext(ctx)
		sc := newHopSpanContext(parent, p.tel.sampler)
		if sc.IsSampled() && p.tel.spans != nil {
			span = newHopSpan()
			span.sc, span.parent, span.kind, span.start = sc, parent, h.t.spanKind, start
			span.name = h.spanName(r.Method, k.route)
			span.setStr(attrMethod, r.Method)
			span.setStr(attrPath, r.URL.Path)
			span.setStr(attrScheme, schemeOf(r))
			span.setStr(attrServerAddress, hostOnly(r.Host))
			span.setStr(attrProtoVersion, protoVersion(r))
			span.setStr(attrSrcService, k.srcService)
			span.setStr(attrSrcVersion, k.srcVersion)
			span.setStr(attrDstService, k.dstService)
			span.setStr(attrDstVersion, k.dstVersion)
			span.setStr(attrDirection, k.direction)
			span.setStr(attrProtocol, k.protocol)
			if k.route != routeUnmatched {
				span.setStr(attrRoute, k.route)
			}
			if ua := firstValue(r.Header, "User-Agent"); ua != "" {
				span.setStr(attrUserAgent, ua)
			}
			if h.t.kind == "inbound" {
				span.setStr(attrClientAddress, hostOnly(r.RemoteAddr))
			}
		}
		if !p.cfg.Telemetry.NoTraceHeaders {
			injectTraceContext(sc, r.Header, b3)
		}
	}
	if !p.cfg.Telemetry.NoTraceHeaders && h.t.kind != "inbound" {
		setMeshStateValue(r.Header, p.meshMember, p.meshState)
	}

	var body *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		body = &countingBody{rc: r.Body}
		r.Body = body
	}
	defer func() {
		v := recover()
		h.finish(r, rec, body, &k, span, start, v)
		p.self.inflight.Dec()
		p.inflight.Done()
		if v != nil {
			panic(v)
		}
	}()
	if l := edgeLocal(r); l != nil {
		l.ServeHTTP(rec, r) // answered by the gateway (edge.go)
		return
	}
	if p.mesh != nil && !p.meshRequest(rec, r, h.t, &k, span) {
		return
	}
	if lean {
		h.forwardLean(rec, r, orders)
		return
	}
	if r.ProtoMajor == 2 && k.protocol == protoGRPC {
		// ModifyResponse hands the recorder the upstream's response body:
		// gRPC responses have no length, so ReverseProxy flushes them
		// after every write (recorder.FlushError).
		r = r.WithContext(context.WithValue(r.Context(), recorderKey{}, rec))
	}
	h.rp.ServeHTTP(rec, r)
}

// recorderKey carries an HTTP/2 request's recorder to ModifyResponse.
type recorderKey struct{}

// noteUpstreamBody lets the recorder of res's request hold back flushes
// while res.Body (an HTTP/2 upstream's) has data or its end at hand
// (recorder.FlushError).
func noteUpstreamBody(res *http.Response) {
	if b, ok := res.Body.(interface{ OnWait(func()) }); ok {
		if rec, _ := res.Request.Context().Value(recorderKey{}).(*recorder); rec != nil {
			rec.holdFlush = true
			b.OnWait(rec.flushHeld)
		}
	}
}

// finish records the metrics and ends the span of one request.
func (h *httpHandler) finish(r *http.Request, rec *recorder, body *countingBody, k *requestKey, span *hopSpan, start time.Time, panicked any) {
	code := rec.status
	reason := ""
	switch {
	case rec.errCode != 0:
		code = rec.errCode
		reason = rec.errReason
	case panicked != nil && r.Context().Err() == nil:
		code = statusUpstreamConnect
		reason = "upstream response aborted before it completed"
	case panicked != nil || (r.Context().Err() != nil && code == 0):
		code = statusClientGone
		reason = "client gone before the response completed"
	case rec.hijacked && code == 0:
		code = http.StatusSwitchingProtocols
	case code == 0:
		code = http.StatusOK
	}
	policyFinish(r, h.p, k, span)
	if h.p.mesh != nil {
		h.p.meshFinish(r, h.t, k, span)
	}
	k.statusCode = statusLabel(code)
	failed := code >= 500 || code == statusClientGone || panicked != nil
	if k.protocol == protoGRPC {
		name, serverErr := grpcStatusLabel(rec.grpcStatus())
		k.grpcStatus = name
		if serverErr {
			failed = true
			if reason == "" {
				reason = "grpc-status " + name
			}
		}
	}
	if failed {
		k.outcome = outcomeFailure
	} else {
		k.outcome = outcomeSuccess
	}
	elapsed := time.Since(start)
	if h.p.metrics != nil {
		var s *requestSeries
		if hw, ok := rec.w.(*h1Writer); ok {
			s = hw.c.series.get(h.p.metrics, k)
		} else {
			s = h.p.metrics.request(k)
		}
		s.requests.Inc()
		s.duration.Observe(elapsed.Seconds())
		if n := body.count(); n > 0 {
			s.reqBytes.Add(float64(n))
		}
		if rec.bytes > 0 {
			s.respBytes.Add(float64(rec.bytes))
		}
	}
	if span != nil {
		span.add(attribute.Int("http.response.status_code", code))
		if k.grpcStatus != "" {
			span.add(attribute.String("rpc.grpc.status_code", k.grpcStatus))
		}
		if failed {
			if reason == "" {
				reason = "HTTP " + k.statusCode
			}
			span.add(attribute.String("error.type", errorType(code, k.grpcStatus)))
			span.setError(reason)
		}
		span.end = start.Add(elapsed)
		h.p.tel.spans.enqueue(span)
	}
}

func errorType(code int, grpc string) string {
	switch code {
	case statusClientGone:
		return "client_gone"
	case statusUpstreamConnect:
		return "upstream_connect"
	case statusTimeout:
		return "timeout"
	}
	if grpc != "" && grpc != "OK" {
		return grpc
	}
	return statusLabel(code)
}

func (h *httpHandler) spanName(method, route string) string {
	if route == routeUnmatched {
		return method
	}
	return h.p.routes.spanName(method, route)
}

func schemeOf(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if g := guardOf(r); g != nil && g.tls {
		return "https" // HTTP/1.x over TLS reaches net/http through the guard
	}
	return "http"
}

func protoVersion(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return "2"
	}
	if r.ProtoMinor == 0 {
		return "1.0"
	}
	return "1.1"
}

// proxyError maps a forwarding error to the status the client sees.
func (h *httpHandler) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rec, _ := w.(*recorder)
	if g := guardOf(r); g != nil {
		if fe := g.bodyError(); fe != nil {
			// The request body's framing was bad: the upstream request
			// was aborted before its end; the client gets the guard's
			// status and the connection is closed.
			if rec != nil {
				rec.errCode, rec.errReason = fe.status, fe.Error()
			}
			if rec == nil || rec.status == 0 {
				w.Header().Set("Connection", "close")
				http.Error(w, fmt.Sprintf("%d %s: %s", fe.status, http.StatusText(fe.status), fe.reason), fe.status)
			}
			return
		}
	}
	code, reason := classifyError(r.Context(), err)
	if rec != nil {
		rec.errCode, rec.errReason = code, reason
	}
	if code == statusClientGone {
		return
	}
	if rec == nil || rec.status == 0 {
		w.WriteHeader(code)
	}
}

// classifyError maps an upstream error to 499 (client gone), 504 (timeout)
// or 502 (anything else, typically connect failure) and a reason.
func classifyError(ctx context.Context, err error) (int, string) {
	if ctx.Err() != nil {
		return statusClientGone, "client gone: " + err.Error()
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, "request body larger than the route's limit"
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return statusTimeout, "upstream timeout: " + err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return statusUpstreamConnect, "upstream connect failure: " + err.Error()
	}
	return statusUpstreamConnect, "upstream error: " + err.Error()
}

// recorder captures status, size and hijacking of a response while passing
// everything through.
type recorder struct {
	w         http.ResponseWriter
	status    int
	bytes     int64
	hijacked  bool
	errCode   int
	errReason string

	guard orderKeeper // the client connection, when it keeps field order
	order headOrders
	lean  leanRequest // the outgoing request on the lean path (h1forward.go)

	// holdFlush: flushes wait until the upstream's response body is about
	// to wait for data (noteUpstreamBody); flushPending: one is held. The
	// first flush of a response of unknown length comes from ReverseProxy's
	// timer goroutine while the body is read: flushPending is atomic.
	holdFlush    bool
	flushPending atomic.Bool
}

func (rw *recorder) Header() http.Header { return rw.w.Header() }

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		rw.status = code
	}
	if code >= 200 {
		// Responses pass as the upstream sent them: net/http must not
		// add a Date or a sniffed Content-Type the upstream left out.
		h := rw.w.Header()
		if _, ok := h["Date"]; !ok {
			h["Date"] = nil
		}
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = nil
		}
		if rw.guard != nil {
			if names := rw.order.respNames(); names != "" {
				rw.guard.expectResp(names)
			}
		}
	}
	rw.w.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	n, err := rw.w.Write(b)
	rw.bytes += int64(n)
	return n, err
}

// FlushError implements the flusher http.ResponseController looks for.
// With an HTTP/2 upstream the flush is held until reading the upstream's
// body would wait (flushHeld), or the handler returns and the end of the
// stream writes everything: ReverseProxy flushes after each write of a
// response of unknown length and again before the trailers, and a gRPC
// reply whose message and trailers are at hand then leaves in one write
// instead of two, while a stream still gets each message out before the
// next is awaited.
func (rw *recorder) FlushError() error {
	if rw.holdFlush {
		rw.flushPending.Store(true)
		return nil
	}
	return http.NewResponseController(rw.w).Flush()
}

// flushHeld flushes what a held flush kept back.
func (rw *recorder) flushHeld() {
	if rw.flushPending.Swap(false) {
		_ = http.NewResponseController(rw.w).Flush()
	}
}

// Flush implements http.Flusher.
func (rw *recorder) Flush() { _ = rw.FlushError() }

// Hijack implements http.Hijacker (WebSocket and other upgrades).
func (rw *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(rw.w).Hijack()
	if err == nil {
		rw.hijacked = true
		tunnelGuard(c)
	}
	return c, brw, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.w }

// grpcStatus returns the grpc-status the upstream sent, as a trailer or in
// a trailers-only response.
func (rw *recorder) grpcStatus() string {
	h := rw.w.Header()
	if v := h.Get("Grpc-Status"); v != "" {
		return v
	}
	return h.Get(http.TrailerPrefix + "Grpc-Status")
}

// countingBody counts request body bytes.
type countingBody struct {
	rc io.ReadCloser
	n  atomic.Int64 // the transport may still read after the response
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func (b *countingBody) count() int64 {
	if b == nil {
		return 0
	}
	return b.n.Load()
}

func (b *countingBody) Close() error { return b.rc.Close() }

// bufferedOutBody is ReverseProxy's outgoing request body (which reads
// the incoming one and does not close it) with the incoming body's
// h2.BufferedBody.
type bufferedOutBody struct {
	io.ReadCloser
	in h2.BufferedBody
}

func (b bufferedOutBody) Buffered() (int, bool) { return b.in.Buffered() }

// Buffered passes on an HTTP/2 request body's h2.BufferedBody, so that a
// small body that arrived whole still goes upstream with its headers.
func (b *countingBody) Buffered() (int, bool) {
	if bb, ok := b.rc.(h2.BufferedBody); ok {
		return bb.Buffered()
	}
	return 0, false
}
