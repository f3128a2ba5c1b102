package policy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Gateway is the spec of kind Gateway: the listeners and routes of an
// ingress gateway (meshscope-proxy --gateway). The document's service is
// the gateway's own service name, the entry node of the topology.
//
// Istio: Gateway + VirtualService + RequestAuthentication; Kong: services,
// routes and the jwt / rate-limiting / cors plugins.
type Gateway struct {
	// Listeners are the addresses the gateway accepts on. At least one.
	Listeners []GatewayListener `yaml:"listeners" json:"listeners"`
	// Routes are tried in order; the first whose host and path match
	// takes the request. A request no route matches gets 404.
	Routes []GatewayRoute `yaml:"routes" json:"routes"`
}

// GatewayListener is one address the gateway accepts on.
type GatewayListener struct {
	// Address is host:port. Required.
	Address string `yaml:"address" json:"address"`
	// TLS terminates TLS with a certificate per SNI host; absent = plain
	// HTTP. Default none.
	TLS *GatewayTLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// HTTPSRedirect answers every request on this (plain) listener with a
	// 308 to the same URL on the first TLS listener's port. Default false.
	HTTPSRedirect bool `yaml:"https_redirect,omitempty" json:"https_redirect,omitempty"`
	// H2C also accepts HTTP/2 without TLS (prior knowledge) on a plain
	// listener. Default false.
	H2C bool `yaml:"h2c,omitempty" json:"h2c,omitempty"`
}

// GatewayTLS is a TLS listener's certificates. HTTP/2 and HTTP/1.1 are
// offered over ALPN.
type GatewayTLS struct {
	// Certificates are chosen by the client's SNI host name; the first is
	// served to clients that send no (or an unknown) name. At least one.
	Certificates []GatewayCertificate `yaml:"certificates" json:"certificates"`
}

// GatewayCertificate is one certificate and the SNI hosts it serves.
type GatewayCertificate struct {
	// Hosts are exact names or *.suffix wildcards. At least one.
	Hosts []string `yaml:"hosts" json:"hosts"`
	// CertFile is the PEM certificate chain. Required.
	CertFile string `yaml:"cert_file" json:"cert_file"`
	// KeyFile is the PEM private key. Required.
	KeyFile string `yaml:"key_file" json:"key_file"`
}

// GatewayRoute sends matching requests to a mesh service.
type GatewayRoute struct {
	// Name is the route's label in metrics and spans. Default: the path
	// (prefix, exact or regex) as written.
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// Host matches the request's host (without port): exact, or *.suffix;
	// empty = any host.
	Host string `yaml:"host,omitempty" json:"host,omitempty"`
	// PathPrefix matches paths starting with it. At most one of the path
	// matches; none = every path.
	PathPrefix string `yaml:"path_prefix,omitempty" json:"path_prefix,omitempty"`
	// PathExact matches exactly this path.
	PathExact string `yaml:"path_exact,omitempty" json:"path_exact,omitempty"`
	// PathRegex is an RE2 expression the whole path must match.
	PathRegex string `yaml:"path_regex,omitempty" json:"path_regex,omitempty"`
	// Service is the destination: a mesh service name (endpoints from
	// discovery) or name@host:port[,host:port] (static, as --upstream).
	Service string `yaml:"service" json:"service"`
	// Anonymous allows requests without a token; a route sets either jwt
	// or anonymous: true.
	Anonymous bool `yaml:"anonymous,omitempty" json:"anonymous,omitempty"`
	// JWT requires a valid bearer token.
	JWT *GatewayJWT `yaml:"jwt,omitempty" json:"jwt,omitempty"`
	// RateLimit limits requests per client key at the gateway.
	RateLimit *GatewayRateLimit `yaml:"rate_limit,omitempty" json:"rate_limit,omitempty"`
	// MaxRequestBytes bounds the request body; larger bodies get 413.
	// Default 1 MiB (nginx's client_max_body_size).
	MaxRequestBytes int64 `yaml:"max_request_bytes" json:"max_request_bytes" default:"1048576"`
	// Timeout bounds the whole upstream call (then 504); 0 = the proxy's
	// response timeout. Default 0.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// RequestHeaders rewrites the request's headers before it is sent.
	RequestHeaders *HeaderRewrite `yaml:"request_headers,omitempty" json:"request_headers,omitempty"`
	// ResponseHeaders rewrites the response's headers.
	ResponseHeaders *HeaderRewrite `yaml:"response_headers,omitempty" json:"response_headers,omitempty"`
	// CORS answers preflights and adds CORS headers. Default none.
	CORS *CORS `yaml:"cors,omitempty" json:"cors,omitempty"`
}

// HeaderRewrite sets, adds and removes headers (remove first, then set,
// then add).
type HeaderRewrite struct {
	Set    map[string]string `yaml:"set,omitempty" json:"set,omitempty"`
	Add    map[string]string `yaml:"add,omitempty" json:"add,omitempty"`
	Remove []string          `yaml:"remove,omitempty" json:"remove,omitempty"`
}

// CORS is a route's cross-origin policy.
type CORS struct {
	// AllowOrigins are exact origins or "*". At least one.
	AllowOrigins []string `yaml:"allow_origins" json:"allow_origins"`
	// AllowMethods answered to preflights.
	AllowMethods []string `yaml:"allow_methods" json:"allow_methods" default:"GET,POST,PUT,PATCH,DELETE,OPTIONS"`
	// AllowHeaders answered to preflights. Default none (the request's
	// Access-Control-Request-Headers are not echoed).
	AllowHeaders []string `yaml:"allow_headers,omitempty" json:"allow_headers,omitempty"`
	// ExposeHeaders the browser may read.
	ExposeHeaders []string `yaml:"expose_headers,omitempty" json:"expose_headers,omitempty"`
	// AllowCredentials sends Access-Control-Allow-Credentials: true.
	AllowCredentials bool `yaml:"allow_credentials,omitempty" json:"allow_credentials,omitempty"`
	// MaxAge is how long a preflight may be cached.
	MaxAge Duration `yaml:"max_age" json:"max_age" default:"10m"`
}

// GatewayJWT validates a bearer token (RS256, ES256 or EdDSA).
type GatewayJWT struct {
	// Issuer must equal the token's iss. Required.
	Issuer string `yaml:"issuer" json:"issuer"`
	// Audiences: the token's aud must name one of them. At least one.
	Audiences []string `yaml:"audiences" json:"audiences"`
	// JWKSFile is a JSON Web Key Set file (re-read when it changes). One of
	// jwks_file and jwks_url.
	JWKSFile string `yaml:"jwks_file,omitempty" json:"jwks_file,omitempty"`
	// JWKSURL is an https:// URL of the key set (http:// only for
	// loopback hosts).
	JWKSURL string `yaml:"jwks_url,omitempty" json:"jwks_url,omitempty"`
	// Refresh is how often the key set is fetched again; an unknown kid
	// fetches it at most once per 10 s on top.
	Refresh Duration `yaml:"refresh" json:"refresh" default:"5m"`
	// ClockSkew tolerated on exp and nbf, at most 60s.
	ClockSkew Duration `yaml:"clock_skew" json:"clock_skew" default:"30s"`
	// Algorithms the issuer signs with (pinned): RS256, ES256, EdDSA.
	Algorithms []string `yaml:"algorithms" json:"algorithms" default:"RS256,ES256,EdDSA"`
	// RequiredClaims must be present in the token (any value).
	RequiredClaims []string `yaml:"required_claims,omitempty" json:"required_claims,omitempty"`
	// ForwardClaims maps a claim to the request header it is forwarded in
	// (strings as is, other values as JSON). Headers of those names sent
	// by the client are removed.
	ForwardClaims map[string]string `yaml:"forward_claims,omitempty" json:"forward_claims,omitempty"`
}

// GatewayRateLimit is a token bucket per route and client key.
type GatewayRateLimit struct {
	// RequestsPerSecond is the sustained rate per key; required.
	RequestsPerSecond float64 `yaml:"requests_per_second" json:"requests_per_second"`
	// Burst is the bucket size. Default 1 second's worth (at least 1).
	Burst int `yaml:"burst" json:"burst"`
	// Key groups requests into buckets: client_ip, header:NAME, claim:NAME
	// or route (one bucket for the route).
	Key string `yaml:"key" json:"key" default:"client_ip"`
}

// Validate implements Spec.
func (g *Gateway) Validate() error {
	if len(g.Listeners) == 0 {
		return fieldErr("listeners", "at least one listener required")
	}
	seen := map[string]int{}
	tls := 0
	for i, l := range g.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if err := checkHostPort(l.Address); err != nil {
			return fieldErr(p+".address", "%v", err)
		}
		if j, dup := seen[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			return fieldErr(p+".address", "%s is also listeners[%d]", l.Address, j)
		}
		seen[l.Address] = i
		if l.TLS != nil {
			tls++
			if l.HTTPSRedirect {
				return fieldErr(p+".https_redirect", "only on a plain listener (this one has tls)")
			}
			if l.H2C {
				return fieldErr(p+".h2c", "only on a plain listener (TLS offers h2 over ALPN)")
			}
			if len(l.TLS.Certificates) == 0 {
				return fieldErr(p+".tls.certificates", "at least one certificate required")
			}
			for j, c := range l.TLS.Certificates {
				cp := fmt.Sprintf("%s.tls.certificates[%d]", p, j)
				if len(c.Hosts) == 0 {
					return fieldErr(cp+".hosts", "at least one host required")
				}
				for k, h := range c.Hosts {
					if !validHostPattern(h) {
						return fieldErr(fmt.Sprintf("%s.hosts[%d]", cp, k), "%q: want a host name or *.suffix", h)
					}
				}
				if c.CertFile == "" {
					return fieldErr(cp+".cert_file", "must be set")
				}
				if c.KeyFile == "" {
					return fieldErr(cp+".key_file", "must be set")
				}
			}
		}
	}
	for i, l := range g.Listeners {
		if l.HTTPSRedirect && tls == 0 {
			return fieldErr(fmt.Sprintf("listeners[%d].https_redirect", i), "no listener has tls to redirect to")
		}
	}
	if len(g.Routes) == 0 {
		return fieldErr("routes", "at least one route required")
	}
	for i := range g.Routes {
		if err := g.Routes[i].validate(fmt.Sprintf("routes[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (r *GatewayRoute) validate(p string) error {
	if r.Name != "" && (len(r.Name) > 128 || strings.ContainsAny(r.Name, "\"\\\n")) {
		return fieldErr(p+".name", "%q: at most 128 characters, no quotes, backslashes or newlines", r.Name)
	}
	if r.Host != "" && !validHostPattern(r.Host) {
		return fieldErr(p+".host", "%q: want a host name or *.suffix (no port)", r.Host)
	}
	n := 0
	for _, s := range []string{r.PathPrefix, r.PathExact, r.PathRegex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return fieldErr(p, "set at most one of path_prefix, path_exact and path_regex")
	}
	if r.PathPrefix != "" && !strings.HasPrefix(r.PathPrefix, "/") {
		return fieldErr(p+".path_prefix", "%q: must start with /", r.PathPrefix)
	}
	if r.PathExact != "" && !strings.HasPrefix(r.PathExact, "/") {
		return fieldErr(p+".path_exact", "%q: must start with /", r.PathExact)
	}
	if r.PathRegex != "" {
		if _, err := regexp.Compile(r.PathRegex); err != nil {
			return fieldErr(p+".path_regex", "%v", err)
		}
	}
	if _, _, err := ParseGatewayService(r.Service); err != nil {
		return fieldErr(p+".service", "%v", err)
	}
	switch {
	case r.JWT == nil && !r.Anonymous:
		return fieldErr(p, "set jwt, or anonymous: true to allow requests without a token")
	case r.JWT != nil && r.Anonymous:
		return fieldErr(p+".anonymous", "a route with jwt is not anonymous")
	}
	if j := r.JWT; j != nil {
		jp := p + ".jwt"
		if j.Issuer == "" {
			return fieldErr(jp+".issuer", "must be set")
		}
		if len(j.Audiences) == 0 {
			return fieldErr(jp+".audiences", "at least one audience required")
		}
		switch {
		case (j.JWKSFile == "") == (j.JWKSURL == ""):
			return fieldErr(jp, "set exactly one of jwks_file and jwks_url")
		case j.JWKSURL != "":
			u, err := url.Parse(j.JWKSURL)
			if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname()))) {
				return fieldErr(jp+".jwks_url", "%q: want https://host/path (http:// only for loopback)", j.JWKSURL)
			}
		}
		if j.Refresh < Duration(1e9) {
			return fieldErr(jp+".refresh", "must be at least 1s")
		}
		if j.ClockSkew < 0 || j.ClockSkew > Duration(60e9) {
			return fieldErr(jp+".clock_skew", "must be within 0..60s")
		}
		if len(j.Algorithms) == 0 {
			return fieldErr(jp+".algorithms", "at least one of RS256, ES256, EdDSA")
		}
		for i, a := range j.Algorithms {
			if a != "RS256" && a != "ES256" && a != "EdDSA" {
				return fieldErr(fmt.Sprintf("%s.algorithms[%d]", jp, i), "%q: want RS256, ES256 or EdDSA (none and HMAC are refused)", a)
			}
		}
		for claim, h := range j.ForwardClaims {
			if claim == "" || !headerNameRE.MatchString(h) {
				return fieldErr(jp+".forward_claims."+claim, "%q: want a header name", h)
			}
		}
	}
	if rl := r.RateLimit; rl != nil {
		rp := p + ".rate_limit"
		if !(rl.RequestsPerSecond > 0 && rl.RequestsPerSecond <= 1e6) {
			return fieldErr(rp+".requests_per_second", "must be within (0, 1000000]")
		}
		if rl.Burst < 0 || rl.Burst > 1e6 {
			return fieldErr(rp+".burst", "must be within 0..1000000")
		}
		kind, arg, _ := strings.Cut(rl.Key, ":")
		switch {
		case rl.Key == "client_ip" || rl.Key == "route":
		case kind == "header" && headerNameRE.MatchString(arg):
		case kind == "claim" && arg != "":
			if r.JWT == nil {
				return fieldErr(rp+".key", "%q: a claim key needs jwt on the route", rl.Key)
			}
		default:
			return fieldErr(rp+".key", "%q: want client_ip, route, header:NAME or claim:NAME", rl.Key)
		}
	}
	if r.MaxRequestBytes < 0 {
		return fieldErr(p+".max_request_bytes", "must not be negative (0 = no limit)")
	}
	if r.Timeout < 0 {
		return fieldErr(p+".timeout", "must not be negative")
	}
	for _, hr := range []struct {
		key string
		h   *HeaderRewrite
	}{{"request_headers", r.RequestHeaders}, {"response_headers", r.ResponseHeaders}} {
		if hr.h == nil {
			continue
		}
		for _, m := range []map[string]string{hr.h.Set, hr.h.Add} {
			for k := range m {
				if !headerNameRE.MatchString(k) {
					return fieldErr(p+"."+hr.key, "%q: not a header name", k)
				}
			}
		}
		for i, k := range hr.h.Remove {
			if !headerNameRE.MatchString(k) {
				return fieldErr(fmt.Sprintf("%s.%s.remove[%d]", p, hr.key, i), "%q: not a header name", k)
			}
		}
	}
	if c := r.CORS; c != nil {
		if len(c.AllowOrigins) == 0 {
			return fieldErr(p+".cors.allow_origins", "at least one origin (or \"*\") required")
		}
		for i, o := range c.AllowOrigins {
			if o == "*" {
				if c.AllowCredentials {
					return fieldErr(p+".cors.allow_credentials", "not with allow_origins \"*\" (browsers refuse it)")
				}
				continue
			}
			if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
				return fieldErr(fmt.Sprintf("%s.cors.allow_origins[%d]", p, i), "%q: want scheme://host[:port] or *", o)
			}
		}
	}
	return nil
}

// ParseGatewayService splits a route's service into its name and static
// addresses: "web" or "web@127.0.0.1:8080,127.0.0.1:8081".
func ParseGatewayService(s string) (string, []string, error) {
	name, addrs, static := strings.Cut(s, "@")
	if !nameRE.MatchString(name) {
		return "", nil, fmt.Errorf("%q: want a service name, or name@host:port[,host:port]", s)
	}
	if !static {
		return name, nil, nil
	}
	var out []string
	for _, a := range strings.Split(addrs, ",") {
		if err := checkHostPort(a); err != nil {
			return "", nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, a)
	}
	return name, out, nil
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", s)
	}
	return nil
}

var hostRE = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

func validHostPattern(h string) bool { return hostRE.MatchString(h) }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
