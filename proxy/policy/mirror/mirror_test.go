package mirror

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

func TestMirror(t *testing.T) {
	tests := []struct {
		name    string
		enforce bool
		roll    float64
		body    string
		copies  int
	}{
		{"chosen", true, 10, "", 1},
		{"chosen with body", true, 10, "hello", 1},
		{"not chosen", true, 60, "", 0},
		{"observe", false, 10, "", 0},
		{"body too large", true, 10, strings.Repeat("x", MaxBody+1), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var copies []string
			got := make(chan struct{}, 1)
			release := make(chan struct{})
			l := &Layer{Ref: policy.Ref{Enforce: tc.enforce}, Config: Config{Version: "v2", Percent: 50}, Mirror: New(),
				Roll: func() float64 { return tc.roll }, Service: "svc",
				Send: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					b, _ := io.ReadAll(r.Body)
					mu.Lock()
					copies = append(copies, policy.FromContext(r.Context()).Version()+":"+string(b))
					mu.Unlock()
					got <- struct{}{}
					<-release // a slow mirror must not delay the caller
					return policy.Respond(r, 500, "mirror"), nil
				}),
				Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					b, _ := io.ReadAll(r.Body)
					if string(b) != tc.body {
						t.Errorf("primary got body of %d bytes, want %d", len(b), len(tc.body))
					}
					return policy.Respond(r, 200, "primary"), nil
				})}
			st := policy.NewRequest("svc", nil)
			var body io.Reader = http.NoBody
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := httptest.NewRequest("POST", "http://x/", body)
			r = r.WithContext(policy.NewContext(r.Context(), st))
			res, err := l.RoundTrip(r)
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("caller got %v %v, want the primary's 200", res, err)
			}
			if tc.copies == 1 {
				select {
				case <-got:
				case <-time.After(10 * time.Second):
					t.Fatal("no copy sent")
				}
			}
			close(release)
			mu.Lock()
			defer mu.Unlock()
			if len(copies) != tc.copies {
				t.Fatalf("copies %v, want %d", copies, tc.copies)
			}
			if tc.copies == 1 && copies[0] != "v2:"+tc.body {
				t.Fatalf("copy %q, want pinned to v2 with the body", copies[0])
			}
			if d := st.Decisions(); (len(d) == 1) != (tc.roll < 50) {
				t.Fatalf("decisions %+v", d)
			}
		})
	}
}
