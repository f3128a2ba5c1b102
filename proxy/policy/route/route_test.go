package route

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/meshscope/meshscope/proxy/policy"
)

func TestSelect(t *testing.T) {
	split := Config{Rules: []Rule{
		{Match: Match{Headers: []HeaderMatch{{Name: "X-Canary", Exact: "1"}}}, Backends: []Backend{{Version: "v2", Weight: 1}}},
		{Match: Match{PathRegex: regexp.MustCompile(`^/items/[0-9]+$`), Method: "GET"}, Backends: []Backend{{Version: "v3", Weight: 1}}},
		{Match: Match{PathPrefix: "/api"}, Backends: []Backend{{Version: "v1", Weight: 80}, {Version: "v2", Weight: 20}}},
		{Match: Match{Headers: []HeaderMatch{{Name: "User", Regex: regexp.MustCompile(`^(ann|bob)$`)}}}, Backends: []Backend{{Version: "v4", Weight: 5}}},
	}}
	tests := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		roll    float64
		want    string
		ok      bool
	}{
		{"header exact", "GET", "/api/x", map[string]string{"X-Canary": "1"}, 0.1, "v2", true},
		{"header exact mismatch falls through", "GET", "/api/x", map[string]string{"X-Canary": "2"}, 0.1, "v1", true},
		{"regex and method", "GET", "/items/42", nil, 0.9, "v3", true},
		{"regex wrong method", "POST", "/items/42", nil, 0.9, "", false},
		{"regex is a full match", "GET", "/items/42/x", nil, 0.9, "", false},
		{"weight low roll", "GET", "/api/a", nil, 0.79, "v1", true},
		{"weight high roll", "GET", "/api/a", nil, 0.80, "v2", true},
		{"header regex", "PUT", "/", map[string]string{"User": "bob"}, 0.5, "v4", true},
		{"header regex miss", "PUT", "/", map[string]string{"User": "bobby"}, 0.5, "", false},
		{"no rule", "GET", "/other", nil, 0.5, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			got, ok := split.Select(r, tc.roll)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Select = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestLayerModes(t *testing.T) {
	cfg := &Config{Rules: []Rule{{Backends: []Backend{{Version: "v2", Weight: 1}}}}}
	for _, enforce := range []bool{false, true} {
		var seen string
		l := &Layer{Ref: policy.Ref{Kind: policy.KindRoute, Name: "r", Enforce: enforce}, Config: cfg,
			Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
				seen = policy.FromContext(r.Context()).Version()
				return policy.Respond(r, 200, "ok"), nil
			})}
		st := policy.NewRequest("svc", nil)
		r := httptest.NewRequest("GET", "/", nil)
		r = r.WithContext(policy.NewContext(r.Context(), st))
		if _, err := l.RoundTrip(r); err != nil {
			t.Fatal(err)
		}
		want := ""
		if enforce {
			want = "v2"
		}
		if seen != want {
			t.Errorf("enforce=%v: version pinned %q, want %q", enforce, seen, want)
		}
		d := st.Decisions()
		if len(d) != 1 || d[0].Decision != "route:v2" || d[0].Enforce != enforce {
			t.Errorf("enforce=%v: decisions %+v", enforce, d)
		}
	}
}

func TestSplitIsWeighted(t *testing.T) {
	cfg := &Config{Rules: []Rule{{Backends: []Backend{{Version: "v1", Weight: 80}, {Version: "v2", Weight: 20}}}}}
	r := httptest.NewRequest("GET", "/", nil)
	counts := map[string]int{}
	const n = 1000
	for i := 0; i < n; i++ {
		v, _ := cfg.Select(r, (float64(i)+0.5)/n)
		counts[v]++
	}
	if counts["v1"] != 800 || counts["v2"] != 200 {
		t.Fatalf("uniform rolls split %v, want exactly 800/200", counts)
	}
}
