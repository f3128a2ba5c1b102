package gateway

import (
	"net"
	"path"
	"regexp"
	"strings"
)

// matcher is one route's host and path match.
type matcher struct {
	host     string // lower case; "" = any
	wildcard bool   // host is ".suffix" (from *.suffix)
	prefix   string
	exact    string
	re       *regexp.Regexp // anchored
}

func newMatcher(host, prefix, exact, regex string) (matcher, error) {
	m := matcher{prefix: prefix, exact: exact}
	host = strings.ToLower(host)
	if s, ok := strings.CutPrefix(host, "*"); ok {
		m.host, m.wildcard = s, true
	} else {
		m.host = host
	}
	if regex != "" {
		re, err := regexp.Compile("^(?:" + regex + ")$")
		if err != nil {
			return m, err
		}
		m.re = re
	}
	return m, nil
}

// matchHost reports whether host (lower case, no port) matches.
func (m *matcher) matchHost(host string) bool {
	switch {
	case m.host == "":
		return true
	case m.wildcard:
		return len(host) > len(m.host) && strings.HasSuffix(host, m.host)
	}
	return host == m.host
}

func (m *matcher) matchPath(p string) bool {
	switch {
	case m.exact != "":
		return p == m.exact
	case m.re != nil:
		return m.re.MatchString(p)
	}
	return strings.HasPrefix(p, m.prefix)
}

// requestHost returns the request's host without port, lower case.
func requestHost(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// cleanPath reports whether p is a normalized absolute path: no "." or
// ".." segments and no empty segments (except a trailing slash). Routes
// match on the decoded path and the upstream normalizes what it gets, so
// "/public/../admin" must not match /public/ and reach /admin.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}
