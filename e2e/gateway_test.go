package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshscope/meshscope/control"
)

// gwCA is a throw-away certificate authority for the gateway tests.
type gwCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newGWCA(t *testing.T) *gwCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshscope test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &gwCA{cert: cert, key: key, pool: pool}
}

// issue writes a leaf certificate for host with common name cn to
// dir/name.crt and dir/name.key through renames (as a cert manager would).
func (ca *gwCA) issue(t *testing.T, dir, name, cn string, hosts ...string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: hosts,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	crt, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeRename(t, kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	writeRename(t, crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return crt, kf
}

func writeRename(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// signer signs JWTs with one key of one algorithm.
type signer struct {
	alg, kid string
	key      crypto.Signer
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (s *signer) jwk() map[string]string {
	switch k := s.key.Public().(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": s.kid, "alg": "RS256", "use": "sig", "n": b64url(k.N.Bytes()), "e": b64url(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		b, _ := k.Bytes()
		return map[string]string{"kty": "EC", "kid": s.kid, "crv": "P-256", "x": b64url(b[1:33]), "y": b64url(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": s.kid, "crv": "Ed25519", "x": b64url(k)}
	}
	panic("key type")
}

func (s *signer) sign(t *testing.T, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]string{"alg": s.alg, "kid": s.kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	in := b64url(h) + "." + b64url(p)
	var sig []byte
	var err error
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		d := sha256.Sum256([]byte(in))
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, d[:])
	case *ecdsa.PrivateKey:
		d := sha256.Sum256([]byte(in))
		r, ss, e := ecdsa.Sign(rand.Reader, k, d[:])
		sig, err = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...), e
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, []byte(in))
	}
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64url(sig)
}

func newSigner(t *testing.T, alg, kid string) *signer {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case "RS256":
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, k, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &signer{alg: alg, kid: kid, key: k}
}

func writeJWKS(t *testing.T, path string, signers ...*signer) {
	t.Helper()
	var keys []map[string]string
	for _, s := range signers {
		keys = append(keys, s.jwk())
	}
	b, _ := json.Marshal(map[string]any{"keys": keys})
	writeRename(t, path, b)
}

// headerApp answers with the request headers it got as JSON and counts
// requests.
func headerApp(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ln := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "host": r.Host, "body_bytes": len(body),
			"x_user": r.Header.Get("X-User"), "x_tenant": r.Header.Get("X-Tenant"), "x_edge": r.Header.Get("X-Edge"),
			"traceparent": r.Header.Get("Traceparent")})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &n
}

// gwClient is an HTTPS client that sends every host name to addr and
// trusts the test CA.
func gwClient(ca *gwCA, addr string, keepAlive bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
			TLSClientConfig:   &tls.Config{RootCAs: ca.pool},
			ForceAttemptHTTP2: true, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 8,
		}}
}

type gwReply struct {
	proto string
	code  int
	hdr   http.Header
	body  map[string]any
	raw   string
}

func gwDo(t *testing.T, c *http.Client, method, url, token string, body io.Reader) gwReply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("X-User", "forged-by-client")
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := gwReply{proto: res.Proto, code: res.StatusCode, hdr: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

// sClientSubject asks openssl s_client for the certificate served to sni.
func sClientSubject(t *testing.T, addr, sni string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", addr, "-servername", sni, "-brief")
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if l := strings.ReplaceAll(line, " ", ""); strings.HasPrefix(l, "Peercertificate:") {
			return strings.TrimPrefix(l, "Peercertificate:")
		}
	}
	t.Fatalf("openssl s_client -servername %s: no peer certificate in:\n%s", sni, out)
	return ""
}

func TestGatewayEdge(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed (TEST_APT)")
	}
	dir := t.TempDir()
	ca := newGWCA(t)
	shopCrt, shopKey := ca.issue(t, dir, "shop", "shop-cert-1", "shop.example")
	apiCrt, apiKey := ca.issue(t, dir, "api", "api-cert-1", "api.example")
	es, rs, ed := newSigner(t, "ES256", "es-1"), newSigner(t, "RS256", "rs-1"), newSigner(t, "EdDSA", "ed-1")
	jwks := filepath.Join(dir, "jwks.json")
	writeJWKS(t, jwks, es, rs, ed)
	backend, hits := headerApp(t)
	a := freeAddrs(t, 3)
	tlsAddr, plainAddr, h2cAddr := a[0], a[1], a[2]
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	const rps, burst = 30.0, 10
	doc := fmt.Sprintf(`kind: Gateway
name: edge
service: edge
listeners:
  - address: %[1]s
    tls:
      certificates:
        - {hosts: [shop.example], cert_file: %[2]s, key_file: %[3]s}
        - {hosts: [api.example], cert_file: %[4]s, key_file: %[5]s}
  - address: %[6]s
    https_redirect: true
  - address: %[11]s
    h2c: true
routes:
  - name: api
    host: api.example
    path_prefix: /v1/
    service: web@%[7]s
    jwt:
      issuer: https://issuer.test
      audiences: [shop]
      jwks_file: %[8]s
      required_claims: [sub]
      forward_claims: {sub: X-User, tenant: X-Tenant}
  - name: limited
    host: shop.example
    path_exact: /limited
    service: web@%[7]s
    anonymous: true
    rate_limit: {requests_per_second: %[9]g, burst: %[10]d, key: client_ip}
  - name: upload
    path_prefix: /upload
    service: web@%[7]s
    anonymous: true
    max_request_bytes: 1024
  - name: site
    host: shop.example
    service: web@%[7]s
    anonymous: true
    request_headers: {set: {X-Edge: edge}}
`, tlsAddr, shopCrt, shopKey, apiCrt, apiKey, plainAddr, backend, jwks, rps, burst, h2cAddr)
	cfg := filepath.Join(dir, "gateway.yaml")
	writeRename(t, cfg, []byte(doc))
	gw, admin := startProxy(t, "gateway", "--gateway", "--service", "edge", "--config", cfg)
	poll(t, 10*time.Second, "gateway listener", func() (bool, string) {
		c, err := net.Dial("tcp", tlsAddr)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	}, gw)
	c := gwClient(ca, tlsAddr, true)
	shop := "https://shop.example:" + tlsPort
	api := "https://api.example:" + tlsPort

	t.Run("SNI", func(t *testing.T) {
		for sni, want := range map[string]string{"shop.example": "CN=shop-cert-1", "api.example": "CN=api-cert-1"} {
			if got := sClientSubject(t, tlsAddr, sni); !strings.Contains(got, want) {
				t.Errorf("SNI %s: openssl saw %q, want %s", sni, got, want)
			}
		}
		r := gwDo(t, c, "GET", shop+"/", "", nil)
		if r.code != 200 || r.body["x_edge"] != "edge" || r.proto != "HTTP/2.0" {
			t.Fatalf("GET /: %s %d %s (want HTTP/2 over ALPN, 200 with X-Edge set by the route)", r.proto, r.code, r.raw)
		}
		h1 := gwClient(ca, tlsAddr, true)
		h1.Transport.(*http.Transport).ForceAttemptHTTP2 = false
		h1.Transport.(*http.Transport).TLSClientConfig.NextProtos = []string{"http/1.1"}
		if r := gwDo(t, h1, "GET", shop+"/", "", nil); r.code != 200 || r.proto != "HTTP/1.1" {
			t.Fatalf("HTTP/1.1 over TLS: %s %d", r.proto, r.code)
		}
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		req, _ := http.NewRequest("GET", "http://"+h2cAddr+"/", nil)
		req.Host = "shop.example"
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("h2c: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.ProtoMajor != 2 {
			t.Fatalf("h2c listener: %s %d", res.Proto, res.StatusCode)
		}
		// The gateway starts the trace: the upstream gets its span as parent.
		if tp, _ := r.body["traceparent"].(string); len(tp) != 55 || !strings.HasPrefix(tp, "00-") {
			t.Fatalf("upstream got traceparent %q, want one started by the gateway", tp)
		}
	})

	t.Run("Redirect", func(t *testing.T) {
		pc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := pc.Get("http://" + plainAddr + "/a/b?q=1")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc := res.Header.Get("Location")
		if res.StatusCode != http.StatusPermanentRedirect || loc != "https://127.0.0.1:"+tlsPort+"/a/b?q=1" {
			t.Fatalf("plain listener: %d Location %q", res.StatusCode, loc)
		}
	})

	now := time.Now()
	good := map[string]any{"iss": "https://issuer.test", "aud": "shop", "sub": "alice", "tenant": "acme",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}

	var esTok string // verified (and cached) before es-1 is retired
	t.Run("JWT", func(t *testing.T) {
		for _, s := range []*signer{es, rs, ed} {
			tok := s.sign(t, good)
			if s == es {
				esTok = tok
			}
			r := gwDo(t, c, "GET", api+"/v1/orders", tok, nil)
			if r.code != 200 || r.body["x_user"] != "alice" || r.body["x_tenant"] != "acme" {
				t.Fatalf("%s token: %d %s (want 200 with X-User alice, X-Tenant acme)", s.alg, r.code, r.raw)
			}
		}
		other := newSigner(t, "ES256", "es-1") // same kid, different key
		noneTok := b64url([]byte(`{"alg":"none","kid":"es-1"}`)) + "." + b64url(mustJSON(good)) + "."
		hsHdr := b64url([]byte(`{"alg":"HS256","kid":"es-1"}`)) + "." + b64url(mustJSON(good))
		cases := []struct {
			name, token, desc string
		}{
			{"no token", "", ""},
			{"expired", es.sign(t, with("exp", now.Add(-2*time.Minute).Unix())), "token expired"},
			{"not yet valid", es.sign(t, with("nbf", now.Add(5*time.Minute).Unix())), "token not yet valid"},
			{"wrong audience", es.sign(t, with("aud", "other")), "token audience not accepted"},
			{"wrong issuer", es.sign(t, with("iss", "https://evil.test")), "token issuer not accepted"},
			{"missing sub", es.sign(t, with("sub", nil)), "token lacks a required claim"},
			{"wrong signature", other.sign(t, good), "token signature does not verify"},
			{"unknown kid", newSigner(t, "ES256", "nope").sign(t, good), "token signed with an unknown key id"},
			{"alg none", noneTok, "token algorithm not accepted"},
			{"alg HS256", hsHdr + "." + b64url([]byte("x")), "token algorithm not accepted"},
			{"garbage", "a.b.c", "token is not a well-formed JWT"},
		}
		for _, tc := range cases {
			r := gwDo(t, c, "GET", api+"/v1/orders", tc.token, nil)
			wa := r.hdr.Get("WWW-Authenticate")
			if r.code != 401 || !strings.HasPrefix(wa, `Bearer realm="edge"`) || !strings.Contains(wa, tc.desc) {
				t.Errorf("%s: %d WWW-Authenticate %q (want 401 naming %q)", tc.name, r.code, wa, tc.desc)
			}
		}
		if v, _, _ := scrape("http://"+admin+"/metrics", "meshscope_gateway_auth_failures_total", `reason="expired"`, `route="api"`); v != 1 {
			t.Errorf("auth failures {reason=expired} = %v, want 1", v)
		}
	})

	t.Run("JWKSRotation", func(t *testing.T) {
		next := newSigner(t, "ES256", "es-2")
		tok := next.sign(t, good)
		if r := gwDo(t, c, "GET", api+"/v1/orders", tok, nil); r.code != 401 {
			t.Fatalf("token of a key not yet published: %d", r.code)
		}
		writeJWKS(t, jwks, next, rs, ed) // es-1 retired, es-2 published
		poll(t, 10*time.Second, "rotated key accepted", func() (bool, string) {
			r := gwDo(t, c, "GET", api+"/v1/orders", tok, nil)
			return r.code == 200, fmt.Sprint(r.code, " ", r.hdr.Get("WWW-Authenticate"))
		}, gw)
		if r := gwDo(t, c, "GET", api+"/v1/orders", esTok, nil); r.code != 401 {
			t.Errorf("token of the retired key (accepted before the rotation): %d, want 401", r.code)
		}
	})

	t.Run("BodyLimit", func(t *testing.T) {
		if r := gwDo(t, c, "POST", shop+"/upload", "", bytes.NewReader(make([]byte, 1000))); r.code != 200 {
			t.Fatalf("1000-byte body: %d %s", r.code, r.raw)
		}
		if r := gwDo(t, c, "POST", shop+"/upload", "", bytes.NewReader(make([]byte, 4096))); r.code != 413 {
			t.Fatalf("4096-byte body: %d %s", r.code, r.raw)
		}
		// Unknown length (chunked / HTTP/2 without content-length).
		if r := gwDo(t, c, "POST", shop+"/upload", "", io.MultiReader(bytes.NewReader(make([]byte, 4096)))); r.code != 413 {
			t.Fatalf("4096-byte body of unknown length: %d %s", r.code, r.raw)
		}
	})

	t.Run("PathNormalization", func(t *testing.T) {
		req, _ := http.NewRequest("GET", api+"/v1/../admin", nil)
		req.URL.Opaque = "/v1/../admin" // keep the dots on the wire
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Fatalf("/v1/../admin: %d, want 400", res.StatusCode)
		}
	})

	t.Run("RateLimit", func(t *testing.T) {
		// Two clients fire as fast as they can for 3 s; the gateway lets
		// burst + rate × elapsed through.
		var ok, limited atomic.Int64
		var retryAfter atomic.Value
		start := time.Now()
		deadline := start.Add(3 * time.Second)
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := gwClient(ca, tlsAddr, true)
				for time.Now().Before(deadline) {
					req, _ := http.NewRequest("GET", shop+"/limited", nil)
					res, err := cl.Do(req)
					if err != nil {
						continue
					}
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
					switch res.StatusCode {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
						if res.Header.Get("RateLimit-Limit") != "" {
							retryAfter.Store(res.Header.Get("Retry-After"))
						}
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		want := float64(burst) + rps*elapsed
		got := float64(ok.Load())
		t.Logf("rate limit: %d allowed, %d limited in %.2fs; expected %.1f allowed", ok.Load(), limited.Load(), elapsed, want)
		if limited.Load() == 0 || math.Abs(got-want) > 0.1*want {
			t.Fatalf("allowed %v, want %.1f ±10%% (limited %d)", got, want, limited.Load())
		}
		if ra, _ := retryAfter.Load().(string); ra != "1" {
			t.Errorf("Retry-After %q, want 1", ra)
		}
		if v, _, _ := scrape("http://"+admin+"/metrics", "meshscope_gateway_rate_limited_total", `route="limited"`); v != float64(limited.Load()) {
			t.Errorf("meshscope_gateway_rate_limited_total = %v, want %d", v, limited.Load())
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		m := "http://" + admin + "/metrics"
		for _, want := range []struct {
			labels []string
			min    float64
		}{
			{[]string{`direction="ingress"`, `route="api"`, `status_code="200"`, `source_service="edge"`, `destination_service="web"`}, 1},
			{[]string{`direction="ingress"`, `route="api"`, `status_code="401"`}, 10},
			{[]string{`direction="ingress"`, `route="limited"`, `status_code="429"`}, 1},
			{[]string{`direction="ingress"`, `route="upload"`, `status_code="413"`}, 2},
		} {
			if v, _, err := scrape(m, "mesh_requests_total", want.labels...); err != nil || v < want.min {
				t.Errorf("mesh_requests_total%v = %v (%v), want ≥ %v", want.labels, v, err, want.min)
			}
		}
	})

	t.Run("CertReload", func(t *testing.T) {
		// New TLS connections (a full handshake each) keep coming while
		// the certificate is replaced; none may fail.
		var sent, failed atomic.Int64
		var lastErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var seenNew atomic.Bool
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					conn, err := tls.Dial("tcp", tlsAddr, &tls.Config{ServerName: "shop.example", RootCAs: ca.pool, NextProtos: []string{"http/1.1"}})
					if err == nil {
						_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
						if err == nil {
							var b []byte
							b, err = io.ReadAll(conn)
							if err == nil && !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) {
								err = fmt.Errorf("response %.40q", b)
							}
						}
						if conn.ConnectionState().PeerCertificates[0].Subject.CommonName == "shop-cert-2" {
							seenNew.Store(true)
						}
						conn.Close()
					}
					sent.Add(1)
					if err != nil {
						failed.Add(1)
						lastErr.Store(err.Error())
					}
				}
			}()
		}
		time.Sleep(500 * time.Millisecond)
		before := hits.Load()
		ca.issue(t, dir, "shop", "shop-cert-2", "shop.example")
		poll(t, 15*time.Second, "new certificate served", func() (bool, string) { return seenNew.Load(), "" }, gw)
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		t.Logf("certificate reload: %d requests, %d failed", sent.Load(), failed.Load())
		if failed.Load() != 0 || hits.Load() == before {
			t.Fatalf("%d of %d requests failed during the reload (last: %v)", failed.Load(), sent.Load(), lastErr.Load())
		}
		if got := sClientSubject(t, tlsAddr, "shop.example"); !strings.Contains(got, "CN=shop-cert-2") {
			t.Fatalf("after reload openssl saw %q", got)
		}
		if got := sClientSubject(t, tlsAddr, "api.example"); !strings.Contains(got, "CN=api-cert-1") {
			t.Fatalf("after reload, api.example: openssl saw %q", got)
		}
	})

	t.Run("BadReloadKeepsConfig", func(t *testing.T) {
		writeRename(t, cfg, []byte(strings.Replace(doc, "max_request_bytes: 1024", "max_request_bytes: 1024\n    bogus_key: 1", 1)))
		poll(t, 10*time.Second, "rejected reload logged", func() (bool, string) {
			return strings.Contains(gw.output(), "bogus_key"), ""
		}, gw)
		if r := gwDo(t, c, "GET", shop+"/", "", nil); r.code != 200 {
			t.Fatalf("after a rejected reload: %d", r.code)
		}
	})
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// TestGatewayControlPlane applies the Gateway document through the control
// plane; the route's service is discovered.
func TestGatewayControlPlane(t *testing.T) {
	m := startMesh(t, "observe", "v1")
	gwAddr := freeAddrs(t, 1)[0]
	var bad control.ErrorView
	if code := post(t, m.s.url(control.APIPrefix+"/apply"), "kind: Gateway\nname: edge\nservice: edge\nlisteners: [{address: "+gwAddr+", tls: {certificates: []}}]\nroutes: [{service: catalog, anonymous: true}]\n", &bad); code == http.StatusOK {
		t.Fatalf("a Gateway without certificates was accepted: %+v", bad)
	} else if !strings.Contains(bad.Error, "listeners[0].tls.certificates") {
		t.Fatalf("rejection does not name the key: %+v", bad)
	}
	gw, admin := startProxy(t, "gateway", "--gateway", "--service", "edge", "--control-plane", "http://"+m.s.http,
		"--state-dir", t.TempDir(), "--no-tracing")
	m.apply(t, "kind: Gateway\nname: edge\nservice: edge\nlisteners: [{address: "+gwAddr+"}]\nroutes:\n  - {name: catalog, path_prefix: /, service: catalog, anonymous: true}\n")
	poll(t, 30*time.Second, "request through the gateway reaches catalog", func() (bool, string) {
		code, body, err := get("http://" + gwAddr + "/items")
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && string(body) == "v1", fmt.Sprintf("%d %s", code, body)
	}, gw)
	if v, _, _ := scrape("http://"+admin+"/metrics", "mesh_requests_total", `direction="ingress"`, `destination_service="catalog"`, `destination_version="v1"`, `route="catalog"`); v < 1 {
		t.Fatalf("no ingress request recorded with the discovered version: %v", v)
	}
	// The gateway holds a mesh identity like a sidecar: its calls to the
	// meshed catalog go over mTLS, and its metrics say so.
	if v, _, _ := scrape("http://"+admin+"/metrics", "mesh_requests_total", `direction="ingress"`, `destination_service="catalog"`, `tls="mtls"`); v < 1 {
		t.Fatalf("the gateway's requests to a meshed service were not over mTLS: %v", v)
	}
}
