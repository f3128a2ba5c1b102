package proxy

import (
	"fmt"
	"strings"
)

// routeUnmatched is the route label of requests no template matches.
const routeUnmatched = "unmatched"

// wildcardSegment marks a {name} segment; literals never contain braces.
const wildcardSegment = "{}"

// routeTemplate is a parsed path template: literal segments, "{name}"
// matching exactly one segment, and an optional final "{name...}" matching
// the rest of the path.
type routeTemplate struct {
	text     string
	segments []string // wildcardSegment stands for {name}
	rest     bool     // final {name...}
}

func parseRouteTemplate(t string) (routeTemplate, error) {
	if !strings.HasPrefix(t, "/") {
		return routeTemplate{}, fmt.Errorf("template %q must start with /", t)
	}
	rt := routeTemplate{text: t}
	parts := strings.Split(t[1:], "/")
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			name := p[1 : len(p)-1]
			if strings.HasSuffix(name, "...") {
				if i != len(parts)-1 {
					return routeTemplate{}, fmt.Errorf("template %q: {%s} must be the last segment", t, name)
				}
				name = strings.TrimSuffix(name, "...")
				rt.rest = true
			}
			if name == "" || strings.ContainsAny(name, "{}/") {
				return routeTemplate{}, fmt.Errorf("template %q: bad wildcard %q", t, p)
			}
			if !rt.rest {
				rt.segments = append(rt.segments, wildcardSegment)
			}
			continue
		}
		if strings.ContainsAny(p, "{}") {
			return routeTemplate{}, fmt.Errorf("template %q: wildcards must fill a whole segment, got %q", t, p)
		}
		if p == "" && i != len(parts)-1 {
			return routeTemplate{}, fmt.Errorf("template %q: empty segment", t)
		}
		rt.segments = append(rt.segments, p)
	}
	return rt, nil
}

// match reports whether path matches, without allocating.
func (rt *routeTemplate) match(path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	rest, more := path[1:], true
	for _, seg := range rt.segments {
		if !more {
			return false
		}
		var cur string
		if j := strings.IndexByte(rest, '/'); j < 0 {
			cur, rest, more = rest, "", false
		} else {
			cur, rest = rest[:j], rest[j+1:]
		}
		if seg == wildcardSegment {
			if cur == "" {
				return false
			}
		} else if cur != seg {
			return false
		}
	}
	if rt.rest {
		return more
	}
	return !more
}

// routeTable matches a path against declared templates in order; the first
// match wins.
type routeTable struct {
	templates []routeTemplate
	names     map[methodRoute]string // span names of common methods, built once
}

type methodRoute struct{ method, route string }

var commonMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// spanName returns "METHOD ROUTE" without allocating for common methods.
func (rt *routeTable) spanName(method, route string) string {
	if n, ok := rt.names[methodRoute{method, route}]; ok {
		return n
	}
	return method + " " + route
}

func newRouteTable(ts []string) (*routeTable, error) {
	rt := &routeTable{names: map[methodRoute]string{}}
	for _, t := range ts {
		p, err := parseRouteTemplate(t)
		if err != nil {
			return nil, err
		}
		rt.templates = append(rt.templates, p)
		for _, m := range commonMethods {
			rt.names[methodRoute{m, t}] = m + " " + t
		}
	}
	return rt, nil
}

// route returns the template matching path, or "unmatched".
func (rt *routeTable) route(path string) string {
	for i := range rt.templates {
		if rt.templates[i].match(path) {
			return rt.templates[i].text
		}
	}
	return routeUnmatched
}
