package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Call is one request a route makes to a dependency. Path may contain {id},
// replaced by the incoming request's id path value.
type Call struct {
	Service string // dependency's service name
	Method  string
	Path    string
}

// Route is one endpoint of a service and the calls it makes, in order.
type Route struct {
	Pattern string // Go 1.22 ServeMux pattern, e.g. "GET /product/{id}"
	Calls   []Call
}

// Behavior is how a service misbehaves: injected failures and latency.
type Behavior struct {
	ErrorRate   float64       // fraction of requests answered 500, 0..1
	BaseLatency time.Duration // added to every request
	SlowRate    float64       // fraction of requests that also take SlowLatency, 0..1
	SlowLatency time.Duration
	// FailAfter, when positive, is how long after the service's start
	// its error rate becomes FailRate (inventory v2 in the guard demo).
	FailAfter time.Duration
	FailRate  float64
}

// At returns the behavior elapsed after the service's start.
func (b Behavior) At(elapsed time.Duration) Behavior {
	if b.FailAfter > 0 && elapsed >= b.FailAfter {
		b.ErrorRate = b.FailRate
	}
	return b
}

// Decide draws the outcome of one request: whether it fails and how long it
// takes. rnd returns uniform numbers in [0,1).
func (b Behavior) Decide(rnd func() float64) (fail bool, delay time.Duration) {
	delay = b.BaseLatency
	if b.BaseLatency > 0 {
		// ±50 % jitter around the base latency.
		delay = time.Duration(float64(b.BaseLatency) * (0.5 + rnd()))
	}
	if b.SlowRate > 0 && rnd() < b.SlowRate {
		delay += time.Duration(float64(b.SlowLatency) * (0.5 + rnd()))
	}
	fail = b.ErrorRate > 0 && rnd() < b.ErrorRate
	return fail, delay
}

// ServiceSpec describes one instance of a demo service.
type ServiceSpec struct {
	Name     string
	Version  string
	Meshed   bool // runs behind its own meshscope-proxy
	Routes   []Route
	Behavior Behavior
}

// ID names the instance: the service name, plus the version when the shop
// runs more than one version of it.
func (s ServiceSpec) ID() string {
	if s.Name == "inventory" {
		return s.Name + "-" + s.Version
	}
	return s.Name
}

// RouteTemplates are the path templates of s's routes in the proxy's
// syntax ("GET /product/{id}" → "/product/{id}", "GET /{$}" → "/"), each
// once, in declaration order.
func (s ServiceSpec) RouteTemplates() []string {
	var out []string
	for _, r := range s.Routes {
		_, path, ok := strings.Cut(r.Pattern, " ")
		if !ok {
			path = r.Pattern
		}
		path = strings.ReplaceAll(path, "{$}", "")
		if !slices.Contains(out, path) {
			out = append(out, path)
		}
	}
	return out
}

// Dependencies lists the services s calls, each once, in first-use order.
func (s ServiceSpec) Dependencies() []string {
	var deps []string
	seen := map[string]bool{}
	for _, r := range s.Routes {
		for _, c := range r.Calls {
			if !seen[c.Service] {
				seen[c.Service] = true
				deps = append(deps, c.Service)
			}
		}
	}
	return deps
}

// InventoryV2FailsAfter is when inventory v2 starts failing half of its
// requests: its SLO burns, the inventory-fallback guard (guards.yaml)
// shifts inventory to v1 and the SLO recovers (docs/guards.md, Demo).
const InventoryV2FailsAfter = 2 * time.Minute

// Shop returns the demo shop: eight instances of seven services.
//
//	web → catalog → inventory (v1, v2; v2 fails 50 % after 2 minutes)
//	    → cart    → pricing (no proxy)
//	    → checkout → payments (~2 % errors, slow tail)
func Shop() []ServiceSpec {
	return []ServiceSpec{
		{Name: "web", Version: "v1", Meshed: true, Behavior: Behavior{BaseLatency: time.Millisecond},
			Routes: []Route{
				{Pattern: "GET /{$}", Calls: []Call{{"catalog", "GET", "/products"}, {"cart", "GET", "/cart"}}},
				{Pattern: "GET /product/{id}", Calls: []Call{{"catalog", "GET", "/products/{id}"}}},
				{Pattern: "GET /cart", Calls: []Call{{"cart", "GET", "/cart"}}},
				{Pattern: "POST /checkout", Calls: []Call{{"checkout", "POST", "/checkout"}}},
				{Pattern: "GET /checkout", Calls: []Call{{"checkout", "POST", "/checkout"}}},
			}},
		{Name: "catalog", Version: "v1", Meshed: true, Behavior: Behavior{BaseLatency: 2 * time.Millisecond},
			Routes: []Route{
				{Pattern: "GET /products", Calls: []Call{{"inventory", "GET", "/stock"}}},
				{Pattern: "GET /products/{id}", Calls: []Call{{"inventory", "GET", "/stock/{id}"}}},
			}},
		{Name: "inventory", Version: "v1", Meshed: true, Behavior: Behavior{BaseLatency: 3 * time.Millisecond},
			Routes: []Route{{Pattern: "GET /stock"}, {Pattern: "GET /stock/{id}"}}},
		{Name: "inventory", Version: "v2", Meshed: true,
			Behavior: Behavior{BaseLatency: 5 * time.Millisecond, SlowRate: 0.05, SlowLatency: 50 * time.Millisecond,
				FailAfter: InventoryV2FailsAfter, FailRate: 0.5},
			Routes: []Route{{Pattern: "GET /stock"}, {Pattern: "GET /stock/{id}"}}},
		{Name: "cart", Version: "v1", Meshed: true, Behavior: Behavior{BaseLatency: 2 * time.Millisecond},
			Routes: []Route{{Pattern: "GET /cart", Calls: []Call{{"pricing", "GET", "/prices"}}}}},
		{Name: "pricing", Version: "v1", Meshed: false, Behavior: Behavior{BaseLatency: time.Millisecond},
			Routes: []Route{{Pattern: "GET /prices"}}},
		{Name: "checkout", Version: "v1", Meshed: true, Behavior: Behavior{BaseLatency: 4 * time.Millisecond},
			Routes: []Route{{Pattern: "POST /checkout", Calls: []Call{{"payments", "POST", "/charge"}}}}},
		{Name: "payments", Version: "v1", Meshed: true,
			Behavior: Behavior{ErrorRate: 0.02, BaseLatency: 8 * time.Millisecond, SlowRate: 0.05, SlowLatency: 400 * time.Millisecond},
			Routes:   []Route{{Pattern: "POST /charge"}}},
	}
}

// Response is the JSON body every demo service answers with: who answered
// and the responses of the calls it made.
type Response struct {
	Service string     `json:"service"`
	Version string     `json:"version"`
	Route   string     `json:"route"`
	Error   string     `json:"error,omitempty"`
	Calls   []Response `json:"calls,omitempty"`
}

// Service is the HTTP handler of one demo service instance.
type Service struct {
	spec     ServiceSpec
	backends map[string]string
	client   *http.Client
	mux      *http.ServeMux

	started time.Time // for Behavior.FailAfter

	mu  sync.Mutex
	rnd *rand.Rand
}

// NewService returns the handler of spec. backends maps each dependency's
// service name to the base URL it is called at (the service's own proxy's
// outbound listener, e.g. "http://127.0.0.1:41234"); seed seeds the random
// failures and latencies.
func NewService(spec ServiceSpec, backends map[string]string, client *http.Client, seed uint64) (*Service, error) {
	for _, dep := range spec.Dependencies() {
		if backends[dep] == "" {
			return nil, fmt.Errorf("service %s: no backend URL for dependency %q", spec.ID(), dep)
		}
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	s := &Service{
		spec:     spec,
		backends: backends,
		client:   client,
		mux:      http.NewServeMux(),
		started:  time.Now(),
		rnd:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	for _, r := range spec.Routes {
		s.mux.Handle(r.Pattern, s.route(r))
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Service) float() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rnd.Float64()
}

func (s *Service) route(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp := Response{Service: s.spec.Name, Version: s.spec.Version, Route: rt.Pattern}
		fail, delay := s.spec.Behavior.At(time.Since(s.started)).Decide(s.float)
		if delay > 0 {
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		status := http.StatusOK
		for _, c := range rt.Calls {
			sub, err := s.call(r, c)
			resp.Calls = append(resp.Calls, sub)
			if err != nil {
				status = http.StatusBadGateway
				resp.Error = err.Error()
				break
			}
		}
		if fail && status == http.StatusOK {
			status = http.StatusInternalServerError
			resp.Error = "injected failure"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(resp)
	})
}

func (s *Service) call(in *http.Request, c Call) (Response, error) {
	path := strings.ReplaceAll(c.Path, "{id}", in.PathValue("id"))
	url := strings.TrimSuffix(s.backends[c.Service], "/") + path
	ctx, cancel := context.WithTimeout(in.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.Method, url, nil)
	if err != nil {
		return Response{Service: c.Service}, fmt.Errorf("call %s: %w", c.Service, err)
	}
	ForwardTraceHeaders(req.Header, in.Header)
	res, err := s.client.Do(req)
	if err != nil {
		return Response{Service: c.Service, Error: err.Error()}, fmt.Errorf("call %s %s: %w", c.Service, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Response{Service: c.Service, Error: err.Error()}, fmt.Errorf("call %s %s: reading response: %w", c.Service, path, err)
	}
	var sub Response
	if json.Unmarshal(body, &sub) != nil || sub.Service == "" {
		sub = Response{Service: c.Service, Error: strings.TrimSpace(string(body))}
	}
	if res.StatusCode >= 500 {
		return sub, fmt.Errorf("call %s %s: status %d", c.Service, path, res.StatusCode)
	}
	return sub, nil
}

// TraceHeaders returns the headers a demo service copies from its incoming
// request to every outgoing call: W3C Trace Context and baggage, B3 (single
// and multi header) and the request id.
func TraceHeaders() []string {
	return []string{
		"Traceparent", "Tracestate", "Baggage",
		"B3", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "X-B3-Flags",
		"X-Request-Id",
	}
}

// ForwardTraceHeaders copies the trace headers present in in to out.
func ForwardTraceHeaders(out, in http.Header) {
	for _, h := range TraceHeaders() {
		if v := in.Values(h); len(v) > 0 {
			out[h] = append([]string(nil), v...)
		}
	}
}
