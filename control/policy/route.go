package policy

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// headerNameRE is the syntax of an HTTP header name (an RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// Route is the spec of kind Route: how requests to a service are split
// between its versions, retried, timed out, mirrored and faulted.
//
// Istio: VirtualService http[]; Linkerd: HTTPRoute plus retry annotations.
type Route struct {
	// Rules are tried in order; the first whose match matches picks the
	// backends. A request no rule matches goes to any endpoint of the
	// service. Default none.
	Rules []RouteRule `yaml:"rules,omitempty" json:"rules,omitempty"`
	// Timeout bounds the whole call including retries; the proxy answers
	// 504 when it passes. Default 0 = no timeout.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// Retries retries failed attempts. Default none.
	Retries *Retries `yaml:"retries,omitempty" json:"retries,omitempty"`
	// Mirror copies a share of requests to another version; its responses
	// are discarded. Default none.
	Mirror *Mirror `yaml:"mirror,omitempty" json:"mirror,omitempty"`
	// Fault injects delays and aborts. Default none.
	Fault *Fault `yaml:"fault,omitempty" json:"fault,omitempty"`
}

// RouteRule is one rule: a match and the weighted backends it sends to.
type RouteRule struct {
	// Match selects requests; absent = every request.
	Match *Match `yaml:"match,omitempty" json:"match,omitempty"`
	// Backends are the versions to send to and their weights. At least one.
	Backends []Backend `yaml:"backends" json:"backends"`
}

// Match selects requests. Every field set must match.
type Match struct {
	// PathPrefix matches paths starting with it. Default any.
	PathPrefix string `yaml:"path_prefix,omitempty" json:"path_prefix,omitempty"`
	// PathRegex is an RE2 expression the whole path must match. Default any.
	PathRegex string `yaml:"path_regex,omitempty" json:"path_regex,omitempty"`
	// Method is the HTTP method (GET, POST, ...). Default any.
	Method string `yaml:"method,omitempty" json:"method,omitempty"`
	// Headers must all match. Default none.
	Headers []HeaderMatch `yaml:"headers,omitempty" json:"headers,omitempty"`
}

// HeaderMatch matches one request header by exact value or RE2 expression
// (which must match the whole value). Exactly one of Exact and Regex is set.
type HeaderMatch struct {
	Name  string `yaml:"name" json:"name"`
	Exact string `yaml:"exact,omitempty" json:"exact,omitempty"`
	Regex string `yaml:"regex,omitempty" json:"regex,omitempty"`
}

// Backend is one version of the service and its share of traffic.
type Backend struct {
	// Version is the endpoints' version label (the proxy's --version).
	Version string `yaml:"version" json:"version"`
	// Weight is the percent of matching requests, 0..100; the weights of
	// a rule sum to 100. When every weight of a rule is omitted the
	// traffic is split evenly.
	Weight int `yaml:"weight" json:"weight"`
}

// Retries retries failed attempts.
type Retries struct {
	// Attempts is the number of retries after the first attempt, 0..10.
	Attempts int `yaml:"attempts" json:"attempts" default:"2"`
	// PerTryTimeout bounds each attempt; 0 = only the route's timeout.
	PerTryTimeout Duration `yaml:"per_try_timeout" json:"per_try_timeout" default:"0s"`
	// On lists what is retried: 5xx, gateway-error (502, 503, 504),
	// connect-failure, reset, or a status code such as 503.
	On []string `yaml:"on" json:"on" default:"gateway-error,connect-failure,reset"`
	// Budget caps retries as a share of requests.
	Budget *RetryBudget `yaml:"budget" json:"budget" default:"{}"`
}

// RetryBudget caps retries to Ratio of the requests plus MinPerSecond
// (Linkerd's retry budget, over a 10 s window).
type RetryBudget struct {
	// Ratio is the extra load retries may add, 0..1.
	Ratio float64 `yaml:"ratio" json:"ratio" default:"0.2"`
	// MinPerSecond retries are always allowed per second.
	MinPerSecond int `yaml:"min_per_second" json:"min_per_second" default:"10"`
}

// Mirror copies requests to another version; callers only see the primary.
type Mirror struct {
	// Version receives the copies.
	Version string `yaml:"version" json:"version"`
	// Percent of requests copied, 0..100.
	Percent float64 `yaml:"percent" json:"percent" default:"100"`
}

// Fault injects faults into requests to the service.
type Fault struct {
	Delay *FaultDelay `yaml:"delay,omitempty" json:"delay,omitempty"`
	Abort *FaultAbort `yaml:"abort,omitempty" json:"abort,omitempty"`
}

// FaultDelay delays a share of requests before they are sent.
type FaultDelay struct {
	// Percent of requests delayed, 0..100.
	Percent float64 `yaml:"percent" json:"percent" default:"100"`
	// Duration of the delay; required.
	Duration Duration `yaml:"duration" json:"duration"`
}

// FaultAbort answers a share of requests with Status without sending them.
type FaultAbort struct {
	// Percent of requests aborted, 0..100.
	Percent float64 `yaml:"percent" json:"percent" default:"100"`
	// Status is the HTTP status returned, 200..599.
	Status int `yaml:"status" json:"status" default:"503"`
	// Headers are set on the aborted answers (a guard's breaker sets
	// x-meshscope-guard). Default none.
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
}

// Retry conditions.
const (
	RetryOn5xx            = "5xx"
	RetryOnGatewayError   = "gateway-error"
	RetryOnConnectFailure = "connect-failure"
	RetryOnReset          = "reset"
)

// Validate implements Spec.
func (r *Route) Validate() error {
	if len(r.Rules) == 0 && r.Timeout == 0 && r.Retries == nil && r.Mirror == nil && r.Fault == nil {
		return fieldErr("", "sets nothing: want rules, timeout, retries, mirror or fault")
	}
	for i := range r.Rules {
		if err := r.Rules[i].validate(fmt.Sprintf("rules[%d]", i)); err != nil {
			return err
		}
	}
	if r.Timeout < 0 {
		return fieldErr("timeout", "must not be negative")
	}
	if t := r.Retries; t != nil {
		if t.Attempts < 0 || t.Attempts > 10 {
			return fieldErr("retries.attempts", "must be 0..10")
		}
		if t.PerTryTimeout < 0 {
			return fieldErr("retries.per_try_timeout", "must not be negative")
		}
		if len(t.On) == 0 {
			return fieldErr("retries.on", "must list at least one condition")
		}
		for i, c := range t.On {
			if !validRetryOn(c) {
				return fieldErr(fmt.Sprintf("retries.on[%d]", i), "%q: want 5xx, gateway-error, connect-failure, reset or a status code 400..599", c)
			}
		}
		if b := t.Budget; b != nil {
			if b.Ratio < 0 || b.Ratio > 1 {
				return fieldErr("retries.budget.ratio", "must be 0..1")
			}
			if b.MinPerSecond < 0 {
				return fieldErr("retries.budget.min_per_second", "must not be negative")
			}
		}
	}
	if m := r.Mirror; m != nil {
		if m.Version == "" {
			return fieldErr("mirror.version", "must be set")
		}
		if err := checkPercent("mirror.percent", m.Percent); err != nil {
			return err
		}
	}
	if f := r.Fault; f != nil {
		if f.Delay == nil && f.Abort == nil {
			return fieldErr("fault", "want delay or abort")
		}
		if d := f.Delay; d != nil {
			if err := checkPercent("fault.delay.percent", d.Percent); err != nil {
				return err
			}
			if d.Duration <= 0 {
				return fieldErr("fault.delay.duration", "must be positive")
			}
		}
		if a := f.Abort; a != nil {
			if err := checkPercent("fault.abort.percent", a.Percent); err != nil {
				return err
			}
			if a.Status < 200 || a.Status > 599 {
				return fieldErr("fault.abort.status", "must be 200..599")
			}
			for _, k := range sortedKeys(a.Headers) {
				if !headerNameRE.MatchString(k) {
					return fieldErr("fault.abort.headers."+k, "is not a header name")
				}
				if strings.ContainsAny(a.Headers[k], "\r\n\x00") {
					return fieldErr("fault.abort.headers."+k, "value must not contain CR, LF or NUL")
				}
			}
		}
	}
	return nil
}

func validRetryOn(c string) bool {
	switch c {
	case RetryOn5xx, RetryOnGatewayError, RetryOnConnectFailure, RetryOnReset:
		return true
	}
	n, err := strconv.Atoi(c)
	return err == nil && len(c) == 3 && n >= 400 && n <= 599
}

func checkPercent(path string, p float64) error {
	if !(p >= 0 && p <= 100) { // also rejects NaN
		return fieldErr(path, "must be 0..100")
	}
	return nil
}

func (rule *RouteRule) validate(path string) error {
	if err := rule.Match.validate(path + ".match"); err != nil {
		return err
	}
	return rule.validateBackends(path)
}

// validate checks a match; path names it (rules[0].match). A nil match is
// valid.
func (m *Match) validate(path string) error {
	if m != nil {
		if m.PathPrefix != "" && m.PathPrefix[0] != '/' {
			return fieldErr(path+".path_prefix", "%q: must start with /", m.PathPrefix)
		}
		if m.PathRegex != "" {
			if _, err := regexp.Compile(m.PathRegex); err != nil {
				return fieldErr(path+".path_regex", "%v", err)
			}
		}
		if m.Method != "" && !tokenRE.MatchString(m.Method) {
			return fieldErr(path+".method", "%q is not an HTTP method", m.Method)
		}
		for i, h := range m.Headers {
			hp := fmt.Sprintf("%s.headers[%d]", path, i)
			if h.Name == "" || !tokenRE.MatchString(h.Name) {
				return fieldErr(hp+".name", "%q is not a header name", h.Name)
			}
			switch {
			case h.Exact != "" && h.Regex != "":
				return fieldErr(hp, "set exact or regex, not both")
			case h.Exact == "" && h.Regex == "":
				return fieldErr(hp, "set exact or regex")
			case h.Regex != "":
				if _, err := regexp.Compile(h.Regex); err != nil {
					return fieldErr(hp+".regex", "%v", err)
				}
			}
		}
	}
	return nil
}

func (rule *RouteRule) validateBackends(path string) error {
	if len(rule.Backends) == 0 {
		return fieldErr(path+".backends", "must list at least one backend")
	}
	sum := 0
	seen := map[string]bool{}
	for i, b := range rule.Backends {
		bp := fmt.Sprintf("%s.backends[%d]", path, i)
		if b.Version == "" {
			return fieldErr(bp+".version", "must be set")
		}
		if seen[b.Version] {
			return fieldErr(bp+".version", "%q listed twice", b.Version)
		}
		seen[b.Version] = true
		if b.Weight < 0 || b.Weight > 100 {
			return fieldErr(bp+".weight", "must be 0..100")
		}
		sum += b.Weight
	}
	if sum != 100 {
		return fieldErr(path+".backends", "weights sum to %d, want 100", sum)
	}
	return nil
}

// tokenRE is an HTTP token (RFC 9110 §5.6.2).
var tokenRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// setDefaults fills what tags cannot: even weights when a rule gives none.
func (r *Route) setDefaults() {
	for i := range r.Rules {
		b := r.Rules[i].Backends
		if len(b) == 0 {
			continue
		}
		total := 0
		for _, x := range b {
			total += x.Weight
		}
		if total != 0 {
			continue
		}
		for j := range b {
			b[j].Weight = 100 / len(b)
		}
		b[0].Weight += 100 % len(b)
	}
}
