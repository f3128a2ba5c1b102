//go:build unix

package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control"
)

// versionApp is a backend instance that answers with its version and
// counts what it served. /flaky fails every other request, /fail always,
// /slow answers after 2 s; failAll makes every request fail.
type versionApp struct {
	version string
	addr    string
	failAll atomic.Bool
	flaky   atomic.Int64
	mu      sync.Mutex
	hits    map[string]int
}

func startVersionApp(t *testing.T, version string) *versionApp {
	t.Helper()
	a := &versionApp{version: version, hits: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.hits[r.URL.Path]++
		a.mu.Unlock()
		switch {
		case a.failAll.Load(), r.URL.Path == "/fail", r.URL.Path == "/flaky" && a.flaky.Add(1)%2 == 1:
			http.Error(w, a.version+" failing", http.StatusInternalServerError)
			return
		case r.URL.Path == "/slow":
			time.Sleep(2 * time.Second)
		}
		io.WriteString(w, a.version)
	})}
	ln := listen(t)
	a.addr = ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return a
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func (a *versionApp) hitsOf(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hits[path]
}

// mesh is a control plane, catalog instances behind inbound proxies that
// register with it, and a caller proxy (service web) whose outbound
// listener reaches catalog by discovery only.
type mesh struct {
	s           *server
	apps        []*versionApp
	inAdmins    []string
	caller      string // the caller proxy's outbound listener
	callerAdmin string
	callerProc  *proc
	callerArgs  []string
	client      *http.Client
}

func startMesh(t *testing.T, callerMode string, versions ...string) *mesh {
	t.Helper()
	m := &mesh{s: startControlServer(t, t.TempDir())}
	m.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	t.Cleanup(m.client.CloseIdleConnections)
	cp := "http://" + m.s.http
	for i, v := range versions {
		a := startVersionApp(t, v)
		m.apps = append(m.apps, a)
		in := freeAddrs(t, 1)[0]
		_, admin := startProxy(t, fmt.Sprintf("catalog-%s-%d", v, i), "--service", "catalog", "--version", v,
			"--inbound", in+"="+a.addr, "--control-plane", cp, "--state-dir", t.TempDir(), "--no-tracing")
		m.inAdmins = append(m.inAdmins, admin)
	}
	m.caller = freeAddrs(t, 1)[0]
	m.callerArgs = []string{"--service", "web", "--mode", callerMode, "--upstream", m.caller + "=catalog",
		"--control-plane", cp, "--state-dir", t.TempDir(), "--no-tracing"}
	m.callerProc, m.callerAdmin = startProxy(t, "web", m.callerArgs...)
	m.waitEndpoints(t, len(versions))
	return m
}

// waitEndpoints waits until the caller knows n catalog endpoints.
func (m *mesh) waitEndpoints(t *testing.T, n int) {
	t.Helper()
	poll(t, 30*time.Second, fmt.Sprintf("caller to discover %d catalog endpoints", n), func() (bool, string) {
		var v struct {
			Endpoints []struct {
				Service, Addr, Version string
			} `json:"endpoints"`
		}
		if err := getJSON("http://"+m.callerAdmin+"/policy/endpoints", &v); err != nil {
			return false, err.Error()
		}
		c := 0
		for _, e := range v.Endpoints {
			if e.Service == "catalog" && e.Version != "" {
				c++
			}
		}
		return c == n, fmt.Sprintf("%+v", v.Endpoints)
	}, m.callerProc)
}

// apply posts YAML policies and waits until every proxy applied them.
func (m *mesh) apply(t *testing.T, doc string) {
	t.Helper()
	var res control.ResultView
	if code := post(t, m.s.url(control.APIPrefix+"/apply"), doc, &res); code != http.StatusOK {
		t.Fatalf("apply: status %d: %+v", code, res)
	}
	m.waitVersion(t, res.Version)
}

func (m *mesh) remove(t *testing.T, kind, name string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, m.s.url(control.APIPrefix+"/policies/"+kind+"/"+name), nil)
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r control.ResultView
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("delete %s/%s: %d %v", kind, name, res.StatusCode, err)
	}
	m.waitVersion(t, r.Version)
}

func (m *mesh) waitVersion(t *testing.T, v uint64) {
	t.Helper()
	for _, admin := range append([]string{m.callerAdmin}, m.inAdmins...) {
		poll(t, 30*time.Second, fmt.Sprintf("proxy %s to apply policy version %d", admin, v), func() (bool, string) {
			got, _, err := scrape("http://"+admin+"/metrics", "meshscope_proxy_policy_version")
			if err != nil {
				return false, err.Error()
			}
			return got >= float64(v), fmt.Sprintf("version %v", got)
		}, m.callerProc)
	}
}

// result counts the answers of a batch of requests.
type result struct {
	bodies  map[string]int // body of 200 answers
	codes   map[int]int
	errs    int
	elapsed []time.Duration
}

func (r result) total() int {
	n := r.errs
	for _, c := range r.codes {
		n += c
	}
	return n
}

func (r result) share(body string) float64 { return float64(r.bodies[body]) / float64(r.total()) }

// fire sends n GETs of path through the caller with conc workers.
func (m *mesh) fire(t *testing.T, n, conc int, path string, header map[string]string) result {
	t.Helper()
	r := result{bodies: map[string]int{}, codes: map[int]int{}}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+m.caller+path, nil)
				for k, v := range header {
					req.Header.Set(k, v)
				}
				start := time.Now()
				res, err := m.client.Do(req)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(res.Body)
					res.Body.Close()
				}
				mu.Lock()
				r.elapsed = append(r.elapsed, time.Since(start))
				if err != nil {
					r.errs++
				} else {
					r.codes[res.StatusCode]++
					if res.StatusCode == http.StatusOK {
						r.bodies[string(body)]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return r
}

// decisions reads mesh_policy_decisions_total for decision/enforced on admin.
func decisions(t *testing.T, admin, decision string, enforced bool) float64 {
	t.Helper()
	v, _, err := scrape("http://"+admin+"/metrics", "mesh_policy_decisions_total",
		`decision="`+decision+`"`, fmt.Sprintf(`enforced="%v"`, enforced))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func within(share, want, tol float64) bool { return math.Abs(share-want) <= tol }

// TestPolicyRouting drives routing policies through a real control plane
// and real proxies: discovery, weighted split, header match, mirroring,
// faults, timeout and rate limit.
func TestPolicyRouting(t *testing.T) {
	m := startMesh(t, "enforce", "v1", "v2")

	t.Run("discovery reaches both versions", func(t *testing.T) {
		r := m.fire(t, 400, 8, "/", nil)
		if r.codes[200] != 400 || r.bodies["v1"] < 20 || r.bodies["v2"] < 20 {
			t.Fatalf("without static addresses: %+v %v (errors %d)", r.codes, r.bodies, r.errs)
		}
	})

	t.Run("80/20 split", func(t *testing.T) {
		m.apply(t, "kind: Route\nname: split\nservice: catalog\nrules:\n  - backends: [{version: v1, weight: 80}, {version: v2, weight: 20}]\n")
		before := decisions(t, m.callerAdmin, "route:v2", true)
		r := m.fire(t, 1000, 4, "/", nil)
		if r.codes[200] != 1000 || !within(r.share("v2"), 0.20, 0.05) {
			t.Fatalf("split %v codes %v, want v2 at 20%% ± 5", r.bodies, r.codes)
		}
		if got := decisions(t, m.callerAdmin, "route:v2", true) - before; got != float64(r.bodies["v2"]) {
			t.Errorf("route:v2 decisions %v, requests to v2 %d", got, r.bodies["v2"])
		}
		v2, _, _ := scrape("http://"+m.callerAdmin+"/metrics", "mesh_requests_total", `direction="outbound"`, `destination_version="v2"`)
		if v2 < float64(r.bodies["v2"]) {
			t.Errorf("golden metrics count %v outbound requests to v2, want ≥ %d", v2, r.bodies["v2"])
		}
		t.Logf("80/20: v1 %d, v2 %d of 1000", r.bodies["v1"], r.bodies["v2"])
	})

	t.Run("header match routes to v2 only", func(t *testing.T) {
		m.apply(t, `kind: Route
name: split
service: catalog
rules:
  - match: {headers: [{name: x-canary, exact: "1"}]}
    backends: [{version: v2, weight: 100}]
  - backends: [{version: v1, weight: 100}]
`)
		canary := m.fire(t, 100, 4, "/", map[string]string{"X-Canary": "1"})
		plain := m.fire(t, 100, 4, "/", nil)
		if canary.bodies["v2"] != 100 || plain.bodies["v1"] != 100 {
			t.Fatalf("with header %v, without %v", canary.bodies, plain.bodies)
		}
	})

	t.Run("mirror", func(t *testing.T) {
		m.apply(t, `kind: Route
name: split
service: catalog
rules:
  - backends: [{version: v1, weight: 100}]
mirror: {version: v2, percent: 30}
`)
		r := m.fire(t, 500, 4, "/mirrored", nil)
		if r.bodies["v1"] != 500 {
			t.Fatalf("callers saw %v %v, want only v1", r.bodies, r.codes)
		}
		var got int
		poll(t, 20*time.Second, "mirrored copies to settle", func() (bool, string) {
			n := m.apps[1].hitsOf("/mirrored")
			settled := n == got && n > 0
			got = n
			return settled, fmt.Sprintf("%d copies", n)
		})
		if share := float64(got) / 500; !within(share, 0.30, 0.07) {
			t.Fatalf("mirror got %d of 500 (%.1f%%), want 30%% ± 7", got, 100*share)
		}
		t.Logf("mirror: %d of 500 copied to v2", got)
	})

	t.Run("fault abort and delay", func(t *testing.T) {
		m.apply(t, `kind: Route
name: split
service: catalog
fault:
  abort: {percent: 50, status: 503}
`)
		// Each request rolls its own uniform number (math/rand/v2), once,
		// in the caller's outbound chain, outside any retry layer: the
		// aborted count X of n requests is Binomial(n, 0.5), σ = √(n/4).
		// The bounds are 4.5 σ either side: a correct proxy fails this
		// test with probability 2·P(Z > 4.5) ≈ 7·10⁻⁶ per run, whatever
		// the machine's load (timing plays no part in X). What the proxy
		// decided is also checked exactly: every abort decision is one
		// 503 answer and nothing else answers 503.
		binomialBound := func(n int) int { return int(math.Ceil(4.5 * math.Sqrt(float64(n)/4))) }
		const nAbort = 400
		abort0 := decisions(t, m.callerAdmin, "fault_abort", true)
		r := m.fire(t, nAbort, 4, "/", nil)
		aborted := r.codes[503]
		decided := int(decisions(t, m.callerAdmin, "fault_abort", true) - abort0)
		if r.codes[200]+r.codes[503] != nAbort || decided != aborted {
			t.Fatalf("abort 50%%: codes %v (errors %d), %d abort decisions for %d answers 503", r.codes, r.errs, decided, aborted)
		}
		if b := binomialBound(nAbort); aborted < nAbort/2-b || aborted > nAbort/2+b {
			t.Fatalf("abort 50%%: %d of %d aborted, want %d ± %d (4.5 σ of Binomial(%d, 0.5))", aborted, nAbort, nAbort/2, b, nAbort)
		}
		m.apply(t, `kind: Route
name: split
service: catalog
fault:
  delay: {percent: 50, duration: 300ms}
`)
		// Which requests were delayed is counted from the proxy's
		// decisions, not guessed from latency (on a loaded machine a
		// request that was not delayed may also take 300 ms): the count is
		// Binomial(n, 0.5) as above, and at least that many requests took
		// the delay.
		const nDelay = 100
		delay0 := decisions(t, m.callerAdmin, "fault_delay", true)
		r = m.fire(t, nDelay, 4, "/", nil)
		delayed := int(decisions(t, m.callerAdmin, "fault_delay", true) - delay0)
		slow := 0
		for _, d := range r.elapsed {
			if d >= 300*time.Millisecond {
				slow++
			}
		}
		if r.codes[200] != nDelay || slow < delayed {
			t.Fatalf("delay 50%%: %d delay decisions but %d of %d took 300 ms, codes %v (errors %d)", delayed, slow, nDelay, r.codes, r.errs)
		}
		if b := binomialBound(nDelay); delayed < nDelay/2-b || delayed > nDelay/2+b {
			t.Fatalf("delay 50%%: %d of %d delayed, want %d ± %d (4.5 σ of Binomial(%d, 0.5))", delayed, nDelay, nDelay/2, b, nDelay)
		}
		t.Logf("fault: %d of %d aborted, %d of %d delayed (%d took ≥ 300 ms)", aborted, nAbort, delayed, nDelay, slow)
	})

	t.Run("timeout answers 504 at the bound", func(t *testing.T) {
		m.apply(t, "kind: Route\nname: split\nservice: catalog\ntimeout: 300ms\n")
		r := m.fire(t, 4, 2, "/slow", nil)
		if r.codes[504] != 4 {
			t.Fatalf("codes %v, want 504s", r.codes)
		}
		for _, d := range r.elapsed {
			if d < 300*time.Millisecond || d > 1500*time.Millisecond {
				t.Fatalf("answered after %s, want at the 300ms bound", d)
			}
		}
	})

	t.Run("observe mode changes nothing and counts every decision", func(t *testing.T) {
		m.apply(t, `kind: Route
name: split
service: catalog
mode: observe
rules:
  - backends: [{version: v2, weight: 100}]
timeout: 1ms
retries: {attempts: 2, on: [5xx]}
fault:
  abort: {percent: 100, status: 500}
`)
		route0 := decisions(t, m.callerAdmin, "route:v2", false)
		abort0 := decisions(t, m.callerAdmin, "fault_abort", false)
		r := m.fire(t, 200, 8, "/", nil)
		if r.codes[200] != 200 || r.bodies["v1"] == 0 || r.bodies["v2"] == 0 {
			t.Fatalf("observe changed traffic: codes %v bodies %v", r.codes, r.bodies)
		}
		if got := decisions(t, m.callerAdmin, "route:v2", false) - route0; got != 200 {
			t.Errorf("would-have route:v2 decisions %v, want 200", got)
		}
		if got := decisions(t, m.callerAdmin, "fault_abort", false) - abort0; got != 200 {
			t.Errorf("would-have fault_abort decisions %v, want 200", got)
		}
		if got := decisions(t, m.callerAdmin, "timeout", false); got == 0 {
			t.Errorf("no would-have timeout counted for a 1ms timeout")
		}
		m.remove(t, "route", "split")
	})

	t.Run("circuit breaker fails fast", func(t *testing.T) {
		m.apply(t, "kind: Resilience\nname: limit\nservice: catalog\nmode: enforce\ncircuit_breaker: {max_connections: 2, max_pending: 1, max_requests: 3}\n")
		start := time.Now()
		r := m.fire(t, 12, 12, "/slow", nil)
		fast := 0
		for _, d := range r.elapsed {
			if d < time.Second {
				fast++
			}
		}
		// 2 on connections + 1 pending (then served) = 3 admitted; the rest 503 at once.
		if r.codes[503] < 6 || r.codes[200]+r.codes[503] != 12 || fast < r.codes[503] {
			t.Fatalf("codes %v, %d answered under 1s (%s in all)", r.codes, fast, time.Since(start))
		}
		if decisions(t, m.callerAdmin, "breaker_open", true) < float64(r.codes[503]) {
			t.Fatal("breaker_open decisions not counted")
		}
	})

	t.Run("rate limit answers 429 above the rate", func(t *testing.T) {
		m.apply(t, "kind: Resilience\nname: limit\nservice: catalog\nmode: enforce\nload_balancer: round-robin\nrate_limit: {requests_per_second: 5, burst: 5}\n")
		start := time.Now()
		r := m.fire(t, 100, 4, "/", nil)
		el := time.Since(start).Seconds()
		// Two inbound proxies, each with its own bucket.
		allowed := 2 * (5 + 5*el + 1)
		if float64(r.codes[200]) > allowed || r.codes[429] == 0 || r.codes[200]+r.codes[429] != 100 {
			t.Fatalf("codes %v in %.2fs, want at most %.0f answered and the rest 429", r.codes, el, allowed)
		}
		t.Logf("rate limit: %d of 100 passed in %.2fs", r.codes[200], el)
	})
}

// TestPolicyRetries: retries with a budget turn a 50 %-failing upstream
// into ≥ 98 % success, and stop once the budget is spent.
func TestPolicyRetries(t *testing.T) {
	m := startMesh(t, "enforce", "v1")
	m.apply(t, "kind: Route\nname: retries\nservice: catalog\nretries:\n  attempts: 3\n  on: [5xx]\n  budget: {ratio: 1, min_per_second: 10}\n")
	r := m.fire(t, 300, 1, "/flaky", nil)
	if share := float64(r.codes[200]) / 300; share < 0.98 {
		t.Fatalf("success %.1f%% with retries (codes %v), want ≥ 98%%", 100*share, r.codes)
	}
	retried := decisions(t, m.callerAdmin, "retry", true)
	t.Logf("50%%-failing upstream: %d/300 succeeded with %v retries", r.codes[200], retried)

	// A new, small budget on an upstream that always fails: retries stop.
	m.apply(t, "kind: Route\nname: retries\nservice: catalog\nretries:\n  attempts: 3\n  on: [5xx]\n  budget: {ratio: 0.2, min_per_second: 1}\n")
	before := decisions(t, m.callerAdmin, "retry", true)
	r = m.fire(t, 200, 1, "/fail", nil)
	retries := decisions(t, m.callerAdmin, "retry", true) - before
	spent := decisions(t, m.callerAdmin, "retry_budget_spent", true)
	hits := m.apps[0].hitsOf("/fail")
	// Budget: 0.2 × 200 requests + 1/s × 10 s window.
	if retries > 0.2*200+10+1 || spent == 0 || hits > 200+int(retries) {
		t.Fatalf("retries %v (budget ~50), budget-spent decisions %v, upstream saw %d requests for 200 sent", retries, spent, hits)
	}
	if retries == 0 {
		t.Fatal("no retries at all")
	}
	t.Logf("always-failing upstream: %v retries for 200 requests, then the budget was spent (%v refusals)", retries, spent)
}

// TestPolicyOutlierDetection ejects an always-failing endpoint.
func TestPolicyOutlierDetection(t *testing.T) {
	m := startMesh(t, "enforce", "v1", "v1")
	m.apps[1].failAll.Store(true)
	// Round-robin keeps sending the failing endpoint its share until it is
	// ejected (p2c-ewma may simply stop picking it by latency).
	m.apply(t, "kind: Resilience\nname: outliers\nservice: catalog\nload_balancer: round-robin\noutlier_detection: {}\n")
	warm := m.fire(t, 50, 1, "/", nil)
	r := m.fire(t, 300, 2, "/", nil)
	if share := float64(r.codes[200]) / 300; share < 0.95 {
		t.Fatalf("after ejection success %.1f%% (codes %v), want ≥ 95%%", 100*share, r.codes)
	}
	var v struct {
		Endpoints []struct {
			Addr     string `json:"addr"`
			Ejected  bool   `json:"ejected"`
			Enforced bool   `json:"enforced"`
		} `json:"endpoints"`
	}
	if err := getJSON("http://"+m.callerAdmin+"/policy/endpoints", &v); err != nil {
		t.Fatal(err)
	}
	ejected := 0
	for _, e := range v.Endpoints {
		if e.Ejected && e.Enforced {
			ejected++
		}
	}
	if ejected != 1 {
		t.Fatalf("endpoints %+v, want one ejected", v.Endpoints)
	}
	// The caller reports it; the control plane shows it.
	poll(t, 20*time.Second, "the control plane to show the ejection", func() (bool, string) {
		code, body, err := get(m.s.url(control.APIPrefix + "/endpoints"))
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && strings.Contains(string(body), `"ejected":true`), string(body)
	})
	t.Logf("warm-up: %d/50 ok; after ejection %d/300 ok", warm.codes[200], r.codes[200])

	// Health checks instead: each instance's own proxy probes its app and
	// reports; the control plane marks the failing one unhealthy and the
	// caller skips it.
	m.apply(t, "kind: Resilience\nname: outliers\nservice: catalog\nmode: enforce\nload_balancer: round-robin\nhealth_check: {path: /healthz, interval: 200ms, unhealthy_threshold: 2}\n")
	m.waitEndpoints(t, 1)
	r = m.fire(t, 200, 2, "/", nil)
	if r.codes[200] != 200 {
		t.Fatalf("with the unhealthy instance skipped: codes %v", r.codes)
	}
}

// TestPolicyControlPlaneDown: killing the control plane mid-traffic fails
// no request and keeps the split; a proxy restarted while it is down
// routes by its persisted snapshot.
func TestPolicyControlPlaneDown(t *testing.T) {
	m := startMesh(t, "enforce", "v1", "v2")
	m.apply(t, "kind: Route\nname: split\nservice: catalog\nrules:\n  - backends: [{version: v1, weight: 80}, {version: v2, weight: 20}]\n")

	done := make(chan result)
	go func() { done <- m.fire(t, 1500, 2, "/", nil) }()
	poll(t, 30*time.Second, "traffic to start", func() (bool, string) {
		n, _, _ := scrape("http://"+m.callerAdmin+"/metrics", "mesh_requests_total", `direction="outbound"`)
		return n >= 300, fmt.Sprintf("%v requests", n)
	})
	syscall.Kill(-m.s.cmd.Process.Pid, syscall.SIGKILL)
	<-m.s.done
	r := <-done
	if r.codes[200] != 1500 || r.errs != 0 || !within(r.share("v2"), 0.2, 0.05) {
		t.Fatalf("across the kill: codes %v errors %d split %v", r.codes, r.errs, r.bodies)
	}

	// Restart the caller with the control plane still down.
	m.callerProc.stop(t, 15*time.Second)
	m.callerProc, m.callerAdmin = startProxy(t, "web-restarted", m.callerArgs...)
	r = m.fire(t, 1000, 4, "/", nil)
	if r.codes[200] != 1000 || !within(r.share("v2"), 0.2, 0.05) {
		t.Fatalf("restarted without control plane: codes %v errors %d split %v", r.codes, r.errs, r.bodies)
	}
	t.Logf("after restart from persisted state: v1 %d, v2 %d", r.bodies["v1"], r.bodies["v2"])
}
