package retry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/meshscope/meshscope/proxy/policy"
)

// Condition is a set of failure kinds that may be retried.
type Condition uint8

// Retry conditions (the `on` list).
const (
	On5xx            Condition = 1 << iota // any 5xx, and every failure below
	OnGatewayError                         // 502, 503, 504, connect failures and per-try timeouts
	OnConnectFailure                       // the connection to the endpoint could not be made
	OnReset                                // the connection broke before a response
)

// ParseCondition maps an `on` entry to its Condition.
func ParseCondition(s string) (Condition, bool) {
	switch s {
	case "5xx":
		return On5xx, true
	case "gateway-error":
		return OnGatewayError, true
	case "connect-failure":
		return OnConnectFailure, true
	case "reset":
		return OnReset, true
	}
	return 0, false
}

// MaxReplayBody is the largest request body buffered so the request can be
// retried; larger bodies are sent once.
const MaxReplayBody = 64 << 10

// Config is a Route policy's timeout and retries.
type Config struct {
	// Timeout bounds the whole request including retries; 0 = none.
	Timeout time.Duration
	// Retries is the most retries after the first attempt; 0 = none.
	Retries int
	// PerTryTimeout bounds one attempt; 0 = none.
	PerTryTimeout time.Duration
	// On says which failures are retried.
	On Condition
	// Statuses are further response statuses that are retried (an `on`
	// entry such as "429" or "409").
	Statuses []int
	// Budget limits retries; nil = no budget.
	Budget *Budget
}

// Layer applies Config.
type Layer struct {
	Ref    policy.Ref
	Config Config
	Next   http.RoundTripper
}

// failure classifies one attempt's outcome: 0 = success (no retry).
func failure(res *http.Response, err error, attemptCtx context.Context) Condition {
	if err != nil {
		var oe *net.OpError
		switch {
		case attemptCtx.Err() != nil && errors.Is(attemptCtx.Err(), context.DeadlineExceeded):
			return On5xx | OnGatewayError
		case errors.As(err, &oe) && oe.Op == "dial":
			return On5xx | OnGatewayError | OnConnectFailure
		default:
			return On5xx | OnReset
		}
	}
	switch c := res.StatusCode; {
	case c == http.StatusBadGateway || c == http.StatusServiceUnavailable || c == http.StatusGatewayTimeout:
		return On5xx | OnGatewayError
	case c >= 500:
		return On5xx
	}
	return 0
}

// onStatus marks a response whose status is listed in Config.Statuses.
const onStatus Condition = 1 << 7

func (l *Layer) retriedStatus(res *http.Response) bool {
	if res == nil {
		return false
	}
	for _, s := range l.Config.Statuses {
		if res.StatusCode == s {
			return true
		}
	}
	return false
}

// RoundTrip sends r with the configured timeout and retries.
func (l *Layer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Upgrade") != "" {
		// A protocol upgrade (WebSocket) is neither retried nor timed out:
		// the upgraded connection must outlive any timeout.
		return l.Next.RoundTrip(r)
	}
	if !l.Ref.Enforce {
		return l.observe(r)
	}
	c := &l.Config
	st := policy.FromContext(r.Context())
	ctx, cancel := r.Context(), context.CancelFunc(func() {})
	if c.Timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
	}
	replay, body, err := bufferBody(r)
	if err != nil {
		cancel()
		return nil, err
	}
	if c.Budget != nil {
		c.Budget.Deposit(time.Now())
	}
	for attempt := 0; ; attempt++ {
		actx, acancel := ctx, context.CancelFunc(func() {})
		if c.PerTryTimeout > 0 {
			actx, acancel = context.WithTimeout(ctx, c.PerTryTimeout)
		}
		req := r.WithContext(actx)
		if attempt > 0 || body != nil {
			req.Body = replayBody(r, body)
		}
		res, err := l.Next.RoundTrip(req)
		fail := failure(res, err, actx)
		if l.retriedStatus(res) {
			fail |= onStatus
		}
		if fail == 0 {
			res.Body = &cancelBody{ReadCloser: res.Body, cancel: func() { acancel(); cancel() }}
			return res, nil
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			discard(res)
			acancel()
			cancel()
			st.Record(l.Ref, policy.DecisionTimeout)
			return policy.Respond(r, http.StatusGatewayTimeout, "request timeout"), nil
		}
		last := attempt >= c.Retries || fail&(c.On|onStatus) == 0 || !replay || r.Context().Err() != nil
		if !last && c.Budget != nil && !c.Budget.Withdraw(time.Now()) {
			st.Record(l.Ref, policy.DecisionBudgetSpent)
			last = true
		}
		if last {
			if err != nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
				acancel()
				cancel()
				return policy.Respond(r, http.StatusGatewayTimeout, "per-try timeout"), nil
			}
			if res != nil {
				res.Body = &cancelBody{ReadCloser: res.Body, cancel: func() { acancel(); cancel() }}
			} else {
				acancel()
				cancel()
			}
			return res, err
		}
		st.Record(l.Ref, policy.DecisionRetry)
		discard(res)
		acancel()
	}
}

// observe forwards r once and records what enforce would have done.
func (l *Layer) observe(r *http.Request) (*http.Response, error) {
	c := &l.Config
	st := policy.FromContext(r.Context())
	start := time.Now()
	if c.Budget != nil {
		c.Budget.Deposit(start)
	}
	replayable := r.Body == nil || r.Body == http.NoBody || (r.ContentLength >= 0 && r.ContentLength <= MaxReplayBody)
	res, err := l.Next.RoundTrip(r)
	if c.Timeout > 0 && time.Since(start) > c.Timeout {
		st.Record(l.Ref, policy.DecisionTimeout)
		return res, err
	}
	fail := failure(res, err, r.Context())
	if l.retriedStatus(res) {
		fail |= onStatus
	}
	if fail != 0 && fail&(c.On|onStatus) != 0 && c.Retries > 0 && replayable && r.Context().Err() == nil {
		if c.Budget == nil || c.Budget.Withdraw(time.Now()) {
			st.Record(l.Ref, policy.DecisionRetry)
		} else {
			st.Record(l.Ref, policy.DecisionBudgetSpent)
		}
	}
	return res, err
}

// bufferBody reads a request body of known length up to MaxReplayBody so
// it can be sent again. replay is false for other bodies; if the body
// turns out longer than its length said, the request goes out once with
// the bytes read so far put back in front.
func bufferBody(r *http.Request) (replay bool, body []byte, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return true, nil, nil
	}
	if r.ContentLength < 0 || r.ContentLength > MaxReplayBody {
		// Too large, or of unknown length (a stream such as a gRPC call,
		// which must not be waited for): sent once.
		return false, nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, MaxReplayBody+1))
	if err != nil {
		return false, nil, err
	}
	if len(buf) > MaxReplayBody {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return false, nil, nil
	}
	_ = r.Body.Close()
	if buf == nil {
		buf = []byte{}
	}
	return true, buf, nil
}

func replayBody(r *http.Request, body []byte) io.ReadCloser {
	if body == nil {
		return r.Body
	}
	return io.NopCloser(bytes.NewReader(body))
}

// discard drains a little of a failed attempt's body (so the connection
// can be reused) and closes it.
func discard(res *http.Response) {
	if res == nil || res.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, res.Body, 4<<10)
	_ = res.Body.Close()
}

// cancelBody releases the request's timeout contexts when the response
// body is closed (the timeout covers the body too).
type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
