package authz

import (
	"net/http/httptest"
	"strings"
	"testing"

	cpolicy "github.com/meshscope/meshscope/control/policy"
)

func TestDecide(t *testing.T) {
	docs, err := cpolicy.Load([]byte(`kind: Authorization
name: payments-callers
service: payments
mode: enforce
rules:
- identities: [checkout, spiffe://meshscope.local/service/billing]
  methods: [POST]
  paths: [/api/pay*]
- identities: ["*"]
  unauthenticated: true
  methods: [GET]
  paths: [/healthz]
- headers: {x-admin: ["yes"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(&docs[0], false)
	if err != nil || !p.Enforce {
		t.Fatalf("Compile = %+v, %v", p, err)
	}
	for _, tc := range []struct {
		method, path, id string
		hdr              map[string]string
		allow            bool
	}{
		{"POST", "/api/pay/1", "spiffe://meshscope.local/service/checkout", nil, true},
		{"POST", "/api/pay", "spiffe://meshscope.local/service/billing", nil, true},
		{"POST", "/api/pay", "spiffe://other.domain/service/billing", nil, false},
		{"GET", "/api/pay", "spiffe://meshscope.local/service/checkout", nil, false},
		{"POST", "/api/pay", "spiffe://meshscope.local/service/frontend", nil, false},
		{"POST", "/api/pay", "", nil, false},
		{"GET", "/healthz", "", nil, true},
		{"GET", "/healthz", "spiffe://meshscope.local/service/x", nil, true},
		{"GET", "/healthz/x", "", nil, false},
		{"DELETE", "/anything", "", map[string]string{"X-Admin": "yes"}, true},
		{"DELETE", "/anything", "", map[string]string{"X-Admin": "no"}, false},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		for k, v := range tc.hdr {
			r.Header.Set(k, v)
		}
		allow, reason := p.Decide(r, Caller{Identity: tc.id})
		if allow != tc.allow {
			t.Errorf("%s %s from %q = %v (%s), want %v", tc.method, tc.path, tc.id, allow, reason, tc.allow)
		}
		if !allow && !strings.Contains(reason, `authorization "payments-callers"`) {
			t.Errorf("reason %q does not name the policy", reason)
		}
	}
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		mode         string
		proxyEnforce bool
		want         bool
	}{{"audit", true, false}, {"enforce", false, true}, {"", true, true}, {"", false, false}} {
		y := "kind: Authorization\nname: a\nservice: s\nrules: [{methods: [GET]}]\n"
		if tc.mode != "" {
			y += "mode: " + tc.mode + "\n"
		}
		docs, err := cpolicy.Load([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		p, _ := Compile(&docs[0], tc.proxyEnforce)
		if p.Enforce != tc.want {
			t.Errorf("mode %q proxy enforce %v: Enforce = %v", tc.mode, tc.proxyEnforce, p.Enforce)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	for y, want := range map[string]string{
		"rules: []":                                             "rules: at least one rule",
		"rules: [{identities: [Bad Name]}]":                     "rules[0].identities[0]",
		"rules: [{unauthenticated: true}]":                      "rules[0].unauthenticated",
		"rules: [{methods: [get]}]":                             "rules[0].methods[0]",
		"rules: [{paths: [api]}]":                               "rules[0].paths[0]",
		"rules: [{headers: {x-a: []}}]":                         "rules[0].headers.x-a",
		"mode: observe\nrules: [{methods: [GET]}]\ntls: strict": "tls",
	} {
		_, err := cpolicy.Load([]byte("kind: Authorization\nname: a\nservice: s\n" + y + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to name %q", y, err, want)
		}
	}
	_, err := cpolicy.Load([]byte("kind: PeerAuthentication\nname: p\nservice: s\ntls: strictly\n"))
	if err == nil || !strings.Contains(err.Error(), `tls: "strictly": want permissive or strict`) {
		t.Errorf("PeerAuthentication error %v", err)
	}
}

// FuzzLoadAuthorization: the loader never panics on Authorization input
// and what it accepts compiles and decides.
func FuzzLoadAuthorization(f *testing.F) {
	f.Add("rules: [{identities: [a], methods: [GET], paths: [/x*], headers: {h: [v]}}]")
	f.Add("mode: audit\nrules: [{identities: ['*'], unauthenticated: true}]")
	f.Fuzz(func(t *testing.T, y string) {
		docs, err := cpolicy.Load([]byte("kind: Authorization\nname: a\nservice: s\n" + y))
		if err != nil || len(docs) != 1 {
			return
		}
		p, err := Compile(&docs[0], false)
		if err != nil {
			t.Fatal(err)
		}
		p.Decide(httptest.NewRequest("GET", "/x", nil), Caller{Identity: "spiffe://d/service/a"})
	})
}
