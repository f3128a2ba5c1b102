package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func csr(t *testing.T) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "admin"}, URIs: []*url.URL{{Scheme: "spiffe", Host: "evil", Path: "/service/root"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), key
}

func verify(t *testing.T, iss *Issued, now time.Time) *x509.Certificate {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(iss.Bundle) {
		t.Fatal("bundle")
	}
	var certs []*x509.Certificate
	rest := iss.Chain
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
	return certs[0]
}

func TestGeneratedRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.CertLifetime = time.Hour
	c, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	req, _ := csr(t)
	now := time.Now()
	iss, err := c.Sign(req, "payments", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := verify(t, iss, now)
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://meshscope.local/service/payments" || leaf.Subject.CommonName != "" {
		t.Errorf("leaf identity %v %q: the CSR's names must be ignored", leaf.URIs, leaf.Subject.CommonName)
	}
	if d := leaf.NotAfter.Sub(now); d < 59*time.Minute || d > time.Hour+time.Second {
		t.Errorf("lifetime %s, want 1h", d)
	}
	// A restart loads the same root.
	c2, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if string(c2.Bundle()) != string(c.Bundle()) {
		t.Error("restart generated a new root")
	}
}

// TestIntermediate: a user-supplied intermediate with its chain; leaves
// carry the intermediate and verify against the root.
func TestIntermediate(t *testing.T) {
	dir := t.TempDir()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "corp root"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, _ := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	root, _ := x509.ParseCertificate(rootDER)
	intKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	intTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mesh intermediate"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	intDER, _ := x509.CreateCertificate(rand.Reader, intTmpl, root, &intKey.PublicKey, rootKey)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: intDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})...)
	kder, _ := x509.MarshalECPrivateKey(intKey)
	certFile, keyFile := filepath.Join(dir, "int.crt"), filepath.Join(dir, "int.key")
	os.WriteFile(certFile, chain, 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)

	cfg := DefaultConfig()
	cfg.CertFile, cfg.KeyFile, cfg.TrustDomain, cfg.CertLifetime = certFile, keyFile, "corp.example", 72*time.Hour
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := csr(t)
	iss, err := c.Sign(req, "web", now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := verify(t, iss, now)
	if leaf.URIs[0].String() != "spiffe://corp.example/service/web" {
		t.Errorf("identity %v", leaf.URIs)
	}
	if !leaf.NotAfter.Equal(intTmpl.NotAfter.Truncate(time.Second)) {
		t.Errorf("leaf NotAfter %v outlives the intermediate %v", leaf.NotAfter, intTmpl.NotAfter)
	}
	if strings.Count(string(iss.Chain), "BEGIN CERTIFICATE") != 2 {
		t.Errorf("chain has no intermediate:\n%s", iss.Chain)
	}

	// The key of another certificate is refused, naming both files.
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kder, _ = x509.MarshalECPrivateKey(otherKey)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
}

func TestConfigAndCSRErrors(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.CertFile = "x" }, "--ca-cert, --ca-key"},
		{func(c *Config) { c.TrustDomain = "Bad Domain" }, "--trust-domain"},
		{func(c *Config) { c.CertLifetime = time.Second }, "--cert-lifetime"},
	} {
		cfg := DefaultConfig()
		cfg.Dir = t.TempDir()
		tc.mut(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"": "PEM CERTIFICATE REQUEST",
		"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n": "csr:",
		strings.Repeat("x", MaxCSRBytes+1):                                               "larger than",
	} {
		if _, err := c.Sign([]byte(in), "web", time.Now()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Sign(%.20q) = %v, want %q", in, err, want)
		}
	}
}

// FuzzSign: arbitrary CSR input never panics the CA.
func FuzzSign(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"))
	cfg := DefaultConfig()
	cfg.Dir = f.TempDir()
	c, err := New(cfg, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		_, _ = c.Sign(in, "web", time.Now())
	})
}
