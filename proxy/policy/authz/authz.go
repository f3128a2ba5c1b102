package authz

import (
	"fmt"
	"net/http"
	"strings"

	cpolicy "github.com/meshscope/meshscope/control/policy"
)

// ReasonHeader carries why a request was denied.
const ReasonHeader = "X-Meshscope-Authz"

// Policy is one compiled Authorization document.
type Policy struct {
	Name    string
	Enforce bool
	rules   []cpolicy.AuthzRule
}

// Compile compiles an Authorization document; proxyEnforce is the proxy's
// own --mode, used when the document sets none.
func Compile(d *cpolicy.Document, proxyEnforce bool) (*Policy, error) {
	a := d.Authorization()
	if a == nil {
		return nil, fmt.Errorf("%s is not an Authorization", d.Ref())
	}
	enforce := proxyEnforce
	switch d.Mode {
	case cpolicy.ModeEnforce:
		enforce = true
	case cpolicy.ModeAudit, cpolicy.ModeObserve:
		enforce = false
	}
	return &Policy{Name: d.Name, Enforce: enforce, rules: a.Rules}, nil
}

// Caller is who sent a request.
type Caller struct {
	// Identity is the SPIFFE ID from mTLS; "" = unauthenticated.
	Identity string
}

// Decide reports whether the request is allowed and, when not, why.
func (p *Policy) Decide(r *http.Request, c Caller) (allowed bool, reason string) {
	if p == nil {
		return true, ""
	}
	for i := range p.rules {
		if matches(&p.rules[i], r, c) {
			return true, ""
		}
	}
	who := c.Identity
	if who == "" {
		who = "unauthenticated caller"
	}
	return false, fmt.Sprintf("authorization %q: no rule allows %s %s from %s", p.Name, r.Method, r.URL.Path, who)
}

func matches(rule *cpolicy.AuthzRule, r *http.Request, c Caller) bool {
	if len(rule.Identities) > 0 && !identityMatches(rule, c.Identity) {
		return false
	}
	if len(rule.Methods) > 0 && !contains(rule.Methods, r.Method) {
		return false
	}
	if len(rule.Paths) > 0 {
		ok := false
		for _, p := range rule.Paths {
			if prefix, wild := strings.CutSuffix(p, "*"); wild {
				ok = strings.HasPrefix(r.URL.Path, prefix)
			} else {
				ok = r.URL.Path == p
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	for h, vals := range rule.Headers {
		got := r.Header.Values(h)
		if len(got) == 0 {
			return false
		}
		if !contains(vals, "*") && !anyIn(got, vals) {
			return false
		}
	}
	return true
}

func identityMatches(rule *cpolicy.AuthzRule, id string) bool {
	if id == "" {
		return rule.Unauthenticated
	}
	for _, want := range rule.Identities {
		switch {
		case want == "*", want == id:
			return true
		case !strings.Contains(want, "/") && strings.HasSuffix(id, "/service/"+want):
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func anyIn(got, want []string) bool {
	for _, g := range got {
		if contains(want, g) {
			return true
		}
	}
	return false
}
