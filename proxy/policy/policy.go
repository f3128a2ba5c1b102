package policy

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Modes of a policy.
const (
	// ModeObserve evaluates the policy and records what it would have done.
	ModeObserve = "observe"
	// ModeEnforce evaluates the policy, records the decision and acts on it.
	ModeEnforce = "enforce"
)

// Policy kinds (the policy_kind label).
const (
	KindRoute      = "Route"
	KindResilience = "Resilience"
)

// Decision values (the decision label). Route decisions are "route:" and
// the chosen version.
const (
	DecisionRetry       = "retry"
	DecisionTimeout     = "timeout"
	DecisionFaultAbort  = "fault_abort"
	DecisionFaultDelay  = "fault_delay"
	DecisionRateLimited = "rate_limited"
	DecisionBreakerOpen = "breaker_open"
	DecisionEjected     = "ejected"
	DecisionUnhealthy   = "unhealthy"
	DecisionMirror      = "mirror"
	DecisionBudgetSpent = "retry_budget_spent"
)

// RouteDecision is the decision value of a route choosing version.
func RouteDecision(version string) string { return "route:" + version }

// Ref names the policy a layer enforces: its kind and document name, and
// whether it acts (enforce) or only records (observe).
type Ref struct {
	Kind    string
	Name    string
	Enforce bool
}

// Decision is one policy decision taken for a request.
type Decision struct {
	Ref
	Decision string
	At       time.Time
}

// Request is the policy state of one request, carried in its context from
// the proxy's handler through every layer.
type Request struct {
	// Service is the destination service.
	Service string
	// Inbound is true on the destination's own (inbound) proxy.
	Inbound bool

	mu        sync.Mutex
	version   string // chosen backend version; "" = any
	endpoint  string // address of the last attempt
	epVersion string // version of that endpoint
	attempts  int
	decisions []Decision
	rec       *Recorder
}

// NewRequest starts the policy state of a request to service; decisions go
// to rec (nil = not counted).
func NewRequest(service string, rec *Recorder) *Request {
	return &Request{Service: service, rec: rec}
}

type ctxKey struct{}

// NewContext returns ctx carrying r.
func NewContext(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// FromContext returns the request state in ctx, or nil.
func FromContext(ctx context.Context) *Request {
	r, _ := ctx.Value(ctxKey{}).(*Request)
	return r
}

// Record counts one decision and keeps it for the request's span.
func (r *Request) Record(ref Ref, decision string) {
	if r == nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	if len(r.decisions) < maxDecisions {
		r.decisions = append(r.decisions, Decision{Ref: ref, Decision: decision, At: now})
	}
	r.mu.Unlock()
	r.rec.Count(r.Service, ref, decision)
}

// maxDecisions bounds the decisions kept per request for span events.
const maxDecisions = 16

// Decisions returns the decisions recorded so far.
func (r *Request) Decisions() []Decision {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Decision(nil), r.decisions...)
}

// SetVersion sets the backend version the route chose.
func (r *Request) SetVersion(v string) {
	r.mu.Lock()
	r.version = v
	r.mu.Unlock()
}

// Version is the backend version the route chose ("" = any).
func (r *Request) Version() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// Attempt records one upstream attempt to addr (an endpoint of version).
func (r *Request) Attempt(addr, version string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.attempts++
	r.endpoint, r.epVersion = addr, version
	r.mu.Unlock()
}

// Attempts is the number of upstream attempts made (0 when the request
// never left the proxy).
func (r *Request) Attempts() int {
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// Endpoint is the address and version of the last attempt's endpoint.
func (r *Request) Endpoint() (addr, version string) {
	if r == nil {
		return "", ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.endpoint, r.epVersion
}

// Recorder counts decisions in mesh_policy_decisions_total.
type Recorder struct {
	decisions *prometheus.CounterVec
	retries   *prometheus.CounterVec
}

// NewRecorder registers the policy metrics with reg.
func NewRecorder(reg prometheus.Registerer) (*Recorder, error) {
	r := &Recorder{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_policy_decisions_total",
			Help: "Traffic-policy decisions; enforced=\"false\" counts what an observe-mode policy would have done.",
		}, []string{"service", "policy_kind", "policy", "decision", "enforced"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_request_retries_total",
			Help: "Upstream retry attempts made by the proxy (attempts beyond the first).",
		}, []string{"destination_service", "destination_version"}),
	}
	for _, c := range []prometheus.Collector{r.decisions, r.retries} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Count adds one decision for service.
func (r *Recorder) Count(service string, ref Ref, decision string) {
	if r == nil {
		return
	}
	r.decisions.WithLabelValues(service, ref.Kind, ref.Name, decision, strconv.FormatBool(ref.Enforce)).Inc()
}

// Retried counts n retries to service/version.
func (r *Recorder) Retried(service, version string, n int) {
	if r == nil || n <= 0 {
		return
	}
	r.retries.WithLabelValues(service, version).Add(float64(n))
}

// Respond returns a response the proxy makes itself (a policy's abort,
// 429, 503 or 504), with a short plain-text body naming the reason. The
// request's body, which will not be sent, is closed.
func Respond(req *http.Request, status int, reason string) *http.Response {
	if req != nil && req.Body != nil {
		_ = req.Body.Close()
	}
	body := reason + "\n"
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set(HeaderReason, reason)
	return &http.Response{
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// HeaderReason is the response header naming the policy that answered a
// request locally (absent on upstream responses).
const HeaderReason = "X-Meshscope-Policy"

// RoundTripFunc adapts a function to http.RoundTripper.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f RoundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
