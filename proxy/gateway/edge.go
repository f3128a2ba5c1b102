package gateway

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/proxy"
)

// route is one compiled route.
type route struct {
	label    string
	m        matcher
	service  string
	addrs    []string
	next     *atomic.Uint64
	jwt      *policy.GatewayJWT
	keys     *keySet
	limit    *limiter
	limitKey string // client_ip, route, header:NAME, claim:NAME
	keyKind  string // client_ip, route, header, claim
	maxBytes int64
	timeout  time.Duration
	reqHdr   *policy.HeaderRewrite
	respHdr  *policy.HeaderRewrite
	cors     *policy.CORS
}

func (g *Gateway) compileRoute(rs *policy.GatewayRoute, usedKeys, usedLimits map[string]bool) (*route, error) {
	m, err := newMatcher(rs.Host, rs.PathPrefix, rs.PathExact, rs.PathRegex)
	if err != nil {
		return nil, fmt.Errorf("path_regex: %w", err)
	}
	name, addrs, err := policy.ParseGatewayService(rs.Service)
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	if len(addrs) == 0 && !g.opts.Discovery {
		return nil, fmt.Errorf("service: %q has no addresses: write %s@host:port, or run with --control-plane to discover it", rs.Service, name)
	}
	r := &route{label: rs.Name, m: m, service: name, addrs: addrs, next: new(atomic.Uint64),
		jwt: rs.JWT, maxBytes: rs.MaxRequestBytes, timeout: rs.Timeout.D(),
		reqHdr: rs.RequestHeaders, respHdr: rs.ResponseHeaders, cors: rs.CORS}
	if r.label == "" {
		switch {
		case rs.PathExact != "":
			r.label = rs.PathExact
		case rs.PathRegex != "":
			r.label = rs.PathRegex
		case rs.PathPrefix != "":
			r.label = rs.PathPrefix
		default:
			r.label = "/"
		}
	}
	if j := rs.JWT; j != nil {
		k := j.JWKSFile + "\x00" + j.JWKSURL + "\x00" + j.Refresh.D().String()
		ks := g.keySets[k]
		if ks == nil {
			ks = newKeySet(j.JWKSFile, j.JWKSURL, j.Refresh.D(), g.opts.JWKSClient, g.logger)
			g.keySets[k] = ks
		}
		usedKeys[k] = true
		r.keys = ks
	}
	if rl := rs.RateLimit; rl != nil {
		k := fmt.Sprintf("%s\x00%g\x00%d\x00%s", r.label, rl.RequestsPerSecond, rl.Burst, rl.Key)
		lim := g.limiters[k]
		if lim == nil {
			lim = newLimiter(rl.RequestsPerSecond, rl.Burst)
			g.limiters[k] = lim
		}
		usedLimits[k] = true
		r.limit, r.limitKey = lim, rl.Key
		r.keyKind, _, _ = strings.Cut(rl.Key, ":")
	}
	return r, nil
}

// RouteEdge implements proxy.EdgeRouter: it picks the route and answers
// what the gateway answers itself, in this order: HTTPS redirect, bad
// path (400), no route (404), CORS preflight (204), body too large (413),
// rate limit by client IP or header (429), token (401), rate limit by
// claim (429). A forwarded request carries the forwarded claims and the
// route's header rewrites.
func (g *Gateway) RouteEdge(r *http.Request) (*http.Request, proxy.EdgeDecision) {
	st := g.state.Load()
	if info, _ := r.Context().Value(listenerCtxKey{}).(*listenerInfo); info != nil && info.redirect && st != nil {
		g.metrics.rejected.WithLabelValues("https_redirect", "https_redirect").Inc()
		return r, proxy.EdgeDecision{Route: "https_redirect", Local: redirect(st.httpsPort)}
	}
	if st == nil {
		return r, proxy.EdgeDecision{Local: textReply(http.StatusServiceUnavailable, "gateway has no configuration yet")}
	}
	if !cleanPath(r.URL.Path) {
		g.metrics.rejected.WithLabelValues("", "bad_path").Inc()
		return r, proxy.EdgeDecision{Local: textReply(http.StatusBadRequest, "path is not normalized (. or .. or empty segments)")}
	}
	host := requestHost(r.Host)
	var rt *route
	for _, c := range st.routes {
		if c.m.matchHost(host) && c.m.matchPath(r.URL.Path) {
			rt = c
			break
		}
	}
	if rt == nil {
		g.metrics.rejected.WithLabelValues("", "no_route").Inc()
		return r, proxy.EdgeDecision{Local: textReply(http.StatusNotFound, "no gateway route for this host and path")}
	}
	d := proxy.EdgeDecision{Route: rt.label, Service: rt.service, Timeout: rt.timeout}
	origin := r.Header.Get("Origin")
	if rt.cors != nil && origin != "" && r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		d.Local = preflight(rt.cors, origin)
		return r, d
	}
	if rt.maxBytes > 0 {
		if r.ContentLength > rt.maxBytes {
			g.metrics.rejected.WithLabelValues(rt.label, "body_too_large").Inc()
			d.Local = textReply(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", rt.maxBytes))
			return r, d
		}
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(nil, r.Body, rt.maxBytes)
		}
	}
	now := g.opts.Now()
	if rt.limit != nil && rt.keyKind != "claim" {
		if l := g.rateLimit(rt, r, nil, now); l != nil {
			d.Local = l
			return r, d
		}
	}
	var claims map[string]any
	if rt.jwt != nil {
		var err error
		claims, err = g.authenticate(r, rt, now)
		if err != nil {
			reason := reasonMalformed
			var ae *authError
			if errors.As(err, &ae) {
				reason = ae.reason
			}
			g.metrics.authFailures.WithLabelValues(rt.label, reason).Inc()
			d.Local = unauthorized(g.opts.Service, reason)
			return r, d
		}
	}
	if rt.limit != nil && rt.keyKind == "claim" {
		if l := g.rateLimit(rt, r, claims, now); l != nil {
			d.Local = l
			return r, d
		}
	}
	if rt.jwt != nil {
		for claim, h := range rt.jwt.ForwardClaims {
			r.Header.Del(h)
			if v, ok := claims[claim]; ok {
				if s, ok := claimHeader(v); ok {
					r.Header.Set(h, s)
				}
			}
		}
	}
	rewrite(r.Header, rt.reqHdr)
	switch len(rt.addrs) {
	case 0: // discovered: the policy engine's balancer picks the endpoint
	case 1:
		d.Addr = rt.addrs[0]
	default:
		d.Addr = rt.addrs[(rt.next.Add(1)-1)%uint64(len(rt.addrs))]
	}
	if rt.respHdr != nil || (rt.cors != nil && origin != "") {
		d.ModifyResponse = func(res *http.Response) error {
			rewrite(res.Header, rt.respHdr)
			if rt.cors != nil && origin != "" {
				corsHeaders(res.Header, rt.cors, origin)
			}
			return nil
		}
	}
	return r, d
}

// authenticate validates the request's bearer token for rt.
func (g *Gateway) authenticate(r *http.Request, rt *route, now time.Time) (map[string]any, error) {
	auth := r.Header.Get("Authorization")
	scheme, raw, ok := strings.Cut(auth, " ")
	if auth == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, authErr(reasonMissing)
	}
	raw = strings.TrimSpace(raw)
	if len(raw) > maxTokenBytes {
		return nil, authErr(reasonMalformed)
	}
	j := rt.jwt
	sum := sha256.Sum256([]byte(raw))
	if v, ok := rt.keys.verified.get(sum); ok {
		// Verified before: the key must still be the set's key for its kid.
		if key, err := rt.keys.key(r.Context(), v.kid, now); err == nil && sameKey(key, v.key) && slices.Contains(j.Algorithms, v.alg) {
			if err := checkClaims(v.claims, j.Issuer, j.Audiences, j.RequiredClaims, j.ClockSkew.D(), now); err != nil {
				return nil, err
			}
			return v.claims, nil
		}
	}
	t, err := parseToken(raw)
	if err != nil {
		return nil, err
	}
	if !supportedAlg(t.alg) || !slices.Contains(j.Algorithms, t.alg) {
		return nil, authErr(reasonAlgorithm)
	}
	key, err := rt.keys.key(r.Context(), t.kid, now)
	if err != nil {
		return nil, err
	}
	if err := verifySignature(t, key); err != nil {
		return nil, err
	}
	if err := checkClaims(t.claims, j.Issuer, j.Audiences, j.RequiredClaims, j.ClockSkew.D(), now); err != nil {
		return nil, err
	}
	rt.keys.verified.put(sum, verifiedToken{claims: t.claims, kid: t.kid, alg: t.alg, key: key})
	return t.claims, nil
}

// rateLimit takes a token for the request's client key; it returns the
// 429 handler when the bucket is empty, and nil otherwise.
func (g *Gateway) rateLimit(rt *route, r *http.Request, claims map[string]any, now time.Time) http.Handler {
	var key string
	kind, arg, _ := strings.Cut(rt.limitKey, ":")
	switch kind {
	case "client_ip":
		key, _, _ = net.SplitHostPort(r.RemoteAddr)
	case "header":
		key = r.Header.Get(arg)
	case "claim":
		if v, ok := claims[arg]; ok {
			key, _ = claimHeader(v)
		}
	}
	v := rt.limit.take(key, now)
	limit := strconv.Itoa(int(rt.limit.burst))
	if v.allowed {
		return nil
	}
	g.metrics.rateLimited.WithLabelValues(rt.label, rt.keyKind).Inc()
	policyHdr := fmt.Sprintf("%s;w=%s", limit, strconv.FormatFloat(rt.limit.burst/rt.limit.rate, 'g', 4, 64))
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Retry-After", ceilSeconds(v.retryAfter))
		h.Set("RateLimit-Limit", limit)
		h.Set("RateLimit-Remaining", strconv.Itoa(v.remaining))
		h.Set("RateLimit-Reset", ceilSeconds(v.reset))
		h.Set("RateLimit-Policy", policyHdr)
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte("rate limited\n"))
	})
}

// unauthorized is the 401 of RFC 6750: no error code when no token was
// sent, invalid_token and a description otherwise.
func unauthorized(realm, reason string) http.Handler {
	v := fmt.Sprintf(`Bearer realm=%q`, realm)
	if reason != reasonMissing {
		v += fmt.Sprintf(`, error="invalid_token", error_description=%q`, reasonText[reason])
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", v)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte("401 unauthorized: " + reasonText[reason] + "\n"))
	})
}

func textReply(code int, msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if code == http.StatusRequestEntityTooLarge {
			w.Header().Set("Connection", "close") // the unread body is not drained
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), msg)
	})
}

func redirect(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := requestHost(r.Host)
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if port != "443" {
			host += ":" + port
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

func rewrite(h http.Header, rw *policy.HeaderRewrite) {
	if rw == nil {
		return
	}
	for _, k := range rw.Remove {
		h.Del(k)
	}
	for k, v := range rw.Set {
		h.Set(k, v)
	}
	for k, v := range rw.Add {
		h.Add(k, v)
	}
}

func originAllowed(c *policy.CORS, origin string) (string, bool) {
	for _, o := range c.AllowOrigins {
		if o == "*" {
			return "*", true
		}
		if strings.EqualFold(o, origin) {
			return origin, true
		}
	}
	return "", false
}

func corsHeaders(h http.Header, c *policy.CORS, origin string) {
	h.Add("Vary", "Origin")
	allow, ok := originAllowed(c, origin)
	if !ok {
		return
	}
	h.Set("Access-Control-Allow-Origin", allow)
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ", "))
	}
}

func preflight(c *policy.CORS, origin string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		corsHeaders(h, c, origin)
		if _, ok := originAllowed(c, origin); ok {
			h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowMethods, ", "))
			if len(c.AllowHeaders) > 0 {
				h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowHeaders, ", "))
			}
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(c.MaxAge.D().Seconds())))
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// sameKey reports whether two public keys are the same key material.
func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
