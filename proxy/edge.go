package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
)

// dirIngress is the direction label of requests entering the mesh through
// a gateway (meshscope-proxy --gateway, package proxy/gateway).
const dirIngress = "ingress"

// EdgeRouter decides what a gateway does with a request. It is called
// once per request inside the request's span and metrics, so requests it
// answers itself (401, 404, 413, 429, redirects, CORS preflights) are
// recorded like forwarded ones.
type EdgeRouter interface {
	RouteEdge(r *http.Request) (*http.Request, EdgeDecision)
}

// EdgeDecision is where one gateway request goes.
type EdgeDecision struct {
	// Route is the route label (one per configured route: bounded).
	Route string
	// Service is the destination service label.
	Service string
	// Addr is the upstream host:port; empty = a discovered endpoint of
	// Service (the policy engine's balancer picks it).
	Addr string
	// Local answers the request at the gateway instead of forwarding it.
	Local http.Handler
	// Timeout bounds the upstream call; 0 = none beyond response_timeout.
	Timeout time.Duration
	// ModifyResponse rewrites the upstream's response headers; may be nil.
	ModifyResponse func(*http.Response) error
}

type edgeKey struct{}

// Edge is a proxy without sidecar listeners whose Handler serves a
// gateway's requests through the same forwarding, span and metric code as
// the sidecar listeners, with direction="ingress".
type Edge struct {
	*Proxy
	router EdgeRouter
}

// NewEdge builds the proxy half of a gateway: admin endpoint, telemetry,
// transports and (with control_plane) the policy engine, but no
// listeners; cfg's inbound/upstream/forward listeners must be empty.
func NewEdge(cfg Config, reg *prometheus.Registry, logger *slog.Logger, router EdgeRouter) (*Edge, error) {
	if len(cfg.Inbound) > 0 || len(cfg.Upstreams) > 0 || cfg.HTTPProxy != "" {
		return nil, errors.New("gateway: --inbound, --upstream and --http-proxy do not apply (routes come from the Gateway document)")
	}
	check := cfg
	check.HTTPProxy = "127.0.0.1:0" // only satisfies the "some listener" rule; nothing binds it
	if err := check.Validate(); err != nil {
		return nil, err
	}
	p, err := build(cfg, reg, logger)
	if err != nil {
		return nil, err
	}
	return &Edge{Proxy: p, router: router}, nil
}

// Handler returns the gateway's request handler.
func (e *Edge) Handler() http.Handler {
	t := &target{kind: "gateway", direction: dirIngress, spanKind: trace.SpanKindServer}
	h := e.newHTTPHandler(t)
	h.router = e.router
	rewrite := h.rp.Rewrite
	h.rp.Rewrite = func(pr *httputil.ProxyRequest) {
		rewrite(pr)
		// The edge trusts no client's forwarding headers: X-Forwarded-For
		// is the client's address, X-Forwarded-Proto and -Host what it
		// used (Envoy's use_remote_address at the edge).
		for _, k := range forwardedHeaders {
			pr.Out.Header.Del(k)
		}
		pr.SetXForwarded()
		if d, _ := pr.In.Context().Value(edgeKey{}).(*EdgeDecision); d != nil {
			pr.Out.URL.Host = d.Addr
			pr.Out.Host = pr.In.Host // the upstream sees the host the client asked for
		}
		if !isGRPC(pr.In) {
			// The client's HTTP/2 ends at the gateway; upstreams get
			// HTTP/1.1 (gRPC needs HTTP/2 and keeps it, over h2c).
			pr.Out.Proto, pr.Out.ProtoMajor, pr.Out.ProtoMinor = "HTTP/1.1", 1, 1
		}
	}
	modify := h.rp.ModifyResponse
	h.rp.ModifyResponse = func(res *http.Response) error {
		if err := modify(res); err != nil {
			return err
		}
		if d, _ := res.Request.Context().Value(edgeKey{}).(*EdgeDecision); d != nil && d.ModifyResponse != nil {
			return d.ModifyResponse(res)
		}
		return nil
	}
	return h
}

// edgeRequest asks the router about r and labels it: the gateway's own
// service is the source, the route's service the destination.
func (p *Proxy) edgeRequest(h *httpHandler, r *http.Request, k *requestKey) (*http.Request, context.CancelFunc) {
	k.srcService, k.srcVersion = p.cfg.Service, p.cfg.Version
	k.dstVersion = versionUnknown
	k.dstService, k.route = serviceUnknown, routeUnmatched
	if h.router == nil {
		return r, nil
	}
	r, d := h.router.RouteEdge(r)
	if d.Service != "" {
		k.dstService = d.Service
	}
	if d.Route != "" {
		k.route = d.Route
	}
	ctx := context.WithValue(r.Context(), edgeKey{}, &d)
	var cancel context.CancelFunc
	if d.Timeout > 0 && d.Local == nil {
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
	}
	return r.WithContext(ctx), cancel
}

// edgeLocal is the handler answering r at the gateway, or nil.
func edgeLocal(r *http.Request) http.Handler {
	if d, _ := r.Context().Value(edgeKey{}).(*EdgeDecision); d != nil {
		return d.Local
	}
	return nil
}

// edgeAddr is the fixed upstream address the gateway routed r to, or "".
func edgeAddr(r *http.Request) string {
	if d, _ := r.Context().Value(edgeKey{}).(*EdgeDecision); d != nil && d.Local == nil {
		return d.Addr
	}
	return ""
}
