package policy

import (
	"net/http"
	"regexp"
	"strings"
)

// PeerAuthentication is the spec of kind PeerAuthentication: whether the
// service's inbound proxies accept plaintext callers (docs/mtls.md).
//
// Istio: PeerAuthentication mtls.mode PERMISSIVE / STRICT.
type PeerAuthentication struct {
	// TLS is permissive (accept mTLS and plaintext, report plaintext
	// callers) or strict (refuse plaintext). Default permissive.
	TLS string `yaml:"tls" json:"tls" default:"permissive"`
}

// PeerAuthentication TLS modes.
const (
	TLSPermissive = "permissive"
	TLSStrict     = "strict"
)

// Validate implements Spec.
func (p *PeerAuthentication) Validate() error {
	switch p.TLS {
	case TLSPermissive, TLSStrict:
		return nil
	}
	return fieldErr("tls", "%q: want permissive or strict", p.TLS)
}

// Authorization is the spec of kind Authorization: which callers may
// reach the service. A request is allowed when any rule matches it; with
// no document every request is allowed. mode: audit counts and traces what
// would be denied; enforce answers 403 (docs/mtls.md).
//
// Istio: AuthorizationPolicy ALLOW with action AUDIT / dry-run;
// Linkerd: AuthorizationPolicy + MeshTLSAuthentication.
type Authorization struct {
	// Rules allow requests; a request matching none is denied.
	Rules []AuthzRule `yaml:"rules" json:"rules"`
}

// AuthzRule matches requests; every set field must match.
type AuthzRule struct {
	// Identities are caller SPIFFE IDs (spiffe://domain/service/NAME) or
	// service names (NAME, any trust domain the proxy trusts); "*" is any
	// authenticated caller. Empty: any caller, authenticated or not.
	Identities []string `yaml:"identities,omitempty" json:"identities,omitempty"`
	// Unauthenticated also matches callers without an identity
	// (plaintext) when Identities is set.
	Unauthenticated bool `yaml:"unauthenticated,omitempty" json:"unauthenticated,omitempty"`
	// Methods are HTTP methods (GET). Empty: any.
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	// Paths are exact paths or prefixes ending in * (/api/*). Empty: any.
	Paths []string `yaml:"paths,omitempty" json:"paths,omitempty"`
	// Headers must all be present with one of the listed values ("*" = any value).
	Headers map[string][]string `yaml:"headers,omitempty" json:"headers,omitempty"`
}

var methodRE = regexp.MustCompile(`^[A-Z]{1,20}$`)

// Validate implements Spec.
func (a *Authorization) Validate() error {
	if len(a.Rules) == 0 {
		return fieldErr("rules", "at least one rule (to deny everything, allow an identity no caller has)")
	}
	if len(a.Rules) > 256 {
		return fieldErr("rules", "at most 256")
	}
	for i, r := range a.Rules {
		p := "rules[" + itoa(i) + "]"
		for j, id := range r.Identities {
			if id == "*" || nameRE.MatchString(id) {
				continue
			}
			if rest, ok := strings.CutPrefix(id, "spiffe://"); ok && strings.Contains(rest, "/service/") {
				continue
			}
			return fieldErr(p+".identities["+itoa(j)+"]", "%q: want spiffe://DOMAIN/service/NAME, a service name or *", id)
		}
		if r.Unauthenticated && len(r.Identities) == 0 {
			return fieldErr(p+".unauthenticated", "only with identities (without them the rule matches every caller already)")
		}
		for j, m := range r.Methods {
			if !methodRE.MatchString(m) {
				return fieldErr(p+".methods["+itoa(j)+"]", "%q: want an upper-case HTTP method", m)
			}
		}
		for j, path := range r.Paths {
			if !strings.HasPrefix(path, "/") || strings.Contains(strings.TrimSuffix(path, "*"), "*") {
				return fieldErr(p+".paths["+itoa(j)+"]", "%q: want /exact or /prefix*", path)
			}
		}
		for h, vals := range r.Headers {
			if h == "" || http.CanonicalHeaderKey(h) == "" || strings.ContainsAny(h, " :") {
				return fieldErr(p+".headers", "%q is not a header name", h)
			}
			if len(vals) == 0 {
				return fieldErr(p+".headers."+h, "at least one value (\"*\" = present with any value)")
			}
		}
	}
	return nil
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
