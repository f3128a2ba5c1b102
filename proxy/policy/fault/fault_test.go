package fault

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

func TestFault(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		enforce    bool
		roll       float64
		wantStatus int
		wantDelay  bool
		decisions  []string
	}{
		{"abort enforced", Config{AbortPercent: 50, AbortStatus: 503}, true, 10, 503, false, []string{"fault_abort"}},
		{"abort with headers", Config{AbortPercent: 100, AbortStatus: 503, AbortHeaders: map[string]string{"x-meshscope-guard": "g"}}, true, 10, 503, false, []string{"fault_abort"}},
		{"abort not rolled", Config{AbortPercent: 50, AbortStatus: 503}, true, 60, 200, false, nil},
		{"abort observed", Config{AbortPercent: 50, AbortStatus: 503}, false, 10, 200, false, []string{"fault_abort"}},
		{"delay enforced", Config{DelayPercent: 100, Delay: 30 * time.Millisecond}, true, 10, 200, true, []string{"fault_delay"}},
		{"delay observed", Config{DelayPercent: 100, Delay: 30 * time.Millisecond}, false, 10, 200, false, []string{"fault_delay"}},
		{"both", Config{DelayPercent: 100, Delay: 30 * time.Millisecond, AbortPercent: 100, AbortStatus: 418}, true, 0, 418, true, []string{"fault_delay", "fault_abort"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			upstream := 0
			l := &Layer{Ref: policy.Ref{Kind: policy.KindRoute, Name: "f", Enforce: tc.enforce}, Config: tc.cfg,
				Roll: func() float64 { return tc.roll },
				Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
					upstream++
					return policy.Respond(r, 200, "ok"), nil
				})}
			st := policy.NewRequest("svc", nil)
			r := httptest.NewRequest("GET", "/", nil)
			r = r.WithContext(policy.NewContext(r.Context(), st))
			start := time.Now()
			res, err := l.RoundTrip(r)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tc.wantStatus)
			}
			for k, v := range tc.cfg.AbortHeaders {
				if got := res.Header.Get(k); (res.StatusCode == tc.cfg.AbortStatus) != (got == v) {
					t.Errorf("header %s = %q on status %d", k, got, res.StatusCode)
				}
			}
			if (res.StatusCode == 200) != (upstream == 1) {
				t.Errorf("upstream called %d times with status %d", upstream, res.StatusCode)
			}
			if d := time.Since(start); tc.wantDelay != (d >= 30*time.Millisecond) {
				t.Errorf("took %s, delay wanted %v", d, tc.wantDelay)
			}
			var got []string
			for _, d := range st.Decisions() {
				got = append(got, d.Decision)
			}
			if len(got) != len(tc.decisions) {
				t.Fatalf("decisions %v, want %v", got, tc.decisions)
			}
			for i := range got {
				if got[i] != tc.decisions[i] {
					t.Fatalf("decisions %v, want %v", got, tc.decisions)
				}
			}
		})
	}
}
