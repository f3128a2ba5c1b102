package demo

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBehaviorDecide(t *testing.T) {
	const n = 200_000
	tests := []struct {
		name                 string
		b                    Behavior
		wantFail, wantSlow   float64 // expected fractions
		slowAbove, tolerance float64
	}{
		{"payments", specByID(t, "payments").Behavior, 0.02, 0.05, 0.15, 0.005},
		{"no failures", Behavior{BaseLatency: time.Millisecond}, 0, 0, 0.15, 0},
		{"always fails", Behavior{ErrorRate: 1}, 1, 0, 0.15, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rnd := rand.New(rand.NewPCG(1, 2))
			var fails, slow int
			for range n {
				fail, d := tt.b.Decide(rnd.Float64)
				if fail {
					fails++
				}
				if d.Seconds() > tt.slowAbove {
					slow++
				}
				if d < 0 {
					t.Fatalf("negative delay %s", d)
				}
			}
			if got := float64(fails) / n; got < tt.wantFail-tt.tolerance || got > tt.wantFail+tt.tolerance {
				t.Errorf("failure fraction = %.4f, want %.3f±%.3f", got, tt.wantFail, tt.tolerance)
			}
			if got := float64(slow) / n; got < tt.wantSlow-tt.tolerance || got > tt.wantSlow+tt.tolerance {
				t.Errorf("slow fraction = %.4f, want %.3f±%.3f", got, tt.wantSlow, tt.tolerance)
			}
		})
	}
}

func specByID(t *testing.T, id string) ServiceSpec {
	t.Helper()
	for _, s := range Shop() {
		if s.ID() == id {
			return s
		}
	}
	t.Fatalf("no service %s in the shop", id)
	return ServiceSpec{}
}

func TestShopLayout(t *testing.T) {
	deps := map[string]string{}
	meshed := map[string]bool{}
	versions := map[string][]string{}
	for _, s := range Shop() {
		deps[s.ID()] = strings.Join(s.Dependencies(), ",")
		meshed[s.ID()] = s.Meshed
		versions[s.Name] = append(versions[s.Name], s.Version)
	}
	want := map[string]string{
		"web": "catalog,cart,checkout", "catalog": "inventory", "cart": "pricing", "checkout": "payments",
		"inventory-v1": "", "inventory-v2": "", "pricing": "", "payments": "",
	}
	for id, d := range want {
		if deps[id] != d {
			t.Errorf("%s depends on %q, want %q", id, deps[id], d)
		}
	}
	if len(deps) != len(want) {
		t.Errorf("shop has instances %v, want %d", deps, len(want))
	}
	if len(versions) < 6 {
		t.Errorf("shop has %d services, want at least 6", len(versions))
	}
	if strings.Join(versions["inventory"], ",") != "v1,v2" {
		t.Errorf("inventory versions = %v, want v1,v2", versions["inventory"])
	}
	if meshed["pricing"] {
		t.Error("pricing must run without a proxy")
	}
	for id, m := range meshed {
		if id != "pricing" && !m {
			t.Errorf("%s must be meshed", id)
		}
	}
}

// shopDirect wires the shop's services to each other directly (no proxies),
// with latencies removed and failures set by failPayments.
func shopDirect(t *testing.T, failPayments float64) *httptest.Server {
	t.Helper()
	urls := map[string]string{}
	handlers := map[string]*lateHandler{}
	var web *httptest.Server
	for _, s := range Shop() {
		if s.ID() == "inventory-v2" {
			continue // direct wiring has no round-robin; v1 stands for both
		}
		h := &lateHandler{}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		urls[s.Name] = srv.URL
		handlers[s.ID()] = h
		if s.Name == "web" {
			web = srv
		}
	}
	for _, s := range Shop() {
		h, ok := handlers[s.ID()]
		if !ok {
			continue
		}
		s.Behavior = Behavior{}
		if s.Name == "payments" {
			s.Behavior.ErrorRate = failPayments
		}
		svc, err := NewService(s, urls, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		h.set(svc)
	}
	return web
}

type lateHandler struct {
	mu sync.Mutex
	h  http.Handler
}

func (l *lateHandler) set(h http.Handler) { l.mu.Lock(); l.h = h; l.mu.Unlock() }
func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	h := l.h
	l.mu.Unlock()
	h.ServeHTTP(w, r)
}

// tree renders a response as service(children...).
func tree(r Response) string {
	if len(r.Calls) == 0 {
		return r.Service
	}
	var parts []string
	for _, c := range r.Calls {
		parts = append(parts, tree(c))
	}
	return r.Service + "(" + strings.Join(parts, ",") + ")"
}

func TestShopRouting(t *testing.T) {
	web := shopDirect(t, 0)
	tests := []struct {
		method, path string
		wantStatus   int
		wantTree     string
	}{
		{"GET", "/", 200, "web(catalog(inventory),cart(pricing))"},
		{"GET", "/product/7", 200, "web(catalog(inventory))"},
		{"GET", "/cart", 200, "web(cart(pricing))"},
		{"POST", "/checkout", 200, "web(checkout(payments))"},
		{"GET", "/checkout", 200, "web(checkout(payments))"},
		{"GET", "/nope", 404, ""},
		{"DELETE", "/cart", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, web.URL+tt.path, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if tt.wantTree == "" {
				return
			}
			var r Response
			if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
				t.Fatal(err)
			}
			if got := tree(r); got != tt.wantTree {
				t.Errorf("call tree = %s, want %s", got, tt.wantTree)
			}
		})
	}
}

func TestPaymentsFailuresPropagateToWeb(t *testing.T) {
	web := shopDirect(t, 1)
	res, err := http.Post(web.URL+"/checkout", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusBadGateway {
		t.Fatalf("status = %d, want 502", res.StatusCode)
	}
	var r Response
	json.NewDecoder(res.Body).Decode(&r)
	if !strings.Contains(r.Error, "checkout") || tree(r) != "web(checkout(payments))" {
		t.Errorf("response = %+v, want an error naming checkout and the failing chain", r)
	}
	// Paths not touching payments still work.
	res2, err := http.Get(web.URL + "/cart")
	if err != nil {
		t.Fatal(err)
	}
	res2.Body.Close()
	if res2.StatusCode != 200 {
		t.Errorf("GET /cart = %d, want 200", res2.StatusCode)
	}
}

func TestPaymentsErrorRate(t *testing.T) {
	spec := specByID(t, "payments")
	spec.Behavior.BaseLatency, spec.Behavior.SlowLatency = 0, 0
	svc, err := NewService(spec, nil, nil, 7)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	fails := 0
	for range n {
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, httptest.NewRequest("POST", "/charge", nil))
		switch rec.Code {
		case 200:
		case 500:
			fails++
		default:
			t.Fatalf("status %d", rec.Code)
		}
	}
	if got := float64(fails) / n; got < 0.01 || got > 0.03 {
		t.Errorf("payments error rate = %.4f, want about 0.02", got)
	}
}

func TestServiceForwardsTraceHeaders(t *testing.T) {
	var mu sync.Mutex
	var got http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		json.NewEncoder(w).Encode(Response{Service: "payments"})
	}))
	defer backend.Close()
	svc, err := NewService(specByID(t, "checkout"), map[string]string{"payments": backend.URL}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := httptest.NewRequest("POST", "/checkout", nil)
	sent := map[string]string{
		"Traceparent":  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Tracestate":   "vendor=abc",
		"B3":           "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
		"X-B3-Traceid": "80f198ee56343ba864fe8b2a57d3eff7",
		"X-B3-Spanid":  "e457b5a2e4d86bd1",
		"X-B3-Sampled": "1",
		"X-Request-Id": "req-1",
	}
	for k, v := range sent {
		in.Header.Set(k, v)
	}
	in.Header.Set("Authorization", "secret")
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, in)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range sent {
		if got.Get(k) != v {
			t.Errorf("outgoing %s = %q, want %q", k, got.Get(k), v)
		}
	}
	if got.Get("Authorization") != "" {
		t.Error("a non-trace header was forwarded")
	}
}

func TestNewServiceNeedsEveryBackend(t *testing.T) {
	_, err := NewService(specByID(t, "web"), map[string]string{"catalog": "http://x", "cart": "http://y"}, nil, 1)
	if err == nil || !strings.Contains(err.Error(), `"checkout"`) {
		t.Fatalf("err = %v, want one naming the checkout dependency", err)
	}
}

func TestPlanAndProxyArgs(t *testing.T) {
	instances, err := listenShop(Shop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, in := range instances {
			in.appLn.Close()
		}
	}()
	if err := assignProxyPorts(instances); err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	claim := func(addr, who string) {
		if prev, dup := seen[addr]; dup {
			t.Errorf("address %s used by %s and %s", addr, prev, who)
		}
		seen[addr] = who
	}
	by := map[string]*instance{}
	for _, in := range instances {
		by[in.spec.ID()] = in
		claim(in.appAddr, in.spec.ID()+" app")
		if in.spec.Meshed {
			claim(in.inbound, in.spec.ID()+" inbound")
			claim(in.admin, in.spec.ID()+" admin")
			for d, a := range in.outbound {
				claim(a, in.spec.ID()+" outbound "+d)
			}
		}
	}
	args := func(id string) string { return strings.Join(proxyArgs(by[id], instances, "127.0.0.1:4317"), " ") }
	cat := args("catalog")
	wantInv := "--upstream " + by["catalog"].outbound["inventory"] + "=inventory@" + by["inventory-v1"].inbound + "," + by["inventory-v2"].inbound
	if !strings.Contains(cat, wantInv) {
		t.Errorf("catalog proxy args %q lack %q", cat, wantInv)
	}
	if want := "--inbound " + by["catalog"].inbound + "=" + by["catalog"].appAddr; !strings.Contains(cat, want) {
		t.Errorf("catalog proxy args %q lack %q", cat, want)
	}
	if want := "=pricing@" + by["pricing"].appAddr; !strings.Contains(args("cart"), want) {
		t.Errorf("cart proxy args %q lack %q (pricing has no proxy)", args("cart"), want)
	}
	if a := args("inventory-v2"); !strings.Contains(a, "--service inventory --version v2") || strings.Contains(a, "--upstream") {
		t.Errorf("inventory-v2 proxy args = %q", a)
	}
	if a := args("web"); strings.Count(a, "--upstream") != 3 || !strings.Contains(a, "--collector 127.0.0.1:4317") || !strings.Contains(a, "--admin "+by["web"].admin) {
		t.Errorf("web proxy args = %q", a)
	}
	// Route templates: own routes for the inbound side, the dependencies'
	// for the outbound side, each once.
	templates := func(id string) []string {
		var out []string
		a := proxyArgs(by[id], instances, "127.0.0.1:4317")
		for i, s := range a {
			if s == "--route-template" {
				out = append(out, a[i+1])
			}
		}
		return out
	}
	for id, want := range map[string][]string{
		"web":          {"/", "/product/{id}", "/cart", "/checkout", "/products", "/products/{id}"},
		"catalog":      {"/products", "/products/{id}", "/stock", "/stock/{id}"},
		"cart":         {"/cart", "/prices"},
		"inventory-v2": {"/stock", "/stock/{id}"},
		"payments":     {"/charge"},
	} {
		if got := templates(id); !slices.Equal(got, want) {
			t.Errorf("%s proxy route templates = %q, want %q", id, got, want)
		}
	}
}
