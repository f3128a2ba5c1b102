package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// script answers attempt i with statuses[i] (0 = connect failure, -1 =
// hang until the attempt's context ends).
type script struct {
	statuses []int
	bodies   []string
	calls    int
}

func (s *script) RoundTrip(r *http.Request) (*http.Response, error) {
	i := s.calls
	s.calls++
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		s.bodies = append(s.bodies, string(b))
	}
	code := 200
	if i < len(s.statuses) {
		code = s.statuses[i]
	}
	switch code {
	case 0:
		return nil, &net.OpError{Op: "dial", Err: errors.New("connection refused")}
	case -1:
		<-r.Context().Done()
		return nil, r.Context().Err()
	case -2:
		return nil, io.ErrUnexpectedEOF
	}
	return policy.Respond(r, code, "upstream"), nil
}

func TestRetry(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		enforce   bool
		statuses  []int
		body      string
		want      int // status; 0 = error
		calls     int
		decisions []string
	}{
		{"success first try", Config{Retries: 2, On: On5xx}, true, []int{200}, "", 200, 1, nil},
		{"5xx retried", Config{Retries: 2, On: On5xx}, true, []int{500, 500, 200}, "", 200, 3, []string{"retry", "retry"}},
		{"attempts bounded", Config{Retries: 1, On: On5xx}, true, []int{500, 500, 200}, "", 500, 2, []string{"retry"}},
		{"gateway-error skips 500", Config{Retries: 2, On: OnGatewayError}, true, []int{500, 200}, "", 500, 1, nil},
		{"gateway-error retries 503", Config{Retries: 2, On: OnGatewayError}, true, []int{503, 200}, "", 200, 2, []string{"retry"}},
		{"connect-failure", Config{Retries: 2, On: OnConnectFailure}, true, []int{0, 200}, "", 200, 2, []string{"retry"}},
		{"connect-failure ignores 503", Config{Retries: 2, On: OnConnectFailure}, true, []int{503, 200}, "", 503, 1, nil},
		{"reset", Config{Retries: 2, On: OnReset}, true, []int{-2, 200}, "", 200, 2, []string{"retry"}},
		{"last error returned", Config{Retries: 1, On: OnConnectFailure}, true, []int{0, 0}, "", 0, 2, []string{"retry"}},
		{"body replayed", Config{Retries: 2, On: On5xx}, true, []int{500, 200}, "payload", 200, 2, []string{"retry"}},
		{"streamed body sent once", Config{Retries: 2, On: On5xx}, true, []int{500, 200}, "stream", 500, 1, nil},
		{"large body sent once", Config{Retries: 2, On: On5xx}, true, []int{500, 200}, strings.Repeat("x", MaxReplayBody+1), 500, 1, nil},
		{"budget spent", Config{Retries: 3, On: On5xx, Budget: NewBudget(0, 0)}, true, []int{500, 200}, "", 500, 1, []string{"retry_budget_spent"}},
		{"per-try timeout retried", Config{Retries: 1, On: OnGatewayError, PerTryTimeout: 20 * time.Millisecond}, true, []int{-1, 200}, "", 200, 2, []string{"retry"}},
		{"per-try timeout last gives 504", Config{Retries: 1, On: OnGatewayError, PerTryTimeout: 20 * time.Millisecond}, true, []int{-1, -1}, "", 504, 2, []string{"retry"}},
		{"overall timeout 504", Config{Timeout: 50 * time.Millisecond, Retries: 3, On: On5xx}, true, []int{-1}, "", 504, 1, []string{"timeout"}},
		{"listed status retried", Config{Retries: 2, On: OnGatewayError, Statuses: []int{429}}, true, []int{429, 200}, "", 200, 2, []string{"retry"}},
		{"unlisted 4xx not retried", Config{Retries: 2, On: On5xx, Statuses: []int{429}}, true, []int{409, 200}, "", 409, 1, nil},
		{"observe does not retry", Config{Retries: 2, On: On5xx}, false, []int{500, 200}, "", 500, 1, []string{"retry"}},
		{"observe budget spent", Config{Retries: 2, On: On5xx, Budget: NewBudget(0, 0)}, false, []int{500}, "", 500, 1, []string{"retry_budget_spent"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &script{statuses: tc.statuses}
			l := &Layer{Ref: policy.Ref{Kind: policy.KindRoute, Name: "r", Enforce: tc.enforce}, Config: tc.cfg, Next: up}
			st := policy.NewRequest("svc", nil)
			method := "GET"
			var body io.Reader
			if tc.body != "" {
				method, body = "POST", strings.NewReader(tc.body)
			}
			r := httptest.NewRequest(method, "/", body)
			if tc.name == "streamed body sent once" {
				r.ContentLength = -1
			}
			r = r.WithContext(policy.NewContext(context.Background(), st))
			res, err := l.RoundTrip(r)
			got := 0
			if err == nil {
				got = res.StatusCode
				res.Body.Close()
			}
			if got != tc.want {
				t.Errorf("status %d (err %v), want %d", got, err, tc.want)
			}
			if up.calls != tc.calls {
				t.Errorf("%d upstream calls, want %d", up.calls, tc.calls)
			}
			for i, b := range up.bodies {
				if len(tc.body) <= MaxReplayBody && b != tc.body {
					t.Errorf("attempt %d body %q, want %q", i, b, tc.body)
				}
			}
			var ds []string
			for _, d := range st.Decisions() {
				ds = append(ds, d.Decision)
			}
			if strings.Join(ds, ",") != strings.Join(tc.decisions, ",") {
				t.Errorf("decisions %v, want %v", ds, tc.decisions)
			}
		})
	}
}

func TestObserveTimeout(t *testing.T) {
	l := &Layer{Ref: policy.Ref{Kind: policy.KindRoute, Name: "r"}, Config: Config{Timeout: 10 * time.Millisecond},
		Next: policy.RoundTripFunc(func(r *http.Request) (*http.Response, error) {
			time.Sleep(30 * time.Millisecond)
			return policy.Respond(r, 200, "slow"), nil
		})}
	st := policy.NewRequest("svc", nil)
	r := httptest.NewRequest("GET", "/", nil).WithContext(policy.NewContext(context.Background(), st))
	res, err := l.RoundTrip(r)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("observe changed the response: %v %v", res, err)
	}
	if d := st.Decisions(); len(d) != 1 || d[0].Decision != "timeout" || d[0].Enforce {
		t.Fatalf("decisions %+v, want one observed timeout", d)
	}
}

func TestBudget(t *testing.T) {
	t0 := time.Unix(5000, 0)
	b := NewBudget(0.2, 1) // reserve 10 retries per window
	for i := 0; i < 100; i++ {
		b.Deposit(t0)
	}
	allowed := 0
	for i := 0; i < 100; i++ {
		if b.Withdraw(t0) {
			allowed++
		}
	}
	if allowed != 30 { // 10 reserve + 0.2*100
		t.Fatalf("allowed %d retries, want 30", allowed)
	}
	// After the window the budget is back to its reserve.
	later := t0.Add(Window + time.Second)
	allowed = 0
	for i := 0; i < 100; i++ {
		if b.Withdraw(later) {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("after the window allowed %d, want 10", allowed)
	}
}
