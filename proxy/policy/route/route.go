package route

import (
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"

	"github.com/meshscope/meshscope/proxy/policy"
)

// HeaderMatch matches one request header by exact value or regex.
type HeaderMatch struct {
	Name  string
	Exact string         // used when Regex is nil
	Regex *regexp.Regexp // full match of the value
}

// Match selects requests; every set field must match. The zero Match
// matches every request.
type Match struct {
	PathPrefix string
	PathRegex  *regexp.Regexp // full match of the path
	Method     string
	Headers    []HeaderMatch
}

// Backend is one weighted backend version.
type Backend struct {
	Version string
	Weight  int
}

// Rule is one routing rule: the first rule whose match matches decides.
type Rule struct {
	Match    Match
	Backends []Backend
}

// Config is one Route policy's rules.
type Config struct {
	Rules []Rule
}

// Matches reports whether r matches m.
func (m *Match) Matches(r *http.Request) bool {
	if m.Method != "" && !strings.EqualFold(m.Method, r.Method) {
		return false
	}
	if m.PathPrefix != "" && !strings.HasPrefix(r.URL.Path, m.PathPrefix) {
		return false
	}
	if m.PathRegex != nil && !m.PathRegex.MatchString(r.URL.Path) {
		return false
	}
	for _, h := range m.Headers {
		vals := r.Header.Values(h.Name)
		ok := false
		for _, v := range vals {
			if (h.Regex != nil && h.Regex.MatchString(v)) || (h.Regex == nil && v == h.Exact) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Select returns the backend version for r; roll is uniform in [0, 1). It
// reports false when no rule matches or the matching rule has no weight.
func (c *Config) Select(r *http.Request, roll float64) (string, bool) {
	for i := range c.Rules {
		rule := &c.Rules[i]
		if !rule.Match.Matches(r) {
			continue
		}
		total := 0
		for _, b := range rule.Backends {
			total += b.Weight
		}
		if total <= 0 {
			return "", false
		}
		n := int(roll * float64(total))
		for _, b := range rule.Backends {
			if n < b.Weight {
				return b.Version, true
			}
			n -= b.Weight
		}
		return rule.Backends[len(rule.Backends)-1].Version, true
	}
	return "", false
}

// Layer routes requests by Config.
type Layer struct {
	Ref    policy.Ref
	Config *Config
	Next   http.RoundTripper
	// Roll returns a uniform number in [0, 1); nil = math/rand/v2.
	Roll func() float64
}

// RoundTrip records the route decision and, in enforce mode, pins the
// request to the chosen version.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	roll := rand.Float64
	if l.Roll != nil {
		roll = l.Roll
	}
	if v, ok := l.Config.Select(r, roll()); ok {
		st := policy.FromContext(r.Context())
		st.Record(l.Ref, policy.RouteDecision(v))
		if l.Ref.Enforce && st != nil {
			st.SetVersion(v)
		}
	}
	return l.Next.RoundTrip(r)
}
