package gateway

import (
	"strings"
	"testing"
)

func TestMatcher(t *testing.T) {
	for _, tc := range []struct {
		host, prefix, exact, regex string
		reqHost, path              string
		want                       bool
	}{
		{"shop.example", "/api/", "", "", "shop.example:8443", "/api/x", true},
		{"shop.example", "/api/", "", "", "SHOP.example", "/api/x", true},
		{"shop.example", "/api/", "", "", "api.example", "/api/x", false},
		{"shop.example", "/api/", "", "", "shop.example", "/apix", false},
		{"*.example", "", "", "", "a.b.example", "/", true},
		{"*.example", "", "", "", "example", "/", false},
		{"", "", "/exact", "", "any", "/exact", true},
		{"", "", "/exact", "", "any", "/exact/", false},
		{"", "", "", "/items/[0-9]+", "any", "/items/42", true},
		{"", "", "", "/items/[0-9]+", "any", "/items/42/x", false},
		{"", "", "", "", "[::1]:443", "/anything", true},
	} {
		m, err := newMatcher(tc.host, tc.prefix, tc.exact, tc.regex)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.matchHost(requestHost(tc.reqHost)) && m.matchPath(tc.path); got != tc.want {
			t.Errorf("%+v: got %v", tc, got)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/": true, "/a/b": true, "/a/b/": true,
		"/a/../b": false, "/a/./b": false, "//a": false, "/a//b": false, "/a/..": false, "": false, "a": false,
	} {
		if cleanPath(p) != want {
			t.Errorf("cleanPath(%q) = %v", p, !want)
		}
	}
}

func FuzzMatcher(f *testing.F) {
	f.Add("*.example", "/api/", "a.example:80", "/api/../x")
	f.Add("shop.example", "/", "[::1]:1", "//")
	f.Fuzz(func(t *testing.T, host, prefix, reqHost, path string) {
		m, err := newMatcher(host, prefix, "", "")
		if err != nil {
			t.Fatal(err)
		}
		h := requestHost(reqHost)
		if m.matchHost(h) && m.host != "" && !strings.HasSuffix(h, m.host) {
			t.Fatalf("host %q matched %q", h, host)
		}
		if m.matchPath(path) && !strings.HasPrefix(path, prefix) {
			t.Fatalf("path %q matched prefix %q", path, prefix)
		}
		if cleanPath(path) && (strings.Contains(path, "/../") || strings.Contains(path, "//") || strings.HasSuffix(path, "/..")) {
			t.Fatalf("%q reported clean", path)
		}
	})
}
