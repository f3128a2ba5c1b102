package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The demo's traffic enters through an ingress gateway (meshscope-proxy
// --gateway, docs/gateway.md): TLS for shop.localhost with a certificate
// from a CA generated per run (its root printed so curl can trust it), and
// a JWT required on POST /checkout. The load generator signs its tokens;
// a share of them is expired and shows as 401s on the gateway's checkout
// route.

const (
	gatewayService = "gateway"
	gatewayHost    = "shop.localhost"
	demoIssuer     = "https://issuer.demo.meshscope"
	// ExpiredTokenShare is the share of checkout requests the load
	// generator sends with an expired token.
	ExpiredTokenShare = 0.1
)

// gatewaySetup is the gateway's generated files and the load generator's
// side of them.
type gatewaySetup struct {
	dir, config, caFile string
	caPEM               []byte
	listen, admin       string
	pool                *x509.CertPool
	signKey             ed25519.PrivateKey

	mu  sync.Mutex
	rnd *mrand.Rand
}

// newGatewaySetup writes the CA, the server certificate, the JWKS and the
// Gateway document (routes to web's inbound proxy at web) into dir.
func newGatewaySetup(dir, web string) (*gatewaySetup, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("demo gateway: %w", err)
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, err
	}
	g := &gatewaySetup{dir: dir, listen: addrs[0], admin: addrs[1], config: filepath.Join(dir, "gateway.yaml"),
		caFile: filepath.Join(dir, "ca.crt"), pool: x509.NewCertPool(), rnd: mrand.New(mrand.NewPCG(7, 8))}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caT := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "Meshscope demo CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	g.pool.AddCert(ca)
	g.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafT := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano() + 1), Subject: pkix.Name{CommonName: gatewayHost},
		DNSNames: []string{gatewayHost}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leafT, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	g.signKey = priv
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "demo-1", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub)}}})
	doc := fmt.Sprintf(`# The demo's ingress gateway (meshscope-proxy --gateway, docs/gateway.md).
kind: Gateway
name: demo
service: %s
listeners:
  - address: %s
    tls: {certificates: [{hosts: [%s], cert_file: %s, key_file: %s}]}
routes:
  - name: checkout
    path_exact: /checkout
    service: web@%s
    jwt:
      issuer: %s
      audiences: [shop]
      jwks_file: %s
      forward_claims: {sub: X-User}
  - name: shop
    path_prefix: /
    service: web@%s
    anonymous: true
`, gatewayService, g.listen, gatewayHost, filepath.Join(dir, "shop.crt"), filepath.Join(dir, "shop.key"), web, demoIssuer, filepath.Join(dir, "jwks.json"), web)
	for name, b := range map[string][]byte{
		"ca.crt":       g.caPEM,
		"shop.crt":     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		"shop.key":     pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		"jwks.json":    jwks,
		"gateway.yaml": []byte(doc),
	} {
		mode := os.FileMode(0o644)
		if name == "shop.key" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, mode); err != nil {
			return nil, fmt.Errorf("demo gateway: %w", err)
		}
	}
	return g, nil
}

// args are the gateway proxy's flags.
func (g *gatewaySetup) args(collector string) []string {
	return []string{"--gateway", "--service", gatewayService, "--config", g.config, "--collector", collector, "--admin", g.admin}
}

// url is the shop's URL through the gateway.
func (g *gatewaySetup) url() string {
	_, port, _ := net.SplitHostPort(g.listen)
	return "https://" + gatewayHost + ":" + port
}

// client reaches the gateway for shop.localhost (resolved to its
// listener, whatever the system resolver says) and trusts the demo CA.
func (g *gatewaySetup) client() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, g.listen)
		},
		TLSClientConfig:     &tls.Config{RootCAs: g.pool, ServerName: gatewayHost},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 32,
	}}
}

// authorize adds a bearer token to checkout requests: valid, or (a share
// ExpiredTokenShare) expired a minute ago.
func (g *gatewaySetup) authorize(req *http.Request) {
	if req.URL.Path != "/checkout" {
		return
	}
	g.mu.Lock()
	expired := g.rnd.Float64() < ExpiredTokenShare
	user := fmt.Sprintf("shopper-%d", 1+g.rnd.IntN(50))
	g.mu.Unlock()
	now := time.Now()
	exp := now.Add(15 * time.Minute)
	if expired {
		exp = now.Add(-time.Minute)
	}
	enc := base64.RawURLEncoding.EncodeToString
	hdr, _ := json.Marshal(map[string]string{"alg": "EdDSA", "kid": "demo-1", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{"iss": demoIssuer, "aud": "shop", "sub": user, "iat": now.Unix(), "exp": exp.Unix()})
	in := enc(hdr) + "." + enc(claims)
	req.Header.Set("Authorization", "Bearer "+in+"."+enc(ed25519.Sign(g.signKey, []byte(in))))
}
