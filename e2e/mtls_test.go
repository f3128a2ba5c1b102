//go:build unix

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control/wire"
)

// tlsMesh is a control plane, payments (a versionApp behind an inbound
// proxy) and checkout, a caller proxy whose outbound listener reaches
// payments by discovery; both proxies run mTLS by default.
type tlsMesh struct {
	s                 *server
	app               *versionApp
	payIn, payAdmin   string
	caller, callAdmin string
	payProc, callProc *proc
	client            *http.Client
}

func startTLSMesh(t *testing.T, tracing bool, serverArgs ...string) *tlsMesh {
	t.Helper()
	tel := []string{"--no-tracing"}
	if tracing {
		otlp := freeAddrs(t, 1)[0]
		serverArgs = append(serverArgs, "--otlp-grpc", otlp)
		tel = []string{"--collector", otlp}
	}
	m := &tlsMesh{s: startControlServer(t, t.TempDir(), serverArgs...)}
	m.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	t.Cleanup(m.client.CloseIdleConnections)
	cp := "http://" + m.s.http
	m.app = startVersionApp(t, "v1")
	m.payIn = freeAddrs(t, 1)[0]
	m.payProc, m.payAdmin = startProxy(t, "payments", append([]string{"--service", "payments", "--version", "v1",
		"--inbound", m.payIn + "=" + m.app.addr, "--control-plane", cp, "--state-dir", t.TempDir()}, tel...)...)
	m.caller = freeAddrs(t, 1)[0]
	m.callProc, m.callAdmin = startProxy(t, "checkout", append([]string{"--service", "checkout", "--version", "v1",
		"--upstream", m.caller + "=payments", "--control-plane", cp, "--state-dir", t.TempDir()}, tel...)...)
	for _, admin := range []string{m.payAdmin, m.callAdmin} {
		waitCert(t, admin, m.payProc, m.callProc)
	}
	poll(t, 30*time.Second, "checkout to discover payments over mTLS", func() (bool, string) {
		code, body, err := get(m.s.url("/api/mesh/v1/endpoints"))
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && strings.Contains(string(body), `"mtls":true`), string(body)
	}, m.callProc)
	return m
}

// waitCert waits until the proxy at admin holds a mesh certificate.
func waitCert(t *testing.T, admin string, watch ...*proc) {
	t.Helper()
	poll(t, 30*time.Second, "proxy "+admin+" to get a mesh certificate", func() (bool, string) {
		v, _, err := scrape("http://"+admin+"/metrics", "mesh_proxy_certificate_expiry_timestamp_seconds")
		if err != nil {
			return false, err.Error()
		}
		return v > float64(time.Now().Unix()), fmt.Sprintf("expiry %v", v)
	}, watch...)
}

func metric(t *testing.T, admin, name string, labels ...string) float64 {
	t.Helper()
	v, _, err := scrape("http://"+admin+"/metrics", name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fire sends n GETs through the caller and counts the status codes
// (transport errors under -1).
func (m *tlsMesh) fire(n int, path string) map[int]int {
	codes := map[int]int{}
	for range n {
		res, err := m.client.Get("http://" + m.caller + path)
		if err != nil {
			codes[-1]++
			continue
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		codes[res.StatusCode]++
	}
	return codes
}

func (m *tlsMesh) apply(t *testing.T, doc string) {
	t.Helper()
	mm := &mesh{s: m.s, callerAdmin: m.callAdmin, inAdmins: []string{m.payAdmin}, callerProc: m.callProc}
	mm.apply(t, doc)
}

// TestMTLS: two meshed proxies talk mTLS with certificates from the
// server's CA; openssl sees the chain to the mesh root and the SPIFFE ID;
// permissive accepts and reports plaintext, strict refuses it.
func TestMTLS(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (Makefile TEST_APT)")
	}
	m := startTLSMesh(t, false)

	codes := m.fire(20, "/pay")
	if codes[200] != 20 {
		t.Fatalf("through checkout → payments: %v, want 20×200", codes)
	}
	if v := metric(t, m.callAdmin, "mesh_tls_handshakes_total", `side="client"`, `result="ok"`); v < 1 {
		t.Errorf("checkout made %v mTLS handshakes, want ≥ 1", v)
	}
	if v := metric(t, m.payAdmin, "mesh_tls_inbound_connections_total", `tls="mtls"`, `action="accepted"`); v < 1 {
		t.Errorf("payments accepted %v mTLS connections, want ≥ 1", v)
	}

	// openssl s_client: the chain verifies against the mesh root in the
	// data dir and the leaf names payments by its SPIFFE ID.
	root := filepath.Join(m.s.data, "ca", "ca.crt")
	out, err := exec.Command("openssl", "s_client", "-connect", m.payIn, "-alpn", wire.MeshALPN,
		"-CAfile", root, "-showcerts", "-verify_return_error").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "Verify return code: 0 (ok)") {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Verify return code: 0 (ok)") || !strings.Contains(string(out), "ALPN protocol: "+wire.MeshALPN) {
		t.Errorf("openssl s_client did not verify the chain with ALPN %s:\n%s", wire.MeshALPN, out)
	}
	leaf := regexp.MustCompile(`(?s)-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----`).FindString(string(out))
	x := exec.Command("openssl", "x509", "-noout", "-text")
	x.Stdin = strings.NewReader(leaf)
	text, err := x.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509: %v\n%s", err, text)
	}
	if !strings.Contains(string(text), "URI:spiffe://meshscope.local/service/payments") {
		t.Errorf("leaf certificate has no SPIFFE URI SAN for payments:\n%s", text)
	}

	// Permissive (the default): a plaintext client is served and counted.
	before := metric(t, m.payAdmin, "mesh_tls_inbound_connections_total", `tls="plaintext"`, `action="accepted"`)
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := plain.Get("http://" + m.payIn + "/direct")
	if err != nil {
		t.Fatalf("plaintext GET in permissive mode: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("plaintext GET in permissive mode: %d", res.StatusCode)
	}
	if after := metric(t, m.payAdmin, "mesh_tls_inbound_connections_total", `tls="plaintext"`, `action="accepted"`); after <= before {
		t.Errorf("plaintext connections accepted %v → %v: not reported", before, after)
	}

	// Strict: plaintext refused, the meshed caller still served.
	m.apply(t, "kind: PeerAuthentication\nname: payments-strict\nservice: payments\ntls: strict\n")
	if _, err := plain.Get("http://" + m.payIn + "/direct"); err == nil {
		t.Errorf("plaintext GET succeeded under strict PeerAuthentication")
	}
	if v := metric(t, m.payAdmin, "mesh_tls_inbound_connections_total", `tls="plaintext"`, `action="refused"`); v < 1 {
		t.Errorf("refused plaintext connections = %v, want ≥ 1", v)
	}
	m.client.CloseIdleConnections()
	if codes := m.fire(10, "/pay"); codes[200] != 10 {
		t.Errorf("meshed caller under strict: %v, want 10×200", codes)
	}
}

// TestMTLSRotationAndTCP: with a 30 s certificate lifetime both proxies
// rotate (at 2/3 of the life) while requests flow, none failing; opaque
// TCP between meshed proxies runs over mTLS too.
func TestMTLSRotationAndTCP(t *testing.T) {
	m := startTLSMesh(t, false, "--cert-lifetime", "30s")
	cp := "http://" + m.s.http

	// An echo service (line protocol, client speaks first) behind its
	// own proxy, called through checkout's second outbound listener.
	echoLn := listen(t)
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "echo %s\n", sc.Text())
				}
			}()
		}
	}()
	t.Cleanup(func() { echoLn.Close() })
	echoIn, echoOut := freeAddrs(t, 1)[0], freeAddrs(t, 1)[0]
	echoProc, echoAdmin := startProxy(t, "echo", "--service", "echo", "--version", "v1",
		"--inbound", echoIn+"="+echoLn.Addr().String(), "--control-plane", cp, "--state-dir", t.TempDir(), "--no-tracing")
	tcpProc, tcpAdmin := startProxy(t, "tcp-caller", "--service", "checkout-tcp", "--version", "v1",
		"--upstream", echoOut+"=echo", "--opaque", echoOut, "--control-plane", cp, "--state-dir", t.TempDir(), "--no-tracing")
	waitCert(t, echoAdmin, echoProc)
	waitCert(t, tcpAdmin, tcpProc)
	poll(t, 30*time.Second, "echo over opaque TCP through mTLS", func() (bool, string) {
		c, err := net.DialTimeout("tcp", echoOut, 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "hello mesh\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		hs := metric(t, tcpAdmin, "mesh_tls_handshakes_total", `side="client"`, `result="ok"`)
		return line == "echo hello mesh\n" && hs >= 1, fmt.Sprintf("%q %v, client handshakes %v", line, err, hs)
	}, echoProc, tcpProc)
	if v := metric(t, echoAdmin, "mesh_tls_inbound_connections_total", `tls="mtls"`, `action="accepted"`); v < 1 {
		t.Errorf("echo accepted %v mTLS connections, want ≥ 1", v)
	}

	// Requests for 45 s: each proxy's 30 s certificate is replaced at
	// ~20 s and ~40 s; every request must succeed.
	issued0 := metric(t, m.payAdmin, "mesh_proxy_certificates_total", `result="issued"`)
	expiry0 := metric(t, m.payAdmin, "mesh_proxy_certificate_expiry_timestamp_seconds")
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(45 * time.Second)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				codes := m.fire(1, fmt.Sprintf("/rot/%d", w))
				if codes[200] == 1 {
					ok.Add(1)
				} else {
					failed.Add(1)
					t.Logf("failed request: %v", codes)
				}
				// New connections now and then, so handshakes happen
				// with the rotated certificates too.
				if ok.Load()%50 == 0 {
					m.client.CloseIdleConnections()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	issued1 := metric(t, m.payAdmin, "mesh_proxy_certificates_total", `result="issued"`)
	expiry1 := metric(t, m.payAdmin, "mesh_proxy_certificate_expiry_timestamp_seconds")
	t.Logf("rotation: %d requests ok, %d failed; payments certificates issued %v → %v, expiry +%vs",
		ok.Load(), failed.Load(), issued0, issued1, expiry1-expiry0)
	if failed.Load() != 0 || ok.Load() < 100 {
		t.Errorf("during rotation: %d ok, %d failed; want ≥ 100 ok and none failed", ok.Load(), failed.Load())
	}
	if issued1-issued0 < 1 || expiry1 <= expiry0 {
		t.Errorf("payments did not rotate: issued %v → %v, expiry %v → %v", issued0, issued1, expiry0, expiry1)
	}
	// The first certificates have expired by now: a new TCP connection
	// handshakes with rotated ones on both sides.
	hs0 := metric(t, tcpAdmin, "mesh_tls_handshakes_total", `side="client"`, `result="ok"`)
	c, err := net.DialTimeout("tcp", echoOut, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "after rotation\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if line != "echo after rotation\n" || metric(t, tcpAdmin, "mesh_tls_handshakes_total", `side="client"`, `result="ok"`) <= hs0 {
		t.Errorf("TCP after rotation: %q %v; want a new mTLS handshake and the echo", line, err)
	}
	if v := metric(t, m.callAdmin, "mesh_tls_handshakes_total", `side="client"`, `result="failed"`); v != 0 {
		t.Errorf("checkout: %v failed mTLS handshakes", v)
	}
}

// TestAuthorization: audit mode counts would-deny and passes the request;
// enforce answers 403 with the reason.
func TestAuthorization(t *testing.T) {
	m := startTLSMesh(t, true)
	const doc = `kind: Authorization
name: payments-callers
service: payments
mode: %s
rules:
- identities: [billing]
- identities: ["*"]
  methods: [GET]
  paths: [/public*]
`
	m.apply(t, fmt.Sprintf(doc, "audit"))
	if codes := m.fire(10, "/pay"); codes[200] != 10 {
		t.Fatalf("audit mode: %v, want 10×200", codes)
	}
	if v := metric(t, m.payAdmin, "mesh_policy_decisions_total", `policy_kind="Authorization"`, `decision="deny"`, `enforced="false"`); v != 10 {
		t.Errorf("audit would-deny = %v, want 10", v)
	}
	if codes := m.fire(5, "/public/x"); codes[200] != 5 {
		t.Errorf("allowed path in audit mode: %v", codes)
	}
	// The payments span of an audited request carries the TLS state, the
	// caller identity and the would-deny event.
	poll(t, 30*time.Second, "a payments span with mesh.tls, mesh.peer.identity and the audit event", func() (bool, string) {
		var r struct {
			Data []struct {
				Spans []struct {
					Tags []struct {
						Key   string `json:"key"`
						Value any    `json:"value"`
					} `json:"tags"`
					Logs []struct {
						Fields []struct {
							Key   string `json:"key"`
							Value any    `json:"value"`
						} `json:"fields"`
					} `json:"logs"`
				} `json:"spans"`
			} `json:"data"`
		}
		if err := getJSON(m.s.url("/jaeger/api/traces?service=payments&lookback=1h&limit=50"), &r); err != nil {
			return false, err.Error()
		}
		seen := ""
		for _, tr := range r.Data {
			for _, s := range tr.Spans {
				tags := map[string]string{}
				for _, tg := range s.Tags {
					tags[tg.Key] = fmt.Sprint(tg.Value)
				}
				if tags["mesh.direction"] != "inbound" {
					continue
				}
				seen = fmt.Sprint(tags)
				deny := false
				for _, l := range s.Logs {
					for _, f := range l.Fields {
						if f.Key == "mesh.policy.decision" && fmt.Sprint(f.Value) == "deny" {
							deny = true
						}
					}
				}
				if tags["mesh.tls"] == "mtls" && tags["mesh.peer.identity"] == "spiffe://meshscope.local/service/checkout" && deny {
					return true, ""
				}
			}
		}
		return false, fmt.Sprintf("%d traces; last inbound span tags %s", len(r.Data), seen)
	}, m.payProc, m.callProc)

	m.apply(t, fmt.Sprintf(doc, "enforce"))
	res, err := m.client.Get("http://" + m.caller + "/pay")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	reason := res.Header.Get("X-Meshscope-Authz")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(reason, `authorization "payments-callers"`) ||
		!strings.Contains(reason, "spiffe://meshscope.local/service/checkout") {
		t.Errorf("enforce: %d, reason %q; want 403 naming the policy and the caller", res.StatusCode, reason)
	}
	if codes := m.fire(5, "/public/x"); codes[200] != 5 {
		t.Errorf("allowed path in enforce mode: %v", codes)
	}
	if v := metric(t, m.payAdmin, "mesh_policy_decisions_total", `policy_kind="Authorization"`, `decision="deny"`, `enforced="true"`); v != 1 {
		t.Errorf("enforced denies = %v, want 1", v)
	}
	if hits := m.app.hitsOf("/pay"); hits != 10 {
		t.Errorf("payments app saw /pay %d times, want 10 (the denied request must not reach it)", hits)
	}
}
